// pusher-js and Laravel Echo in headless Chromium (Debian's, driven by playwright-core) against
// examples/authorized.rs, the embedding app whose channel routes answer the auth requests: the
// test builds the example with cargo, starts it (PORT, JWT_SECRET) and makes HS256 JWTs the way
// any app's login would. The page is at the example's own origin, so pusher-js's and Echo's
// relative auth endpoints reach the example's POST /broadcasting/auth and /broadcasting/user-auth
// with the bearer token, as in a real app that serves its front end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import PusherServer from 'pusher';
import { ROOT, REPO, TRACE, freePort, sleep, logDir, openServerLog } from '../lib/harness.mjs';
import { CHROMIUM_ARGS } from '../lib/static.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skip = process.env.RF_EXTERNAL
  ? 'RF_EXTERNAL: this file tests the embedding example, not a server'
  : fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (run compat-tests/setup.sh)`;
const T = { skip, timeout: 60_000 };
const JWT_SECRET = 'compat-jwt-secret'; // not the example's default: JWT_SECRET must be honoured
const APP = { id: 'app-id', key: 'app-key', secret: 'app-secret' };

let ex;
let sdk;
let browser;

/** An HS256 JWT as an app's login would issue it: `sub` the user id, `name` the display name. */
function jwt(claims, secret = JWT_SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}
const tokenFor = (sub, name) => jwt({ sub, name, exp: Math.floor(Date.now() / 1000) + 3600 });

function run(cmd, args, opts, ms) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} timed out:\n${out.slice(-3000)}`)); }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-3000)}`));
    });
  });
}

/** `cargo build --example authorized` (a no-op when CI's `cargo build --all-targets` ran), then start it. */
async function startExample() {
  await run('cargo', ['build', '--example', 'authorized'], { cwd: REPO, env: process.env }, 600_000);
  const target = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, 'target');
  const bin = path.join(target, 'debug/examples/authorized');
  const port = await freePort();
  const logPath = path.join(logDir(), `authorized-example-${port}.log`);
  // The example's secrets come through its environment; the harness records them for the scan.
  const out = openServerLog(logPath, bin, [], [{ what: 'JWT_SECRET', value: JWT_SECRET }, { what: 'the example\'s app secret', value: APP.secret }]);
  const env = { ...process.env, PORT: String(port), JWT_SECRET, RUST_LOG: TRACE ? 'trace' : 'info' };
  const child = spawn(bin, [], { stdio: ['ignore', out, out], env });
  fs.closeSync(out);
  const exited = new Promise((r) => child.on('exit', r));
  const url = `http://127.0.0.1:${port}`;
  const log = () => fs.readFileSync(logPath, 'utf8').slice(-4000);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await fetch(`${url}/up`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false);
    if (up) break;
    if (child.exitCode !== null) throw new Error(`the example exited early (${child.exitCode}):\n${log()}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`the example did not answer GET /up within 10 s:\n${log()}`); }
    await sleep(50);
  }
  return {
    url, host: '127.0.0.1', port, log,
    stop: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await Promise.race([exited, sleep(5000)]); child.kill('SIGKILL'); } },
  };
}

before(async () => {
  if (skip) return;
  ex = await startExample();
  sdk = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: ex.host, port: String(ex.port), useTLS: false });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}, { timeout: 660_000 });
after(async () => {
  await browser?.close().catch(() => {});
  await ex?.stop();
});

const SCRIPTS = [
  path.join(ROOT, 'node_modules/pusher-js/dist/web/pusher.min.js'),
  path.join(ROOT, 'node_modules/laravel-echo/dist/echo.iife.js'),
];

/**
 * A page at the example's own origin (its GET /up, a real loopback response, so Chromium's
 * local-network checks see a local page) with pusher-js's web build and Echo's IIFE build added
 * from node_modules.
 */
async function open() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(`${ex.url}/up`, { timeout: 10_000 });
  for (const file of SCRIPTS) await page.addScriptTag({ content: fs.readFileSync(file, 'utf8') });
  page.closeAll = () => context.close();
  return page;
}

/** page.evaluate with the page's console and the example's log in the failure message. */
async function inPage(page, fn, arg) {
  try {
    return await page.evaluate(fn, arg);
  } catch (e) {
    throw new Error(`${e.message}\nconsole: ${JSON.stringify(page.logs.slice(-30), null, 1)}\nexample log: ${ex.log()}`);
  }
}

/** In the page: a pusher-js client with the token on both auth endpoints (or none), connected. */
const connectPusher = async ({ host, port, token }) => {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const p = new Pusher('app-key', {
    cluster: 'mt1', wsHost: host, wsPort: port, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: { endpoint: '/broadcasting/auth', transport: 'ajax', headers },
    userAuthentication: { endpoint: '/broadcasting/user-auth', transport: 'ajax', headers },
  });
  window.p = p;
  window.got = [];
  window.outcome = (name) => new Promise((resolve) => {
    const ch = p.subscribe(name);
    ch.bind('pusher:subscription_succeeded', () => resolve({ ok: true }));
    ch.bind('pusher:subscription_error', (e) => resolve({ ok: false, status: e.status, type: e.type }));
    setTimeout(() => resolve({ ok: false, timeout: true }), 8000);
  });
  await new Promise((resolve, reject) => {
    p.connection.bind('connected', resolve);
    setTimeout(() => reject(new Error('pusher-js did not connect')), 8000);
  });
  return p.connection.socket_id;
};

const waitIn = (page, fn, arg, what, ms = 8000) =>
  page.waitForFunction(fn, arg, { timeout: ms, polling: 50 }).catch((e) => {
    throw new Error(`${what}: ${e.message}\nconsole: ${JSON.stringify(page.logs.slice(-30), null, 1)}\nexample log: ${ex.log()}`);
  });

test('pusher-js in Chromium: own private channel allowed, another user\'s refused (403), no token 401', T, async () => {
  const ada = await open();
  const anon = await open();
  try {
    const where = { host: ex.host, port: ex.port };
    assert.match(await inPage(ada, connectPusher, { ...where, token: tokenFor('1', 'Ada') }), /^\d+\.\d+$/);
    assert.deepEqual(await inPage(ada, () => outcome('private-user.1')), { ok: true });
    assert.deepEqual(await inPage(ada, () => outcome('private-user.2')), { ok: false, status: 403, type: 'AuthError' });

    await inPage(ada, () => p.channel('private-user.1').bind('note', (d) => got.push(['note', d])));
    await sdk.trigger('private-user.1', 'note', { text: 'for Ada' });
    await waitIn(ada, () => got.some(([n, d]) => n === 'note' && d.text === 'for Ada'), null, 'event on private-user.1');

    await inPage(anon, connectPusher, { ...where, token: null });
    assert.deepEqual(await inPage(anon, () => outcome('private-user.1')), { ok: false, status: 401, type: 'AuthError' });
    // A token signed with another secret is nobody, too.
    const forged = jwt({ sub: '1', name: 'Ada', exp: Math.floor(Date.now() / 1000) + 3600 }, 'not-the-secret');
    const mallory = await open();
    try {
      await inPage(mallory, connectPusher, { ...where, token: forged });
      assert.deepEqual(await inPage(mallory, () => outcome('private-user.1')), { ok: false, status: 401, type: 'AuthError' });
    } finally {
      await mallory.closeAll();
    }
  } finally {
    await ada.closeAll();
    await anon.closeAll();
  }
});

test('pusher-js in Chromium: presence members carry the route\'s user_info; sign-in then sendToUser', T, async () => {
  const ada = await open();
  const bob = await open();
  try {
    const where = { host: ex.host, port: ex.port };
    await inPage(ada, connectPusher, { ...where, token: tokenFor('1', 'Ada') });
    await inPage(bob, connectPusher, { ...where, token: tokenFor('2', 'Bob') });
    assert.deepEqual(await inPage(ada, () => outcome('presence-room.lobby')), { ok: true });
    assert.deepEqual(await inPage(bob, () => outcome('presence-room.lobby')), { ok: true });
    const members = () => {
      const m = {};
      p.channel('presence-room.lobby').members.each((x) => (m[x.id] = x.info));
      return JSON.stringify(m);
    };
    const both = JSON.stringify({ 1: { name: 'Ada' }, 2: { name: 'Bob' } });
    await waitIn(ada, (want) => {
      const m = {};
      p.channel('presence-room.lobby').members.each((x) => (m[x.id] = x.info));
      return JSON.stringify(m) === want;
    }, both, 'Ada sees both members');
    assert.equal(await inPage(ada, members), both);
    assert.deepEqual(await inPage(bob, () => p.channel('presence-room.lobby').members.me), { id: '2', info: { name: 'Bob' } });

    // pusher:signin through POST /broadcasting/user-auth, then an event to the user.
    await inPage(ada, async () => {
      p.user.bind('note', (d) => got.push(['user-note', d]));
      p.signin();
      await p.user.signinDonePromise;
    });
    assert.equal(await inPage(ada, () => p.user.user_data?.id), '1');
    assert.deepEqual(await inPage(ada, () => p.user.user_data?.user_info), { name: 'Ada' });
    await sdk.sendToUser('1', 'note', { text: 'hello user 1' });
    await waitIn(ada, () => got.some(([n, d]) => n === 'user-note' && d.text === 'hello user 1'), null, 'user event after sign-in');
  } finally {
    await ada.closeAll();
    await bob.closeAll();
  }
});

test('Laravel Echo in Chromium: bearerToken, private listen, error() on another user\'s channel, join().here(), sign-in', T, async () => {
  const ada = await open();
  const bob = await open();
  try {
    const startEcho = async ({ host, port, token }) => {
      window.got = [];
      window.echo = new Echo.default({
        broadcaster: 'pusher', key: 'app-key', cluster: 'mt1', wsHost: host, wsPort: port, forceTLS: false,
        enabledTransports: ['ws'], disableStats: true, bearerToken: token, // Echo's defaults: /broadcasting/auth, /broadcasting/user-auth
      });
      await new Promise((resolve, reject) => {
        echo.connector.pusher.connection.bind('connected', resolve);
        setTimeout(() => reject(new Error('Echo did not connect')), 8000);
      });
    };
    const where = { host: ex.host, port: ex.port };
    await inPage(ada, startEcho, { ...where, token: tokenFor('1', 'Ada') });
    await inPage(bob, startEcho, { ...where, token: tokenFor('2', 'Bob') });

    await inPage(ada, () => {
      echo.private('user.1').listen('.note', (e) => got.push(['note', e]))
        .subscribed(() => got.push(['subscribed', 'user.1']));
      echo.private('user.2').error((e) => got.push(['error', e]));
      echo.join('room.lobby')
        .here((members) => got.push(['here', members]))
        .joining((m) => got.push(['joining', m]));
    });
    await waitIn(ada, () => got.some(([k, v]) => k === 'subscribed' && v === 'user.1'), null, 'Echo.private(user.1) subscribed');
    await waitIn(ada, () => got.some(([k, e]) => k === 'error' && e.status === 403), null, 'Echo error() with status 403');
    await waitIn(ada, () => got.some(([k]) => k === 'here'), null, 'Echo here()');
    assert.deepEqual(await inPage(ada, () => got.find(([k]) => k === 'here')[1]), [{ name: 'Ada' }]);

    await inPage(bob, () => echo.join('room.lobby').here((m) => got.push(['here', m])));
    await waitIn(ada, () => got.some(([k, m]) => k === 'joining' && m.name === 'Bob'), null, 'Echo joining() with Bob\'s user_info');
    await waitIn(bob, () => got.some(([k, m]) => k === 'here' && m.length === 2), null, 'Bob\'s here() lists two members');

    await sdk.trigger('private-user.1', 'note', { text: 'from Laravel' });
    await waitIn(ada, () => got.some(([k, e]) => k === 'note' && e.text === 'from Laravel'), null, 'Echo listen(.note)');

    // Echo's userAuthentication default (/broadcasting/user-auth) with the bearer token.
    await inPage(ada, async () => {
      const pusher = echo.connector.pusher;
      pusher.user.bind('note', (d) => got.push(['user-note', d]));
      pusher.signin();
      await pusher.user.signinDonePromise;
    });
    assert.equal(await inPage(ada, () => echo.connector.pusher.user.user_data?.id), '1');
    await sdk.sendToUser('1', 'note', { text: 'to Ada via Echo' });
    await waitIn(ada, () => got.some(([k, d]) => k === 'user-note' && d.text === 'to Ada via Echo'), null, 'user event after Echo sign-in');
  } finally {
    await ada.closeAll();
    await bob.closeAll();
  }
});
