/** Builders for wire messages and updates. */

import type { EventType } from '../src/index.js';
import type { Update } from '../src/protocol.js';
import { parseSequence } from '../src/sequence.js';

export function update(
  eventType: EventType,
  id: string,
  sequence: string | null,
  data: Record<string, unknown> = {},
): Update {
  return {
    eventType,
    sequence: sequence === null ? null : parseSequence(sequence),
    timestamp: null,
    data: { entity_id: id, ...data },
    truncated: data['truncated'] === true,
  };
}

/** A wire update entry. */
export function wire(
  eventType: EventType,
  id: string,
  sequence: string | undefined,
  data: Record<string, unknown> = {},
): Record<string, unknown> {
  const entry: Record<string, unknown> = { eventType, timestamp: 1699123456789, data: { entity_id: id, ...data } };
  if (sequence !== undefined) entry['sequence'] = sequence;
  return entry;
}

export function metricsUpdate(
  updates: unknown[],
  head: { id?: string; part?: number; parts?: number; stream?: string } = {},
): Record<string, unknown> {
  return { type: 'METRICS_UPDATE', ...head, updates };
}

export function snapshot(
  items: unknown[],
  head: { id?: string; part?: number; parts?: number; stream?: string } = {},
): Record<string, unknown> {
  return { type: 'SNAPSHOT', ...head, items };
}

/** A snapshot item: the current image with its sequence. */
export function item(id: string, sequence: string, data: Record<string, unknown> = {}): Record<string, unknown> {
  return { sequence, data: { entity_id: id, ...data } };
}
