// Missed-message recovery with stock clients in a real browser: pusher-js and Laravel Echo in
// headless Chromium, with the one line an app adds (wsPath: '/l/' + crypto.randomUUID()),
// behind a TCP proxy of this test that cuts the connection without a WebSocket Close. Events
// published through the Node SDK while the page is cut off arrive after the proxy is restored,
// in order; at most the events sent after the last acknowledged ping come twice. The same with
// two nodes joined through Redis: the page comes back on the other node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { chromium } from 'playwright-core';
import { startServer, serverSdk, sleep } from '../lib/harness.mjs';
import { startStatic, CHROMIUM_ARGS } from '../lib/static.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skipBrowser = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (run scripts/prepare.sh)`;
const T = { skip: skipBrowser, timeout: 90_000 };
let srv;
let shortSrv;
let nodeA;
let nodeB;
let browser;
const refused = new Set();

/** A TCP proxy to `port` that can cut every connection (no Close frame) and refuse new ones. */
async function startProxy(port) {
  const sockets = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore(to) {
      if (to) port = to; // come back on another node
      down = false;
    },
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(r); }),
  };
}

before(async () => {
  if (skipBrowser) return;
  srv = await startServer({ name: 'recovery', flags: ['--recovery-window', '60'] });
  shortSrv = await startServer({ name: 'recovery-short', flags: ['--recovery-window', '2'] });
  const cluster = ['--adapter', 'redis', '--redis-prefix', `rf-compat-${process.pid}-${Date.now()}`,
    '--recovery-window', '60'];
  nodeA = await startServer({ name: 'recovery-node-a', flags: cluster });
  nodeB = await startServer({ name: 'recovery-node-b', flags: cluster });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
});
after(async () => {
  await browser?.close().catch(() => {});
  await srv?.stop();
  await shortSrv?.stop();
  await nodeA?.stop();
  await nodeB?.stop();
});

async function open(web, proxy, server, client, channel = 'private-feed') {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  const url = `${web.url}/recovery.html?host=127.0.0.1&port=${proxy.port}&key=${server.app.key}&client=${client}&channel=${channel}`;
  await page.goto(url, { timeout: 10_000 });
  page.closeAll = () => context.close();
  return page;
}

async function until(page, fn, arg, what, ms = 20_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
  } catch {
    const state = await page.evaluate(() => ({ got: window.__got, ok: window.__succeeded, errors: window.__errors, status: document.getElementById('status').textContent })).catch(() => ({}));
    throw new Error(`${what}: not reached in ${ms} ms; page ${JSON.stringify(state)}; console ${JSON.stringify(page.logs.slice(-20))}`);
  }
}

/**
 * Cut the page off, publish 50 events meanwhile, restore, and check what arrives. The page
 * starts on `first` and comes back on `second`; events go through `second`'s API before the
 * cut and `first`'s during it (the same server on one node).
 */
async function cutAndRecover(client, first = srv, second = srv) {
  const sdk = serverSdk(second);
  const sdkDuringCut = serverSdk(first);
  const web = await startStatic(sdk, { refuse: (channel, socketId) => refused.has(channel) });
  const proxy = await startProxy(first.port);
  const page = await open(web, proxy, first, client);
  try {
    await until(page, () => window.__succeeded.length === 1, null, 'subscribed');
    assert.deepEqual(await page.evaluate(() => window.__succeeded[0]), { recovered: false, missed: 0 });
    for (let n = 0; n < 5; n++) await sdk.trigger('private-feed', 'e', { n });
    await until(page, () => window.__got.length === 5, null, 'the first five');
    await sleep(4000); // the server pings for an acknowledgement; pusher-js answers
    proxy.cut();
    await sleep(300);
    for (let n = 5; n < 55; n++) await sdkDuringCut.trigger('private-feed', 'e', { n });
    proxy.restore(second.port);
    await until(page, () => window.__got.includes(54), null, 'all 50 missed events', 45_000);
    const ok = await page.evaluate(() => window.__succeeded);
    assert.equal(ok.length, 2, 'subscribed again after the reconnect');
    assert.equal(ok[1].recovered, true);
    const got = await page.evaluate(() => window.__got);
    // In order, each at least once; only events from before the cut may come twice.
    const replayed = got.slice(5);
    assert.ok(ok[1].missed >= 50 && ok[1].missed <= 55, `missed ${ok[1].missed}`);
    const expected = [...Array(55).keys()].slice(55 - ok[1].missed);
    assert.deepEqual(replayed, expected, `got ${JSON.stringify(got)}`);
    await sdk.trigger('private-feed', 'e', { n: 'live' });
    await until(page, () => window.__got.includes('live'), null, 'a live event after the replay');

    // A reload is a new lineage: nothing stale.
    await page.reload();
    await until(page, () => window.__succeeded.length === 1, null, 'subscribed after reload');
    assert.deepEqual(await page.evaluate(() => window.__succeeded[0]), { recovered: false, missed: 0 });
    await sleep(300);
    assert.deepEqual(await page.evaluate(() => window.__got), []);
  } finally {
    await page.closeAll();
    await proxy.close();
    await web.close();
  }
}

test('pusher-js with a lineage wsPath gets every event published while it was cut off', T, async () => {
  await cutAndRecover('pusher');
});

test('Laravel Echo with a lineage wsPath gets every event published while it was cut off', T, async () => {
  await cutAndRecover('echo');
});

test('pusher-js cut off one node gets every missed event on another node, through Redis', T, async () => {
  await cutAndRecover('pusher', nodeA, nodeB);
});

test('Laravel Echo cut off one node gets every missed event on another node, through Redis', T, async () => {
  await cutAndRecover('echo', nodeA, nodeB);
});

test('a cut longer than the window, or a failed re-authorization, replays nothing', T, async () => {
  for (const [server, refuseAfterCut] of [[shortSrv, false], [srv, true]]) {
    const sdk = serverSdk(server);
    const channel = refuseAfterCut ? 'private-refused' : 'private-feed';
    const web = await startStatic(sdk, { refuse: (c) => refused.has(c) });
    const proxy = await startProxy(server.port);
    const page = await open(web, proxy, server, 'pusher', channel);
    try {
      await until(page, () => window.__succeeded.length === 1, null, 'subscribed');
      proxy.cut();
      if (refuseAfterCut) refused.add(channel);
      for (let n = 0; n < 3; n++) await sdk.trigger(channel, 'e', { n });
      if (!refuseAfterCut) await sleep(3500); // longer than the 2 s window
      proxy.restore();
      if (refuseAfterCut) {
        await until(page, () => window.__errors.length === 1, null, 'the re-authorization refused');
        assert.equal(await page.evaluate(() => window.__succeeded.length), 1);
      } else {
        await until(page, () => window.__succeeded.length === 2, null, 'subscribed again');
        assert.deepEqual(await page.evaluate(() => window.__succeeded[1]), { recovered: false, missed: 0 });
      }
      await sleep(500);
      assert.deepEqual(await page.evaluate(() => window.__got), []);
    } finally {
      await page.closeAll();
      await proxy.close();
      await web.close();
    }
  }
});
