// No secret in the logs (SECURITY.md): the server runs at trace level (every crate's trace
// output, hyper and tungstenite included) through a real client session: pusher-js subscribes
// to a private and a presence channel with auth from the Node SDK, signs in, sends a client
// event; the SDK publishes; a request with a bad signature and a subscription with a bad auth
// are refused. Then the whole log must not contain the app secret, any valid signature or
// auth string made during the session, nor the valid signature of a refused request (what a
// server that logs "expected X" would leak). The test command also runs the whole suite at trace
// level and scans every server log for any secret and any signature (scan-logs.mjs); this file
// pins the signatures of one session by value, the random secret included.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { startServer, serverSdk, sdkChannelAuth, Clients, subscribed, waitFor, eventually } from '../lib/harness.mjs';

const clients = new Clients();
let srv;
after(async () => {
  clients.closeAll();
  await srv?.stop();
});

const hmac = (secret, s) => crypto.createHmac('sha256', secret).update(s).digest('hex');
const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');

/** A query signed as the SDKs sign it (docs/pusher-protocol.md §5.1); returns { query, signature }. */
function signQuery(app, method, path, body) {
  const params = {
    auth_key: app.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: md5(body),
  };
  const sorted = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const signature = hmac(app.secret, `${method}\n${path}\n${sorted}`);
  return { query: `${sorted}&auth_signature=${signature}`, signature };
}

test('at trace level, no secret, signature or auth string reaches the logs', { timeout: 60_000 }, async () => {
  const secret = crypto.randomBytes(20).toString('hex');
  const app = { id: '4242', key: 'log-key', secret };
  srv = await startServer({ name: `secrets-${process.pid}`, app, flags: ['--log-level', 'trace', '--client-events', 'true'] });
  const sdk = serverSdk(srv);
  const secrets = new Set([secret]);
  const remember = (auth) => {
    secrets.add(auth);
    secrets.add(auth.split(':')[1]);
  };

  // pusher-js, authorized by the SDK as an app's auth routes do; every auth is remembered.
  const channelAuth = sdkChannelAuth(sdk, () => ({ user_id: 'ada', user_info: { name: 'Ada' } }));
  const p = await clients.pusher(srv, {
    channelAuthorization: {
      customHandler: (params, callback) =>
        channelAuth.customHandler(params, (err, res) => {
          if (res) remember(res.auth);
          callback(err, res);
        }),
    },
    userAuthentication: {
      customHandler: ({ socketId }, callback) => {
        const res = sdk.authenticateUser(socketId, { id: 'ada', user_info: { name: 'Ada' } });
        remember(res.auth);
        callback(null, res);
      },
    },
  });
  const orders = await subscribed(p, 'private-orders');
  await subscribed(p, 'presence-room');
  p.signin();
  await eventually(() => p.user.user_data?.id === 'ada', 5000, 'pusher-js signed in');

  // A second client hears the first one's client event.
  const q = await clients.pusher(srv, { channelAuthorization: channelAuth });
  const qOrders = await subscribed(q, 'private-orders');
  const heard = waitFor(qOrders, 'client-typing', 5000);
  orders.trigger('client-typing', { who: 'ada' });
  await heard;

  // The SDK publishes; so does a hand-signed request whose signature we know.
  const got = waitFor(orders, 'shipped', 5000);
  const res = await sdk.trigger('private-orders', 'shipped', { id: 1 });
  assert.equal(res.status, 200);
  await got;
  const body = JSON.stringify({ name: 'shipped', channel: 'private-orders', data: '{"id":2}' });
  const path = `/apps/${app.id}/events`;
  const good = signQuery(app, 'POST', path, body);
  secrets.add(good.signature);
  let r = await fetch(`${srv.url}${path}?${good.query}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 200, await r.text());

  // Refused: a tampered signature. Its valid signature must not be logged either.
  const refusedBody = JSON.stringify({ name: 'x', channel: 'private-orders', data: '{}' });
  const refused = signQuery(app, 'POST', path, refusedBody);
  secrets.add(refused.signature);
  const tampered = refused.query.replace(/auth_signature=.*/, `auth_signature=${'0'.repeat(64)}`);
  r = await fetch(`${srv.url}${path}?${tampered}`, { method: 'POST', body: refusedBody, headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 401);

  // Refused: a subscription with a bad auth. The auth that would have worked is not logged.
  const raw = await clients.raw(srv, undefined, app.key);
  const valid = sdk.authorizeChannel(raw.socketId, 'private-vault').auth;
  remember(valid);
  const bad = await raw.subscribe('private-vault', { auth: `${app.key}:${'f'.repeat(64)}` });
  assert.equal(bad.event, 'pusher:subscription_error');

  clients.closeAll();
  await srv.stop();
  // The whole file, the harness's header included (it redacts the secret from the command line).
  const log = fs.readFileSync(srv.logPath, 'utf8');
  // The log really is at trace level (else this test could not fail).
  assert.match(log, /TRACE/, 'the server did not log at trace level');
  assert.match(log, /refus.*private-vault/, 'the refused subscription was not logged');
  for (const s of secrets) {
    const at = log.indexOf(s);
    assert.equal(at, -1, `a secret (${s.slice(0, 8)}…) is in the log: …${log.slice(Math.max(0, at - 200), at + 80)}…`);
  }
});
