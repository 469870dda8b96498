// The `pusher` PyPI SDK 3.3.4 (compat-tests/.venv, driven through py/sdk.py) against rf-broadcast.
// Python quirks this pins: JSON with ", " / ": " separators in data, channel_data and user_data
// (signatures must be checked over the exact received bytes), body_md5 sent on GET requests,
// and terminate_user_connections posted to /users/{id}/terminate_connections (no /apps prefix).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, serverSdk, Clients, runPython, subscribed, waitFor, sleep, MASTER_KEY_B64,
} from '../lib/harness.mjs';

let srv;
let nodeSdk;
const clients = new Clients();
const T = { timeout: 30_000 };

// pusher-http-python only accepts numeric app ids (util.app_id_re = \A[0-9]+\Z), so this file's
// server runs with a numeric --app-id (the default 'app-id' is rejected by the SDK before any request).
const PY_APP = { id: '424242', key: 'py-key', secret: 'py-secret' };

before(async () => {
  srv = await startServer({ name: 'python-sdk', app: PY_APP });
  nodeSdk = serverSdk(srv, { encryptionMasterKeyBase64: MASTER_KEY_B64 });
});
afterEach(() => clients.closeAll());
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

/** Runs one or more SDK operations in one python process; returns their results. */
async function py(...ops) {
  const env = {
    RF_HOST: srv.host, RF_PORT: String(srv.port), RF_APP_ID: srv.app.id, RF_KEY: srv.app.key,
    RF_SECRET: srv.app.secret, RF_MASTER_KEY_B64: MASTER_KEY_B64,
  };
  const out = await runPython('sdk.py', [JSON.stringify({ ops })], { env });
  return out.results;
}
const ok = (r) => {
  assert.ok('ok' in r, `python SDK raised ${r.error}: ${r.message}`);
  return r.ok;
};

async function raw(channel, extra) {
  const c = await clients.raw(srv);
  if (channel) {
    const r = await c.subscribe(channel, extra);
    assert.equal(r.event, 'pusher_internal:subscription_succeeded', JSON.stringify(r));
  }
  return c;
}

test('trigger: python-encoded data arrives verbatim; socket_id excludes that connection', T, async () => {
  const a = await raw('py-ch');
  const b = await raw('py-ch');
  const [r1, r2] = await py(
    { op: 'trigger', channels: 'py-ch', event_name: 'py-event', data: { a: 1, b: [1, 2] } },
    { op: 'trigger', channels: ['py-ch'], event_name: 'py-excl', data: 'plain', socket_id: a.socketId },
  );
  ok(r1);
  ok(r2);
  const f = await a.next('py-event');
  assert.equal(f.channel, 'py-ch');
  assert.equal(f.data, '{"a": 1, "b": [1, 2]}', 'python json.dumps output must be forwarded byte for byte');
  await b.next('py-excl');
  await sleep(200);
  assert.equal(a.frames.filter((x) => x.event === 'py-excl').length, 0);
});

test('trigger_batch delivers every event', T, async () => {
  const c = await raw('py-batch');
  ok((await py({ op: 'trigger_batch', batch: [
    { channel: 'py-batch', name: 'b1', data: { n: 1 } },
    { channel: 'py-batch', name: 'b2', data: { n: 2 } },
  ] }))[0]);
  assert.equal((await c.next('b1')).data, '{"n": 1}');
  assert.equal((await c.next('b2')).data, '{"n": 2}');
});

test('authenticate (python-style channel_data) accepted for presence; private accepted', T, async () => {
  const c = await raw();
  const [priv, pres] = (await py(
    { op: 'authenticate', channel: 'private-py', socket_id: c.socketId },
    { op: 'authenticate', channel: 'presence-py', socket_id: c.socketId, custom_data: { user_id: '42', user_info: { name: 'Ada' } } },
  )).map(ok);
  assert.ok(pres.channel_data.includes('"user_id": "42"'), 'python SDK writes JSON with spaces');
  assert.equal((await c.subscribe('private-py', priv)).event, 'pusher_internal:subscription_succeeded');
  const r = await c.subscribe('presence-py', pres);
  assert.equal(r.event, 'pusher_internal:subscription_succeeded', JSON.stringify(r));
  assert.deepEqual(JSON.parse(r.data).presence.hash, { 42: { name: 'Ada' } });
});

test('pusher-js presence with python-signed auth: members.me and count', T, async () => {
  const auth = {
    customHandler: ({ socketId, channelName }, cb) => {
      py({ op: 'authenticate', channel: channelName, socket_id: socketId, custom_data: { user_id: 'py-7', user_info: { lang: 'python' } } })
        .then(([r]) => cb(null, ok(r)), (e) => cb(e, null));
    },
  };
  const p = await clients.pusher(srv, { channelAuthorization: auth });
  const ch = await subscribed(p, 'presence-py-js', 10_000);
  assert.equal(ch.members.me.id, 'py-7');
  assert.deepEqual(ch.members.me.info, { lang: 'python' });
  assert.equal(ch.members.count, 1);
});

test('channels_info / channel_info / users_info (GET with body_md5)', T, async () => {
  const c1 = await raw();
  const c2 = await raw();
  const [a1, a2] = (await py(
    { op: 'authenticate', channel: 'presence-py-room', socket_id: c1.socketId, custom_data: { user_id: 'u1' } },
    { op: 'authenticate', channel: 'presence-py-room', socket_id: c2.socketId, custom_data: { user_id: 'u2' } },
  )).map(ok);
  await c1.subscribe('presence-py-room', a1);
  await c2.subscribe('presence-py-room', a2);
  await c1.subscribe('py-public');
  await c2.subscribe('py-public');

  const [list, listAll, pres, pub, users, empty] = (await py(
    { op: 'channels_info', prefix_filter: 'presence-py-', attributes: ['user_count'] },
    { op: 'channels_info' },
    { op: 'channel_info', channel: 'presence-py-room', attributes: ['user_count'] },
    { op: 'channel_info', channel: 'py-public', attributes: ['subscription_count'] },
    { op: 'users_info', channel: 'presence-py-room' },
    { op: 'channel_info', channel: 'py-nobody' },
  )).map(ok);
  assert.deepEqual(list, { channels: { 'presence-py-room': { user_count: 2 } } });
  assert.ok('py-public' in listAll.channels && 'presence-py-room' in listAll.channels, JSON.stringify(listAll));
  assert.equal(pres.occupied, true);
  assert.equal(pres.user_count, 2);
  assert.equal(pub.occupied, true);
  assert.equal(pub.subscription_count, 2);
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['u1', 'u2']);
  assert.equal(empty.occupied, false);
});

test('authenticate_user (python JSON) accepted; send_to_user reaches the user', T, async () => {
  const c = await raw();
  const [auth] = (await py({ op: 'authenticate_user', socket_id: c.socketId, user_data: { id: 'py-user', name: 'P' } })).map(ok);
  assert.ok(auth.user_data.includes('"id": "py-user"'));
  c.send({ event: 'pusher:signin', data: auth });
  const s = await c.next('pusher:signin_success');
  const d = typeof s.data === 'string' ? JSON.parse(s.data) : s.data;
  assert.equal(d.user_data, auth.user_data);
  await c.subscribe('#server-to-user-py-user');
  ok((await py({ op: 'send_to_user', user_id: 'py-user', event_name: 'py-note', data: { x: 1 } }))[0]);
  const f = await c.next('py-note');
  assert.equal(f.channel, '#server-to-user-py-user');
  assert.equal(f.data, '{"x": 1}');
});

test('terminate_user_connections (python path /users/{id}/terminate_connections) closes with 4009', T, async () => {
  const c = await raw();
  const [auth] = (await py({ op: 'authenticate_user', socket_id: c.socketId, user_data: { id: 'py-doomed' } })).map(ok);
  c.send({ event: 'pusher:signin', data: auth });
  await c.next('pusher:signin_success');
  ok((await py({ op: 'terminate_user_connections', user_id: 'py-doomed' }))[0]);
  const closed = await Promise.race([c.closedPromise, sleep(5000).then(() => null)]);
  assert.ok(closed, 'connection was not closed');
  assert.equal(closed.code, 4009);
});

test('encrypted trigger from python is decrypted by pusher-js', T, async () => {
  const p = await clients.pusher(srv, {
    channelAuthorization: { customHandler: ({ socketId, channelName }, cb) => cb(null, nodeSdk.authorizeChannel(socketId, channelName)) },
  });
  const ch = await subscribed(p, 'private-encrypted-py');
  const got = waitFor(ch, 'enc');
  ok((await py({ op: 'trigger', channels: 'private-encrypted-py', event_name: 'enc', data: { secret: 'py' } }))[0]);
  assert.deepEqual(await got, { secret: 'py' });
});

test('wrong secret raises PusherBadAuth (HTTP 401)', T, async () => {
  const [r1, r2] = await py(
    { op: 'trigger', channels: 'x', event_name: 'y', data: {}, secret: 'wrong' },
    { op: 'channels_info', secret: 'wrong' },
  );
  assert.equal(r1.error, 'PusherBadAuth', JSON.stringify(r1));
  assert.equal(r2.error, 'PusherBadAuth', JSON.stringify(r2));
});
