#!/usr/bin/env node
/**
 * Reconnect storm: how hard do N dashboards hit a server that comes back?
 *
 * Opens N clients of this library (its own backoff, jitter and heartbeat) against a URL,
 * ramping up at --ramp connections per second, and waits until they are all open. Then it
 * watches: when the server goes away and comes back (you restart it), it counts connection
 * attempts and opens per second until every client is open again, and prints the peak
 * attempts/s and opens/s and the spread (first drop to last reopen, and per-client reconnect
 * times). Needs the built library (`npm run build`) and the `ws` package (a devDependency)
 * on Node 20. Each client is one socket: raise `ulimit -n` above N.
 *
 *   node tools/storm.mjs --url ws://127.0.0.1:3001/local --clients 1000
 *   node tools/storm.mjs --help
 */

import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { MetricsClient } from '../dist/index.js';

const HELP = `usage: node tools/storm.mjs [options]
  --url URL          WebSocket URL (default ws://127.0.0.1:3001/local)
  --clients N        clients to open (default 200)
  --ramp N           new clients per second while ramping up (default 200)
  --timeout S        give up after S seconds without recovery (default 300)
  --token T          token for every client (sent as the subprotocol)
  --base MS --cap MS --stable MS   the clients' backoff (library defaults 1000, 30000, 5000)
  --ping MS          ping interval (default 60000)
  --json             print the summary as one JSON line as well
  --quiet            no per-second lines`;

/** Runs a storm measurement; resolves with the summary. `log` gets the progress lines. */
export async function storm(options) {
  const {
    url,
    clients: count,
    ramp = 200,
    timeoutSeconds = 300,
    token,
    backoff = {},
    pingIntervalMs = 60_000,
    WebSocket,
    log = console.log,
    onReady = () => {},
    tickMs = 1000,
  } = options;
  const started = Date.now();
  const clients = [];
  const dropAt = new Array(count).fill(null);
  const reconnectMs = [];
  let firstDrop = null;
  let lastReopen = null;
  let ready = false;
  let open = 0;

  for (let i = 0; i < count; i++) {
    const client = new MetricsClient({ url, WebSocket, token, backoff, pingIntervalMs, snapshot: true });
    client.on('state', ({ state, previous }) => {
      if (state === 'open') open++;
      if (previous === 'open') open--;
      if (!ready) return;
      const now = Date.now();
      if (previous === 'open' && dropAt[i] === null) {
        dropAt[i] = now;
        firstDrop ??= now;
      }
      if (state === 'open' && dropAt[i] !== null) {
        reconnectMs.push(now - dropAt[i]);
        dropAt[i] = null;
        lastReopen = now;
      }
    });
    client.on('error', () => {}); // refusals and server ERRORs are expected here; counted via stats
    clients.push(client);
  }

  const totals = () =>
    clients.reduce(
      (sum, c) => {
        const s = c.stats;
        return { attempts: sum.attempts + s.attempts, opens: sum.opens + s.opens, refusals: sum.refusals + s.refusals };
      },
      { attempts: 0, opens: 0, refusals: 0 },
    );

  // Ramp up without making a storm of our own.
  const perTick = Math.max(1, Math.round((ramp * tickMs) / 1000));
  for (let i = 0; i < count; i += perTick) {
    clients.slice(i, i + perTick).forEach((c) => c.connect());
    if (i + perTick < count) await sleep(tickMs);
  }
  const rampDeadline = Date.now() + timeoutSeconds * 1000;
  while (open < count && Date.now() < rampDeadline) await sleep(100);
  if (open < count) {
    clients.forEach((c) => c.close());
    throw new Error(`only ${open} of ${count} clients opened within ${timeoutSeconds} s`);
  }
  ready = true;
  log(`ready: ${count} clients open after ${((Date.now() - started) / 1000).toFixed(1)} s; restart the server now`);
  onReady();

  // Watch, one line per tick, until everyone that dropped is back.
  const samples = [];
  let previous = totals();
  const deadline = Date.now() + timeoutSeconds * 1000;
  let recovered = false;
  while (Date.now() < deadline) {
    await sleep(tickMs);
    const now = totals();
    const sample = {
      t: samples.length + 1,
      open,
      attempts: now.attempts - previous.attempts,
      opens: now.opens - previous.opens,
      refusals: now.refusals - previous.refusals,
    };
    previous = now;
    samples.push(sample);
    if (firstDrop !== null) {
      log(`t=${sample.t}s open=${open} attempts/s=${sample.attempts} opens/s=${sample.opens} refused/s=${sample.refusals}`);
    }
    if (firstDrop !== null && open === count) {
      recovered = true;
      break;
    }
  }
  clients.forEach((c) => c.close());

  const perSecond = (n) => (n * 1000) / tickMs;
  const active = samples.filter((s) => s.attempts > 0 || s.opens > 0);
  const sorted = [...reconnectMs].sort((a, b) => a - b);
  return {
    url,
    clients: count,
    recovered,
    reconnects: reconnectMs.length,
    peakAttemptsPerSecond: perSecond(Math.max(0, ...samples.map((s) => s.attempts))),
    peakOpensPerSecond: perSecond(Math.max(0, ...samples.map((s) => s.opens))),
    meanOpensPerSecond: active.length ? perSecond(active.reduce((n, s) => n + s.opens, 0) / active.length) : 0,
    spreadMs: firstDrop !== null && lastReopen !== null ? lastReopen - firstDrop : null,
    reconnectMs: {
      min: sorted[0] ?? null,
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? null,
    },
    samples,
  };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function webSocketClass() {
  try {
    return (await import('ws')).WebSocket;
  } catch {
    if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
    throw new Error('no WebSocket: run `npm ci` in client/ (ws is a devDependency) or use Node 22+');
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'ws://127.0.0.1:3001/local' },
      clients: { type: 'string', default: '200' },
      ramp: { type: 'string', default: '200' },
      timeout: { type: 'string', default: '300' },
      token: { type: 'string' },
      base: { type: 'string' },
      cap: { type: 'string' },
      stable: { type: 'string' },
      ping: { type: 'string', default: '60000' },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const number = (name) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const backoff = {};
  if (values.base) backoff.baseMs = number('base');
  if (values.cap) backoff.capMs = number('cap');
  if (values.stable) backoff.stableAfterMs = number('stable');
  const summary = await storm({
    url: values.url,
    clients: number('clients'),
    ramp: number('ramp'),
    timeoutSeconds: number('timeout'),
    token: values.token,
    backoff,
    pingIntervalMs: number('ping'),
    WebSocket: await webSocketClass(),
    log: values.quiet ? () => {} : console.log,
  });
  const r = summary.reconnectMs;
  console.log(
    [
      `storm: ${summary.clients} clients, ${summary.reconnects} reconnected, ${summary.recovered ? 'recovered' : 'NOT recovered'}`,
      `peak attempts/s: ${summary.peakAttemptsPerSecond}  peak opens/s: ${summary.peakOpensPerSecond}  mean opens/s while reconnecting: ${summary.meanOpensPerSecond.toFixed(1)}`,
      `spread (first drop -> last reopen): ${summary.spreadMs === null ? '-' : (summary.spreadMs / 1000).toFixed(1) + ' s'}`,
      `reconnect time per client (ms): min ${r.min} p50 ${r.p50} p90 ${r.p90} p99 ${r.p99} max ${r.max}`,
    ].join('\n'),
  );
  if (values.json) {
    const { samples, ...rest } = summary;
    console.log(JSON.stringify({ ...rest, opensPerSecond: samples.map((s) => s.opens) }));
  }
  if (!summary.recovered) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    console.error(`storm: ${error.message}`);
    process.exit(2);
  });
}
