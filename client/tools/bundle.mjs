#!/usr/bin/env node
/**
 * The library as the local stack's dashboard page loads it: one ES module,
 * dev/stack/static/client.js, built from src/ by esbuild and committed, so that `make dev`
 * (whose Rust build embeds dev/stack/static/ with include_str!) needs no npm on a fresh machine.
 * Not minified: the page is a development tool, and a readable bundle debugs and diffs well.
 *
 *   npm run bundle            # rewrite dev/stack/static/client.js
 *   npm run bundle -- --check # exit 1 when the committed file is not what src/ builds to
 *
 * test/bundle.test.ts runs the check in `./test.sh` (and so `make test`).
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
export const target = fileURLToPath(new URL('../../dev/stack/static/client.js', import.meta.url));

const BANNER = `// @iops-dashboard/client, bundled for the dashboard page. GENERATED from client/src by
// \`npm run bundle\` in client/: do not edit (client/test.sh fails when this file is stale).`;

/** The bundle's text, as src/ builds it now. */
export async function bundle() {
  const result = await esbuild.build({
    absWorkingDir: root, // the path comments in the output are relative to it: stable anywhere
    entryPoints: ['src/index.ts'],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    platform: 'browser',
    legalComments: 'none',
    banner: { js: BANNER },
    charset: 'utf8',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

/** Null when the committed bundle is current, else what is wrong with it. */
export async function check() {
  const wanted = await bundle();
  let committed;
  try {
    committed = readFileSync(target, 'utf8');
  } catch (error) {
    return `${target} is missing (${error.code ?? error.message}): run \`npm run bundle\` in client/`;
  }
  if (committed === wanted) return null;
  return `${target} is out of date with client/src: run \`npm run bundle\` in client/ and commit it`;
}

async function main() {
  if (process.argv.includes('--check')) {
    const problem = await check();
    if (problem) {
      console.error(`bundle: ${problem}`);
      process.exit(1);
    }
    console.log(`bundle: ${target} is up to date`);
    return;
  }
  const text = await bundle();
  writeFileSync(target, text);
  console.log(`bundle: wrote ${target} (${Buffer.byteLength(text)} B)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    console.error(`bundle: ${error.message}`);
    process.exit(2);
  });
}
