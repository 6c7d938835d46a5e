/**
 * tools/storm.mjs against a loopback `ws` server that goes away and comes back: the tool sees
 * every client drop and return through the library's own reconnect logic, and counts them.
 */

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';

interface Summary {
  clients: number;
  recovered: boolean;
  reconnects: number;
  attempts: number;
  peakAttemptsPerSecond: number;
  peakOpensPerSecond: number;
  spreadMs: number | null;
  reconnectMs: { min: number | null; max: number | null };
  samples: Array<{ opens: number }>;
}
type Storm = (options: Record<string, unknown>) => Promise<Summary>;
type PeakInWindow = (times: number[], windowMs: number) => number;

function listen(port: number): Promise<WebSocketServer> {
  return new Promise((resolve, reject) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port });
    wss.once('listening', () => resolve(wss));
    wss.once('error', reject);
  });
}

function shutDown(wss: WebSocketServer): Promise<void> {
  for (const socket of wss.clients) socket.terminate();
  return new Promise((resolve) => wss.close(() => resolve()));
}

describe('tools/storm.mjs', () => {
  it('counts the most events in any 1-second window, not in whole seconds', async () => {
    const modulePath = '../../tools/storm.mjs';
    const { peakInWindow } = (await import(modulePath)) as { peakInWindow: PeakInWindow };
    assert.equal(peakInWindow([], 1000), 0);
    // whole seconds hold 2 and 4 of these; the window [900, 1900) holds 5
    assert.equal(peakInWindow([100, 900, 1100, 1200, 1300, 1800, 2950], 1000), 5);
    assert.equal(peakInWindow([0, 1000, 2000], 1000), 1);
  });

  it('counts every client dropping and reconnecting when the server restarts', async () => {
    // Loaded at run time: it imports the built library (dist/), which test.sh builds first.
    const modulePath = '../../tools/storm.mjs';
    const { storm } = (await import(modulePath)) as { storm: Storm };
    let server = await listen(0);
    const port = (server.address() as AddressInfo).port;
    let restarted: Promise<void> = Promise.resolve();
    const summary = await storm({
      url: `ws://127.0.0.1:${port}/local`,
      clients: 20,
      ramp: 1000,
      timeoutSeconds: 20,
      backoff: { baseMs: 100, capMs: 400, stableAfterMs: 50 },
      WebSocket,
      tickMs: 100,
      log: () => {},
      onReady: () => {
        restarted = (async () => {
          await shutDown(server);
          await new Promise((resolve) => setTimeout(resolve, 300));
          server = await listen(port);
        })();
      },
    });
    await restarted;
    await shutDown(server);
    assert.equal(summary.recovered, true);
    assert.equal(summary.reconnects, 20);
    assert.equal(
      summary.samples.reduce((n, s) => n + s.opens, 0),
      20,
    );
    assert.ok(summary.peakOpensPerSecond > 0 && summary.peakOpensPerSecond <= 20);
    assert.ok(summary.peakAttemptsPerSecond > 0 && summary.attempts >= 20);
    // nobody could be back before the server was (300 ms away)
    assert.ok((summary.reconnectMs.min ?? 0) >= 250, `min ${summary.reconnectMs.min}`);
    assert.ok(summary.spreadMs !== null && summary.spreadMs >= (summary.reconnectMs.max ?? 0));
  });
});
