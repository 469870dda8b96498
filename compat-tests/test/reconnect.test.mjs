// Server shutdown and restart: rf-broadcast closes every WebSocket with 4200 on SIGTERM; pusher-js
// treats 4200-4299 as "reconnect immediately", so it must come back to the restarted server on the
// same port, get a new socket_id and re-subscribe its channels (re-authorizing private/presence).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, serverSdk, Clients, sdkChannelAuth, subscribed, waitFor, eventually, rawClient,
} from '../lib/harness.mjs';

const skip = process.env.RF_EXTERNAL ? 'needs a server process this suite controls' : false;
let srv;
let sdk;
const clients = new Clients();

before(async () => {
  if (skip) return;
  srv = await startServer({ name: 'reconnect' });
  sdk = serverSdk(srv);
});
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

test('SIGTERM closes open WebSockets with code 4200', { skip, timeout: 30_000 }, async () => {
  const raw = clients.add(await rawClient(srv));
  await raw.subscribe('before-shutdown');
  await srv.stop();
  const closed = await raw.closedPromise;
  assert.equal(closed.code, 4200, `close frame ${JSON.stringify(closed)}; frames ${JSON.stringify(raw.frames)}`);
  await srv.launch();
});

test('pusher-js reconnects after a 4200 shutdown, gets a new socket_id and re-subscribes', { skip, timeout: 45_000 }, async () => {
  const p = await clients.pusher(srv, {
    channelAuthorization: sdkChannelAuth(sdk, () => ({ user_id: 'phoenix', user_info: { name: 'P' } })),
  });
  const pub = await subscribed(p, 'news');
  const priv = await subscribed(p, 'private-news');
  const pres = await subscribed(p, 'presence-news');
  const firstId = p.connection.socket_id;
  let resubscribed = 0;
  for (const ch of [pub, priv, pres]) ch.bind('pusher:subscription_succeeded', () => resubscribed++);

  await srv.restart();

  // pusher-js retries at once (4200 = "retry"); that first attempt meets the stopped server, and
  // the Node build's WebSocket never reports a refused connection, so pusher-js waits for its ws
  // strategy timeout (15 s) before the next attempt. Hence the generous limit.
  await eventually(() => p.connection.state === 'connected' && p.connection.socket_id !== firstId, 25_000, 'reconnection with a new socket_id');
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  const codes = p.errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
  assert.ok(codes.includes(4200), `pusher-js should have seen close code 4200, errors: ${JSON.stringify(p.errors)}`);
  await eventually(() => resubscribed === 3, 5000, `3 re-subscriptions (got ${resubscribed})`);
  assert.equal(pres.members.me?.id, 'phoenix');

  const got = Promise.all([waitFor(pub, 'after'), waitFor(priv, 'after'), waitFor(pres, 'after')]);
  await sdk.trigger(['news', 'private-news', 'presence-news'], 'after', { restarted: true });
  for (const d of await got) assert.deepEqual(d, { restarted: true });
});
