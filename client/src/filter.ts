/**
 * What a dashboard wants to see. The server filters when it supports `subscribe`; the client
 * applies the same filter to what it receives in any case, so an older server that sends
 * everything (and the moments before SUBSCRIBED arrives) show the same entities.
 */

export interface Filter {
  /** Keep entities whose `entity_type` is one of these; absent or empty: every type. */
  entityTypes?: readonly string[];
  /** Keep entities whose id is one of these; absent or empty: every id. */
  entityIds?: readonly string[];
}

/** True when an entity with `id` and item image `data` passes `filter`. */
export function matchesFilter(filter: Filter, id: string, data: Record<string, unknown>): boolean {
  const { entityTypes, entityIds } = filter;
  if (entityIds && entityIds.length > 0 && !entityIds.includes(id)) return false;
  if (entityTypes && entityTypes.length > 0) {
    const type = data['entity_type'];
    if (typeof type !== 'string' || !entityTypes.includes(type)) return false;
  }
  return true;
}

/** A copy that later changes to the caller's arrays cannot reach. */
export function copyFilter(filter: Filter | undefined): Filter {
  const copy: Filter = {};
  if (filter?.entityTypes) copy.entityTypes = Object.freeze([...filter.entityTypes]);
  if (filter?.entityIds) copy.entityIds = Object.freeze([...filter.entityIds]);
  return copy;
}
