// Real browser: Debian's Chromium (/usr/bin/chromium, headless, driven by playwright-core; never a
// downloaded browser). 1) pusher-js's web build in a page of ours (browser/presence.html);
// 2) the server's own demo page (GET /demo, examples/demo.html, a plain-JS Pusher client).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { startServer, serverSdk } from '../lib/harness.mjs';
import { startStatic, CHROMIUM_ARGS } from '../lib/static.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skipBrowser = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} missing (run compat-tests/setup.sh)`;
let srv;
let sdk;
let web;
let browser;
const T = { skip: skipBrowser, timeout: 45_000 };

before(async () => {
  if (skipBrowser) return;
  srv = await startServer({ name: 'browser', flags: ['--dev-auth'] });
  sdk = serverSdk(srv);
  web = await startStatic(sdk);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
});
after(async () => {
  await browser?.close().catch(() => {});
  await web?.close();
  await srv?.stop();
});

/** Opens a page in its own context and records console output for failure messages. */
async function open(url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(url, { timeout: 10_000 });
  page.closeAll = () => context.close();
  return page;
}

/** Waits for fn(arg) to be true in the page; the failure message includes the DOM and console. */
async function until(page, fn, arg, what, ms = 10_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
  } catch (e) {
    const dom = await page.evaluate(() => ({
      status: document.getElementById('status')?.textContent,
      members: document.getElementById('members')?.innerText,
      events: document.getElementById('events')?.innerText,
    })).catch(() => ({}));
    throw new Error(`${what}: not reached in ${ms} ms. DOM ${JSON.stringify(dom)} console ${JSON.stringify(page.logs.slice(-40), null, 1)}`);
  }
}

const memberIds = () => [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).sort().join(',');
const eventsText = () => document.getElementById('events').innerText;

test('pusher-js web build in Chromium: presence members, HTTP-published event, client event', T, async () => {
  const q = (user) => `${web.url}/presence.html?host=${srv.host}&port=${srv.port}&key=${srv.app.key}&user=${user}&channel=presence-browser`;
  const alice = await open(q('alice'));
  const bob = await open(q('bob'));
  try {
    for (const page of [alice, bob]) {
      await until(page, () => document.getElementById('status').textContent === 'connected', null, 'connected');
      await until(page, (ids) => document.querySelectorAll('#members li').length === 2 &&
        [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).sort().join(',') === ids, 'alice,bob', 'both members shown');
    }
    assert.equal(await alice.evaluate(memberIds), 'alice,bob');
    assert.match(await alice.locator('#socket-id').textContent(), /^\d+\.\d+$/);

    await sdk.trigger('presence-browser', 'announcement', { text: 'hello browsers' });
    for (const page of [alice, bob]) {
      await until(page, () => document.getElementById('events').innerText.includes('hello browsers'), null, 'HTTP event shown');
    }

    await bob.evaluate(() => window.__channel.bind('client-wave', (data, meta) => { window.__wave = { data, meta }; }));
    await alice.evaluate(() => window.__channel.trigger('client-wave', { from: 'alice' }));
    await until(bob, () => document.getElementById('events').innerText.includes('client-wave'), null, 'client event on bob');
    const wave = await bob.evaluate(() => window.__wave);
    assert.deepEqual(wave.data, { from: 'alice' });
    assert.equal(wave.meta?.user_id, 'alice', 'presence client events carry the sender user_id');
    assert.doesNotMatch(await alice.evaluate(eventsText), /client-wave/, 'sender must not get its own client event');

    await bob.closeAll();
    await until(alice, () => [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).join(',') === 'alice', null, 'bob removed from members');
  } finally {
    await alice.closeAll().catch(() => {});
    await bob.closeAll().catch(() => {});
  }
});

test('demo page (GET /demo, --dev-auth): two pages see each other, client and server-published messages', { ...T, skip: skipBrowser || (process.env.RF_EXTERNAL ? 'demo page is served by rf-broadcast only' : false) }, async () => {
  const res = await fetch(`${srv.url}/demo`);
  assert.equal(res.status, 200, 'GET /demo with --dev-auth');
  assert.match(res.headers.get('content-type') || '', /text\/html/);
  const a = await open(`${srv.url}/demo?user=ada`);
  const b = await open(`${srv.url}/demo?user=bob`);
  try {
    for (const page of [a, b]) {
      await until(page, () => /connected|subscribed/.test(document.getElementById('status').textContent), null, 'demo connected');
      await until(page, (ids) => [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).sort().join(',') === ids, 'ada,bob', 'demo members');
    }
    // client event typed into the page by a user
    await a.fill('#message', 'hi from ada');
    await a.click('#send');
    await until(b, () => document.getElementById('events').innerText.includes('hi from ada'), null, 'client-message on bob');
    // publish through the server (POST /demo/publish) reaches both
    await b.fill('#message', 'published by bob');
    await b.click('#publish');
    for (const page of [a, b]) {
      await until(page, () => document.getElementById('events').innerText.includes('published by bob'), null, 'server-published message');
    }
    await b.closeAll();
    await until(a, () => [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).join(',') === 'ada', null, 'bob left');
  } finally {
    await a.closeAll().catch(() => {});
    await b.closeAll().catch(() => {});
  }
});

test('pusher-js in Chromium reconnects to a restarted server (close 4200) and re-joins presence', { ...T, skip: skipBrowser || (process.env.RF_EXTERNAL ? 'needs a server process this suite controls' : false) }, async () => {
  const page = await open(`${web.url}/presence.html?host=${srv.host}&port=${srv.port}&key=${srv.app.key}&user=carol&channel=presence-restart&debug=1`);
  try {
    await until(page, () => [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).join(',') === 'carol', null, 'joined');
    const firstId = await page.locator('#socket-id').textContent();
    await srv.restart();
    await until(page, (id) => document.getElementById('status').textContent === 'connected' &&
      document.getElementById('socket-id').textContent !== id, firstId, 'reconnected with a new socket id', 25_000);
    await until(page, () => [...document.querySelectorAll('#members li')].map((li) => li.dataset.id).join(',') === 'carol', null, 're-joined presence');
    await sdk.trigger('presence-restart', 'after-restart', { text: 'still here' });
    await until(page, () => document.getElementById('events').innerText.includes('still here'), null, 'event after restart');
  } finally {
    await page.closeAll().catch(() => {});
  }
});
