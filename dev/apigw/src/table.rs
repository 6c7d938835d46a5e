//! The live connections: real sockets and virtual ones, in a sharded map that the management
//! API's hot path reads under one shard's read lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use platform::clock::now_ms;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::conn_info::ConnInfo;

/// Shards keep writers ($connect, $disconnect, DELETE) from stalling posts to other ids.
const SHARDS: usize = 32;

/// Why the server closed a socket: the close frame it sends and the `$disconnect` it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    Deleted,
    IdleTimeout,
    MaxDuration,
    /// A frame or message over the limits.
    MessageTooBig,
    /// A text frame (or close reason) that is not UTF-8.
    InvalidPayload,
    /// A frame that breaks RFC 6455 (unmasked, reserved bits, bad fragmentation...).
    ProtocolError,
    Shutdown,
}

impl CloseReason {
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::Deleted => 1000,
            Self::IdleTimeout | Self::MaxDuration | Self::Shutdown => 1001,
            Self::ProtocolError => 1002,
            Self::InvalidPayload => 1007,
            Self::MessageTooBig => 1009,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Deleted => "Connection deleted",
            Self::IdleTimeout | Self::MaxDuration | Self::Shutdown => "Going away",
            Self::ProtocolError => "Protocol error",
            Self::InvalidPayload => "Invalid frame payload data",
            Self::MessageTooBig => "Message too big",
        }
    }
}

/// A socket's side of a connection: the writer queue and the server-side close request.
#[derive(Debug)]
pub(crate) struct SocketLink {
    pub(crate) outbound: mpsc::Sender<Message>,
    pub(crate) close: CancellationToken,
    close_reason: OnceLock<CloseReason>,
}

impl SocketLink {
    pub(crate) fn new(outbound: mpsc::Sender<Message>, close: CancellationToken) -> Self {
        Self {
            outbound,
            close,
            close_reason: OnceLock::new(),
        }
    }

    /// Asks the socket task to close with `reason`; the first reason wins.
    pub(crate) fn request_close(&self, reason: CloseReason) {
        let _ = self.close_reason.set(reason);
        self.close.cancel();
    }

    /// The reason a close was requested with; a cancelled token without one is a shutdown.
    pub(crate) fn close_reason(&self) -> CloseReason {
        self.close_reason
            .get()
            .copied()
            .unwrap_or(CloseReason::Shutdown)
    }
}

/// Deliveries to one virtual connection. Times are nanoseconds since the gateway's start plus
/// one, so that 0 means "never".
#[derive(Debug, Default)]
pub(crate) struct DeliveryStats {
    count: AtomicU64,
    first: AtomicU64,
    last: AtomicU64,
}

impl DeliveryStats {
    fn record(&self, since_start: Duration) {
        let stamp = u64::try_from(since_start.as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .first
            .compare_exchange(0, stamp, Ordering::Relaxed, Ordering::Relaxed);
        self.last.fetch_max(stamp, Ordering::Relaxed);
    }

    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.first.store(0, Ordering::Relaxed);
        self.last.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) enum ConnKind {
    Socket(SocketLink),
    Virtual(DeliveryStats),
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) info: ConnInfo,
    last_active_ms: AtomicI64,
    pub(crate) kind: ConnKind,
}

impl Conn {
    pub(crate) fn new(info: ConnInfo, kind: ConnKind) -> Self {
        Self {
            last_active_ms: AtomicI64::new(info.connected_at_ms),
            info,
            kind,
        }
    }

    /// Client activity (not server posts, as on AWS) moves `lastActiveAt`.
    pub(crate) fn touch(&self, now_ms: i64) {
        self.last_active_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }
}

/// The clock that virtual delivery stamps are relative to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    pub(crate) instant: Instant,
    pub(crate) epoch_ms: i64,
}

impl Epoch {
    pub(crate) fn now() -> Self {
        Self {
            instant: Instant::now(),
            epoch_ms: now_ms(),
        }
    }

    fn at(&self, stamp: u64) -> Option<(Instant, i64)> {
        let ns = stamp.checked_sub(1)?;
        let offset = Duration::from_nanos(ns);
        let ms = i64::try_from(offset.as_millis()).unwrap_or(i64::MAX);
        Some((self.instant + offset, self.epoch_ms.saturating_add(ms)))
    }
}

/// What a virtual connection has received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualDelivery {
    /// Posts accepted for it; more than one per message sent means duplicates.
    pub deliveries: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    /// `first` on the wall clock, epoch milliseconds (to compare with record timestamps).
    pub first_epoch_ms: Option<i64>,
    pub last_epoch_ms: Option<i64>,
}

impl VirtualDelivery {
    fn read(stats: &DeliveryStats, epoch: &Epoch) -> Self {
        let first = epoch.at(stats.first.load(Ordering::Relaxed));
        let last = epoch.at(stats.last.load(Ordering::Relaxed));
        Self {
            deliveries: stats.count.load(Ordering::Relaxed),
            first: first.map(|(i, _)| i),
            last: last.map(|(i, _)| i),
            first_epoch_ms: first.map(|(_, ms)| ms),
            last_epoch_ms: last.map(|(_, ms)| ms),
        }
    }
}

/// Deliveries over all virtual connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    /// Virtual connections registered.
    pub connections: usize,
    /// Virtual connections that received at least one post.
    pub reached: usize,
    /// Posts accepted for virtual connections.
    pub deliveries: u64,
    /// Fewest and most posts any single virtual connection received.
    pub min_per_connection: u64,
    pub max_per_connection: u64,
    /// Earliest first delivery and latest delivery.
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

impl DeliverySummary {
    /// Time from the first to the last delivery.
    pub fn span(&self) -> Option<Duration> {
        Some(self.last?.saturating_duration_since(self.first?))
    }
}

type Shard = RwLock<HashMap<String, Arc<Conn>>>;

#[derive(Debug)]
pub(crate) struct ConnTable {
    shards: Box<[Shard]>,
    hasher: RandomState,
    pub(crate) epoch: Epoch,
}

/// Outcome of offering a post to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    Virtual,
    BufferFull,
    Gone,
}

impl ConnTable {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            epoch: Epoch::now(),
        }
    }

    fn shard(&self, id: &str) -> &Shard {
        // The modulo keeps the index below SHARDS, so the truncating cast is exact.
        let index = (self.hasher.hash_one(id) % SHARDS as u64) as usize;
        &self.shards[index]
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Conn>> {
        self.shard(id)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.shard(id)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }

    /// Inserts a new connection; refuses (and returns) it if the id is taken.
    pub(crate) fn insert(&self, conn: Arc<Conn>) -> Result<(), Arc<Conn>> {
        let mut shard = self
            .shard(&conn.info.id)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.contains_key(&conn.info.id) {
            return Err(conn);
        }
        shard.insert(conn.info.id.clone(), conn);
        Ok(())
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Conn>> {
        self.shard(id)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Removes `conn` only if the map still holds this very connection.
    pub(crate) fn remove_exact(&self, conn: &Arc<Conn>) -> bool {
        let mut shard = self
            .shard(&conn.info.id)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get(&conn.info.id) {
            Some(current) if Arc::ptr_eq(current, conn) => {
                shard.remove(&conn.info.id);
                true
            }
            _ => false,
        }
    }

    /// The hot path of `POST @connections/{id}`: one read lock, no allocation besides the
    /// message itself.
    pub(crate) fn offer(&self, id: &str, message: impl FnOnce() -> Message) -> Offer {
        let shard = self
            .shard(id)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match shard.get(id).map(|conn| &conn.kind) {
            None => Offer::Gone,
            Some(ConnKind::Virtual(stats)) => {
                stats.record(self.epoch.instant.elapsed());
                Offer::Virtual
            }
            Some(ConnKind::Socket(link)) => match link.outbound.try_send(message()) {
                Ok(()) => Offer::Queued,
                Err(mpsc::error::TrySendError::Full(_)) => Offer::BufferFull,
                Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
            },
        }
    }

    fn for_each(&self, mut f: impl FnMut(&Arc<Conn>)) {
        for shard in self.shards.iter() {
            for conn in shard
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
            {
                f(conn);
            }
        }
    }

    /// (sockets, virtual connections)
    pub(crate) fn counts(&self) -> (usize, usize) {
        let (mut sockets, mut virtuals) = (0, 0);
        self.for_each(|conn| match conn.kind {
            ConnKind::Socket(_) => sockets += 1,
            ConnKind::Virtual(_) => virtuals += 1,
        });
        (sockets, virtuals)
    }

    pub(crate) fn socket_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        self.for_each(|conn| {
            if let ConnKind::Socket(_) = conn.kind {
                ids.push(conn.info.id.clone());
            }
        });
        ids
    }

    pub(crate) fn virtual_delivery(&self, id: &str) -> Option<VirtualDelivery> {
        let conn = self.get(id)?;
        match &conn.kind {
            ConnKind::Virtual(stats) => Some(VirtualDelivery::read(stats, &self.epoch)),
            ConnKind::Socket(_) => None,
        }
    }

    pub(crate) fn virtual_deliveries(&self) -> Vec<(String, VirtualDelivery)> {
        let mut out = Vec::new();
        self.for_each(|conn| {
            if let ConnKind::Virtual(stats) = &conn.kind {
                out.push((
                    conn.info.id.clone(),
                    VirtualDelivery::read(stats, &self.epoch),
                ));
            }
        });
        out
    }

    pub(crate) fn delivery_summary(&self) -> DeliverySummary {
        let mut summary = DeliverySummary {
            min_per_connection: u64::MAX,
            ..DeliverySummary::default()
        };
        let (mut first, mut last) = (u64::MAX, 0u64);
        self.for_each(|conn| {
            if let ConnKind::Virtual(stats) = &conn.kind {
                let count = stats.count.load(Ordering::Relaxed);
                summary.connections += 1;
                summary.deliveries += count;
                summary.min_per_connection = summary.min_per_connection.min(count);
                summary.max_per_connection = summary.max_per_connection.max(count);
                if count > 0 {
                    summary.reached += 1;
                    first = first.min(stats.first.load(Ordering::Relaxed));
                    last = last.max(stats.last.load(Ordering::Relaxed));
                }
            }
        });
        if summary.connections == 0 {
            summary.min_per_connection = 0;
        }
        summary.first = self.epoch.at(first).map(|(i, _)| i);
        summary.last = self.epoch.at(last).map(|(i, _)| i);
        summary
    }

    pub(crate) fn reset_virtual_deliveries(&self) {
        self.for_each(|conn| {
            if let ConnKind::Virtual(stats) = &conn.kind {
                stats.reset();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str, kind: ConnKind) -> Arc<Conn> {
        Arc::new(Conn::new(
            ConnInfo {
                id: id.to_owned(),
                connected_at_ms: 1,
                source_ip: "127.0.0.1".to_owned(),
                user_agent: None,
                domain_name: "localhost".to_owned(),
                authorizer: Default::default(),
            },
            kind,
        ))
    }

    #[test]
    fn virtual_deliveries_are_counted_and_stamped() {
        let connections = ConnTable::new();
        let a = conn("a", ConnKind::Virtual(DeliveryStats::default()));
        let b = conn("b", ConnKind::Virtual(DeliveryStats::default()));
        connections.insert(a).unwrap();
        connections.insert(b).unwrap();
        let unused = || Message::Text("x".into());
        assert_eq!(connections.offer("a", unused), Offer::Virtual);
        assert_eq!(connections.offer("a", unused), Offer::Virtual);
        assert_eq!(connections.offer("zz", unused), Offer::Gone);

        let a = connections.virtual_delivery("a").unwrap();
        assert_eq!(a.deliveries, 2);
        assert!(a.first.unwrap() <= a.last.unwrap());
        assert!(a.first_epoch_ms.unwrap() >= connections.epoch.epoch_ms);
        let summary = connections.delivery_summary();
        assert_eq!(
            (
                summary.connections,
                summary.reached,
                summary.deliveries,
                summary.min_per_connection,
                summary.max_per_connection
            ),
            (2, 1, 2, 0, 2)
        );
        connections.reset_virtual_deliveries();
        assert_eq!(connections.delivery_summary().deliveries, 0);
        assert_eq!(connections.virtual_delivery("a").unwrap().first, None);
    }

    #[test]
    fn duplicate_ids_are_refused_and_exact_removal_checks_identity() {
        let connections = ConnTable::new();
        let first = conn("a", ConnKind::Virtual(DeliveryStats::default()));
        connections.insert(first.clone()).unwrap();
        let second = conn("a", ConnKind::Virtual(DeliveryStats::default()));
        assert!(connections.insert(second.clone()).is_err());
        assert!(!connections.remove_exact(&second));
        assert!(connections.remove_exact(&first));
        assert!(!connections.contains("a"));
    }

    #[test]
    fn full_socket_buffer_and_closed_socket() {
        let connections = ConnTable::new();
        let (tx, rx) = mpsc::channel(1);
        let socket = conn(
            "s",
            ConnKind::Socket(SocketLink::new(tx, CancellationToken::new())),
        );
        connections.insert(socket).unwrap();
        let msg = || Message::Text("x".into());
        assert_eq!(connections.offer("s", msg), Offer::Queued);
        assert_eq!(connections.offer("s", msg), Offer::BufferFull);
        drop(rx);
        assert_eq!(connections.offer("s", msg), Offer::Gone);
        assert_eq!(connections.counts(), (1, 0));
    }
}
