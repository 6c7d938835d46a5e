/**
 * The wire format (shared/DESIGN.md, "Wire formats"): what the server sends, parsed leniently
 * (every field the seed did not have is optional), and what the client sends.
 */

import { parseSequence, type Sequence } from './sequence.js';
import type { Filter } from './filter.js';

export type EventType = 'INSERT' | 'MODIFY' | 'REMOVE';

/** One change of one item, as the client applies it. */
export interface Update {
  eventType: EventType;
  /** The stream sequence number, or null (the seed's messages have none). */
  sequence: Sequence | null;
  /** When the change happened, epoch ms, when the server said. */
  timestamp: number | null;
  /** The item's image (NewImage; OldImage for REMOVE) as plain JSON. */
  data: Record<string, unknown>;
  /** The record was too large to send: `data` holds only its keys. */
  truncated: boolean;
}

/** What identifies one payload for duplicate detection; absent on the seed's messages. */
export interface PartRef {
  id: string;
  part: number;
  parts: number | null;
}

export type ServerMessage =
  | { type: 'METRICS_UPDATE'; ref: PartRef | null; stream: string | null; updates: unknown[] }
  | { type: 'SNAPSHOT'; ref: PartRef | null; stream: string | null; items: unknown[] }
  /** `filter`: the filter now in force on the connection, as the server echoes it. */
  | { type: 'SUBSCRIBED'; filter: Filter }
  | { type: 'PONG' }
  /** `gateway`: API Gateway's own reply to a message no route takes (the seed has none). */
  | { type: 'ERROR'; message: string; gateway: boolean }
  | { type: 'UNKNOWN'; name: string };

/** A parse failure, with what was wrong (for the `error` event). */
export interface Invalid {
  invalid: string;
}

/** Parses one frame's text. Anything not JSON or not an object is invalid. */
export function parseServerMessage(text: string): ServerMessage | Invalid {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { invalid: `not JSON: ${text.slice(0, 80)}` };
  }
  if (!isObject(value)) return { invalid: 'not a JSON object' };
  switch (value['type']) {
    case 'METRICS_UPDATE':
      return { type: 'METRICS_UPDATE', ref: partRef(value), stream: stream(value), updates: list(value['updates']) };
    case 'SNAPSHOT':
      return { type: 'SNAPSHOT', ref: partRef(value), stream: stream(value), items: list(value['items']) };
    case 'SUBSCRIBED':
      return { type: 'SUBSCRIBED', filter: echoedFilter(value) };
    case 'PONG':
      return { type: 'PONG' };
    case 'ERROR':
      return { type: 'ERROR', message: errorText(value['message']), gateway: false };
    case undefined:
      // API Gateway answers a message that matches no route with {"message":"Forbidden",
      // "connectionId":…,"requestId":…}: an error reply, from a server without that action.
      if (typeof value['message'] === 'string') return { type: 'ERROR', message: value['message'], gateway: true };
      return { invalid: 'message without a "type"' };
    default:
      return { type: 'UNKNOWN', name: String(value['type']) };
  }
}

/** One entry of `updates`, or null when it has no item image to apply. */
export function parseUpdate(value: unknown): Update | null {
  if (!isObject(value)) return null;
  const data = value['data'];
  if (!isObject(data)) return null;
  const eventType = value['eventType'];
  return {
    // The seed always sent one; anything else is treated as a change, as the page did.
    eventType: eventType === 'INSERT' || eventType === 'REMOVE' ? eventType : 'MODIFY',
    sequence: parseSequence(value['sequence']),
    timestamp: typeof value['timestamp'] === 'number' && Number.isFinite(value['timestamp']) ? value['timestamp'] : null,
    data,
    truncated: data['truncated'] === true,
  };
}

/**
 * One SNAPSHOT item: the current image of an entity, shaped like an update without
 * `eventType` (`{"sequence":…,"timestamp":…,"data":{…}}`).
 */
export function parseSnapshotItem(value: unknown): Update | null {
  const update = parseUpdate(value);
  return update && { ...update, eventType: 'INSERT' };
}

// ------------------------------------------------------------------ client -> server

export type Action = 'ping' | 'subscribe' | 'snapshot';

export function pingMessage(): string {
  return JSON.stringify({ action: 'ping' });
}

/** Empty lists are left out: no list means "everything", as with the seed. */
export function subscribeMessage(filter: Filter): string {
  return JSON.stringify({ action: 'subscribe', ...filterFields(filter) });
}

/**
 * The filter rides along with the snapshot request too: the server may run the two requests
 * concurrently, and the snapshot must not be taken with the connection's previous filter.
 */
export function snapshotMessage(filter: Filter): string {
  const fields = filterFields(filter);
  // Everything is sent as an empty list: a snapshot request without lists means "the
  // connection's filter" to the server, which may still be the previous one.
  return JSON.stringify({ action: 'snapshot', ...(Object.keys(fields).length > 0 ? fields : { entityTypes: [] }) });
}

function filterFields(filter: Filter): Filter {
  const fields: Filter = {};
  if (filter.entityTypes && filter.entityTypes.length > 0) fields.entityTypes = [...filter.entityTypes];
  if (filter.entityIds && filter.entityIds.length > 0) fields.entityIds = [...filter.entityIds];
  return fields;
}

// ------------------------------------------------------------------ helpers

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function stream(message: Record<string, unknown>): string | null {
  const value = message['stream'];
  return typeof value === 'string' && value !== '' ? value : null;
}

function partRef(message: Record<string, unknown>): PartRef | null {
  const id = message['id'];
  if (typeof id !== 'string' && typeof id !== 'number') return null;
  return { id: String(id), part: positiveInt(message['part']) ?? 1, parts: positiveInt(message['parts']) };
}

function positiveInt(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null;
}

/**
 * The filter a SUBSCRIBED echoes (`entityTypes`, `entityIds`; a list left out is none, so a
 * bare SUBSCRIBED is "everything"); values that are not strings are skipped.
 */
function echoedFilter(message: Record<string, unknown>): Filter {
  const filter: Filter = {};
  const types = strings(message['entityTypes']);
  const ids = strings(message['entityIds']);
  if (types.length > 0) filter.entityTypes = types;
  if (ids.length > 0) filter.entityIds = ids;
  return filter;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function errorText(value: unknown): string {
  if (typeof value === 'string') return value;
  return value === undefined || value === null ? 'unknown error' : JSON.stringify(value);
}
