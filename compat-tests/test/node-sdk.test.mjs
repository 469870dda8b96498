// The `pusher` Node server SDK (5.x) against rf-broadcast's HTTP API. Deliveries are checked on
// raw WebSocket clients so the exact frames are asserted (data forwarded verbatim, channel set).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, serverSdk, Clients, sleep, eventually } from '../lib/harness.mjs';

let srv;
let sdk;
const clients = new Clients();
const T = { timeout: 20_000 };

before(async () => {
  srv = await startServer({ name: 'node-sdk' });
  sdk = serverSdk(srv);
});
afterEach(() => clients.closeAll());
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

async function raw(...channels) {
  const c = await clients.raw(srv);
  for (const ch of channels) {
    let extra = {};
    if (typeof ch === 'object') {
      const { name, user } = ch;
      extra = sdk.authorizeChannel(c.socketId, name, name.startsWith('presence-') ? { user_id: user, user_info: { name: user } } : undefined);
      const r = await c.subscribe(name, extra);
      assert.equal(r.event, 'pusher_internal:subscription_succeeded', `subscribe ${name}: ${JSON.stringify(r)}`);
    } else {
      const r = await c.subscribe(ch);
      assert.equal(r.event, 'pusher_internal:subscription_succeeded', `subscribe ${ch}: ${JSON.stringify(r)}`);
    }
  }
  return c;
}

async function json(resPromise) {
  const res = await resPromise;
  assert.equal(res.status, 200);
  const text = await res.text();
  const body = JSON.parse(text);
  assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), `body must be a JSON object, got ${text}`);
  return body;
}

test('trigger (one channel): 200 + JSON object; subscriber gets the data string verbatim', T, async () => {
  const c = await raw('ticker');
  const data = { price: 1.5, sym: 'ÄBC', path: 'a/b', nested: { x: [1, 2] } };
  await json(sdk.trigger('ticker', 'price-updated', data));
  const f = await c.next('price-updated');
  assert.equal(f.channel, 'ticker');
  assert.equal(f.data, JSON.stringify(data), 'data must be forwarded verbatim as the published string');
});

test('trigger with a string payload and a backslash event name', T, async () => {
  const c = await raw('strings');
  await json(sdk.trigger('strings', 'App\\Events\\Ping', 'just a string'));
  const f = await c.next('App\\Events\\Ping');
  assert.equal(f.data, 'just a string');
});

test('trigger (many channels): one request reaches every channel', T, async () => {
  const names = ['multi-1', 'multi-2', 'private-multi-3'];
  const cs = await Promise.all([raw('multi-1'), raw('multi-2'), raw({ name: 'private-multi-3' })]);
  await json(sdk.trigger(names, 'fanout', { n: 3 }));
  for (let i = 0; i < 3; i++) {
    const f = await cs[i].next('fanout');
    assert.equal(f.channel, names[i]);
    assert.equal(f.data, '{"n":3}');
  }
});

test('trigger with socket_id excludes exactly that connection', T, async () => {
  const a = await raw('excl');
  const b = await raw('excl');
  await json(sdk.trigger('excl', 'ev', { x: 1 }, { socket_id: a.socketId }));
  await b.next('ev');
  await sleep(300);
  assert.equal(a.frames.filter((f) => f.event === 'ev').length, 0, 'excluded socket received the event');
});

test('trigger with info returns user_count / subscription_count per channel', T, async () => {
  await raw('info-pub', { name: 'presence-info', user: 'u1' });
  await raw({ name: 'presence-info', user: 'u2' });
  const body = await json(sdk.trigger(['info-pub', 'presence-info'], 'e', {}, { info: 'user_count,subscription_count' }));
  assert.equal(body.channels?.['presence-info']?.user_count, 2, JSON.stringify(body));
  assert.equal(body.channels?.['info-pub']?.subscription_count, 1, JSON.stringify(body));
});

test('triggerBatch: every event is delivered to its channel, in order', T, async () => {
  const c = await raw('batch-a', 'batch-b');
  await json(sdk.triggerBatch([
    { channel: 'batch-a', name: 'e1', data: { i: 1 } },
    { channel: 'batch-b', name: 'e2', data: { i: 2 } },
    { channel: 'batch-a', name: 'e3', data: 'three' },
  ]));
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await c.next((f) => /^e\d$/.test(f.event)));
  assert.deepEqual(got.map((f) => [f.event, f.channel, f.data]), [
    ['e1', 'batch-a', '{"i":1}'],
    ['e2', 'batch-b', '{"i":2}'],
    ['e3', 'batch-a', 'three'],
  ]);
});

test('triggerBatch with socket_id on one item excludes that socket for that item only', T, async () => {
  const a = await raw('batch-x');
  const b = await raw('batch-x');
  await json(sdk.triggerBatch([
    { channel: 'batch-x', name: 'skip-a', data: {}, socket_id: a.socketId },
    { channel: 'batch-x', name: 'all', data: {} },
  ]));
  await b.next('skip-a');
  await a.next('all');
  assert.equal(a.frames.filter((f) => f.event === 'skip-a').length, 0);
});

test('GET /channels: all occupied, filter_by_prefix, info=user_count, empty result is an object', T, async () => {
  await raw('lobby', { name: 'presence-a', user: 'ann' }, { name: 'presence-b', user: 'bea' });
  await raw({ name: 'presence-a', user: 'al' });
  await raw({ name: 'presence-a', user: 'al' }); // second connection of al: still 2 users

  const all = await json(sdk.get({ path: '/channels' }));
  for (const c of ['lobby', 'presence-a', 'presence-b']) assert.ok(c in all.channels, `${c} missing in ${JSON.stringify(all)}`);

  const pres = await json(sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
  assert.deepEqual(Object.keys(pres.channels).sort(), ['presence-a', 'presence-b']);
  assert.equal(pres.channels['presence-a'].user_count, 2);
  assert.equal(pres.channels['presence-b'].user_count, 1);

  const none = await json(sdk.get({ path: '/channels', params: { filter_by_prefix: 'nothing-here-' } }));
  assert.deepEqual(none, { channels: {} });
});

test('GET /channels/{name}: occupied, subscription_count, user_count; unoccupied', T, async () => {
  await raw('counted');
  await raw('counted');
  const pub = await json(sdk.get({ path: '/channels/counted', params: { info: 'subscription_count' } }));
  assert.equal(pub.occupied, true);
  assert.equal(pub.subscription_count, 2);

  await raw({ name: 'presence-c', user: 'x' });
  await raw({ name: 'presence-c', user: 'x' });
  await raw({ name: 'presence-c', user: 'y' });
  const pres = await json(sdk.get({ path: '/channels/presence-c', params: { info: 'user_count,subscription_count' } }));
  assert.equal(pres.occupied, true);
  assert.equal(pres.user_count, 2);

  const empty = await json(sdk.get({ path: '/channels/nobody-here' }));
  assert.equal(empty.occupied, false);
});

test('GET /channels/{presence}/users lists distinct user ids', T, async () => {
  await raw({ name: 'presence-users', user: '1' });
  await raw({ name: 'presence-users', user: '2' });
  await raw({ name: 'presence-users', user: '2' });
  const body = await json(sdk.get({ path: '/channels/presence-users/users' }));
  assert.deepEqual(body.users.map((u) => u.id).sort(), ['1', '2']);
  const empty = await json(sdk.get({ path: '/channels/presence-empty/users' }));
  assert.deepEqual(empty, { users: [] });
});

test('authorizeChannel: private and presence signatures are accepted; presence payload shape', T, async () => {
  const c = await clients.raw(srv);
  const p = sdk.authorizeChannel(c.socketId, 'private-ok');
  assert.equal((await c.subscribe('private-ok', p)).event, 'pusher_internal:subscription_succeeded');
  const pr = sdk.authorizeChannel(c.socketId, 'presence-ok', { user_id: '42', user_info: { name: 'Ada' } });
  const ok = await c.subscribe('presence-ok', pr);
  assert.equal(ok.event, 'pusher_internal:subscription_succeeded');
  assert.equal(typeof ok.data, 'string', 'presence subscription_succeeded data must be a JSON string');
  assert.deepEqual(JSON.parse(ok.data), { presence: { ids: ['42'], hash: { 42: { name: 'Ada' } }, count: 1 } });
});

test('authenticateUser: pusher:signin accepted, signin_success echoes user_data', T, async () => {
  const c = await clients.raw(srv);
  const a = sdk.authenticateUser(c.socketId, { id: 'sdk-user', user_info: { name: 'S' } });
  c.send({ event: 'pusher:signin', data: a });
  const f = await c.next('pusher:signin_success');
  const data = typeof f.data === 'string' ? JSON.parse(f.data) : f.data;
  assert.equal(data.user_data, a.user_data);
  const r = await c.subscribe('#server-to-user-sdk-user');
  assert.equal(r.event, 'pusher_internal:subscription_succeeded');
  await json(sdk.sendToUser('sdk-user', 'hello', { hi: 1 }));
  const ev = await c.next('hello');
  assert.equal(ev.channel, '#server-to-user-sdk-user');
  assert.equal(ev.data, '{"hi":1}');
});

test('terminateUserConnections: pusher:error 4009 then close 4009, other users untouched', T, async () => {
  const c = await clients.raw(srv);
  c.send({ event: 'pusher:signin', data: sdk.authenticateUser(c.socketId, { id: 'doomed' }) });
  await c.next('pusher:signin_success');
  const other = await clients.raw(srv);
  other.send({ event: 'pusher:signin', data: sdk.authenticateUser(other.socketId, { id: 'fine' }) });
  await other.next('pusher:signin_success');
  await json(sdk.terminateUserConnections('doomed'));
  const err = await c.next('pusher:error');
  const data = typeof err.data === 'string' ? JSON.parse(err.data) : err.data;
  assert.equal(data.code, 4009);
  const closed = await c.closedPromise;
  assert.equal(closed.code, 4009);
  await sleep(200);
  assert.equal(other.closed, null, 'another user must stay connected');
});

test('wrong secret: the SDK promise rejects with status 401 (POST and GET)', T, async () => {
  const bad = serverSdk(srv, { secret: 'not-the-secret' });
  await assert.rejects(bad.trigger('x', 'y', {}), (e) => e.status === 401);
  await assert.rejects(bad.get({ path: '/channels' }), (e) => e.status === 401);
});

test('wrong key: 401; unknown app id: 404', T, async () => {
  await assert.rejects(serverSdk(srv, { key: 'other-key' }).trigger('x', 'y', {}), (e) => e.status === 401);
  await assert.rejects(serverSdk(srv, { appId: 'no-such-app' }).trigger('x', 'y', {}), (e) => e.status === 404);
});

/** HTTP status of an SDK call (200 when it resolves, error.status when it rejects). */
async function statusOf(promise) {
  try {
    const res = await promise;
    return `${res.status} ${await res.text()}`;
  } catch (e) {
    if (e.status === undefined) throw e;
    return `${e.status} ${e.body ?? ''}`;
  }
}

test('bad requests: 400 for missing name, >10 batch items, user_count on a non-presence channel, /users of a public channel', T, async () => {
  const batch = Array.from({ length: 11 }, (_, i) => ({ channel: 'b', name: `e${i}`, data: '{}' }));
  const cases = {
    'POST /events without name': () => sdk.post({ path: '/events', body: { channels: ['a'], data: '{}' } }),
    'POST /events without channels': () => sdk.post({ path: '/events', body: { name: 'e', data: '{}' } }),
    'POST /batch_events with 11 items': () => sdk.post({ path: '/batch_events', body: { batch } }),
    'GET /channels/{public}?info=user_count': () => sdk.get({ path: '/channels/public-one', params: { info: 'user_count' } }),
    'GET /channels?info=user_count without presence- prefix': () => sdk.get({ path: '/channels', params: { info: 'user_count' } }),
    'GET /channels/{public}/users': () => sdk.get({ path: '/channels/public-one/users' }),
  };
  const got = {};
  for (const [k, call] of Object.entries(cases)) got[k] = await statusOf(call());
  const wrong = Object.entries(got).filter(([, v]) => !v.startsWith('400'));
  assert.deepEqual(wrong, [], `expected 400 for each, got ${JSON.stringify(got, null, 1)}`);
});

test('data larger than 10 KB is rejected with 413', T, async () => {
  const big = 'x'.repeat(11 * 1024);
  await assert.rejects(sdk.post({ path: '/events', body: { name: 'big', channels: ['a'], data: big } }), (e) => e.status === 413);
});

test("PHP-style body with a single 'channel' key is accepted", T, async () => {
  const c = await raw('php-style');
  await json(sdk.post({ path: '/events', body: { name: 'App\\Events\\Php', channel: 'php-style', data: '[]' } }));
  const f = await c.next('App\\Events\\Php');
  assert.equal(f.data, '[]');
});
