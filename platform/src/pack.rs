//! The greedy packer: items, in order, into as few groups as a first-fit-in-order fill gives,
//! each group at most `room` in cost and `max_items` long. METRICS_UPDATE parts, the ids and
//! parts of a `FanoutJob` and SQS batches are all cut by it.

/// Packs `items` in order. An item whose cost alone exceeds `room` gets a group of its own
/// (the caller decides what an oversized item means: truncation, or an error on encoding).
pub fn pack<T>(
    items: impl IntoIterator<Item = T>,
    room: usize,
    max_items: usize,
    cost: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut used = 0;
    for item in items {
        let item_cost = cost(&item);
        let fits = groups
            .last()
            .is_some_and(|g| g.len() < max_items && used + item_cost <= room);
        if !fits {
            groups.push(Vec::new());
            used = 0;
        }
        used += item_cost;
        groups.last_mut().expect("a group exists").push(item);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_respect_room_and_count_and_keep_order() {
        let items: Vec<usize> = (0..25).map(|i| 100 + i).collect();
        let groups = pack(items.clone(), 1_000_000, 10, |n| *n);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        assert_eq!(groups.concat(), items);

        let groups = pack(items.clone(), 450, usize::MAX, |n| *n);
        assert!(groups.iter().all(|g| g.iter().sum::<usize>() <= 450));
        assert!(
            groups
                .windows(2)
                .all(|w| w[0].iter().sum::<usize>() + w[1][0] > 450),
            "greedy: a group closes only when the next item does not fit"
        );
        assert_eq!(groups.concat(), items);
    }

    #[test]
    fn an_oversized_item_stands_alone() {
        let groups = pack([5, 50, 5, 5], 20, usize::MAX, |n| *n);
        assert_eq!(groups, [vec![5], vec![50], vec![5, 5]]);
        assert!(pack(Vec::<usize>::new(), 10, 10, |n| *n).is_empty());
    }
}
