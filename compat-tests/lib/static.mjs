// Tiny HTTP server for the browser tests: serves compat-tests/browser/*, pusher-js's web build at
// /pusher.min.js (from node_modules, never a CDN) and answers POST /pusher/auth by signing with the
// Node server SDK (what an application's auth route does).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './harness.mjs';

export async function startStatic(sdk, { userInfo = (id) => ({ name: id }), refuse = () => false } = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/pusher/auth') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        try {
          const f = new URLSearchParams(body);
          const channel = f.get('channel_name');
          if (refuse(channel, f.get('socket_id'))) return res.writeHead(403).end('refused by the test');
          const data = channel.startsWith('presence-') ? { user_id: f.get('user_id'), user_info: userInfo(f.get('user_id')) } : undefined;
          const auth = sdk.authorizeChannel(f.get('socket_id'), channel, data);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(auth));
        } catch (e) {
          res.writeHead(403).end(String(e));
        }
      });
      return;
    }
    let file;
    if (url.pathname === '/pusher.min.js') file = path.join(ROOT, 'node_modules/pusher-js/dist/web/pusher.min.js');
    else if (url.pathname === '/echo.iife.js') file = path.join(ROOT, 'node_modules/laravel-echo/dist/echo.iife.js');
    else file = path.join(ROOT, 'browser', path.basename(url.pathname));
    fs.readFile(file, (err, buf) => {
      if (err) return res.writeHead(404).end('not found');
      const type = file.endsWith('.js') ? 'text/javascript' : 'text/html; charset=utf-8';
      res.writeHead(200, { 'content-type': type }).end(buf);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
