/**
 * The built package as a consumer gets it: the `exports` entry (through the package's own
 * name), the browser bundle, and package.json's publishing fields. Runs after `npm run build`.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import type { MetricsClient as Client, ClientOptions } from '../src/index.js';
import { fakeWebSocket } from './fakes.js';
import { metricsUpdate, wire } from './helpers.js';

const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as Record<string, unknown>;

type Module = { MetricsClient: new (options: ClientOptions) => Client; compareSequences: unknown; parseSequence: unknown };

/** Imports by a computed specifier, so the compiler does not resolve the built files. */
const load = (specifier: string): Promise<Module> => import(specifier) as Promise<Module>;

function drive(module: Module): Client {
  const fake = fakeWebSocket();
  const client = new module.MetricsClient({ url: 'ws://x/local', WebSocket: fake.WebSocket });
  client.connect();
  fake.last().open();
  fake.last().receive(metricsUpdate([wire('MODIFY', 'a', '2', { metric_value: 5 })]));
  client.close();
  return client;
}

describe('the built package', () => {
  it('resolves through its exports and works', async () => {
    const module = await load(String(pkg['name']));
    assert.equal(typeof module.compareSequences, 'function');
    assert.equal(drive(module).entities.get('a')?.data['metric_value'], 5);
  });

  it('ships a browser bundle (one ES module) that works the same', async () => {
    const module = await load(new URL('dist/iops-client.min.js', root).href);
    assert.equal(drive(module).entities.get('a')?.data['metric_value'], 5);
    const text = readFileSync(new URL('dist/iops-client.min.js', root), 'utf8');
    assert.doesNotMatch(text, /\bimport\s*["'{]|require\(/, 'the bundle must not import anything');
  });

  it('has declarations that need neither Node nor DOM types', () => {
    const dts = readFileSync(new URL('dist/index.d.ts', root), 'utf8');
    assert.match(dts, /MetricsClient/);
    const client = readFileSync(new URL('dist/client.d.ts', root), 'utf8');
    assert.doesNotMatch(client + dts, /reference types=|NodeJS\.|\bBuffer\b|\bEventTarget\b/);
  });

  it('declares what publishing needs', () => {
    assert.equal(pkg['version'], '0.1.0');
    assert.equal(pkg['type'], 'module');
    assert.equal(pkg['sideEffects'], false);
    assert.equal(pkg['types'], './dist/index.d.ts');
    assert.deepEqual(pkg['engines'], { node: '>=20' });
    assert.deepEqual(pkg['files'], ['dist', 'README.md']);
    assert.equal(pkg['dependencies'], undefined, 'no runtime dependencies');
    const exported = (pkg['exports'] as Record<string, Record<string, string>>)['.'];
    assert.deepEqual(exported, { types: './dist/index.d.ts', default: './dist/index.js' });
    for (const [name, version] of Object.entries(pkg['devDependencies'] as Record<string, string>)) {
      assert.match(version, /^\d+\.\d+\.\d+$/, `${name} is pinned exactly`);
    }
  });
});
