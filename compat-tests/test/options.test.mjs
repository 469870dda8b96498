// Server switches as real clients see them: --client-events false, --activity-timeout /
// --pong-timeout (server heartbeat), --max-presence-members. One server started with all of them.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, serverSdk, Clients, sdkChannelAuth, subscribed, waitFor, record, eventually, sleep,
} from '../lib/harness.mjs';

const skip = process.env.RF_EXTERNAL ? 'needs a server started with specific flags' : false;
let srv;
let sdk;
const clients = new Clients();
const T = { skip, timeout: 20_000 };

before(async () => {
  if (skip) return;
  srv = await startServer({
    name: 'options',
    flags: ['--client-events', 'false', '--activity-timeout', '2', '--pong-timeout', '1', '--max-presence-members', '2'],
  });
  sdk = serverSdk(srv);
});
afterEach(() => clients.closeAll());
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

test('--activity-timeout 2: connection_established carries activity_timeout 2', T, async () => {
  const raw = await clients.raw(srv);
  assert.equal(raw.first.event, 'pusher:connection_established');
  assert.equal(typeof raw.first.data, 'string', 'data must be a JSON string');
  assert.equal(JSON.parse(raw.first.data).activity_timeout, 2);
  raw.send({ event: 'pusher:ping', data: {} });
  const pong = await raw.next('pusher:pong');
  assert.equal(pong.event, 'pusher:pong');
});

test('--client-events false: client event is not relayed, sender gets pusher:error 4301', T, async () => {
  const a = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const b = await clients.pusher(srv, { channelAuthorization: sdkChannelAuth(sdk) });
  const chA = await subscribed(a, 'private-muted');
  const chB = await subscribed(b, 'private-muted');
  const got = record(chB, 'client-x');
  chA.trigger('client-x', { n: 1 });
  await eventually(() => a.errors.some((e) => e?.data?.code === 4301), 3000, `pusher:error 4301 (errors: ${JSON.stringify(a.errors)})`);
  await sleep(200);
  assert.equal(got.length, 0);
  assert.equal(a.connection.state, 'connected');
});

test('--max-presence-members 2: third user gets pusher:subscription_error, existing members unaffected', T, async () => {
  const as = (id) => sdkChannelAuth(sdk, () => ({ user_id: id }));
  const a = await clients.pusher(srv, { channelAuthorization: as('a') });
  const b = await clients.pusher(srv, { channelAuthorization: as('b') });
  const chA = await subscribed(a, 'presence-full');
  await subscribed(b, 'presence-full');
  await eventually(() => chA.members.count === 2, 3000, 'member_added for b on a');
  // a second connection of an existing member still fits
  const b2 = await clients.pusher(srv, { channelAuthorization: as('b') });
  await subscribed(b2, 'presence-full');
  const added = record(chA, 'pusher:member_added');
  const c = await clients.pusher(srv, { channelAuthorization: as('c') });
  const err = await waitFor(c.subscribe('presence-full'), 'pusher:subscription_error');
  assert.ok(err && typeof err === 'object', JSON.stringify(err));
  await sleep(200);
  assert.equal(added.length, 0);
  assert.equal(chA.members.count, 2);
  assert.equal(c.connection.state, 'connected');
});

test('server heartbeat: a silent client gets pusher:ping, then close 4201; pusher-js (answers) stays', T, async () => {
  const p = await clients.pusher(srv);
  const id = p.connection.socket_id;
  const raw = await clients.raw(srv);
  const t0 = Date.now();
  const ping = await raw.next('pusher:ping', 5000);
  assert.ok(ping, 'server pings a silent connection after activity_timeout');
  const closed = await Promise.race([raw.closedPromise, sleep(6000).then(() => null)]);
  assert.ok(closed, 'silent connection not closed');
  assert.equal(closed.code, 4201, `close ${JSON.stringify(closed)}`);
  assert.ok(Date.now() - t0 >= 1500, 'closed too early');
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, id, 'pusher-js kept its connection (no reconnect)');
});
