// The Mercure API from a page on another origin, in headless Chromium:
// CORS preflight for a publish with Authorization, an EventSource with
// credentials that authenticates by the mercureAuthorization cookie and
// receives a private update; an origin not in cors_origins is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { launchChromium } from './lib/browser.mjs';

import { cleanupAll, startBroker, startNode, startRedis } from './lib/harness.mjs';
import { mercureToken } from './lib/jwt.mjs';

const KEY = 'browser-test-secret';
let redis, node, browser, site, siteUrl;

// A page server on its own port: another origin than the node.
function startSite() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>app</title><p>app</p>');
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

before(async () => {
  site = await startSite();
  siteUrl = `http://127.0.0.1:${site.address().port}`;
  redis = await startRedis();
  await startBroker(redis);
  node = await startNode(redis, { args: ['--jwt-key', KEY, '--cors-origins', `https://unused.example ${siteUrl}`] });
  browser = await launchChromium();
});
after(async () => {
  if (browser) await browser.close();
  site?.close();
  await cleanupAll();
});

test('a page on another origin subscribes with the cookie and publishes with a bearer token', { timeout: 60000 }, async () => {
  const context = await browser.newContext();
  await context.addCookies([{
    name: 'mercureAuthorization', value: mercureToken({ subscribe: ['https://example.com/private/{id}'] }, { key: KEY }),
    url: node.url, httpOnly: true, sameSite: 'Lax',
  }]);
  const page = await context.newPage();
  try {
    await page.goto(siteUrl);
    const result = await page.evaluate(async ({ hub, token }) => {
      const topic = 'https://example.com/private/1';
      const got = [];
      const es = new EventSource(`${hub}/.well-known/mercure?topic=${encodeURIComponent(topic)}`, { withCredentials: true });
      await new Promise((resolve, reject) => { es.onopen = resolve; es.onerror = () => reject(new Error('EventSource error')); });
      es.onmessage = (e) => got.push([e.lastEventId, e.data]);
      const post = (body) => fetch(`${hub}/.well-known/mercure`, {
        method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: new URLSearchParams(body),
      });
      const r1 = await post({ topic, data: 'private hello', id: 'p-1', private: 'on' });
      const r2 = await post({ topic, data: 'public hello', id: 'p-2' });
      const deadline = Date.now() + 5000;
      while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      es.close();
      return { got, statuses: [r1.status, r2.status], ids: [await r1.text(), await r2.text()] };
    }, { hub: node.url, token: mercureToken({ publish: ['*'] }, { key: KEY }) });
    assert.deepEqual(result.statuses, [200, 200]);
    assert.deepEqual(result.ids, ['p-1', 'p-2']);
    assert.deepEqual(result.got, [['p-1', 'private hello'], ['p-2', 'public hello']]);
  } finally {
    await context.close();
  }
});

test('preflight: allowed origins get the CORS headers, others 403', { timeout: 30000 }, async () => {
  const pre = (origin) => fetch(`${node.url}/.well-known/mercure`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
  });
  let res = await pre(siteUrl);
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), siteUrl);
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  assert.match(res.headers.get('access-control-allow-methods'), /POST/);
  assert.match(res.headers.get('access-control-allow-headers'), /Authorization/);
  res = await pre('https://evil.example');
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
  // a stream from a disallowed origin is refused too
  res = await fetch(`${node.url}/.well-known/mercure?topic=x`, { headers: { origin: 'https://evil.example' } });
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error, 'origin_not_allowed');
});
