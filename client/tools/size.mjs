#!/usr/bin/env node
// Prints the browser bundle's size, minified and gzipped (what a page downloads).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const file = new URL('../dist/iops-client.min.js', import.meta.url);
const bytes = readFileSync(file);
const gzipped = gzipSync(bytes, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`client bundle dist/iops-client.min.js: ${bytes.length} B (${kb(bytes.length)}) minified, ${gzipped} B (${kb(gzipped)}) gzipped`);
