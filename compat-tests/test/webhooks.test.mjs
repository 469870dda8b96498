// Webhooks as the Pusher server SDKs receive them: a real HTTP receiver gets every kind,
// triggered by real pusher-js clients, and each request is validated by the Node SDK's
// `pusher.webhook(...).isValid()` and the Python SDK's `validate_webhook` (the PHP SDK that
// Laravel uses checks the same key + HMAC-of-the-raw-body; it cannot be installed here: its
// registry, packagist, is not reachable from this machine).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  startServer, serverSdk, Clients, sdkChannelAuth, subscribed, runPython, eventually, sleep,
} from '../lib/harness.mjs';

const ALL = 'channel_occupied,channel_vacated,member_added,member_removed,client_event,cache_miss,subscription_count';
let srv;
let sdk;
let receiver;
const hooks = [];
const clients = new Clients();

before(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      hooks.push({ headers: req.headers, rawBody: body });
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${receiver.address().port}/pusher/webhooks`;
  srv = await startServer({
    name: 'webhooks',
    flags: ['--webhook-url', url, '--webhook-events', ALL, '--webhook-delay', '1s', '--webhook-batch-window', '50ms'],
  });
  sdk = serverSdk(srv);
});
after(async () => {
  clients.closeAll();
  await srv?.stop();
  receiver?.close();
});

const events = () => hooks.flatMap((h) => JSON.parse(h.rawBody).events);

test('every kind reaches the receiver and both SDKs accept every request', { timeout: 30_000 }, async () => {
  const auth = sdkChannelAuth(sdk, () => ({ user_id: '42', user_info: { name: 'Ada' } }));
  const a = await clients.pusher(srv, { channelAuthorization: auth });
  const b = await clients.pusher(srv, { channelAuthorization: auth });
  const room = await subscribed(a, 'presence-room');
  await subscribed(b, 'presence-room');
  await subscribed(a, 'cache-prices');
  room.trigger('client-typing', { name: 'Ada' });
  await eventually(() => events().some((e) => e.name === 'client_event'), 5000, 'client_event');
  a.unsubscribe('cache-prices');
  a.disconnect();
  b.disconnect();
  await eventually(
    () => events().some((e) => e.name === 'member_removed') && events().filter((e) => e.name === 'channel_vacated').length === 2,
    5000,
    'vacated and removed',
  );

  const got = events();
  const has = (e) => assert.ok(got.some((x) => JSON.stringify(x) === JSON.stringify(e)), `missing ${JSON.stringify(e)} in ${JSON.stringify(got)}`);
  has({ name: 'channel_occupied', channel: 'presence-room' });
  has({ name: 'member_added', channel: 'presence-room', user_id: '42' });
  has({ name: 'channel_occupied', channel: 'cache-prices' });
  has({ name: 'cache_miss', channel: 'cache-prices' });
  has({ name: 'subscription_count', channel: 'cache-prices', subscription_count: 1 });
  has({ name: 'client_event', channel: 'presence-room', event: 'client-typing', data: '{"name":"Ada"}', socket_id: a.connection.socket_id, user_id: '42' });
  has({ name: 'member_removed', channel: 'presence-room', user_id: '42' });
  has({ name: 'channel_vacated', channel: 'presence-room' });
  has({ name: 'channel_vacated', channel: 'cache-prices' });
  // Two connections of one user are one member.
  assert.equal(got.filter((e) => e.name === 'member_added').length, 1);

  // The Node SDK's validator, on every request as received.
  for (const h of hooks) {
    const wh = sdk.webhook(h);
    assert.ok(wh.isValid(), `Node SDK rejected ${h.rawBody}`);
    assert.ok(Math.abs(wh.getTime().getTime() - Date.now()) < 60_000);
    assert.deepEqual(wh.getEvents(), JSON.parse(h.rawBody).events);
  }
  // ...and it does reject a tampered body or a wrong key, so the check above can fail.
  assert.equal(sdk.webhook({ ...hooks[0], rawBody: hooks[0].rawBody.replace('channel', 'chanel') }).isValid(), false);
  assert.equal(serverSdk(srv, { key: 'other' }).webhook(hooks[0]).isValid(), false);

  // The Python SDK's validator.
  const requests = hooks.map((h) => ({ key: h.headers['x-pusher-key'], signature: h.headers['x-pusher-signature'], body: h.rawBody }));
  requests.push({ ...requests[0], body: requests[0].body.replace('channel', 'chanel') });
  const { results } = await runPython('webhook.py', [JSON.stringify({ key: srv.app.key, secret: srv.app.secret, requests })]);
  const last = results.pop();
  assert.equal(last, null, 'Python SDK must reject a tampered body');
  results.forEach((r, i) => assert.deepEqual(r, JSON.parse(hooks[i].rawBody), `Python SDK rejected ${hooks[i].rawBody}`));
});

test('a reload within the delay sends no webhook at all', { timeout: 30_000 }, async () => {
  await sleep(500);
  const before = hooks.length;
  const p = await clients.pusher(srv);
  await subscribed(p, 'reloaded');
  await eventually(() => events().some((e) => e.name === 'channel_occupied' && e.channel === 'reloaded'), 5000, 'occupied');
  const n = events().length;
  p.disconnect();
  const again = await clients.pusher(srv);
  await subscribed(again, 'reloaded');
  await sleep(1500);
  const after = events().slice(n).filter((e) => e.channel === 'reloaded' && e.name !== 'subscription_count');
  assert.deepEqual(after, [], `expected nothing, got ${JSON.stringify(after)}`);
  assert.ok(hooks.length > before);
});
