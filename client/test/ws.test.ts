/**
 * The client against a real `ws` server on loopback: the handshake with a token as the
 * subprotocol, a refused handshake, the downgrade when subscribe/snapshot are unknown (as the
 * back end answers today), and a reconnect after the server drops the connection.
 */

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';

import { MetricsClient, type ClientEvents, type WebSocketClass } from '../src/index.js';
import { metricsUpdate, wire } from './helpers.js';

interface Server {
  url: string;
  wss: WebSocketServer;
  /** What each connection's handshake carried. */
  handshakes: Array<{ protocol: string | undefined; url: string | undefined }>;
  received: string[];
}

const servers: WebSocketServer[] = [];
after(() => servers.forEach((s) => s.close()));

/** A server that behaves like the back end today: ping -> PONG, anything else -> ERROR. */
async function startServer(options: { requireToken?: string } = {}): Promise<Server> {
  const handshakes: Server['handshakes'] = [];
  const received: string[] = [];
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    // API Gateway answers the offered subprotocol; browsers fail a handshake that does not.
    handleProtocols: (protocols) => protocols.values().next().value ?? false,
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number) => void) => {
      const offered = info.req.headers['sec-websocket-protocol'];
      handshakes.push({ protocol: offered, url: info.req.url });
      if (options.requireToken !== undefined && offered !== options.requireToken) done(false, 401);
      else done(true);
    },
  });
  servers.push(wss);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  wss.on('connection', (socket) => {
    socket.on('message', (data) => {
      const text = String(data);
      received.push(text);
      const action = (JSON.parse(text) as { action?: string }).action;
      socket.send(
        JSON.stringify(
          action === 'ping'
            ? { type: 'PONG' }
            : { type: 'ERROR', message: `unknown action ${JSON.stringify(action)}; supported actions: ping` },
        ),
      );
    });
  });
  const { port } = wss.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/local`, wss, handshakes, received };
}

function next<K extends keyof ClientEvents>(
  client: MetricsClient,
  type: K,
  accept: (payload: ClientEvents[K]) => boolean = () => true,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${String(type)}`)), 5000);
    const off = client.on(type, (payload) => {
      if (!accept(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

// The ws package's class fits without a cast (and so does the DOM's; checked by the compiler).
const Ws: WebSocketClass = WebSocket;
const domFits: typeof globalThis.WebSocket extends WebSocketClass ? true : false = true;
void domFits;

describe('MetricsClient with ws', () => {
  it('connects with the token as subprotocol, downgrades, measures RTT and receives updates', async () => {
    const server = await startServer({ requireToken: 'jwt-1' });
    const client = new MetricsClient({ url: server.url, WebSocket: Ws, token: () => 'jwt-1' });
    const rtt = next(client, 'rtt');
    const downgraded = next(client, 'capabilities', (c) => c.subscribe === 'unsupported' && c.snapshot === 'unsupported');
    client.connect();
    await next(client, 'state', (s) => s.state === 'open');
    assert.equal(server.handshakes[0]?.protocol, 'jwt-1');
    await downgraded;
    assert.ok((await rtt).rttMs >= 0);

    const upsert = next(client, 'upsert');
    for (const socket of server.wss.clients) {
      socket.send(JSON.stringify(metricsUpdate([wire('MODIFY', 'stream-001', '1', { metric_value: 1234 })], { id: 'b', part: 1, parts: 1 })));
    }
    assert.equal((await upsert).entity.data['metric_value'], 1234);
    assert.equal(client.state, 'open');
    client.close();
  });

  it('reports a refused handshake with the status ws saw, and retries', async () => {
    const server = await startServer({ requireToken: 'good' });
    const client = new MetricsClient({
      url: server.url,
      WebSocket: Ws,
      token: 'bad',
      backoff: { baseMs: 20, capMs: 40 },
    });
    const error = next(client, 'error', (e) => e.kind === 'refused');
    client.connect();
    const refused = await error;
    assert.equal(refused.kind === 'refused' && refused.detail, 'Unexpected server response: 401');
    assert.equal(client.state, 'refused');
    await next(client, 'state', (s) => s.state === 'connecting');
    client.close();
  });

  it('reconnects after the server drops the connection', async () => {
    const server = await startServer();
    const client = new MetricsClient({ url: server.url, WebSocket: Ws, backoff: { baseMs: 20, capMs: 40 } });
    client.connect();
    await next(client, 'state', (s) => s.state === 'open');
    const reopened = next(client, 'state', (s) => s.state === 'open');
    for (const socket of server.wss.clients) socket.terminate();
    await reopened;
    assert.equal(client.stats.opens, 2);
    assert.equal(server.handshakes.length, 2);
    client.close();
  });
});
