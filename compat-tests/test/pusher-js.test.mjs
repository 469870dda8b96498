// pusher-js 8 (its Node build: require('pusher-js') -> dist/node/pusher.js) against rf-broadcast.
// Events are published with the Node server SDK (`pusher` 5.x); channel auth is signed by the SDK
// in a channelAuthorization.customHandler, the way an app's /pusher/auth route would.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, serverSdk, Clients, sdkChannelAuth, subscribed, waitFor, waitForMeta, record,
  eventually, sleep, rawClient, MASTER_KEY_B64,
} from '../lib/harness.mjs';

let srv;
let sdk;
const clients = new Clients();
const T = { timeout: 20_000 };

before(async () => {
  srv = await startServer({ name: 'pusher-js', flags: ['--dev-auth', '--subscription-count'] });
  sdk = serverSdk(srv);
});
afterEach(() => clients.closeAll());
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

const presenceAs = (user_id, user_info) => sdkChannelAuth(sdk, () => ({ user_id, user_info }));

test('connects: state connected, socket_id matches ^\\d+\\.\\d+$', T, async () => {
  const p = await clients.pusher(srv);
  assert.equal(p.connection.state, 'connected');
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  const q = await clients.pusher(srv);
  assert.notEqual(q.connection.socket_id, p.connection.socket_id, 'socket ids are unique');
});

test('public channel: subscribe, receive an event triggered by the Node SDK', T, async () => {
  const p = await clients.pusher(srv);
  const ch = await subscribed(p, 'orders');
  const got = waitFor(ch, 'order-shipped');
  await sdk.trigger('orders', 'order-shipped', { id: 1, items: ['a', 'b'], note: 'ünïcødé "quoted"' });
  assert.deepEqual(await got, { id: 1, items: ['a', 'b'], note: 'ünïcødé "quoted"' });
});

test('public channel: unsubscribe stops delivery', T, async () => {
  const p = await clients.pusher(srv);
  const ch = await subscribed(p, 'unsub-ch');
  const seen = record(ch, 'ev');
  p.unsubscribe('unsub-ch');
  await sleep(200);
  await sdk.trigger('unsub-ch', 'ev', { n: 1 });
  await sleep(400);
  assert.equal(seen.length, 0);
});

test('private channel: auth signed by the Node SDK authorizeChannel is accepted, events arrive', T, async () => {
  const p = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const ch = await subscribed(p, 'private-orders.1');
  const got = waitFor(ch, 'App\\Events\\OrderShipped');
  await sdk.trigger('private-orders.1', 'App\\Events\\OrderShipped', { order: { id: 1 } });
  assert.deepEqual(await got, { order: { id: 1 } });
});

test('private channel: auth via the server --dev-auth endpoint (POST /pusher/auth over XHR)', T, async () => {
  const p = await clients.pusher(srv, {
    channelAuthorization: { endpoint: `${srv.url}/pusher/auth`, transport: 'ajax', params: { user_id: 'dev-1' } },
  });
  await subscribed(p, 'private-dev');
  const ch = await subscribed(p, 'presence-dev');
  assert.equal(ch.members.me.id, 'dev-1');
});

test('user sign-in via the server --dev-auth endpoint (POST /pusher/user-auth over XHR)', T, async () => {
  const p = await clients.pusher(srv, {
    userAuthentication: { endpoint: `${srv.url}/pusher/user-auth`, transport: 'ajax', params: { user_id: 'dev-user-9' } },
  });
  p.signin();
  await eventually(() => p.user.user_data?.id === 'dev-user-9', 5000, 'signin_success');
  await eventually(() => p.user.serverToUserChannel?.subscribed, 5000, '#server-to-user subscription');
  const got = waitFor(p.user, 'ping-user');
  await sdk.sendToUser('dev-user-9', 'ping-user', { ok: true });
  assert.deepEqual(await got, { ok: true });
});

test('presence: members.count/me, member_added/removed, two connections of one user count once', T, async () => {
  const a = await clients.pusher(srv, { channelAuthorization: presenceAs('alice', { name: 'Alice' }) });
  const chA = await subscribed(a, 'presence-room.1');
  assert.equal(chA.members.count, 1);
  assert.equal(chA.members.me.id, 'alice');
  assert.deepEqual(chA.members.me.info, { name: 'Alice' });

  const added = waitFor(chA, 'pusher:member_added');
  const b1 = await clients.pusher(srv, { channelAuthorization: presenceAs('bob', { name: 'Bob' }) });
  const chB1 = await subscribed(b1, 'presence-room.1');
  const m = await added;
  assert.equal(m.id, 'bob');
  assert.deepEqual(m.info, { name: 'Bob' });
  assert.equal(chA.members.count, 2);
  assert.equal(chB1.members.count, 2);
  assert.deepEqual(chB1.members.get('alice')?.info, { name: 'Alice' });
  assert.equal(chB1.members.me.id, 'bob');

  // Second connection of bob: no member_added on alice, still 2 members everywhere.
  const aAdded = record(chA, 'pusher:member_added');
  const aRemoved = record(chA, 'pusher:member_removed');
  const b2 = await clients.pusher(srv, { channelAuthorization: presenceAs('bob', { name: 'Bob (tab 2)' }) });
  const chB2 = await subscribed(b2, 'presence-room.1');
  assert.equal(chB2.members.count, 2);
  const ids = [];
  chB2.members.each((mem) => ids.push(mem.id));
  assert.deepEqual(ids.sort(), ['alice', 'bob']);

  // Closing one of bob's two connections: no member_removed.
  b2.disconnect();
  await sleep(500);
  assert.equal(aAdded.length, 0, `unexpected member_added: ${JSON.stringify(aAdded)}`);
  assert.equal(aRemoved.length, 0, `unexpected member_removed: ${JSON.stringify(aRemoved)}`);
  assert.equal(chA.members.count, 2);

  // Last connection of bob leaves: member_removed.
  const removed = waitFor(chA, 'pusher:member_removed');
  b1.disconnect();
  assert.equal((await removed).id, 'bob');
  assert.equal(chA.members.count, 1);
});

test('presence: unsubscribe (not disconnect) also removes the member', T, async () => {
  const a = await clients.pusher(srv, { channelAuthorization: presenceAs('u1') });
  const chA = await subscribed(a, 'presence-unsub');
  const b = await clients.pusher(srv, { channelAuthorization: presenceAs('u2') });
  await subscribed(b, 'presence-unsub');
  await eventually(() => chA.members.count === 2, 3000, 'member_added');
  const removed = waitFor(chA, 'pusher:member_removed');
  b.unsubscribe('presence-unsub');
  assert.equal((await removed).id, 'u2');
});

test('private-encrypted channel: Node SDK encrypts (encryptionMasterKeyBase64), pusher-js decrypts', T, async () => {
  const esdk = serverSdk(srv, { encryptionMasterKeyBase64: MASTER_KEY_B64 });
  const p = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(esdk) });
  const ch = await subscribed(p, 'private-encrypted-vault');
  // A raw subscriber (same signature scheme as private) sees only ciphertext on the wire.
  const raw = clients.add(await rawClient(srv));
  const auth = esdk.authorizeChannel(raw.socketId, 'private-encrypted-vault').auth;
  const sub = await raw.subscribe('private-encrypted-vault', { auth });
  assert.equal(sub.event, 'pusher_internal:subscription_succeeded');

  const got = waitFor(ch, 'secret');
  await esdk.trigger('private-encrypted-vault', 'secret', { pin: 1234 });
  assert.deepEqual(await got, { pin: 1234 });
  const wire = await raw.next('secret');
  const payload = JSON.parse(wire.data);
  assert.ok(payload.nonce && payload.ciphertext, `expected {nonce, ciphertext}, got ${wire.data}`);
  assert.ok(!wire.data.includes('1234'), 'plaintext must not be on the wire');
});

test('client events: reach the other subscriber, not the sender (private channel)', T, async () => {
  const a = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const b = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const chA = await subscribed(a, 'private-chat');
  const chB = await subscribed(b, 'private-chat');
  const echoed = record(chA, 'client-typing');
  const got = waitFor(chB, 'client-typing');
  assert.equal(chA.trigger('client-typing', { name: 'Ada' }), true);
  assert.deepEqual(await got, { name: 'Ada' });
  await sleep(300);
  assert.equal(echoed.length, 0, 'sender must not receive its own client event');
});

test('client events on a public channel are not relayed', T, async () => {
  const a = await clients.pusher(srv);
  const b = await clients.pusher(srv);
  const chA = await subscribed(a, 'public-chat');
  const chB = await subscribed(b, 'public-chat');
  const got = record(chB, 'client-sneaky');
  chA.trigger('client-sneaky', { x: 1 });
  await sleep(500);
  assert.equal(got.length, 0, 'client events are only for private-/presence- channels');
  assert.equal(a.connection.state, 'connected');
});

test('client events on presence carry metadata.user_id of the sender', T, async () => {
  const a = await clients.pusher(srv, { channelAuthorization: presenceAs('42', { name: 'Ada' }) });
  const b = await clients.pusher(srv, { channelAuthorization: presenceAs('7', { name: 'Bob' }) });
  const chA = await subscribed(a, 'presence-chat');
  const chB = await subscribed(b, 'presence-chat');
  const got = waitForMeta(chB, 'client-typing');
  chA.trigger('client-typing', { typing: true });
  const { data, meta } = await got;
  assert.deepEqual(data, { typing: true });
  assert.equal(meta?.user_id, '42');
});

test('client events over the rate limit (10/s) are dropped with pusher:error 4301, connection stays open', T, async () => {
  const a = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const b = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const chA = await subscribed(a, 'private-flood');
  const chB = await subscribed(b, 'private-flood');
  const got = record(chB, 'client-flood');
  for (let i = 0; i < 25; i++) chA.trigger('client-flood', { i });
  await eventually(() => a.errors.some((e) => e?.data?.code === 4301), 3000, 'pusher:error 4301 on the sender');
  await sleep(300);
  assert.ok(got.length >= 1 && got.length < 25, `receiver got ${got.length} of 25 events`);
  assert.equal(a.connection.state, 'connected');
});

test('subscription with a bad signature gives pusher:subscription_error (AuthError, 401) on the channel', T, async () => {
  const p = await clients.pusher(srv, {
    channelAuthorization: { customHandler: (_, cb) => cb(null, { auth: `${srv.app.key}:${'0'.repeat(64)}` }) },
  });
  const ch = p.subscribe('private-nope');
  const err = await waitFor(ch, 'pusher:subscription_error');
  assert.equal(err.status, 401);
  assert.equal(err.type, 'AuthError');
  assert.equal(ch.subscribed, false);
  await sleep(200);
  assert.equal(p.connection.state, 'connected', 'a bad subscription must not close the connection');
  // and the socket is not in the channel
  const info = await sdk.get({ path: '/channels/private-nope', params: { info: 'subscription_count' } });
  const body = await info.json();
  assert.equal(body.occupied, false);
});

test('wire: subscription_error frame shape; unknown key gets pusher:error 4001 then close 4001', T, async () => {
  const raw = await clients.raw(srv);
  raw.send({ event: 'pusher:subscribe', data: { channel: 'private-wire', auth: `${srv.app.key}:${'0'.repeat(64)}` } });
  const f = await raw.next('pusher:subscription_error');
  assert.equal(f.channel, 'private-wire');
  assert.equal(f.data?.type, 'AuthError', JSON.stringify(f));
  assert.equal(f.data?.status, 401, JSON.stringify(f));
  assert.equal(typeof f.data?.error, 'string');

  const bad = clients.add(await rawClient(srv, undefined, 'no-such-key'));
  assert.equal(bad.first.event, 'pusher:error', JSON.stringify(bad.first));
  const data = typeof bad.first.data === 'string' ? JSON.parse(bad.first.data) : bad.first.data;
  assert.equal(data.code, 4001);
  assert.equal((await bad.closedPromise).code, 4001);
});

test('presence subscription signed for another socket_id is rejected', T, async () => {
  const p = await clients.pusher(srv, {
    channelAuthorization: {
      customHandler: (_, cb) => cb(null, sdk.authorizeChannel('1234.1234', 'presence-x', { user_id: 'mallory' })),
    },
  });
  const ch = p.subscribe('presence-x');
  const err = await waitFor(ch, 'pusher:subscription_error');
  assert.equal(err.status, 401);
});

test('unknown app key: connection is refused (4001) and pusher-js does not retry', T, async () => {
  const p = await clients.pusher(srv, {}, { connect: false, key: 'no-such-key' });
  await eventually(() => p.states.includes('disconnected') || p.states.includes('failed'), 5000, 'refused connection');
  const codes = p.errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4001), `expected error code 4001, got ${JSON.stringify(p.errors)}`);
  await sleep(2500);
  const after = p.states.slice(p.states.findIndex((s) => s === 'disconnected' || s === 'failed'));
  assert.ok(!after.includes('connecting') && !after.includes('connected'), `retried after refusal: states ${p.states}`);
  assert.notEqual(p.connection.state, 'connected');
});

async function signedIn(user, info) {
  const p = await clients.pusher(srv, {
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        try {
          cb(null, sdk.authenticateUser(socketId, { id: user, user_info: info }));
        } catch (e) {
          cb(e, null);
        }
      },
    },
  });
  p.signin();
  await eventually(() => p.user.user_data?.id === user, 5000, 'signin_success');
  await eventually(() => p.user.serverToUserChannel?.subscribed, 5000, '#server-to-user subscription');
  return p;
}

test('user sign-in (Node SDK authenticateUser) then sendToUser reaches pusher.user.bind', T, async () => {
  const p = await signedIn('user-1', { name: 'One' });
  const p2 = await signedIn('user-1', { name: 'One, tab 2' });
  const other = await signedIn('user-2');
  const seenOther = [];
  other.user.bind('notice', (d) => seenOther.push(d));
  const got = waitFor(p.user, 'notice');
  const got2 = waitFor(p2.user, 'notice');
  await sdk.sendToUser('user-1', 'notice', { text: 'hello' });
  assert.deepEqual(await got, { text: 'hello' });
  assert.deepEqual(await got2, { text: 'hello' }, 'every connection of the user receives it');
  await sleep(200);
  assert.equal(seenOther.length, 0);
});

test('terminateUserConnections closes the signed-in connection with 4009 and pusher-js does not reconnect', T, async () => {
  const victim = await signedIn('user-term');
  const bystander = await clients.pusher(srv);
  await sdk.terminateUserConnections('user-term');
  await eventually(() => victim.connection.state === 'disconnected', 5000, 'victim disconnected');
  const codes = victim.errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4009), `expected 4009, got ${JSON.stringify(victim.errors)}`);
  const connectingBefore = victim.states.filter((s) => s === 'connecting').length;
  await sleep(1500);
  assert.equal(victim.states.filter((s) => s === 'connecting').length, connectingBefore, 'must not reconnect');
  assert.equal(bystander.connection.state, 'connected');
});

test('pusher-js ping/pong: with a 1 s activityTimeout the connection survives idle periods', T, async () => {
  const p = await clients.pusher(srv, { activityTimeout: 1000, pongTimeout: 1000 });
  const id = p.connection.socket_id;
  await sleep(3500);
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, id, `reconnected: states ${p.states}`);
});

test("subscribe to another user's #server-to-user- channel is refused", T, async () => {
  const raw = await clients.raw(srv);
  const r = await raw.subscribe('#server-to-user-victim');
  assert.equal(r.event, 'pusher:subscription_error', JSON.stringify(r));
  await sdk.sendToUser('victim', 'secret', { x: 1 });
  await sleep(300);
  assert.equal(raw.frames.filter((f) => f.event === 'secret').length, 0);
});

test('subscribing twice to the same presence channel does not double-count', T, async () => {
  const raw = await clients.raw(srv);
  const auth = sdk.authorizeChannel(raw.socketId, 'presence-twice', { user_id: 'dup' });
  const r1 = await raw.subscribe('presence-twice', auth);
  const r2 = await raw.subscribe('presence-twice', auth);
  assert.equal(r1.event, 'pusher_internal:subscription_succeeded');
  assert.equal(r2.event, 'pusher_internal:subscription_succeeded', 'a repeated subscribe is answered again');
  const res = await sdk.get({ path: '/channels/presence-twice', params: { info: 'user_count,subscription_count' } });
  const body = await res.json();
  assert.equal(body.user_count, 1);
  if ('subscription_count' in body) assert.equal(body.subscription_count, 1);
});

test('subscription_count (--subscription-count): pusher-js exposes channel.subscriptionCount', T, async () => {
  const a = await clients.pusher(srv);
  const chA = await subscribed(a, 'counted');
  const b = await clients.pusher(srv);
  await subscribed(b, 'counted');
  await eventually(() => chA.subscriptionCount === 2, 3000, `subscriptionCount 2 (is ${chA.subscriptionCount})`);
  b.disconnect();
  await eventually(() => chA.subscriptionCount === 1, 3000, `subscriptionCount 1 (is ${chA.subscriptionCount})`);
});
