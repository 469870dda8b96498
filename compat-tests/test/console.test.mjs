// The debug console (--console) in a real browser: Debian's Chromium, headless, driven by
// playwright-core. The page signs in with the token at the login form, then a pusher-js client
// connects and subscribes, the Node SDK publishes, a bad private-channel signature is tried,
// and the test reads the console's live log, filters, inspectors and event creator as a user
// would. A real webhook receiver answers 500 once, then 200: the log shows the attempt that
// will be retried and the one that delivered, without the receiver's credentials. The app
// secret must appear nowhere in the page, the export or the SSE stream.
//
// RF_CONSOLE_SCREENSHOTS=dir also saves the screenshots the README shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, serverSdk, freePort, Clients, subscribed, sdkChannelAuth, waitFor, eventually, sleep } from '../lib/harness.mjs';
import { CHROMIUM_ARGS } from '../lib/static.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skip = process.env.RF_EXTERNAL ? 'needs the server started with --console'
  : fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (run compat-tests/setup.sh)`;
const SHOTS = process.env.RF_CONSOLE_SCREENSHOTS;
const TOKEN = 'console-test-token-9f3a61c2';
const APP = { id: 'console-app', key: 'console-key', secret: 'sekrit-4f1c9e2d7a' };
const T = { skip, timeout: 60_000 };

let srv;
let sdk;
let browser;
let page;
let consoleUrl;
let receiver;
/** Statuses the webhook receiver answered, in order. */
const answered = [];
/** Credentials in the webhook URL: they must never reach the page. */
const HOOK_SECRETS = ['hook-pass-7e19', 'hook-token-0b44'];
const clients = new Clients();

before(async () => {
  if (skip) return;
  // The receiver answers the first request 500, the rest 200.
  receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = answered.length === 0 ? 500 : 200;
      answered.push(status);
      res.writeHead(status).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const hook = `http://hooker:${HOOK_SECRETS[0]}@127.0.0.1:${receiver.address().port}/hook?token=${HOOK_SECRETS[1]}`;
  const cport = await freePort();
  consoleUrl = `http://127.0.0.1:${cport}`;
  srv = await startServer({
    name: 'console', app: APP,
    flags: [
      '--console', '--console-port', String(cport), '--console-token', TOKEN,
      '--webhook-url', hook, '--webhook-events', 'channel_occupied',
      '--webhook-batch-window', '0ms', '--webhook-retry-min-backoff', '200ms',
    ],
  });
  sdk = serverSdk(srv);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  const context = await browser.newContext({ viewport: { width: 1480, height: 940 }, acceptDownloads: true });
  page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
});
after(async () => {
  clients.closeAll();
  await browser?.close().catch(() => {});
  await srv?.stop();
  receiver?.close();
});

async function until(fn, arg, what, ms = 10_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
  } catch {
    const rows = await page.evaluate(() => window.__console?.state.rows.slice(-30)).catch(() => null);
    throw new Error(`${what}: not reached in ${ms} ms. last rows ${JSON.stringify(rows)} console ${JSON.stringify(page.logs.slice(-20))}`);
  }
}

/** The rows the console keeps (what the live log received). */
const rows = () => page.evaluate(() => window.__console.state.rows);
/** The rows the table shows now, as [type, channel, event, socket] cells. */
const shown = () => page.evaluate(() => [...document.querySelectorAll('#log tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)));

/** The first row the log received that matches `pred`, waiting up to 10 s for it. */
async function rowWhere(pred, what) {
  try {
    return await eventually(async () => (await rows()).find(pred), 10_000, what, 50);
  } catch (e) {
    const last = (await rows().catch(() => [])).slice(-30);
    throw new Error(`${e.message}. last rows ${JSON.stringify(last)} console ${JSON.stringify(page.logs.slice(-20))}`);
  }
}

test('debug console: login, live rows, filters, pause, export, inspectors, event creator, no secret', T, async () => {
  // Without the token the page is the login form (401); a wrong token stays there.
  const first = await page.goto(consoleUrl, { timeout: 10_000 });
  assert.equal(first.status(), 401);
  assert.match(first.headers()['content-security-policy'], /frame-ancestors 'none'/);
  await page.fill('#token', 'wrong-token-0000000000');
  await page.click('#login');
  await until(() => document.querySelector('.error')?.textContent.includes('Wrong token'), null, 'wrong token refused');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'console-login.png') });
  await page.fill('#token', TOKEN);
  await Promise.all([page.waitForURL(`${consoleUrl}/`), page.click('#login')]);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'rf_console_session');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.ok(!session.value.includes(TOKEN), 'the cookie is not the token');
  await until(() => document.getElementById('stream-state').textContent === 'live', null, 'stream live');
  if (SHOTS) {
    // Some traffic first, so the screenshot's sparklines have a history.
    for (let i = 0; i < 24; i++) {
      await sdk.trigger('ticker', 'tick', { i });
      await sleep(200);
    }
  }

  // A pusher-js client connects and subscribes: public, private (SDK-signed), presence.
  const alice = await clients.pusher(srv, {
    channelAuthorization: sdkChannelAuth(sdk, () => ({ user_id: 'alice', user_info: { name: 'Alice' } })),
  });
  const sid = alice.connection.socket_id;
  const orders = await subscribed(alice, 'orders');
  await subscribed(alice, 'private-vault');
  await subscribed(alice, 'presence-room');
  const opened = await rowWhere((r) => r.type === 'connection_opened', 'connection_opened row');
  assert.equal(opened.socket_id, sid);
  assert.equal(opened.app_id, APP.id);
  assert.equal(opened.ip, '127.0.0.x', 'client address masked');
  assert.match(opened.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  await rowWhere((r) => r.type === 'subscribed' && r.channel === 'orders', 'subscribed orders');
  const member = await rowWhere((r) => r.type === 'member_added' && r.channel === 'presence-room', 'member_added');
  assert.equal(member.user_id, 'alice');

  // The Node SDK publishes: public payload shown, private payload hidden.
  const got = waitFor(orders, 'order.shipped');
  await sdk.trigger('orders', 'order.shipped', { id: 7 });
  await got;
  const pub = await rowWhere((r) => r.type === 'api_publish' && r.event === 'order.shipped', 'api_publish row');
  assert.deepEqual(pub.channels, ['orders']);
  assert.equal(pub.recipients, 1);
  assert.equal(pub.data, '{"id":7}');
  assert.equal(pub.bytes, 8);
  await sdk.trigger('private-vault', 'vault.opened', { code: 'hidden-payload-123' }, { socket_id: sid });
  const priv = await rowWhere((r) => r.type === 'api_publish' && r.event === 'vault.opened', 'private api_publish row');
  assert.equal(priv.hidden, true);
  assert.equal(priv.data, null);
  assert.equal(priv.except_socket_id, sid);
  assert.equal(priv.recipients, 0);

  // A bad private-channel signature: refused, with the reason and the string that was expected to be signed.
  const raw = await clients.raw(srv, undefined, APP.key);
  raw.send({ event: 'pusher:subscribe', data: { channel: 'private-bad', auth: `${APP.key}:${'0'.repeat(64)}` } });
  await raw.next('pusher:subscription_error');
  const refused = await rowWhere((r) => r.type === 'subscription_refused' && r.channel === 'private-bad', 'subscription_refused row');
  assert.equal(refused.socket_id, raw.socketId);
  assert.match(refused.reason, /signature/i);
  assert.ok(refused.reason.includes(`${raw.socketId}:private-bad`), `string to sign in ${refused.reason}`);

  // Filters: type, channel glob, socket id, user id, app.
  await page.selectOption('#f-type', 'api_publish');
  let cells = await shown();
  assert.ok(cells.length >= 2 && cells.every((c) => c[2] === 'api_publish'), JSON.stringify(cells));
  await page.selectOption('#f-type', '');
  await page.fill('#f-channel', 'ord*');
  cells = await shown();
  assert.ok(cells.length >= 2 && cells.every((c) => c[3] === 'orders'), JSON.stringify(cells));
  await page.fill('#f-channel', '');
  await page.fill('#f-socket', raw.socketId);
  cells = await shown();
  assert.ok(cells.length >= 2 && cells.every((c) => c[5] === raw.socketId), JSON.stringify(cells));
  assert.ok(cells.some((c) => c[2] === 'subscription_refused'));
  await page.fill('#f-socket', '');
  await page.fill('#f-user', 'alice');
  cells = await shown();
  assert.ok(cells.length >= 1 && cells.every((c) => c[6] === 'alice'), JSON.stringify(cells));
  await page.fill('#f-user', '');
  await page.fill('#f-event', 'order.shipped');
  cells = await shown();
  assert.ok(cells.length >= 1 && cells.every((c) => c[4] === 'order.shipped'), JSON.stringify(cells));
  await page.fill('#f-event', 'no.such.event');
  assert.deepEqual(await shown(), [], 'an event nobody sent shows nothing');
  await page.fill('#f-event', '');
  await page.selectOption('#f-app', APP.id);
  cells = await shown();
  assert.ok(cells.every((c) => c[1] === APP.id || c[2] === 'dropped'));
  await page.selectOption('#f-app', '');

  // Webhook attempts: the first channel occupied went to the receiver, which answered 500 (a row
  // that says it will be retried), then 200 on the retry (delivered).
  // (Several channels were occupied: their requests may run side by side; one got the 500.)
  const retry = await rowWhere((r) => r.type === 'webhook_attempt' && r.outcome === 'will_retry', 'webhook attempt to retry');
  assert.equal(retry.attempt, 1);
  assert.equal(retry.status, 500);
  assert.equal(retry.outcome, 'will_retry');
  assert.ok(retry.retry_in_ms >= 100 && retry.retry_in_ms <= 200, JSON.stringify(retry));
  assert.deepEqual(retry.kinds, ['channel_occupied']);
  assert.equal(retry.target, `http://127.0.0.1:${receiver.address().port}/hook`);
  const delivered = await rowWhere((r) => r.type === 'webhook_attempt' && r.attempt === 2
    && JSON.stringify(r.channels) === JSON.stringify(retry.channels), 'webhook retry');
  assert.equal(delivered.status, 200);
  assert.equal(delivered.outcome, 'delivered');
  assert.equal(answered[0], 500);
  assert.ok(answered.slice(1).every((a) => a === 200), JSON.stringify(answered));
  await page.selectOption('#f-type', 'webhook_attempt');
  cells = await shown();
  assert.ok(cells.length >= 2 && cells.every((c) => c[2] === 'webhook_attempt' && c[4] === 'channel_occupied'), JSON.stringify(cells));
  assert.ok(cells.some((c) => /will retry · attempt 1 · HTTP 500/.test(c[7])), JSON.stringify(cells));
  assert.ok(cells.some((c) => /delivered · attempt 2 · HTTP 200/.test(c[7])), JSON.stringify(cells));
  await page.selectOption('#f-type', '');

  // Pause holds the view; resume shows what came meanwhile.
  await page.click('#pause');
  const before = (await shown()).length;
  await sdk.trigger('orders', 'while.paused', {});
  await rowWhere((r) => r.event === 'while.paused', 'row received while paused');
  assert.equal((await shown()).length, before, 'paused view unchanged');
  await page.click('#pause');
  assert.ok((await shown()).some((c) => c[4] === 'while.paused'));

  // The event creator publishes in-process; the pusher-js client gets it.
  const fromConsole = waitFor(orders, 'from.console');
  await page.selectOption('#c-app', APP.id);
  await page.fill('#c-channel', 'orders');
  await page.fill('#c-event', 'from.console');
  await page.fill('#c-data', '{"hello": "browser"}');
  await page.click('#c-send');
  assert.deepEqual(await fromConsole, { hello: 'browser' });
  await until(() => document.getElementById('c-result').textContent === 'published', null, 'creator result');
  await rowWhere((r) => r.type === 'api_publish' && r.event === 'from.console', 'creator api_publish row');

  // Channel inspector: occupied channels with counts; presence members with user_info.
  await until(() => [...document.querySelectorAll('#channels tbody tr')].some((tr) => tr.dataset.name === 'presence-room'), null, 'channels listed');
  const chRows = await page.evaluate(() => [...document.querySelectorAll('#channels tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.deepEqual(chRows.find((r) => r[0] === 'orders'), ['orders', '1', '']);
  assert.deepEqual(chRows.find((r) => r[0] === 'presence-room'), ['presence-room', '1', '1']);
  await page.click('#channels tbody tr[data-name="presence-room"]');
  await until(() => document.getElementById('channel-detail').textContent.includes('{"name":"Alice"}'), null, 'presence members shown');
  assert.ok((await page.textContent('#channel-detail')).includes(`socket ${sid}`));

  // Connection inspector: socket -> channels, user; disconnect behind a confirmation.
  await until((s) => !!document.querySelector(`#connections tr[data-socket="${s}"]`), sid, 'connection listed');
  const conn = await page.evaluate((s) => [...document.querySelector(`#connections tr[data-socket="${s}"]`).cells].map((c) => c.textContent), sid);
  assert.match(conn[2], /orders/);
  assert.match(conn[2], /presence-room/);
  if (SHOTS) {
    await page.fill('#f-channel', '');
    await page.screenshot({ path: path.join(SHOTS, 'console.png') });
  }
  let asked = null;
  page.once('dialog', (d) => { asked = d.message(); d.dismiss(); });
  await until((s) => !!document.querySelector(`#connections tr[data-socket="${s}"] button`), raw.socketId, 'raw connection listed');
  await page.click(`#connections tr[data-socket="${raw.socketId}"] button`);
  await eventually(() => asked, 5000, 'confirmation dialog');
  await sleep(200);
  assert.equal(raw.closed, null, 'dismissed: not closed');
  page.once('dialog', (d) => d.accept());
  await page.click(`#connections tr[data-socket="${raw.socketId}"] button`);
  const closed = await raw.closedPromise;
  assert.equal(closed.code, 4009);
  const closeRow = await rowWhere((r) => r.type === 'connection_closed' && r.code === 4009, 'connection_closed row');
  assert.match(closeRow.reason, /debug console/);

  // Export: JSON lines of the rows.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const text = fs.readFileSync(await download.path(), 'utf8');
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.length >= 10);
  assert.ok(lines.some((r) => r.type === 'subscription_refused'));
  assert.ok(lines.every((r) => r.type && r.time && 'app_id' in r));

  // The secret appears nowhere: page, export, a raw read of the stream.
  const html = await page.evaluate(() => document.documentElement.outerHTML);
  const streamText = await readStream(`${consoleUrl}/api/stream`, 700);
  for (const [where, s] of [['page', html], ['export', text], ['stream', streamText]]) {
    assert.ok(!s.includes(APP.secret), `secret found in the ${where}`);
    for (const hidden of HOOK_SECRETS) assert.ok(!s.includes(hidden), `webhook credential found in the ${where}`);
  }
  assert.ok(streamText.includes('subscription_refused'), 'the stream replays its backlog');
  assert.ok(!html.includes('hidden-payload-123') && !streamText.includes('hidden-payload-123'), 'private payload hidden');
});

test('debug console: the log keeps at most 1,000 rows', T, async () => {
  const raw = await clients.raw(srv, undefined, APP.key);
  // Each subscribe/unsubscribe pair makes 6 rows (subscribed, occupied, count, unsubscribed, vacated, count).
  for (let i = 0; i < 220; i++) {
    raw.send({ event: 'pusher:subscribe', data: { channel: `cap-${i}` } });
    raw.send({ event: 'pusher:unsubscribe', data: { channel: `cap-${i}` } });
  }
  await rowWhere((r) => r.type === 'channel_vacated' && r.channel === 'cap-219', 'last row of the burst');
  assert.equal((await rows()).length, 1000);
  assert.equal((await shown()).length, 1000);
  const dropped = (await rows()).filter((r) => r.type === 'dropped');
  assert.deepEqual(dropped, [], 'nothing dropped on the way');
});

/** Reads an SSE stream with the bearer token for `ms` and returns what arrived. */
async function readStream(url, ms) {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` }, signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let out = '';
  const stop = setTimeout(() => ac.abort(), ms);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += dec.decode(value);
    }
  } catch {
    // aborted: done reading
  } finally {
    clearTimeout(stop);
  }
  return out;
}
