// The close handshake as real clients see it (RFC 6455 §5.5.1): a client that closes gets the
// server's Close echoing its code, and then the server ends TCP, so the close is clean (not
// 1006). The `ws` package (what pusher-js's Node build and many Node apps use) and headless
// Chromium's WebSocket (what pusher-js's web build uses for `disconnect()` and tab close).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { startServer, withTimeout } from '../lib/harness.mjs';
import { CHROMIUM_ARGS } from '../lib/static.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skipBrowser = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (run compat-tests/setup.sh)`;
let srv;

before(async () => {
  srv = await startServer({ name: 'close' });
});
after(async () => {
  await srv?.stop();
});

/** Opens a socket, waits for connection_established, closes with `code` (or none); resolves
 * with the close event's code and how long the close took. */
async function closeWith(code) {
  const ws = new WebSocket(`ws://${srv.host}:${srv.port}/app/${srv.app.key}?protocol=7`);
  ws.on('error', () => {});
  await withTimeout(new Promise((r) => ws.once('message', r)), 5000, 'connection_established');
  const started = Date.now();
  const closed = new Promise((r) => ws.once('close', (c) => r(c)));
  if (code === undefined) ws.close(); else ws.close(code);
  // `ws` reports the close once the server has ended TCP (it gives up itself after 30 s).
  const got = await withTimeout(closed, 5000, `close after close(${code})`);
  return { code: got, ms: Date.now() - started };
}

test('ws client: close(1000/1001/3000/4000) is echoed, TCP ended by the server', { timeout: 20_000 }, async () => {
  for (const code of [1000, 1001, 3000, 4000, 4999]) {
    const { code: got, ms } = await closeWith(code);
    assert.equal(got, code, `close(${code}) came back as ${got}`);
    assert.ok(ms < 2000, `close(${code}) took ${ms} ms`);
  }
  // No code: the reply has none either; `ws` reports 1005 ("no status"), a clean close.
  const { code: got } = await closeWith(undefined);
  assert.equal(got, 1005);
});

test('Chromium WebSocket: close() and close(1000) are clean', { skip: skipBrowser, timeout: 45_000 }, async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  try {
    const page = await browser.newPage();
    const url = `ws://${srv.host}:${srv.port}/app/${srv.app.key}?protocol=7`;
    const results = await page.evaluate(async (url) => {
      const one = (code) => new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onmessage = () => (code === undefined ? ws.close() : ws.close(code));
        ws.onclose = (e) => resolve({ code: e.code, wasClean: e.wasClean });
        setTimeout(() => reject(new Error('no close event in 5 s')), 5000);
      });
      return [await one(1000), await one(undefined), await one(4000)];
    }, url);
    assert.deepEqual(results, [
      { code: 1000, wasClean: true },
      { code: 1005, wasClean: true },
      { code: 4000, wasClean: true },
    ]);
  } finally {
    await browser.close().catch(() => {});
  }
});
