/**
 * What a dashboard wants to see. The server filters when it supports `subscribe`; the client
 * applies the same filter to what it receives in any case, so an older server that sends
 * everything (and the moments before SUBSCRIBED arrives) show the same entities.
 *
 * The rule is the server's (registry/src/filter.rs): an entity matches when its `entity_type`
 * is in `entityTypes` OR its id is in `entityIds`; a filter with neither list (or only empty
 * ones) matches everything.
 */

export interface Filter {
  /** Entities whose `entity_type` is one of these match; absent or empty: no type matches by itself. */
  entityTypes?: readonly string[];
  /** Entities whose id is one of these match; absent or empty: no id matches by itself. */
  entityIds?: readonly string[];
}

/** True when an entity with `id` and item image `data` passes `filter`. */
export function matchesFilter(filter: Filter, id: string, data: Record<string, unknown>): boolean {
  const types = filter.entityTypes ?? [];
  const ids = filter.entityIds ?? [];
  if (types.length === 0 && ids.length === 0) return true;
  if (ids.includes(id)) return true;
  const type = data['entity_type'];
  return typeof type === 'string' && types.includes(type);
}

/** A copy that later changes to the caller's arrays cannot reach. */
export function copyFilter(filter: Filter | undefined): Filter {
  const copy: Filter = {};
  if (filter?.entityTypes) copy.entityTypes = Object.freeze([...filter.entityTypes]);
  if (filter?.entityIds) copy.entityIds = Object.freeze([...filter.entityIds]);
  return copy;
}

/**
 * The filter as the server stores and echoes it: each list sorted without repeats, empty
 * lists left out. Filters that match the same entities normalize the same.
 */
export function normalizeFilter(filter: Filter): Filter {
  const normalized: Filter = {};
  const types = normalizedList(filter.entityTypes);
  const ids = normalizedList(filter.entityIds);
  if (types) normalized.entityTypes = types;
  if (ids) normalized.entityIds = ids;
  return normalized;
}

/** True when `a` and `b` are the same filter (in any order, with any repeats). */
export function sameFilter(a: Filter, b: Filter): boolean {
  const x = normalizeFilter(a);
  const y = normalizeFilter(b);
  return sameList(x.entityTypes, y.entityTypes) && sameList(x.entityIds, y.entityIds);
}

/** True for a filter that matches everything (no list, or only empty ones). */
export function isEverything(filter: Filter): boolean {
  return (filter.entityTypes?.length ?? 0) === 0 && (filter.entityIds?.length ?? 0) === 0;
}

function normalizedList(values: readonly string[] | undefined): readonly string[] | undefined {
  if (!values || values.length === 0) return undefined;
  return Object.freeze([...new Set(values)].sort());
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((value, i) => value === y[i]);
}
