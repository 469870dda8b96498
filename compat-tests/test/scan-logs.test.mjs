// The log scanner (scan-logs.mjs) made to fail on purpose: fixture logs with a planted secret,
// auth string, bare signature and JWT must each be reported by file and line, masked, with the
// exit code 1; the public TLS handshake values rustls logs at trace must not be; a clean run
// passes; a log that is not at trace level fails --require-trace. And the harness's log header
// (lib/harness.mjs redactArgs) shows no secret while recording each one for the scan.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, SECRETS_FILE, redactArgs } from '../lib/harness.mjs';

const SCAN = path.join(ROOT, 'scan-logs.mjs');
const T0 = '2026-12-07T14:00:00.000000Z';
const dirs = [];
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const tmp = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rf-scan-logs-')); dirs.push(d); return d; };

/** Runs scan-logs.mjs on `dir`: { code, out }. */
function scan(dir, ...flags) {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCAN, ...flags, dir], (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, out: stdout + stderr });
    });
  });
}

/** A directory with the given logs ({ name: lines }) and recorded secrets. */
function fixture(logs, secrets = []) {
  const dir = tmp();
  for (const [name, lines] of Object.entries(logs)) fs.writeFileSync(path.join(dir, name), lines.join('\n') + '\n');
  if (secrets.length) fs.writeFileSync(path.join(dir, SECRETS_FILE), JSON.stringify({ log: 'leaky.log', secrets }) + '\n');
  return dir;
}

const hex = () => crypto.randomBytes(32).toString('hex');
const header = `=== 2026-12-07T14:00:00.000Z [trace] rf-broadcast --app-key app-key --app-secret <redacted>`;
const tls = (field, value) => `${T0} TRACE rustls::server::hs: we got a clienthello ClientHelloPayload { ${field}: ${value}, cipher_suites: [] }`;

test('a planted secret, auth string, signature and JWT are each reported, masked, by file and line', async () => {
  const secret = 'app-secret';
  const token = 'fixture-console-token-5d1e';
  const auth = `app-key:${hex()}`;
  const bare = hex();
  const jwt = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.${crypto.randomBytes(32).toString('base64url')}`;
  const nonRustlsRandom = hex();
  const rustlsOtherField = hex();
  const dir = fixture({
    'leaky.log': [
      header, // 1: the flag's name --app-secret is not the secret app-secret
      `${T0}  INFO rf_broadcast: listening; set --app-secret in production`, // 2
      `${T0} DEBUG rf_broadcast::ws: refused: secret was ${secret}`, // 3
      `${T0} TRACE tungstenite::protocol: Received message {"event":"pusher:subscribe","data":{"auth":"${auth}","channel":"private-a"}}`, // 4
      `${T0} DEBUG rf_broadcast::api: signature mismatch, expected ${bare}`, // 5
      `${T0} \x1b[2mTRACE\x1b[0m \x1b[2maxum\x1b[0m: authorization=Bearer \x1b[3m${jwt}\x1b[0m`, // 6
      `${T0} DEBUG rf_broadcast::console: token="${token}"`, // 7
      `${T0} TRACE rf_broadcast::tls: random: ${nonRustlsRandom}`, // 8: the exemption is for rustls only
      tls('secret', rustlsOtherField), // 9: and for its handshake fields only
      tls('random', hex()), // 10: exempt
      `    ${hex()}`, // 11: a continuation line of rustls's event: still only its fields are exempt
    ],
  }, [{ what: '--app-secret', value: secret }, { what: '--console-token', value: token }]);
  const { code, out } = await scan(dir, '--require-trace');
  assert.equal(code, 1, out);
  const expect = [
    ['leaky.log:3:', 'a secret (--app-secret)'],
    ['leaky.log:4:', 'key:signature'],
    ['leaky.log:5:', '64 hex digits'],
    ['leaky.log:6:', 'a JWT'],
    ['leaky.log:7:', 'a secret (--console-token)'],
    ['leaky.log:8:', '64 hex digits'],
    ['leaky.log:9:', '64 hex digits'],
    ['leaky.log:11:', '64 hex digits'],
  ];
  for (const [where, kind] of expect) {
    assert.ok(out.split('\n').some((l) => l.startsWith(where) && l.includes(kind)), `${where} ${kind} not reported:\n${out}`);
  }
  for (const quiet of ['leaky.log:1:', 'leaky.log:2:', 'leaky.log:10:']) assert.ok(!out.includes(quiet), `${quiet} reported:\n${out}`);
  assert.match(out, /8 finding\(s\)/);
  // Nothing that matched is printed whole (the 4-character prefixes are).
  for (const s of [auth, auth.split(':')[1], bare, jwt, token, nonRustlsRandom, rustlsOtherField]) {
    assert.ok(!out.includes(s), `printed in full: ${s.slice(0, 8)}…`);
  }
  assert.ok(!out.includes(`was ${secret}`), 'the secret printed in its context');
});

test('a clean traced run passes; a log not at trace level fails --require-trace; no logs is an error', async () => {
  const clean = fixture({
    'a.log': [header, `${T0} DEBUG rf_broadcast: log filter: tokio_tungstenite=debug,tungstenite=debug,trace`, tls('session_id', hex())],
    'b.log': [header, `${T0} TRACE rf_broadcast::ws::handler: frame socket_id=1.2 event=pusher:subscribe`],
  }, [{ what: '--app-secret', value: 'app-secret' }]);
  const ok = await scan(clean, '--require-trace');
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /2 log\(s\), .* 0 finding\(s\)/);

  const info = fixture({ 'c.log': [header, `${T0}  INFO rf_broadcast: listening`] });
  const untraced = await scan(info, '--require-trace');
  assert.equal(untraced.code, 1, untraced.out);
  assert.match(untraced.out, /not at trace level.*c\.log/);
  assert.equal((await scan(info)).code, 0);

  const empty = tmp();
  assert.equal((await scan(empty)).code, 2);
});

test('the harness log header redacts every secret flag and URL credential, and records them', () => {
  const { shown, secrets } = redactArgs([
    '--app-key', 'k', '--app-secret', 's3cret', '--console-token=t0ken', '--tls-key', '/tmp/key.pem',
    '--webhook-url', 'http://user:p%40ss@127.0.0.1:9/hook?token=abc&x=y',
  ]);
  const line = shown.join(' ');
  for (const s of ['s3cret', 't0ken', 'p%40ss', 'p@ss', 'abc']) assert.ok(!line.includes(s), `${s} in ${line}`);
  assert.ok(line.includes('--app-key k') && line.includes('--tls-key /tmp/key.pem'), line);
  assert.deepEqual(secrets.map((s) => [s.what, s.value]), [
    ['--app-secret', 's3cret'],
    ['--console-token', 't0ken'],
    ['--webhook-url URL password', 'p@ss'],
    ['--webhook-url URL query token', 'abc'],
    ['--webhook-url URL query x', 'y'],
  ]);
});
