// Test harness for the compat suite: starts the real rf-broadcast binary on a free loopback port,
// waits for GET /up, and hands out pre-configured clients (pusher-js, Laravel Echo, the Node server
// SDK, a raw `ws` client). Every wait has a timeout so that a hang fails the test quickly.
//
// Environment:
//   RF_BIN       path to the binary (default: $CARGO_TARGET_DIR or ../target, release/rf-broadcast
//                when it exists and is newer than the debug build, else debug/rf-broadcast)
//   RF_EXTERNAL  host:port of an already running server to use instead of spawning one (for
//                checking the tests themselves against another Pusher-compatible server)
//   RF_LOG_DIR   where server logs go (default compat-tests/logs/)
//   RF_COMPAT_TRACE=1  every server the suite starts logs at trace level (`RF_LOG=trace` for
//                rf-broadcast, `RUST_LOG=trace` for the embedding example); scan-logs.mjs then
//                checks that no secret or signature reached those logs (SECURITY.md, "Logs")
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import PusherJs from 'pusher-js';
import PusherServer from 'pusher';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(ROOT, '..');
export const APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
// 32 bytes 0x00..0x1f, base64 (the protocol reference's test master key).
export const MASTER_KEY_B64 = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';

/** RF_COMPAT_TRACE=1: every server of the run logs at trace level (see the top of this file). */
export const TRACE = process.env.RF_COMPAT_TRACE === '1';

/** Where server logs go (created on first use). */
export function logDir() {
  const dir = process.env.RF_LOG_DIR || path.join(ROOT, 'logs');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * The file, in the log directory, where every secret handed to a server is recorded so that
 * scan-logs.mjs can look for it (a dot-file: the scan skips it, and it is not a server's log).
 */
export const SECRETS_FILE = '.secrets.jsonl';

/** Records the secrets handed to a server, as [{ what, value }] (see SECRETS_FILE). */
export function registerSecrets(secrets, log) {
  const list = secrets.filter((s) => typeof s.value === 'string' && s.value.length > 0);
  if (list.length === 0) return;
  fs.appendFileSync(path.join(logDir(), SECRETS_FILE), JSON.stringify({ log, secrets: list }) + '\n');
}

/** Flags whose value is a secret: never written to a log header, always scanned for. */
const SECRET_FLAG = /secret|token|password|passwd|master-key|jwt/i;

/**
 * A command line fit for a log header: the value of every secret flag, and the password and
 * query values of every URL, replaced by <redacted>. Returns { shown, secrets: [{ what, value }] }.
 */
export function redactArgs(args) {
  const secrets = [];
  const shown = args.map((a, i) => {
    const prev = i > 0 ? args[i - 1] : '';
    if (prev.startsWith('--') && !prev.includes('=') && SECRET_FLAG.test(prev)) {
      secrets.push({ what: prev, value: a });
      return '<redacted>';
    }
    const eq = a.match(/^(--[^=]+)=(.*)$/s);
    if (eq && SECRET_FLAG.test(eq[1])) {
      secrets.push({ what: eq[1], value: eq[2] });
      return `${eq[1]}=<redacted>`;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) {
      let u;
      try {
        u = new URL(a);
      } catch {
        return a;
      }
      const flag = prev.startsWith('--') ? `${prev} ` : '';
      if (u.password) {
        secrets.push({ what: `${flag}URL password`, value: decodeURIComponent(u.password) });
        u.password = 'redacted';
      }
      for (const [k, v] of [...u.searchParams]) {
        if (v) secrets.push({ what: `${flag}URL query ${k}`, value: v });
        u.searchParams.set(k, 'redacted');
      }
      return u.toString();
    }
    return a;
  });
  return { shown, secrets };
}

/**
 * Opens (appends to) the log of one server process, heads it with the command line (secrets
 * redacted) and records its secrets, those of `args` and `extraSecrets` ([{ what, value }]);
 * returns the file descriptor to hand to spawn (close it after spawning).
 */
export function openServerLog(logPath, bin, args, extraSecrets = []) {
  const { shown, secrets } = redactArgs(args);
  registerSecrets([...secrets, ...extraSecrets], path.basename(logPath));
  const out = fs.openSync(logPath, 'a');
  fs.writeSync(out, `\n=== ${new Date().toISOString()} ${TRACE ? '[trace] ' : ''}${bin} ${shown.join(' ')}\n`);
  return out;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a clear message when `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/**
 * Resolves with the first emission of `event` on `emitter` (pusher-js `bind`/`unbind` objects,
 * Node EventEmitters, or `on`/`off` objects); rejects after `ms`. `filter(payload, meta)` may
 * select a particular emission.
 */
export function waitFor(emitter, event, ms = 5000, filter = () => true) {
  return waitForMeta(emitter, event, ms, filter).then((r) => r.data);
}

/** Like waitFor but resolves with { data, meta } (pusher-js passes metadata such as user_id). */
export function waitForMeta(emitter, event, ms = 5000, filter = () => true) {
  let off = () => {};
  return withTimeout(
    new Promise((resolve) => {
      const handler = (data, meta) => {
        if (!filter(data, meta)) return;
        off();
        resolve({ data, meta });
      };
      if (typeof emitter.bind === 'function' && typeof emitter.unbind === 'function') {
        emitter.bind(event, handler);
        off = () => emitter.unbind(event, handler);
      } else {
        emitter.on(event, handler);
        off = () => emitter.off(event, handler);
      }
    }),
    ms,
    `event '${event}'`,
  ).finally(() => off());
}

/** Polls `fn` until it returns a truthy value (returned), or throws after `ms`. */
export async function eventually(fn, ms = 5000, what = 'condition', every = 25) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
    }
    await sleep(every);
  }
}

/** Records every emission of `event` on a pusher-js channel/emitter: [{data, meta}] */
export function record(emitter, event) {
  const got = [];
  const fn = (data, meta) => got.push({ data, meta });
  emitter.bind(event, fn);
  got.stop = () => emitter.unbind(event, fn);
  return got;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function findBinary() {
  if (process.env.RF_BIN) return process.env.RF_BIN;
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, 'target');
  const rel = path.join(target, 'release/rf-broadcast');
  const dbg = path.join(target, 'debug/rf-broadcast');
  const mtime = (p) => {
    try {
      return fs.statSync(p).mtimeMs;
    } catch {
      return -1;
    }
  };
  if (mtime(rel) >= 0 && mtime(rel) >= mtime(dbg)) return rel;
  if (mtime(dbg) >= 0) return dbg;
  throw new Error(`rf-broadcast binary not found (looked at ${rel} and ${dbg}); build it with cargo build or set RF_BIN`);
}

async function httpUp(host, port, ca) {
  if (ca) return httpsUp(host, port, ca);
  try {
    const res = await fetch(`http://${host}:${port}/up`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** GET /up over TLS, trusting only `ca` (PEM). */
function httpsUp(host, port, ca) {
  return new Promise((resolve) => {
    const req = https.get({ host, port, path: '/up', ca, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

/**
 * Starts rf-broadcast. `flags` are extra CLI flags, e.g. ['--dev-auth']; `tls` is the PEM of the
 * CA that signed the certificate given in the flags (`--tls-cert`): the server is then probed
 * over https.
 * Returns { host, port, url, wsUrl, app, stop(), restart(), log() }.
 */
export async function startServer({ flags = [], name = 'server', port, app = APP, tls } = {}) {
  if (process.env.RF_EXTERNAL) {
    const [host, p] = process.env.RF_EXTERNAL.split(':');
    return {
      external: true, host, port: Number(p), url: `http://${host}:${p}`, app,
      stop: async () => {}, restart: async () => { throw new Error('restart not possible with RF_EXTERNAL'); },
      log: () => '(external server)',
    };
  }
  const bin = findBinary();
  const host = '127.0.0.1';
  port = port ?? (await freePort());
  const logPath = path.join(logDir(), `${name}-${port}.log`);
  const args = ['--host', host, '--port', String(port), '--app-id', app.id, '--app-key', app.key, '--app-secret', app.secret, ...flags];
  const scheme = tls ? 'https' : 'http';
  const srv = { host, port, url: `${scheme}://${host}:${port}`, app, bin, args, logPath, child: null, exits: [] };

  srv.launch = async () => {
    const out = openServerLog(logPath, bin, args);
    // The level: --log-level in `flags` wins over RF_LOG (clap: a flag before its env variable).
    const env = { ...process.env, RUST_BACKTRACE: '1' };
    if (TRACE) env.RF_LOG = 'trace';
    const child = spawn(bin, args, { stdio: ['ignore', out, out], env });
    fs.closeSync(out);
    srv.child = child;
    child.exited = new Promise((resolve) => child.on('exit', (code, signal) => { srv.exits.push({ code, signal }); resolve({ code, signal }); }));
    const deadline = Date.now() + 10_000;
    while (!(await httpUp(host, port, tls))) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`rf-broadcast exited early (${child.exitCode ?? child.signalCode}); log:\n${srv.log()}`);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`rf-broadcast did not answer GET /up with 200 within 10 s; log:\n${srv.log()}`);
      }
      await sleep(50);
    }
  };
  /** SIGTERM (the server closes every socket with 4200), wait for exit (SIGKILL after 5 s). */
  srv.stop = async () => {
    const child = srv.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const r = await Promise.race([child.exited, sleep(5000).then(() => null)]);
    if (!r) {
      child.kill('SIGKILL');
      await child.exited;
      throw new Error('rf-broadcast did not exit within 5 s of SIGTERM');
    }
    return r;
  };
  srv.restart = async () => {
    await srv.stop();
    await srv.launch();
  };
  srv.log = () => {
    try {
      const s = fs.readFileSync(logPath, 'utf8');
      return s.length > 4000 ? '…' + s.slice(-4000) : s;
    } catch {
      return '';
    }
  };
  await srv.launch();
  return srv;
}

/** Node server SDK (pusher 5.x) pointed at the server. */
export function serverSdk(srv, extra = {}) {
  return new PusherServer({
    appId: srv.app.id, key: srv.app.key, secret: srv.app.secret,
    host: srv.host, port: String(srv.port), useTLS: false, ...extra,
  });
}

/** pusher-js options for a plain-ws connection to the server. */
export function pusherOptions(srv, extra = {}) {
  return {
    cluster: 'mt1', wsHost: srv.host, wsPort: srv.port, wssPort: srv.port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true, ...extra,
  };
}

/** channelAuthorization.customHandler that signs with the Node SDK (what an app's auth route does). */
export function sdkChannelAuth(sdk, presenceData = () => ({ user_id: 'anon' })) {
  return {
    customHandler: ({ socketId, channelName }, callback) => {
      try {
        const data = channelName.startsWith('presence-') ? presenceData(channelName, socketId) : undefined;
        callback(null, sdk.authorizeChannel(socketId, channelName, data));
      } catch (e) {
        callback(e, null);
      }
    },
  };
}

/** A set of clients closed at the end of a test file. */
export class Clients {
  constructor() {
    this.list = [];
  }
  add(c) {
    this.list.push(c);
    return c;
  }
  /** new pusher-js client; resolves once connected. */
  async pusher(srv, extra = {}, { connect = true, key = srv.app.key } = {}) {
    const p = this.add(new PusherJs(key, pusherOptions(srv, extra)));
    p.states = [];
    p.connection.bind('state_change', (s) => p.states.push(s.current));
    p.errors = [];
    p.connection.bind('error', (e) => p.errors.push(e));
    if (connect) await waitConnected(p);
    return p;
  }
  async raw(srv, query = '?protocol=7&client=js&version=8.6.0&flash=false', key = srv.app.key) {
    return this.add(await rawClient(srv, query, key));
  }
  closeAll() {
    for (const c of this.list.splice(0)) {
      try {
        if (typeof c.disconnect === 'function') c.disconnect();
        else c.close();
      } catch {}
    }
  }
}

export function waitConnected(p, ms = 5000) {
  if (p.connection.state === 'connected') return Promise.resolve(p);
  return withTimeout(
    new Promise((resolve, reject) => {
      const f = (s) => {
        if (s.current === 'connected') {
          p.connection.unbind('state_change', f);
          resolve(p);
        } else if (s.current === 'failed') {
          reject(new Error('pusher-js connection failed'));
        }
      };
      p.connection.bind('state_change', f);
    }),
    ms,
    'pusher-js state connected',
  );
}

/** Subscribes on a pusher-js client; resolves with the channel after pusher:subscription_succeeded. */
export async function subscribed(p, name, ms = 5000) {
  const ch = p.subscribe(name);
  if (ch.subscribed) return ch;
  const ok = waitFor(ch, 'pusher:subscription_succeeded', ms);
  const bad = new Promise((_, reject) =>
    ch.bind('pusher:subscription_error', (e) => reject(new Error(`subscription_error on ${name}: ${JSON.stringify(e)}`))),
  );
  await Promise.race([ok, bad]);
  return ch;
}

/**
 * Raw WebSocket client speaking the Pusher protocol: frames (parsed) are kept in `frames`,
 * `next(pred, ms)` waits for the next matching frame not yet consumed.
 */
export async function rawClient(srv, query = '?protocol=7&client=js&version=8.6.0&flash=false', key = srv.app.key) {
  const ws = new WebSocket(`ws://${srv.host}:${srv.port}/app/${key}${query}`);
  const c = { ws, frames: [], waiters: [], closed: null };
  c.closedPromise = new Promise((resolve) => ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; resolve(c.closed); }));
  ws.on('message', (buf) => {
    let f;
    try {
      f = JSON.parse(buf.toString());
    } catch {
      f = { unparsable: buf.toString() };
    }
    c.frames.push(f);
    for (const w of [...c.waiters]) w();
  });
  ws.on('error', () => {});
  c.consumed = 0;
  c.next = (pred = () => true, ms = 5000, what = 'frame') => {
    const p = typeof pred === 'string' ? (f) => f.event === pred : pred;
    const label = typeof pred === 'string' ? `frame ${pred}` : what;
    return withTimeout(
      new Promise((resolve) => {
        const check = () => {
          for (let i = c.consumed; i < c.frames.length; i++) {
            if (p(c.frames[i])) {
              c.consumed = i + 1;
              c.waiters = c.waiters.filter((w) => w !== check);
              resolve(c.frames[i]);
              return true;
            }
          }
          return false;
        };
        if (!check()) c.waiters.push(check);
      }),
      ms,
      `${label} (received so far: ${JSON.stringify(c.frames).slice(0, 1500)})`,
    );
  };
  c.send = (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  c.close = () => ws.close();
  c.subscribe = async (channel, extra = {}) => {
    c.send({ event: 'pusher:subscribe', data: { auth: '', channel, ...extra } });
    return c.next((f) => f.channel === channel && /subscription_(succeeded|error)/.test(f.event), 5000, `subscribe reply on ${channel}`);
  };
  const first = await c.next(() => true, 5000, 'first frame');
  c.first = first;
  if (first.event === 'pusher:connection_established') {
    c.socketId = JSON.parse(first.data).socket_id;
  }
  return c;
}

/** Runs the Python SDK helper script in compat-tests/.venv; resolves with its parsed JSON stdout. */
export function runPython(script, args = [], { env = {}, timeoutMs = 15000 } = {}) {
  const py = path.join(ROOT, '.venv/bin/python');
  if (!fs.existsSync(py)) throw new Error(`${py} missing: run compat-tests/setup.sh first`);
  return new Promise((resolve, reject) => {
    const child = spawn(py, [path.join(ROOT, 'py', script), ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`python ${script} ${args.join(' ')} timed out after ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`python ${script} ${args.join(' ')} exited ${code}: ${err || out}`));
      try {
        resolve(JSON.parse(out));
      } catch (e) {
        reject(new Error(`python ${script}: bad JSON output ${out} (${err})`));
      }
    });
  });
}
