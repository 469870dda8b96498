// Laravel Echo 2 (broadcaster 'pusher', pusher-js 8 passed as the `Pusher` option) against
// rf-broadcast. Events are published with the Node server SDK the way Laravel's PusherBroadcaster
// does (event name `App\Events\X` unless broadcastAs() is used; socket_id for ->toOthers()).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import PusherJs from 'pusher-js';
import {
  startServer, serverSdk, Clients, sdkChannelAuth, waitConnected, withTimeout, eventually, sleep,
  pusherOptions, MASTER_KEY_B64,
} from '../lib/harness.mjs';

let srv;
let sdk;
const clients = new Clients();
const T = { timeout: 20_000 };

before(async () => {
  srv = await startServer({ name: 'echo', flags: ['--dev-auth'] });
  sdk = serverSdk(srv, { encryptionMasterKeyBase64: MASTER_KEY_B64 });
});
afterEach(() => clients.closeAll());
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

/** An Echo client; `user` is the presence identity its (SDK-signed) auth returns. */
async function echo(user = { id: 1, name: 'Taylor' }, extra = {}) {
  const options = {
    broadcaster: 'pusher',
    key: srv.app.key,
    Pusher: PusherJs,
    ...pusherOptions(srv),
    channelAuthorization: sdkChannelAuth(sdk, () => ({ user_id: user.id, user_info: user })),
    ...extra,
  };
  // pusher-js checks `'channelAuthorization' in options`: drop keys set to undefined
  for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
  const e = new Echo(options);
  clients.add(e.connector.pusher);
  await waitConnected(e.connector.pusher);
  return e;
}

/** Resolves once Echo's channel reports .subscribed(); rejects on .error(). */
function ready(channel, ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    channel.subscribed(() => resolve(channel));
    channel.error((e) => reject(new Error(`subscription error ${JSON.stringify(e)}`)));
  }), ms, 'Echo .subscribed()');
}

function once(register, ms = 5000, what = 'Echo callback') {
  return withTimeout(new Promise((resolve) => register(resolve)), ms, what);
}

test("channel('orders').listen('.OrderShipped') receives an event named OrderShipped (broadcastAs)", T, async () => {
  const e = await echo();
  const ch = e.channel('orders');
  await ready(ch);
  const got = once((cb) => ch.listen('.OrderShipped', cb));
  const dotted = once((cb) => ch.listen('.order.shipped', cb));
  await sdk.trigger('orders', 'OrderShipped', { order: { id: 1 } });
  await sdk.trigger('orders', 'order.shipped', { order: { id: 2 } });
  assert.deepEqual(await got, { order: { id: 1 } });
  assert.deepEqual(await dotted, { order: { id: 2 } });
});

test("listen('OrderShipped') receives an event published as App\\Events\\OrderShipped", T, async () => {
  const e = await echo();
  const ch = e.channel('orders.2');
  await ready(ch);
  const got = once((cb) => ch.listen('OrderShipped', cb));
  await sdk.trigger('orders.2', 'App\\Events\\OrderShipped', { order: { id: 2 } });
  assert.deepEqual(await got, { order: { id: 2 } });
});

test('private channel: listen + Echo.socketId() excluded with socket_id (->toOthers())', T, async () => {
  const a = await echo();
  const b = await echo();
  const chA = a.private('orders.3');
  const chB = b.private('orders.3');
  await Promise.all([ready(chA), ready(chB)]);
  const seenA = [];
  chA.listen('OrderShipped', (d) => seenA.push(d));
  const gotB = once((cb) => chB.listen('OrderShipped', cb));
  assert.match(a.socketId(), /^\d+\.\d+$/);
  await sdk.trigger('private-orders.3', 'App\\Events\\OrderShipped', { id: 3 }, { socket_id: a.socketId() });
  assert.deepEqual(await gotB, { id: 3 });
  await sleep(300);
  assert.equal(seenA.length, 0, 'the socket named in socket_id must not receive the event');
});

test("private('chat').whisper('typing') reaches listenForWhisper('typing') on another client", T, async () => {
  const a = await echo({ id: 1, name: 'A' });
  const b = await echo({ id: 2, name: 'B' });
  const chA = a.private('chat');
  const chB = b.private('chat');
  await Promise.all([ready(chA), ready(chB)]);
  const echoed = [];
  chA.listenForWhisper('typing', (d) => echoed.push(d));
  const got = once((cb) => chB.listenForWhisper('typing', cb));
  chA.whisper('typing', { name: 'A', typing: true });
  assert.deepEqual(await got, { name: 'A', typing: true });
  await sleep(300);
  assert.equal(echoed.length, 0, 'whisper must not come back to the sender');
});

test("join('room').here()/joining()/leaving(), and leave('room') triggers leaving on the other client", T, async () => {
  const a = await echo({ id: 1, name: 'Taylor' });
  const roomA = a.join('room');
  const hereA = await once((cb) => roomA.here(cb), 5000, 'here() on A');
  assert.deepEqual(hereA, [{ id: 1, name: 'Taylor' }]);

  const joining = once((cb) => roomA.joining(cb), 5000, 'joining() on A');
  const b = await echo({ id: 2, name: 'Jess' });
  const roomB = b.join('room');
  const hereB = await once((cb) => roomB.here(cb), 5000, 'here() on B');
  assert.deepEqual(hereB.map((u) => u.name).sort(), ['Jess', 'Taylor']);
  assert.deepEqual(await joining, { id: 2, name: 'Jess' });

  // whisper on presence reaches the other member
  const whisper = once((cb) => roomA.listenForWhisper('typing', cb), 5000, 'whisper on presence');
  roomB.whisper('typing', { who: 'Jess' });
  assert.deepEqual(await whisper, { who: 'Jess' });

  const leaving = once((cb) => roomA.leaving(cb), 5000, 'leaving() on A');
  b.leave('room');
  assert.deepEqual(await leaving, { id: 2, name: 'Jess' });
});

test('leaving() fires when the other client disconnects', T, async () => {
  const a = await echo({ id: 10, name: 'Stays' });
  const roomA = a.join('lobby');
  await once((cb) => roomA.here(cb));
  const b = await echo({ id: 11, name: 'Goes' });
  const roomB = b.join('lobby');
  await once((cb) => roomB.here(cb));
  const leaving = once((cb) => roomA.leaving(cb));
  b.disconnect();
  assert.deepEqual(await leaving, { id: 11, name: 'Goes' });
});

test('.error() receives the subscription error for a rejected private channel', T, async () => {
  const e = await echo(undefined, {
    channelAuthorization: { customHandler: (_, cb) => cb(null, { auth: `${srv.app.key}:${'f'.repeat(64)}` }) },
  });
  const err = await once((cb) => e.private('forbidden').error(cb), 5000, '.error()');
  assert.equal(err.status, 401);
});

test("encryptedPrivate('vault').listen() decrypts an event encrypted by the Node SDK", T, async () => {
  const e = await echo();
  const ch = e.encryptedPrivate('vault');
  await ready(ch);
  const got = once((cb) => ch.listen('.Secret', cb));
  await sdk.trigger('private-encrypted-vault', 'Secret', { code: 'xyzzy' });
  assert.deepEqual(await got, { code: 'xyzzy' });
});

test('notification() receives Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', T, async () => {
  const e = await echo();
  const ch = e.private('App.Models.User.1');
  await ready(ch);
  const got = once((cb) => ch.notification(cb));
  await sdk.trigger('private-App.Models.User.1', 'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', {
    id: 'n1', type: 'App\\Notifications\\InvoicePaid', amount: 5,
  });
  const n = await got;
  assert.equal(n.type, 'App\\Notifications\\InvoicePaid');
  assert.equal(n.amount, 5);
});

test('connectionStatus() is connected', T, async () => {
  const e = await echo();
  await eventually(() => e.connectionStatus() === 'connected', 3000, 'connected');
});

test('classic Laravel config: authEndpoint /broadcasting/auth + auth.params (server --dev-auth)', T, async () => {
  const mk = (id) => echo(undefined, {
    channelAuthorization: undefined,
    authEndpoint: `${srv.url}/broadcasting/auth`,
    auth: { headers: { 'X-CSRF-TOKEN': 'ignored' }, params: { user_id: id, user_info: JSON.stringify({ name: `N${id}` }) } },
  });
  const a = await mk('7');
  const b = await mk('8');
  await ready(a.private('classic'));
  const roomA = a.join('classic-room');
  await once((cb) => roomA.here(cb), 5000, 'here() on A');
  const joining = once((cb) => roomA.joining(cb), 5000, 'joining()');
  const here = await once((cb) => b.join('classic-room').here(cb), 5000, 'here() on B');
  assert.deepEqual(here.map((u) => u.name).sort(), ['N7', 'N8']);
  assert.deepEqual(await joining, { name: 'N8' });
});
