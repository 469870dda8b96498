// Operator features against the real binary with real clients: allowed origins (a Chromium page
// on a disallowed origin, a raw client with an Origin header), the HTTP API rate limit as the
// Node server SDK meets it, the connection rate as pusher-js meets it (4100: it retries in a
// second), and
// Prometheus metrics at GET /metrics on their own listener, parsed with prometheus_client's text
// parser (py/metrics.py) while pusher-js and the SDK act.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import {
  startServer, serverSdk, Clients, subscribed, sdkChannelAuth, waitFor, eventually, freePort, runPython, sleep,
  waitConnected,
} from '../lib/harness.mjs';
import { startStatic, CHROMIUM_ARGS } from '../lib/static.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skipBrowser = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (run compat-tests/setup.sh)`;
const own = process.env.RF_EXTERNAL ? 'needs servers this suite starts with its own flags' : false;
const T = { timeout: 45_000, skip: own };
const clients = new Clients();
const servers = [];
let browser;

async function server(name, flags) {
  const s = await startServer({ name, flags });
  servers.push(s);
  return s;
}

before(async () => {
  if (!skipBrowser && !own) {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  }
});
afterEach(() => clients.closeAll());
after(async () => {
  clients.closeAll();
  await browser?.close().catch(() => {});
  for (const s of servers) await s.stop().catch(() => {});
});

/** A raw WebSocket upgrade with this Origin header (none when null): first frame and close. */
function upgradeFrom(srv, origin) {
  const headers = origin ? { Origin: origin } : {};
  const ws = new WebSocket(`ws://${srv.host}:${srv.port}/app/${srv.app.key}?protocol=7`, { headers });
  return new Promise((resolve, reject) => {
    const got = { frames: [] };
    ws.on('message', (b) => got.frames.push(JSON.parse(b.toString())));
    ws.on('close', (code) => resolve({ ...got, code }));
    ws.on('error', reject);
    ws.on('open', () => setTimeout(() => { if (ws.readyState === WebSocket.OPEN) { got.open = true; ws.close(); } }, 300));
  });
}

test('allowed origins: a raw client from another Origin gets pusher:error 4009 and close 4009', T, async () => {
  const srv = await server('origins-raw', ['--allowed-origins', 'https://*.example.test,http://localhost:*']);
  const refused = await upgradeFrom(srv, 'https://evil.test');
  assert.equal(refused.frames[0]?.event, 'pusher:error', JSON.stringify(refused.frames));
  const data = typeof refused.frames[0].data === 'string' ? JSON.parse(refused.frames[0].data) : refused.frames[0].data;
  assert.equal(data.code, 4009);
  assert.equal(data.message, 'Origin not allowed');
  assert.equal(refused.code, 4009);
  const noOrigin = await upgradeFrom(srv, null);
  assert.equal(noOrigin.code, 4009, 'no Origin header while origins are restricted');
  const ok = await upgradeFrom(srv, 'https://app.example.test');
  assert.equal(ok.frames[0]?.event, 'pusher:connection_established', JSON.stringify(ok.frames));
  const local = await upgradeFrom(srv, 'http://localhost:5173');
  assert.equal(local.frames[0]?.event, 'pusher:connection_established');
});

test('allowed origins: pusher-js in a Chromium page on a disallowed origin is refused, an allowed one connects', { ...T, skip: own || skipBrowser }, async () => {
  // The test page is served from http://127.0.0.1:<port>: allowed by the second server only.
  const strict = await server('origins-strict', ['--allowed-origins', 'https://app.example.test']);
  const open = await server('origins-open', ['--allowed-origins', 'https://app.example.test,http://127.0.0.1:*']);
  const web = await startStatic(serverSdk(strict));
  const context = await browser.newContext();
  try {
    const page = async (srv) => {
      const p = await context.newPage();
      p.logs = [];
      p.on('console', (m) => p.logs.push(m.text()));
      await p.goto(`${web.url}/presence.html?host=${srv.host}&port=${srv.port}&key=${srv.app.key}&user=u&channel=presence-o`, { timeout: 10_000 });
      return p;
    };
    const refused = await page(strict);
    await eventually(() => refused.logs.some((l) => l.startsWith('connection error') && l.includes('4009')), 10_000,
      'pusher-js reports error 4009');
    assert.ok(refused.logs.some((l) => l.includes('Origin not allowed')), JSON.stringify(refused.logs));
    assert.notEqual(await refused.locator('#status').textContent(), 'connected');
    const allowed = await page(open);
    await allowed.waitForFunction(() => document.getElementById('status').textContent === 'connected', null, { timeout: 10_000 });
  } finally {
    await context.close().catch(() => {});
    await web.close();
  }
});

test('API rate limit: the Node SDK gets 429 with Retry-After and a Pusher-style body', T, async () => {
  const srv = await server('rate', ['--api-request-rate', '3']);
  const sdk = serverSdk(srv);
  // Start early in a second so the burst falls in one window.
  await sleep(1000 - (Date.now() % 1000) + 5);
  const results = [];
  for (let i = 0; i < 6; i++) {
    try {
      const r = await sdk.trigger('news', 'e', { i });
      results.push({ status: r.status });
    } catch (e) {
      results.push({ status: e.status, body: e.body });
    }
  }
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 429, 429, 429]);
  assert.deepEqual(JSON.parse(results[3].body), { error: 'Too many requests: the app allows 3 API requests per second', code: 429 });
  const raw = await fetch(`${srv.url}/apps/${srv.app.id}/channels?auth_key=${srv.app.key}`);
  assert.equal(raw.status, 401, 'an unsigned request is refused before it is counted');
  await sleep(1000 - (Date.now() % 1000) + 5);
  assert.equal((await sdk.trigger('news', 'e', {})).status, 200, 'the next second has a fresh budget');
  // The SDK's errors carry no headers: replay the signed URL of a refused GET to read them.
  await sleep(1000 - (Date.now() % 1000) + 5);
  let refusedUrl;
  for (let i = 0; i < 5 && !refusedUrl; i++) {
    try {
      await sdk.get({ path: '/channels' });
    } catch (e) {
      assert.equal(e.status, 429);
      refusedUrl = e.url;
    }
  }
  assert.ok(refusedUrl, 'a GET over the rate is refused');
  const again = await fetch(refusedUrl);
  assert.equal(again.status, 429);
  assert.equal(again.headers.get('retry-after'), '1');
});

/** Every sample of /metrics, as prometheus_client's parser reads them. */
async function scrape(metricsUrl) {
  return runPython('metrics.py', [metricsUrl]);
}
function sample(m, name, labels = {}) {
  const s = m.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : undefined;
}

test('metrics: GET /metrics on its own port parses with prometheus_client, and counters move as clients act', T, async () => {
  const metricsPort = await freePort();
  const srv = await server('metrics', ['--metrics-port', String(metricsPort)]);
  const sdk = serverSdk(srv);
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const notOnPublic = await fetch(`${srv.url}/metrics`);
  assert.equal(notOnPublic.status, 404, 'the public port does not serve metrics');

  const before = await scrape(metricsUrl);
  assert.match(before.content_type, /^text\/plain; version=0\.0\.4/);
  assert.equal(before.types.rf_broadcast_connections_opened, 'counter');
  assert.equal(before.types.rf_broadcast_connections, 'gauge');
  const app = { app: srv.app.id };
  assert.equal(sample(before, 'rf_broadcast_connections', app), 0);
  assert.equal(sample(before, 'rf_broadcast_adapter_connected', { adapter: 'local' }), 1);
  assert.ok(sample(before, 'process_resident_memory_bytes') > 0);
  assert.ok(sample(before, 'process_open_fds') > 0);

  const auth = sdkChannelAuth(sdk);
  const a = await clients.pusher(srv, { channelAuthorization: auth });
  const b = await clients.pusher(srv, { channelAuthorization: auth });
  const ca = await subscribed(a, 'private-m');
  const cb = await subscribed(b, 'private-m');
  const got = waitFor(cb, 'client-hi');
  ca.trigger('client-hi', { n: 1 });
  await got;
  const both = Promise.all([waitFor(ca, 'e'), waitFor(cb, 'e')]);
  await sdk.trigger('private-m', 'e', { hello: 'world' });
  await both;

  let m;
  await eventually(async () => {
    m = await scrape(metricsUrl);
    return sample(m, 'rf_broadcast_messages_sent_total', { ...app, kind: 'api_event' }) === 2;
  }, 5000, 'api_event deliveries counted');
  assert.equal(sample(m, 'rf_broadcast_connections', app), 2);
  assert.equal(sample(m, 'rf_broadcast_connections_opened_total', app), 2);
  assert.equal(sample(m, 'rf_broadcast_subscriptions', app), 2);
  assert.equal(sample(m, 'rf_broadcast_channels_occupied', app), 1);
  assert.equal(sample(m, 'rf_broadcast_messages_received_total', { ...app, kind: 'api_event' }), 1);
  assert.equal(sample(m, 'rf_broadcast_messages_received_total', { ...app, kind: 'client_event' }), 1);
  assert.equal(sample(m, 'rf_broadcast_messages_sent_total', { ...app, kind: 'client_event' }), 1);
  assert.equal(sample(m, 'rf_broadcast_event_bytes_received_total', { ...app, kind: 'api_event' }), '{"hello":"world"}'.length);
  assert.ok(sample(m, 'rf_broadcast_messages_sent_total', { ...app, kind: 'internal' }) >= 4, 'connection_established + subscription_succeeded');
  assert.equal(sample(m, 'rf_broadcast_http_requests_total', { ...app, endpoint: '/apps/{app_id}/events', status: '200' }), 1);
  assert.equal(m.types.rf_broadcast_http_request_duration_seconds, 'histogram');
  assert.equal(sample(m, 'rf_broadcast_http_request_duration_seconds_count', { ...app, endpoint: '/apps/{app_id}/events' }), 1);

  // A refused subscription and a closed connection.
  const raw = await clients.raw(srv);
  raw.send({ event: 'pusher:subscribe', data: { channel: 'private-m', auth: `${srv.app.key}:bad` } });
  await raw.next('pusher:subscription_error');
  // The raw client closes without a code, pusher-js's disconnect() with 1000: each is counted
  // under the code the client sent.
  raw.ws.close();
  a.disconnect();
  await eventually(async () => {
    m = await scrape(metricsUrl);
    return sample(m, 'rf_broadcast_connections', app) === 1 &&
      sample(m, 'rf_broadcast_connections_closed_total', { ...app, code: 'none' }) === 1 &&
      sample(m, 'rf_broadcast_connections_closed_total', { ...app, code: '1000' }) === 1;
  }, 5000, 'the closed connections counted by close code');
  assert.equal(sample(m, 'rf_broadcast_connections_opened_total', app), 3);
  assert.equal(sample(m, 'rf_broadcast_refusals_total', { ...app, reason: 'Invalid signature' }), 1,
    'the refused subscription, by reason without its details');
  assert.equal(sample(m, 'rf_broadcast_subscriptions', app), 1);
  assert.equal(sample(m, 'rf_broadcast_metrics_events_dropped_total'), 0);
});

test('connection rate: pusher-js over --connection-rate-per-ip gets 4100 and is connected a second later; refusals are counted', T, async () => {
  const metricsPort = await freePort();
  const srv = await server('conn-rate', ['--connection-rate-per-ip', '1', '--metrics-port', String(metricsPort)]);
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  // Two connections from this address early in one second: the second is over a rate of 1.
  await sleep(1000 - (Date.now() % 1000) + 5);
  const a = await clients.pusher(srv);
  const started = Date.now();
  const b = await clients.pusher(srv, {}, { connect: false });
  await waitConnected(b, 5000);
  const took = Date.now() - started;
  assert.equal(a.connection.state, 'connected');
  const codes = b.errors.map((e) => e.error?.data?.code);
  assert.ok(codes.includes(4100), `pusher-js was told 4100: ${JSON.stringify(b.errors)}`);
  assert.ok(!b.states.includes('unavailable') && !b.states.includes('disconnected') && !b.states.includes('failed'),
    `states: ${b.states}`);
  assert.ok(took < 3000, `reconnected after ${took} ms`);
  // A raw client with an unknown key: pusher:error 4001.
  const unknown = await clients.raw(srv, '?protocol=7', 'no-such-key');
  assert.equal(unknown.first.event, 'pusher:error');
  let m;
  await eventually(async () => {
    m = await scrape(metricsUrl);
    return sample(m, 'rf_broadcast_refusals_total', { app: 'unknown', reason: 'app_not_found' }) === 1;
  }, 5000, 'the unknown key counted');
  assert.equal(sample(m, 'rf_broadcast_refusals_total', { app: srv.app.id, reason: 'connection_rate' }), 1,
    'the refused connection counted');
  assert.equal(sample(m, 'rf_broadcast_connections', { app: srv.app.id }), 2);
});
