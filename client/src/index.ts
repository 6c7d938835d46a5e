/**
 * @iops-dashboard/client: the typed client dashboards use to receive live metrics from the
 * IOps fan-out back end (API Gateway WebSocket API). See README.md for an example.
 */

export {
  MetricsClient,
  type ChangeSource,
  type ClientError,
  type ClientEvents,
  type ClientOptions,
  type CloseInfo,
  type StateChange,
  type Subscription,
  type TokenProvider,
} from './client.js';
export type { ConnectionState } from './state.js';
export type { Entity, Change } from './store.js';
export type { Filter } from './filter.js';
export type { BackoffOptions } from './backoff.js';
export type { Capabilities, Support } from './requests.js';
export type { ClientStats } from './stats.js';
export type { Action, EventType, PartRef } from './protocol.js';
export type {
  Clock,
  CloseEventLike,
  MessageEventLike,
  Random,
  SocketHandler,
  TimerHandle,
  WebSocketClass,
  WebSocketLike,
} from './env.js';
export type { Listener } from './emitter.js';
// The ordering rule, for code that stores sequences itself (e.g. a page's own cache).
export { compareSequences, parseSequence, type Sequence } from './sequence.js';
