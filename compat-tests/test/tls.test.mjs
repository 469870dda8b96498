// Built-in TLS (--tls-cert / --tls-key) with real clients and a certificate this test makes with
// `openssl req`: pusher-js (Node build, forceTLS: true) over wss://, the Node server SDK
// (useTLS: true) and the Python SDK (ssl=True) over https://, all on the one port; SIGHUP
// reloads the certificate while pusher-js stays connected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT, startServer, runPython, withTimeout, sleep } from '../lib/harness.mjs';

let srv;
let dir;
// Numeric: pusher-http-python accepts nothing else.
const TLS_APP = { id: '424243', key: 'app-key', secret: 'app-secret' };
const T = { timeout: 60_000 };

function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=rf-broadcast compat test',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { cert, key };
}

before(async (t) => {
  if (process.env.RF_EXTERNAL) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-compat-tls-'));
  const { cert, key } = makeCert(dir);
  srv = await startServer({
    name: 'tls', app: TLS_APP, flags: ['--tls-cert', cert, '--tls-key', key], tls: fs.readFileSync(cert),
  });
});
after(async () => {
  await srv?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The child client: resolves lines as they come; `until(pred)` waits for a matching line. */
function startChild(expected) {
  const child = spawn(process.execPath, [path.join(ROOT, 'lib/tls-client.mjs'), String(srv.port), ...expected], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem'), RF_TEST_APP_ID: TLS_APP.id },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const waiters = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(JSON.parse(l));
    for (const w of [...waiters]) w();
  });
  child.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  child.lines = lines;
  child.until = (pred, ms, what) =>
    withTimeout(
      new Promise((resolve) => {
        const check = () => {
          const hit = lines.find(pred);
          if (hit) {
            waiters.splice(waiters.indexOf(check) >>> 0, 1);
            resolve(hit);
          }
          return hit;
        };
        if (!check()) waiters.push(check);
      }),
      ms,
      `${what} (child said: ${JSON.stringify(lines)} ${stderr})`,
    );
  return child;
}

function pythonTrigger(event) {
  return runPython('sdk.py', [JSON.stringify({ op: 'trigger', channels: 'tls-ch', event_name: event, data: { via: 'python' } })], {
    env: {
      RF_HOST: '127.0.0.1', RF_PORT: String(srv.port), RF_APP_ID: TLS_APP.id, RF_KEY: 'app-key',
      RF_SECRET: 'app-secret', RF_SSL: '1', RF_CA_FILE: path.join(dir, 'cert.pem'),
    },
  });
}

test('pusher-js forceTLS over wss://, Node and Python SDKs over https://, one port; SIGHUP keeps the connection', T, async (t) => {
  if (process.env.RF_EXTERNAL) return t.skip('needs its own TLS server');
  const child = startChild(['from-node-sdk', 'from-python-sdk', 'after-reload']);
  t.after(() => child.kill());
  await child.until((l) => l.subscribed, 10_000, 'pusher-js subscribed over wss');
  await child.until((l) => l.event === 'from-node-sdk', 5_000, 'event published by the Node SDK over https');
  const channels = await child.until((l) => l.sdk === 'channels', 5_000, 'Node SDK GET /channels');
  assert.equal(channels.status, 200);
  assert.ok('tls-ch' in channels.body.channels, JSON.stringify(channels.body));

  const py = await pythonTrigger('from-python-sdk');
  assert.ok('ok' in py.results[0], JSON.stringify(py));
  await child.until((l) => l.event === 'from-python-sdk', 5_000, 'event published by the Python SDK over https');

  // A new certificate, SIGHUP: the open wss connection carries on, new https requests use it.
  const before = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
  makeCert(dir);
  assert.notEqual(fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'), before);
  srv.child.kill('SIGHUP');
  await sleep(300);
  assert.equal(srv.child.exitCode, null, 'SIGHUP ended the server');
  assert.match(srv.log(), /TLS: reloaded/);
  const py2 = await pythonTrigger('after-reload');
  assert.ok('ok' in py2.results[0], `https with the reloaded certificate: ${JSON.stringify(py2)}`);
  await child.until((l) => l.done, 5_000, 'event after the reload on the same connection');
  assert.equal(await child.exited, 0);

  // One connection throughout: connected once, never connecting again before the end.
  const done = child.lines.find((l) => l.done);
  const states = child.lines.slice(0, child.lines.indexOf(done)).filter((l) => l.state).map((l) => l.state);
  assert.deepEqual(states.filter((s) => s !== 'connecting'), ['connected'], JSON.stringify(states));
  assert.ok(states.lastIndexOf('connecting') < states.indexOf('connected'), `reconnected: ${JSON.stringify(states)}`);
  if (done.url) assert.match(done.url, /^wss:\/\//);
});
