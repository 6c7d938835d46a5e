#!/usr/bin/env node
/**
 * Reconnect storm: how hard do N dashboards hit a server that comes back?
 *
 * Opens N clients of this library (its own backoff, jitter and heartbeat) against a URL,
 * ramping up at --ramp connections per second, and waits until they are all open. Then the
 * server goes away and comes back, and the tool counts, until every client is open again,
 * connection attempts and opens as the clients see them (and the gateway's accepted `$connect`s
 * from its /_admin/counters, when it has them). It prints the peak of each in any 1-second
 * window (sliding, not whole seconds), the spread (first drop to last reopen) and the
 * per-client reconnect times. API Gateway admits 500 new connections per second per account
 * and Region: the peak attempts/s is the figure to compare with it.
 *
 * The outage, --outage:
 *   restart  the tool runs the local stack's `local` bin itself (--server), kills it (SIGKILL:
 *            no close frames, as a crash) and starts it again --down seconds later;
 *   drop     the gateway stays up and closes every connection through its management API
 *            (DELETE @connections/{id}, the ids read from the connections table in moto), as
 *            API Gateway does when it drops connections: the worst case, the server is back
 *            at once;
 *   manual   (without --server) you restart the server yourself when it prints `ready`.
 *
 * Needs the built library (`npm run build`) and the `ws` package (a devDependency) on Node 20.
 * Each client is one socket: raise `ulimit -n` above N (the server needs as many).
 *
 *   npm run build
 *   ../scripts/with-moto.sh node tools/storm.mjs --server ../target/release/local --clients 1000 --outage drop
 *   ../scripts/with-moto.sh node tools/storm.mjs --server ../target/release/local --clients 1000 --outage restart
 *   node tools/storm.mjs --url ws://127.0.0.1:3001/local --clients 1000   # against `make dev`, manual
 *   node tools/storm.mjs --help
 */

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { MetricsClient } from '../dist/index.js';

const HELP = `usage: node tools/storm.mjs [options]
  --url URL          WebSocket URL (default ws://127.0.0.1:3001/local; with --server
                     ws://127.0.0.1:3901/local, and the server is started on that port)
  --clients N        clients to open (default 200)
  --ramp N           new clients per second while ramping up (default 200)
  --timeout S        give up after S seconds without recovery (default 300)
  --token T          token for every client (sent as the subprotocol)
  --base MS --cap MS --stable MS   the clients' backoff (library defaults 4000, 30000, 5000)
  --ping MS          ping interval (default 60000)
  --server PATH      the local stack's \`local\` bin: the tool runs it (LOCAL_PORT from --url,
                     LOCAL_SIMULATOR=0 unless --simulator) against AWS_ENDPOINT_URL's moto
                     (run the tool under scripts/with-moto.sh); its log goes to a file
  --outage KIND      restart | drop | manual (default: restart with --server, else manual)
  --down S           restart: seconds between the kill and the new start (default 2)
  --moto URL         drop: moto's endpoint (default $AWS_ENDPOINT_URL)
  --table NAME       drop: the connections table (default iops-dashboard-websocket-connections)
  --simulator        keep the stack's metrics simulator on (with --server)
  --json             print the summary as one JSON line as well
  --quiet            no per-second lines`;

/**
 * Runs a storm measurement; resolves with the summary. `log` gets the progress lines;
 * `onReady` is called once every client is open and may return a promise (the outage): the
 * measurement ends only after it settles and every client is open again. `gatewayConnects`,
 * when given, returns the gateway's total accepted connects (or null when it cannot be read).
 */
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
    gatewayConnects = null,
    gatewaySampleMs = 100,
  } = options;
  const started = Date.now();
  const clients = [];
  const dropAt = new Array(count).fill(null);
  const reconnectMs = [];
  const attemptTimes = [];
  const openTimes = [];
  let firstDrop = null;
  let lastDrop = null;
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
      if (state === 'connecting') attemptTimes.push(now);
      if (previous === 'open' && dropAt[i] === null) {
        dropAt[i] = now;
        firstDrop ??= now;
        lastDrop = now;
      }
      if (state === 'open') {
        openTimes.push(now);
        if (dropAt[i] !== null) {
          reconnectMs.push(now - dropAt[i]);
          dropAt[i] = null;
          lastReopen = now;
        }
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

  // The gateway's own count, sampled from now on (a restarted gateway starts from zero).
  const gateway = gatewayConnects ? new GatewaySampler(gatewayConnects, gatewaySampleMs) : null;
  await gateway?.start();

  ready = true;
  const readyAt = Date.now();
  log(`ready: ${count} clients open after ${((readyAt - started) / 1000).toFixed(1)} s`);
  let outageSettled = false;
  let outageError = null;
  Promise.resolve()
    .then(() => onReady())
    .catch((error) => {
      outageError = error;
    })
    .finally(() => {
      outageSettled = true;
    });

  // Watch, one line per tick, until the outage is over and everyone that dropped is back.
  const samples = [];
  let previous = totals();
  let previousGateway = gateway?.total ?? 0;
  const deadline = Date.now() + timeoutSeconds * 1000;
  let recovered = false;
  while (Date.now() < deadline && outageError === null) {
    await sleep(tickMs);
    const now = totals();
    const gatewayTotal = gateway?.total ?? 0;
    const sample = {
      t: samples.length + 1,
      open,
      attempts: now.attempts - previous.attempts,
      opens: now.opens - previous.opens,
      refusals: now.refusals - previous.refusals,
      gatewayConnects: gateway ? gatewayTotal - previousGateway : null,
    };
    previous = now;
    previousGateway = gatewayTotal;
    samples.push(sample);
    if (firstDrop !== null) {
      const g = gateway ? ` gateway connects/s=${sample.gatewayConnects}` : '';
      log(`t=${sample.t}s open=${open} attempts/s=${sample.attempts} opens/s=${sample.opens} refused/s=${sample.refusals}${g}`);
    }
    if (outageSettled && firstDrop !== null && open === count) {
      recovered = true;
      break;
    }
  }
  gateway?.stop();
  ready = false; // closing them is no drop
  clients.forEach((c) => c.close());
  if (outageError !== null) throw outageError;

  const perSecond = (n) => (n * 1000) / tickMs;
  const active = samples.filter((s) => s.attempts > 0 || s.opens > 0);
  const sorted = [...reconnectMs].sort((a, b) => a - b);
  return {
    url,
    clients: count,
    backoff,
    recovered,
    reconnects: reconnectMs.length,
    attempts: attemptTimes.length,
    // the most in any 1-second window (sliding), from the first drop on
    peakAttemptsPerSecond: peakInWindow(attemptTimes, 1000),
    peakOpensPerSecond: peakInWindow(openTimes, 1000),
    // null when the gateway has no readable /_admin/counters
    gatewayPeakConnectsPerSecond: gateway?.points.length ? gateway.peakInWindow(1000) : null,
    gatewayConnects: gateway?.points.length ? gateway.total : null,
    meanOpensPerSecond: active.length ? perSecond(active.reduce((n, s) => n + s.opens, 0) / active.length) : 0,
    spreadMs: firstDrop !== null && lastReopen !== null ? lastReopen - firstDrop : null,
    // how long the outage took to reach every client (first to last drop)
    dropsMs: firstDrop !== null && lastDrop !== null ? lastDrop - firstDrop : null,
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

/** The most of `times` (ms) that fall in any window of `windowMs` (sliding). */
export function peakInWindow(times, windowMs) {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi] - sorted[lo] >= windowMs) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return peak;
}

/**
 * Polls the gateway's connect counter. A restarted gateway counts from zero again: a sample
 * lower than the last one is counted from zero.
 */
class GatewaySampler {
  constructor(read, everyMs) {
    this.read = read;
    this.everyMs = everyMs;
    this.points = []; // [time, connects since start]
    this.total = 0;
    this.last = null;
    this.running = false;
    this.loop = null;
  }

  async start() {
    await this.sample();
    this.running = true;
    // One read at a time, so that answers cannot arrive out of order (and look like a restart).
    this.loop = (async () => {
      while (this.running) {
        await sleep(this.everyMs);
        if (this.running) await this.sample();
      }
    })();
  }

  stop() {
    this.running = false;
  }

  async sample() {
    const value = await this.read().catch(() => null);
    const at = Date.now(); // when the count was at least this (the answer's time)
    if (value === null) return; // down (being restarted)
    if (this.last !== null) this.total += value >= this.last ? value - this.last : value;
    this.last = value;
    this.points.push([at, this.total]);
  }

  /** The most connects between two samples at most `windowMs` apart. */
  peakInWindow(windowMs) {
    let peak = 0;
    for (let lo = 0, hi = 0; hi < this.points.length; hi++) {
      while (this.points[hi][0] - this.points[lo][0] > windowMs) lo++;
      peak = Math.max(peak, this.points[hi][1] - this.points[lo][1]);
    }
    return peak;
  }
}

function seconds(ms) {
  return ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`;
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

// ------------------------------------------------------------------ the local stack

/** The local stack's `local` bin, run by the tool so that it can kill and restart it. */
class LocalServer {
  constructor(path, port, { simulator }) {
    this.path = path;
    this.env = { ...process.env, LOCAL_PORT: String(port), LOCAL_SIMULATOR: simulator ? '1' : '0' };
    this.logPath = join(tmpdir(), `storm-server-${process.pid}.log`);
    this.logFile = createWriteStream(this.logPath, { flags: 'a' });
    this.child = null;
  }

  /** Starts it and waits for its `ready:` line. */
  async start() {
    if (!process.env.AWS_ENDPOINT_URL) throw new Error('--server needs moto: run the tool under scripts/with-moto.sh');
    const child = spawn(this.path, ['dev'], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.pipe(this.logFile, { end: false });
    const lines = createInterface({ input: child.stdout });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.path} not ready within 60 s; see ${this.logPath}`)), 60_000);
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`${this.path} exited (${code ?? signal}); see ${this.logPath}`)));
      lines.on('line', (line) => {
        this.logFile.write(`${line}\n`);
        if (line.startsWith('ready: ')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.removeAllListeners('exit');
  }

  /** SIGKILL: the process and every socket go at once, no close frames, no `$disconnect`. */
  async kill() {
    await this.stop('SIGKILL');
  }

  /** Ctrl-C: the stack closes its sockets and runs their `$disconnect`s, then exits. */
  async shutdown() {
    await this.stop('SIGINT', 60_000);
    this.logFile.end();
  }

  async stop(signal, graceMs = 10_000) {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** The gateway's accepted `$connect`s so far, from its loopback admin endpoint. */
function gatewayCounter(url) {
  const admin = new URL(url);
  admin.protocol = admin.protocol === 'wss:' ? 'https:' : 'http:';
  admin.pathname = '/_admin/counters';
  admin.search = '';
  return async () => {
    const response = await fetch(admin, { signal: AbortSignal.timeout(1000) });
    if (!response.ok) return null;
    const counters = await response.json();
    return typeof counters.connects === 'number' ? counters.connects : null;
  };
}

/** Every connection id in the connections table (a Scan against moto, which signs nothing). */
async function connectionIds(moto, table) {
  const ids = [];
  let start;
  do {
    const response = await fetch(moto, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'DynamoDB_20120810.Scan',
        Authorization: `AWS4-HMAC-SHA256 Credential=${process.env.AWS_ACCESS_KEY_ID ?? 'testing'}/20260101/${process.env.AWS_REGION ?? 'us-east-1'}/dynamodb/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: JSON.stringify({ TableName: table, ProjectionExpression: 'connectionId', ExclusiveStartKey: start }),
    });
    const page = await response.json();
    if (!response.ok) throw new Error(`Scan ${table} at ${moto}: ${JSON.stringify(page)}`);
    for (const item of page.Items ?? []) if (item.connectionId?.S) ids.push(item.connectionId.S);
    start = page.LastEvaluatedKey;
  } while (start);
  return ids;
}

/**
 * Closes every connection through the management API, all at once (the ids are read first, so
 * the drops themselves take a fraction of a second). Returns how many were open.
 */
async function dropAll(url, moto, table) {
  const endpoint = new URL(url);
  endpoint.protocol = endpoint.protocol === 'wss:' ? 'https:' : 'http:';
  const ids = await connectionIds(moto, table);
  const statuses = await Promise.all(
    ids.map(async (id) => {
      const target = new URL(`${endpoint.pathname.replace(/\/$/, '')}/@connections/${encodeURIComponent(id)}`, endpoint);
      return (await fetch(target, { method: 'DELETE' })).status;
    }),
  );
  return statuses.filter((s) => s === 204).length;
}

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      clients: { type: 'string', default: '200' },
      ramp: { type: 'string', default: '200' },
      timeout: { type: 'string', default: '300' },
      token: { type: 'string' },
      base: { type: 'string' },
      cap: { type: 'string' },
      stable: { type: 'string' },
      ping: { type: 'string', default: '60000' },
      server: { type: 'string' },
      outage: { type: 'string' },
      down: { type: 'string', default: '2' },
      moto: { type: 'string' },
      table: { type: 'string', default: 'iops-dashboard-websocket-connections' },
      simulator: { type: 'boolean', default: false },
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
  const url = values.url ?? (values.server ? 'ws://127.0.0.1:3901/local' : 'ws://127.0.0.1:3001/local');
  const outage = values.outage ?? (values.server ? 'restart' : 'manual');
  if (!['restart', 'drop', 'manual'].includes(outage)) throw new Error('--outage is restart, drop or manual');
  if (outage === 'restart' && !values.server) throw new Error('--outage restart needs --server');
  const log = values.quiet ? () => {} : console.log;

  const server = values.server ? new LocalServer(values.server, Number(new URL(url).port), values) : null;
  let onReady = () => log('restart the server now');
  if (outage === 'restart') {
    const downMs = number('down') * 1000;
    onReady = async () => {
      log(`killing the server (SIGKILL); starting it again in ${downMs / 1000} s`);
      await server.kill();
      await sleep(downMs);
      await server.start();
      log('server up again');
    };
  } else if (outage === 'drop') {
    const moto = values.moto ?? process.env.AWS_ENDPOINT_URL;
    if (!moto) throw new Error('--outage drop needs moto: --moto URL or AWS_ENDPOINT_URL (scripts/with-moto.sh)');
    onReady = async () => {
      const closed = await dropAll(url, moto, values.table);
      log(`the gateway closed ${closed} connections (DELETE @connections/{id})`);
    };
  }

  let summary;
  try {
    if (server) {
      await server.start();
      log(`server ${values.server} up on ${url} (log: ${server.logPath})`);
    }
    summary = await storm({
      url,
      clients: number('clients'),
      ramp: number('ramp'),
      timeoutSeconds: number('timeout'),
      token: values.token,
      backoff,
      pingIntervalMs: number('ping'),
      WebSocket: await webSocketClass(),
      log,
      onReady,
      gatewayConnects: gatewayCounter(url),
    });
  } finally {
    await server?.shutdown();
  }
  const r = summary.reconnectMs;
  const gateway =
    summary.gatewayPeakConnectsPerSecond === null
      ? ''
      : `  gateway: peak ${summary.gatewayPeakConnectsPerSecond} connects/s, ${summary.gatewayConnects} in all`;
  console.log(
    [
      `storm (${outage}): ${summary.clients} clients, ${summary.reconnects} reconnected, ${summary.recovered ? 'recovered' : 'NOT recovered'}; backoff ${JSON.stringify(backoff)}`,
      `peak in any 1 s: ${summary.peakAttemptsPerSecond} attempts, ${summary.peakOpensPerSecond} opens (API Gateway admits 500/s)${gateway}`,
      `${summary.attempts} attempts in all; mean opens/s while reconnecting: ${summary.meanOpensPerSecond.toFixed(1)}`,
      `spread (first drop -> last reopen): ${seconds(summary.spreadMs)}; the drops took ${seconds(summary.dropsMs)}`,
      `reconnect time per client (ms): min ${r.min} p50 ${r.p50} p90 ${r.p90} p99 ${r.p99} max ${r.max}`,
    ].join('\n'),
  );
  if (values.json) {
    const { samples, ...rest } = summary;
    console.log(JSON.stringify({ outage, ...rest, opensPerSecond: samples.map((s) => s.opens) }));
  }
  if (!summary.recovered) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    console.error(`storm: ${error.message}`);
    process.exit(2);
  });
}
