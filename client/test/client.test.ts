import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MetricsClient, type ClientError, type ClientEvents, type ClientOptions, type StateChange } from '../src/index.js';
import { FakeClock, fakeWebSocket, scriptedRandom } from './fakes.js';
import { item, metricsUpdate, snapshot, wire } from './helpers.js';

const UNKNOWN_SUBSCRIBE = { type: 'ERROR', message: 'unknown action "subscribe"; supported actions: ping' };
const UNKNOWN_SNAPSHOT = { type: 'ERROR', message: 'unknown action "snapshot"; supported actions: ping' };

function setup(options: Partial<ClientOptions> & { randomValues?: number[] } = {}) {
  const clock = new FakeClock();
  const fake = fakeWebSocket();
  const random = scriptedRandom(options.randomValues ?? [0.5]);
  const client = new MetricsClient({
    url: 'ws://127.0.0.1:3001/local',
    WebSocket: fake.WebSocket,
    clock,
    random,
    backoff: { baseMs: 1000, capMs: 8000, stableAfterMs: 5000 },
    pingIntervalMs: 60_000,
    ...options,
  });
  const states: StateChange[] = [];
  const errors: ClientError[] = [];
  client.on('state', (change) => states.push(change));
  client.on('error', (error) => errors.push(error));
  const stateNames = () => states.map((s) => s.state);
  return { client, clock, fake, random, states, errors, stateNames };
}

function collect<K extends keyof ClientEvents>(client: MetricsClient, type: K): Array<ClientEvents[K]> {
  const seen: Array<ClientEvents[K]> = [];
  client.on(type, (payload) => seen.push(payload));
  return seen;
}

/** Lets promise callbacks (an async token provider) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('MetricsClient: states', () => {
  it('goes idle -> connecting -> open -> reconnecting -> connecting -> open -> closed', () => {
    const { client, clock, fake, stateNames } = setup();
    assert.equal(client.state, 'idle');
    client.connect();
    assert.equal(client.state, 'connecting');
    fake.last().open();
    assert.equal(client.state, 'open');
    fake.last().drop(1001, 'going away');
    assert.equal(client.state, 'reconnecting');
    clock.advance(500); // random 0.5 of the first window (1000)
    assert.equal(fake.sockets.length, 2);
    fake.last().open();
    client.close();
    assert.deepEqual(stateNames(), ['connecting', 'open', 'reconnecting', 'connecting', 'open', 'closed']);
  });

  it('reports how the connection ended and when the retry comes', () => {
    const { client, fake, states } = setup();
    client.connect();
    fake.last().open();
    fake.last().drop(1001, 'going away');
    const change = states[states.length - 1];
    assert.deepEqual(change, {
      state: 'reconnecting',
      previous: 'open',
      retryInMs: 500,
      attempt: 1,
      close: { code: 1001, reason: 'going away' },
    });
  });

  it('is refused when the socket closes before it opens, and keeps retrying', () => {
    const { client, clock, fake, errors, stateNames } = setup();
    client.connect();
    fake.last().refuse('Unexpected server response: 403');
    assert.equal(client.state, 'refused');
    assert.deepEqual(errors, [{ kind: 'refused', code: 1006, reason: '', detail: 'Unexpected server response: 403' }]);
    clock.advance(500);
    fake.last().refuse();
    assert.deepEqual(stateNames(), ['connecting', 'refused', 'connecting', 'refused']);
    assert.equal(client.stats.refusals, 2);
    assert.equal(client.stats.opens, 0);
  });

  it('counts an attempt that never opens as refused after the connect timeout', () => {
    const { client, clock, fake } = setup({ connectTimeoutMs: 10_000 });
    client.connect();
    clock.advance(9_999);
    assert.equal(client.state, 'connecting');
    clock.advance(1);
    assert.equal(client.state, 'refused');
    assert.ok(fake.sockets[0]?.closedByClient, 'the hung socket was closed');
  });

  it('closes for good when the socket cannot even be created (a bad URL)', () => {
    const { client, clock, errors } = setup({
      WebSocket: class {
        constructor() {
          throw new SyntaxError('invalid url');
        }
      } as unknown as ClientOptions['WebSocket'] & object,
    });
    client.connect();
    assert.equal(client.state, 'closed');
    assert.equal(errors[0]?.kind, 'config');
    assert.deepEqual(clock.pendingDelays(), []);
  });

  it('connect() while a retry is scheduled tries at once; while open it does nothing', () => {
    const { client, fake } = setup();
    client.connect();
    fake.last().refuse();
    client.connect();
    assert.equal(fake.sockets.length, 2);
    fake.last().open();
    client.connect();
    assert.equal(fake.sockets.length, 2);
  });
});

describe('MetricsClient: reconnect timing', () => {
  it('draws each delay from the growing window with the random source, up to the cap', () => {
    const { client, clock, fake, states } = setup({ randomValues: [0.5, 0.5, 0.5, 0.5, 0.999, 0] });
    client.connect();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      fake.last().refuse();
      const delay = states[states.length - 1]?.retryInMs ?? -1;
      delays.push(delay);
      const before = fake.sockets.length;
      if (delay > 0) {
        clock.advance(delay - 1);
        assert.equal(fake.sockets.length, before, `no attempt before the delay (${i})`);
      }
      clock.advance(1);
      assert.equal(fake.sockets.length, before + 1, `an attempt when the delay ends (${i})`);
    }
    // windows 1000, 2000, 4000, 8000 (cap), 8000, 8000
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 7992, 0]);
  });

  it('does not reset the backoff when a connection drops soon after opening', () => {
    const { client, clock, fake, states } = setup();
    client.connect();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      fake.last().open();
      clock.advance(1000); // open for 1 s: under stableAfterMs (5 s)
      fake.last().drop();
      const delay = states[states.length - 1]?.retryInMs ?? -1;
      delays.push(delay);
      clock.advance(delay);
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000]);
  });

  it('resets the backoff after a connection that stayed open long enough', () => {
    const { client, clock, fake, states } = setup();
    client.connect();
    fake.last().refuse();
    clock.advance(500);
    fake.last().refuse();
    clock.advance(1000);
    fake.last().open();
    clock.advance(5000);
    fake.last().drop();
    assert.equal(states[states.length - 1]?.retryInMs, 500);
    assert.equal(states[states.length - 1]?.attempt, 1);
  });

  it('retries a failed token provider with backoff', () => {
    let calls = 0;
    const { client, clock, fake, errors } = setup({
      token: () => {
        calls++;
        if (calls === 1) throw new Error('identity provider down');
        return 'jwt-2';
      },
    });
    client.connect();
    assert.equal(client.state, 'reconnecting');
    assert.equal(errors[0]?.kind, 'token');
    assert.equal(fake.sockets.length, 0);
    clock.advance(500);
    assert.deepEqual(fake.last().protocols, ['jwt-2']);
  });
});

describe('MetricsClient: token', () => {
  it('calls the provider on every connect and sends the token as the subprotocol', () => {
    let calls = 0;
    const { client, clock, fake } = setup({ token: () => `jwt-${++calls}` });
    client.connect();
    fake.last().open();
    fake.last().drop();
    clock.advance(500);
    fake.last().refuse();
    clock.advance(1000);
    assert.equal(calls, 3);
    assert.deepEqual(
      fake.sockets.map((s) => s.protocols),
      [['jwt-1'], ['jwt-2'], ['jwt-3']],
    );
    assert.ok(fake.sockets.every((s) => s.url === 'ws://127.0.0.1:3001/local'));
  });

  it('waits for an async provider', async () => {
    const { client, fake } = setup({ token: async () => 'async-jwt' });
    client.connect();
    assert.equal(fake.sockets.length, 0);
    await settle();
    assert.deepEqual(fake.last().protocols, ['async-jwt']);
  });

  it('puts the token in the query string when asked, keeping the URL\'s own parameters', () => {
    const { client, fake } = setup({ url: 'ws://h:1/local?stage=x', token: 'a.b+c', tokenIn: 'query' });
    client.connect();
    assert.equal(fake.last().url, 'ws://h:1/local?stage=x&token=a.b%2Bc');
    assert.equal(fake.last().protocols, undefined);
  });

  it('connects without a token when the provider gives none', () => {
    const { client, fake } = setup({ token: () => null });
    client.connect();
    assert.equal(fake.last().protocols, undefined);
  });

  it('does not open a socket for a token that arrives after close()', async () => {
    let resolve: (token: string) => void = () => undefined;
    const { client, fake } = setup({ token: () => new Promise<string>((r) => (resolve = r)) });
    client.connect();
    client.close();
    resolve('late');
    await settle();
    assert.equal(fake.sockets.length, 0);
    assert.equal(client.state, 'closed');
  });
});

describe('MetricsClient: subscribe, snapshot and older servers', () => {
  it('sends subscribe, snapshot and a ping on every open, with the filter', () => {
    const filter = { entityTypes: ['disk'], entityIds: ['disk-1', 'disk-2'] };
    const { client, clock, fake } = setup({ filter });
    client.connect();
    fake.last().open();
    assert.deepEqual(fake.last().messages(), [
      { action: 'subscribe', ...filter },
      { action: 'snapshot', ...filter },
      { action: 'ping' },
    ]);
    fake.last().drop();
    clock.advance(500);
    fake.last().open();
    assert.deepEqual(fake.last().actions(), ['subscribe', 'snapshot', 'ping']);
  });

  it('leaves empty filter lists out, and skips the snapshot when turned off', () => {
    const { client, fake } = setup({ filter: { entityTypes: [] }, snapshot: false });
    client.connect();
    fake.last().open();
    assert.deepEqual(fake.last().messages(), [{ action: 'subscribe' }, { action: 'ping' }]);
  });

  it('carries on without subscribe and snapshot when the server answers them with ERROR', () => {
    const { client, fake, errors } = setup({ filter: { entityTypes: ['disk'] } });
    const capabilities = collect(client, 'capabilities');
    client.connect();
    const socket = fake.last();
    socket.open();
    socket.receive(UNKNOWN_SNAPSHOT); // replies may come in either order
    socket.receive(UNKNOWN_SUBSCRIBE);
    assert.deepEqual(client.capabilities, { subscribe: 'unsupported', snapshot: 'unsupported', ping: 'unknown' });
    assert.deepEqual(
      errors.map((e) => e.kind === 'server' && e.action),
      ['snapshot', 'subscribe'],
    );
    assert.ok(capabilities.length >= 2);
    // the server sends everything: the client still applies what the filter wants
    socket.receive(
      metricsUpdate([
        wire('MODIFY', 'disk-1', '1', { entity_type: 'disk', metric_value: 1 }),
        wire('MODIFY', 'stream-1', '1', { entity_type: 'stream', metric_value: 2 }),
      ]),
    );
    assert.deepEqual([...client.entities.keys()], ['disk-1']);
    assert.equal(client.stats.filtered, 1);
    // and does not ask again on this connection
    client.setFilter({ entityTypes: ['stream'] });
    assert.deepEqual(socket.actions(), ['subscribe', 'snapshot', 'ping']);
    assert.equal(client.entities.size, 0, 'the disk left the new filter');
  });

  it('learns capabilities again on every connection', () => {
    const { client, clock, fake } = setup();
    client.connect();
    fake.last().open();
    fake.last().receive(UNKNOWN_SUBSCRIBE);
    fake.last().receive(UNKNOWN_SNAPSHOT);
    fake.last().drop();
    clock.advance(500);
    fake.last().open();
    assert.deepEqual(client.capabilities, { subscribe: 'unknown', snapshot: 'unknown', ping: 'unknown' });
    assert.deepEqual(fake.last().actions(), ['subscribe', 'snapshot', 'ping']);
    fake.last().receive({ type: 'SUBSCRIBED', entityTypes: [] });
    assert.equal(client.capabilities.subscribe, 'supported');
  });

  it('takes API Gateway\'s "Forbidden" (no route for the action) as an answer to the oldest request', () => {
    const { client, fake, errors } = setup();
    client.connect();
    fake.last().open();
    const gatewayError = { message: 'Forbidden', connectionId: 'abc=', requestId: 'r1' };
    fake.last().receive(gatewayError);
    fake.last().receive(gatewayError);
    fake.last().receive(gatewayError);
    assert.deepEqual(client.capabilities, { subscribe: 'unsupported', snapshot: 'unsupported', ping: 'unsupported' });
    assert.deepEqual(
      errors.map((e) => e.kind === 'server' && [e.action, e.gateway]),
      [
        ['subscribe', true],
        ['snapshot', true],
        ['ping', true],
      ],
    );
  });

  it('reports an ERROR once per connection for pings the server does not take', () => {
    const { client, clock, fake, errors } = setup({ snapshot: false });
    client.connect();
    fake.last().open();
    fake.last().receive({ type: 'SUBSCRIBED' });
    fake.last().receive({ type: 'ERROR', message: 'unknown action "ping"' });
    clock.advance(60_000);
    fake.last().receive({ type: 'ERROR', message: 'unknown action "ping"' });
    assert.equal(errors.length, 1);
    assert.equal(client.state, 'open');
  });

  it('applies a requested snapshot, then removes what it no longer contains', () => {
    const { client, clock, fake } = setup();
    client.connect();
    fake.last().open();
    fake.last().receive(metricsUpdate([wire('MODIFY', 'a', '5'), wire('MODIFY', 'b', '5')]));
    fake.last().drop();
    clock.advance(500);
    fake.last().open(); // while away, b was deleted
    const batches = collect(client, 'batch');
    fake.last().receive(snapshot([item('a', '6', { metric_value: 1 })], { id: 'snap-1', part: 1, parts: 1 }));
    assert.deepEqual([...client.entities.keys()], ['a']);
    assert.equal(batches[0]?.source, 'snapshot');
    assert.equal(batches[0]?.snapshotComplete, true);
    assert.equal(client.capabilities.snapshot, 'supported');
  });
});

describe('MetricsClient: the subscription in force', () => {
  const INVALID = (detail: string) => ({ type: 'ERROR', message: `invalid filter (the filter is unchanged): ${detail}` });

  it('reports offline, pending and confirmed from the SUBSCRIBED echo, again on every connection', () => {
    const { client, clock, fake } = setup({ filter: { entityTypes: ['stream', 'disk', 'stream'] } });
    const subscriptions = collect(client, 'subscription');
    assert.equal(client.subscription.status, 'offline');
    client.connect();
    fake.last().open();
    assert.deepEqual(client.subscription, { filter: { entityTypes: ['stream', 'disk', 'stream'] }, status: 'pending', confirmed: null });
    fake.last().receive({ type: 'SUBSCRIBED', entityTypes: ['disk', 'stream'] }); // normalized by the server
    assert.deepEqual(client.subscription.status, 'confirmed');
    assert.deepEqual(client.subscription.confirmed, { entityTypes: ['disk', 'stream'] });
    fake.last().drop();
    assert.deepEqual(client.subscription.status, 'offline');
    assert.equal(client.subscription.confirmed, null, 'a confirmation holds for its connection only');
    clock.advance(500);
    fake.last().open();
    assert.deepEqual(fake.last().messages()[0], { action: 'subscribe', entityTypes: ['stream', 'disk', 'stream'] });
    fake.last().receive({ type: 'SUBSCRIBED', entityTypes: ['disk', 'stream'] });
    assert.deepEqual(
      subscriptions.map((s) => s.status),
      ['offline', 'pending', 'confirmed', 'offline', 'pending', 'confirmed'],
      'one event per change (the first when connecting)',
    );
  });

  it('is pending after setFilter until the server echoes the new filter; a bare SUBSCRIBED is everything', () => {
    const { client, fake } = setup({ filter: { entityTypes: ['stream'] } });
    client.connect();
    fake.last().open();
    fake.last().receive({ type: 'SUBSCRIBED', entityTypes: ['stream'] });
    client.setFilter({});
    assert.deepEqual(fake.last().messages().slice(-2), [{ action: 'subscribe' }, { action: 'snapshot', entityTypes: [] }]);
    assert.equal(client.subscription.status, 'pending');
    fake.last().receive({ type: 'SUBSCRIBED' });
    assert.deepEqual(client.subscription, { filter: {}, status: 'confirmed', confirmed: {} });
  });

  it('is unsupported on a server without subscriptions, which sends everything', () => {
    const { client, fake } = setup({ filter: { entityTypes: ['disk'] } });
    client.connect();
    fake.last().open();
    fake.last().receive(UNKNOWN_SUBSCRIBE);
    assert.equal(client.subscription.status, 'unsupported');
  });

  it('a refused filter is reported, the filter goes back to the one in force, and is asked for again', () => {
    const { client, fake, errors } = setup({ filter: { entityTypes: ['stream'] } });
    client.connect();
    const socket = fake.last();
    socket.open();
    socket.receive({ type: 'SUBSCRIBED', entityTypes: ['stream'] });
    socket.receive(snapshot([item('stream-1', '5', { entity_type: 'stream' })], { id: 's1', parts: 1 }));
    const subscriptions = collect(client, 'subscription');
    const sentBefore = socket.sent.length;

    client.setFilter({ entityTypes: ['x'.repeat(200)] });
    assert.equal(client.entities.size, 0, 'the new filter hides stream-1 at once');
    socket.receive(INVALID('entityTypes has a value of 200 characters; values are 1 to 128'));
    assert.deepEqual(errors, [
      {
        kind: 'server',
        message: 'invalid filter (the filter is unchanged): entityTypes has a value of 200 characters; values are 1 to 128',
        action: 'subscribe',
        gateway: false,
        refusedFilter: { entityTypes: ['x'.repeat(200)] },
      },
    ]);
    assert.deepEqual(client.currentFilter, { entityTypes: ['stream'] });
    assert.equal(client.capabilities.subscribe, 'supported', 'a refused filter says nothing about support');
    assert.deepEqual(socket.messages().slice(sentBefore), [
      { action: 'subscribe', entityTypes: ['x'.repeat(200)] },
      { action: 'snapshot', entityTypes: ['x'.repeat(200)] },
      { action: 'subscribe', entityTypes: ['stream'] },
      { action: 'snapshot', entityTypes: ['stream'] },
    ]);
    // the snapshot with the refused filter is refused too: reported, nothing else changes
    socket.receive(INVALID('entityTypes has a value of 200 characters; values are 1 to 128'));
    assert.equal(errors[1]?.kind === 'server' && errors[1].action, 'snapshot');
    assert.deepEqual(client.currentFilter, { entityTypes: ['stream'] });
    // the snapshot taken with the filter in force brings stream-1 back
    socket.receive(snapshot([item('stream-1', '5', { entity_type: 'stream' })], { id: 's2', parts: 1 }));
    assert.deepEqual([...client.entities.keys()], ['stream-1']);
    assert.deepEqual(
      subscriptions.map((s) => [s.status, s.filter]),
      [
        ['pending', { entityTypes: ['x'.repeat(200)] }],
        ['confirmed', { entityTypes: ['stream'] }],
      ],
    );
  });

  it('a filter refused on the first subscribe of a connection goes back to everything, and subscribe stays supported', () => {
    const { client, fake, errors } = setup({ filter: { entityTypes: ['stream'] } });
    client.connect();
    const socket = fake.last();
    socket.open();
    socket.receive(INVALID('this connection may not receive entity types ["stream"]'));
    assert.equal(client.capabilities.subscribe, 'supported');
    assert.deepEqual(client.currentFilter, {});
    assert.deepEqual(socket.messages().slice(-2), [{ action: 'subscribe' }, { action: 'snapshot', entityTypes: [] }]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.kind === 'server' && errors[0].action, 'subscribe');
  });

  it('takes a filter error for the oldest subscribe or snapshot, even when it quotes an action name', () => {
    const { client, fake } = setup({ filter: { entityTypes: ['ping'] } });
    client.connect();
    const socket = fake.last();
    socket.open(); // subscribe, snapshot, ping
    socket.receive(INVALID('this connection may not receive entity types ["ping"]'));
    assert.equal(client.capabilities.ping, 'unknown');
    assert.deepEqual(client.currentFilter, {});
  });

  it('a refusal of a filter already replaced by a newer one changes nothing', () => {
    const { client, fake, errors } = setup({ snapshot: false });
    client.connect();
    const socket = fake.last();
    socket.open();
    socket.receive({ type: 'SUBSCRIBED' });
    client.setFilter({ entityIds: ['bad id'] });
    client.setFilter({ entityIds: ['good'] });
    socket.receive(INVALID('entityIds …'));
    assert.deepEqual(client.currentFilter, { entityIds: ['good'] });
    assert.equal(errors[0]?.kind === 'server' && errors[0].refusedFilter?.entityIds?.[0], 'bad id');
    socket.receive({ type: 'SUBSCRIBED', entityIds: ['good'] });
    assert.equal(client.subscription.status, 'confirmed');
  });

  it('keeps an entity whose type OR id the filter names, as the server matches', () => {
    const { client, fake } = setup({ filter: { entityTypes: ['disk'], entityIds: ['stream-2'] } });
    client.connect();
    fake.last().open();
    fake.last().receive(
      metricsUpdate([
        wire('MODIFY', 'disk-1', '1', { entity_type: 'disk' }),
        wire('MODIFY', 'stream-1', '1', { entity_type: 'stream' }),
        wire('MODIFY', 'stream-2', '1', { entity_type: 'stream' }),
      ]),
    );
    assert.deepEqual([...client.entities.keys()].sort(), ['disk-1', 'stream-2']);
  });
});

describe('MetricsClient: messages and events', () => {
  it('emits upsert and remove per entity and one batch per message', () => {
    const { client, fake } = setup();
    const upserts = collect(client, 'upsert');
    const removes = collect(client, 'remove');
    const batches = collect(client, 'batch');
    client.connect();
    fake.last().open();
    fake.last().receive(metricsUpdate([wire('INSERT', 'a', '1', { metric_value: 1 }), wire('INSERT', 'b', '1')]));
    fake.last().receive(
      metricsUpdate([wire('MODIFY', 'a', '2', { metric_value: 2 }), wire('REMOVE', 'b', '2')], { id: 'b-7', part: 2, parts: 3 }),
    );
    assert.deepEqual(
      upserts.map((u) => [u.entity.id, u.entity.data['metric_value'], u.previous?.data['metric_value']]),
      [
        ['a', 1, undefined],
        ['b', undefined, undefined],
        ['a', 2, 1],
      ],
    );
    assert.deepEqual(removes.map((r) => [r.entity.id, r.source]), [['b', 'update']]);
    assert.deepEqual(batches.map((b) => b.changes.length), [2, 2]);
    // the message's broadcast id and part, for a page that shows them (none on the seed's)
    assert.deepEqual(batches.map((b) => b.ref), [null, { id: 'b-7', part: 2, parts: 3 }]);
  });

  it('emits a stream event when a new stream resets ordering', () => {
    const { client, fake } = setup();
    const streams = collect(client, 'stream');
    client.connect();
    fake.last().open();
    fake.last().receive(metricsUpdate([wire('MODIFY', 'a', '900', { metric_value: 1 })], { id: 'x', stream: 's1' }));
    fake.last().receive(metricsUpdate([wire('MODIFY', 'a', '1', { metric_value: 2 })], { id: 'x', stream: 's2' }));
    assert.deepEqual(streams, [{ from: 's1', to: 's2' }]);
    assert.equal(client.entities.get('a')?.data['metric_value'], 2);
    assert.equal(client.stream, 's2');
  });

  it('decodes binary frames and reports frames it cannot parse', () => {
    const { client, fake, errors } = setup();
    client.connect();
    const socket = fake.last();
    socket.open();
    const bytes = new TextEncoder().encode(JSON.stringify(metricsUpdate([wire('MODIFY', 'a', '1')])));
    socket.onmessage?.({ data: bytes.buffer });
    assert.ok(client.entities.has('a'));
    socket.receive('{not json');
    socket.receive({ type: 'SOMETHING_NEW' }); // additive types are ignored
    assert.deepEqual(errors.map((e) => e.kind), ['protocol']);
    assert.equal(client.stats.messages, 3);
  });
});

describe('MetricsClient: heartbeat', () => {
  it('pings on open and every interval, and reports the round trip', () => {
    const { client, clock, fake } = setup({ snapshot: false });
    const rtts = collect(client, 'rtt');
    client.connect();
    fake.last().open();
    clock.advance(40);
    fake.last().receive({ type: 'PONG' });
    assert.deepEqual(rtts, [{ rttMs: 40 }]);
    assert.equal(client.rttMs, 40);
    clock.advance(59_960);
    assert.deepEqual(fake.last().actions(), ['subscribe', 'ping', 'ping']);
    clock.advance(15);
    fake.last().receive({ type: 'PONG' });
    assert.equal(client.rttMs, 15);
  });

  it('drops a connection whose server stopped answering pings', () => {
    const { client, clock, fake, states } = setup();
    client.connect();
    fake.last().open();
    fake.last().receive({ type: 'PONG' });
    clock.advance(60_000); // second ping: no answer
    assert.equal(client.state, 'open');
    clock.advance(60_000);
    assert.equal(client.state, 'reconnecting');
    assert.equal(states[states.length - 1]?.close?.code, 1006);
    assert.match(states[states.length - 1]?.close?.reason ?? '', /heartbeat/);
    assert.ok(fake.sockets[0]?.closedByClient);
  });

  it('never drops a connection to a server that does not answer pings at all (the seed)', () => {
    const { client, clock, fake } = setup();
    client.connect();
    fake.last().open();
    clock.advance(10 * 60_000);
    assert.equal(client.state, 'open');
    assert.equal(fake.last().actions().filter((a) => a === 'ping').length, 11);
  });
});

describe('MetricsClient: close()', () => {
  it('stops the socket and every timer', () => {
    const { client, clock, fake } = setup();
    client.connect();
    fake.last().open();
    assert.notDeepEqual(clock.pendingDelays(), []);
    client.close();
    assert.deepEqual(clock.pendingDelays(), []);
    assert.deepEqual(fake.last().closedByClient, { code: 1000, reason: 'client closed' });
    fake.last().drop(); // a late close event from the old socket changes nothing
    clock.advance(3_600_000);
    assert.equal(fake.sockets.length, 1);
    assert.equal(client.state, 'closed');
  });

  it('cancels a scheduled reconnect', () => {
    const { client, clock, fake } = setup();
    client.connect();
    fake.last().refuse();
    client.close();
    assert.deepEqual(clock.pendingDelays(), []);
    clock.advance(3_600_000);
    assert.equal(fake.sockets.length, 1);
  });

  it('ignores messages of the closed socket and keeps the entities readable', () => {
    const { client, fake } = setup();
    client.connect();
    const socket = fake.last();
    socket.open();
    socket.receive(metricsUpdate([wire('MODIFY', 'a', '1')]));
    client.close();
    socket.receive(metricsUpdate([wire('MODIFY', 'b', '1')]));
    assert.deepEqual([...client.entities.keys()], ['a']);
  });

  it('stops an attempt when a state listener closes the client while it starts', () => {
    let calls = 0;
    const { client, clock, fake } = setup({ token: () => `jwt-${++calls}` });
    client.on('state', ({ state }) => state === 'connecting' && client.close());
    client.connect();
    assert.equal(client.state, 'closed');
    assert.equal(calls, 0);
    assert.equal(fake.sockets.length, 0);
    assert.deepEqual(clock.pendingDelays(), []);
  });

  it('keeps going when a listener throws', async () => {
    const { client, fake } = setup();
    const thrown: unknown[] = [];
    let later: unknown[] = [];
    const original = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', (error) => thrown.push(error));
    try {
      client.on('upsert', () => {
        throw new Error('render failed');
      });
      later = collect(client, 'upsert');
      client.connect();
      fake.last().open();
      fake.last().receive(metricsUpdate([wire('MODIFY', 'a', '1'), wire('MODIFY', 'b', '1')]));
      await settle();
    } finally {
      process.removeAllListeners('uncaughtException');
      original.forEach((listener) => process.on('uncaughtException', listener));
    }
    assert.equal(thrown.length, 2, 'each error reaches the host');
    assert.equal(later.length, 2, 'the other listeners still ran');
    assert.equal(client.entities.size, 2);
    assert.equal(client.state, 'open');
  });

  it('can connect again afterwards, with a fresh backoff', () => {
    const { client, clock, fake, states } = setup();
    client.connect();
    fake.last().refuse();
    clock.advance(500);
    fake.last().refuse();
    client.close();
    client.connect();
    fake.last().refuse();
    assert.equal(states[states.length - 1]?.retryInMs, 500);
  });
});

describe('MetricsClient: construction', () => {
  it('asks for a WebSocket class when there is no global one', { skip: typeof globalThis.WebSocket === 'function' }, () => {
    assert.throws(() => new MetricsClient({ url: 'ws://x' }), /options\.WebSocket/);
  });
});
