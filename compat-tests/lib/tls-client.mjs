// The client half of test/tls.test.mjs, run as a child process because Node reads
// NODE_EXTRA_CA_CERTS (the test's CA) only at start-up: pusher-js (Node build, forceTLS: true)
// subscribes over wss://, the Node server SDK publishes over https://, and every event and
// connection state change is reported to the parent as one JSON line on stdout.
//
// argv: port, then the names of the events to wait for (the parent publishes some of them).
// Lines written: {"subscribed":true} once subscribed, then {"event":..,"data":..} for each
// event, {"state":..} for each state change, {"sdk":..} for the SDK's answers, {"done":true}.
import PusherJs from 'pusher-js';
import PusherServer from 'pusher';

const [port, ...expected] = process.argv.slice(2);
const host = '127.0.0.1';
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (e) => {
  say({ error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
};
setTimeout(() => fail('timed out waiting for events'), 20_000).unref();

const client = new PusherJs('app-key', {
  cluster: 'mt1', wsHost: host, wsPort: Number(port), wssPort: Number(port), forceTLS: true,
  enabledTransports: ['ws', 'wss'], disableStats: true,
});
client.connection.bind('state_change', (s) => say({ state: s.current }));
client.connection.bind('error', (e) => say({ connectionError: JSON.stringify(e?.error ?? e) }));
const sdk = new PusherServer({
  appId: process.env.RF_TEST_APP_ID || 'app-id', key: 'app-key', secret: 'app-secret', host, port, useTLS: true,
});

const pending = new Set(expected);
const channel = client.subscribe('tls-ch');
channel.bind_global((event, data) => {
  if (event.startsWith('pusher')) return;
  say({ event, data });
  pending.delete(event);
  if (pending.size === 0) {
    say({ done: true, url: client.connection.connection?.transport?.url ?? null });
    client.disconnect();
    process.exit(0);
  }
});
channel.bind('pusher:subscription_succeeded', async () => {
  try {
    say({ subscribed: true });
    const r = await sdk.trigger('tls-ch', 'from-node-sdk', { via: 'node' });
    say({ sdk: 'trigger', status: r.status });
    const info = await sdk.get({ path: '/channels' });
    say({ sdk: 'channels', status: info.status, body: await info.json() });
  } catch (e) {
    fail(e);
  }
});
