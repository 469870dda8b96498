// Keeps a headless Chromium on the debug console's page for a while, so a benchmark can measure
// the server with a browser watching the live log (BENCHMARKS.md, "Debug console cost").
//   node bench/console-watch.mjs http://127.0.0.1:9602 SECONDS [TOKEN]
// Prints how many rows the page received and how many `dropped` rows it was sent.
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS } from '../lib/static.mjs';

const [url = 'http://127.0.0.1:9602', secs = '20', token] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  await page.goto(url);
  if (token) {
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${url}/`), page.click('#login')]);
  }
  await page.waitForFunction(() => document.getElementById('stream-state')?.textContent === 'live');
  // Count what arrives (the page keeps only 1,000 rows).
  await page.evaluate(() => {
    window.__seen = 0;
    window.__dropped = 0;
    const es = new EventSource('/api/stream');
    es.onmessage = (m) => {
      window.__seen++;
      const r = JSON.parse(m.data);
      if (r.type === 'dropped') window.__dropped += r.count;
    };
  });
  await new Promise((r) => setTimeout(r, Number(secs) * 1000));
  const got = await page.evaluate(() => ({ rows: window.__seen, dropped: window.__dropped }));
  console.log(JSON.stringify(got));
} finally {
  await browser.close();
}
