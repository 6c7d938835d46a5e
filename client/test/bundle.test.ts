/**
 * The library bundle the local stack's dashboard page loads (dev/stack/static/client.js) is
 * committed, because the Rust build embeds it and must not need npm. This fails when it is not
 * what client/src builds to now: run `npm run bundle` in client/.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

import type { ClientOptions, MetricsClient as Client } from '../src/index.js';
import { fakeWebSocket } from './fakes.js';
import { metricsUpdate, wire } from './helpers.js';

interface BundleTool {
  target: string;
  check(): Promise<string | null>;
}

describe("the dashboard page's bundle (dev/stack/static/client.js)", () => {
  it('is what client/src builds to now', async () => {
    // Loaded at run time: a plain .mjs next to the package, outside the compiled tree.
    const toolPath = '../../tools/bundle.mjs';
    const tool = (await import(toolPath)) as BundleTool;
    assert.equal(await tool.check(), null);
  });

  it('is one ES module that works', async () => {
    const toolPath = '../../tools/bundle.mjs';
    const { target } = (await import(toolPath)) as BundleTool;
    const bundlePath = pathToFileURL(target).href;
    const module = (await import(bundlePath)) as { MetricsClient: new (options: ClientOptions) => Client };
    const fake = fakeWebSocket();
    const client = new module.MetricsClient({ url: 'ws://x/local', WebSocket: fake.WebSocket });
    client.connect();
    fake.last().open();
    fake.last().receive(metricsUpdate([wire('MODIFY', 'a', '2', { metric_value: 5 })]));
    client.close();
    assert.equal(client.entities.get('a')?.data['metric_value'], 5);
  });
});
