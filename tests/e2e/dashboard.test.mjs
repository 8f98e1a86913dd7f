// The node registry (Pnode:<id> with a TTL, indexed in Pnodes), GET /cluster
// and the cluster view of the node's page in headless Debian Chromium: nodes
// alive with their streams and topics, a SIGKILLed node shown as gone once
// its entry expires. The test saves a screenshot to build/dashboard.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import { startRedis, startBroker, startNode, waitFor, cleanupAll, buildDir } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

let redis, a, b, browser;

before(async () => {
  redis = await startRedis();
  await startBroker(redis);
  a = await startNode(redis, { args: ['--threads', '1', '--node-id', 'edge-a', '--retry-ms', '200'] });
  b = await startNode(redis, { args: ['--threads', '2', '--node-id', 'edge-b', '--topic-linger-ms', '0'] });
  browser = await launchChromium();
});
after(async () => {
  if (browser) await browser.close();
  await cleanupAll();
});

async function cluster(node) {
  const r = await fetch(`${node.url}/cluster`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  return r.json();
}

test('each node keeps an expiring registry entry; /cluster lists them with their load', { timeout: 60000 }, async () => {
  const streams = await Promise.all(['x', 'y', 'z'].map((t) => rawSse(`${b.url}/events?topic=${t}`)));
  await Promise.all(streams.map((s) => s.waitForEvents(1)));
  try {
    const c = await waitFor(async () => {
      const v = await cluster(a);
      const nb = v.nodes.find((n) => n.id === 'edge-b');
      // both of edge-b's threads connect on their own: wait for the second too
      return nb && nb.streams === 3 && nb.redis_up && v;
    }, { timeout: 5000, what: "edge-b's three streams and its Redis links up in the registry" });
    assert.equal(c.self, 'edge-a');
    assert.deepEqual(c.nodes.map((n) => n.id), ['edge-a', 'edge-b'], 'sorted by id');
    const nb = c.nodes.find((n) => n.id === 'edge-b');
    assert.equal(nb.alive, true);
    assert.equal(nb.threads, 2);
    assert.equal(nb.topics, 3);
    assert.equal(nb.subscriptions, 3);
    assert.equal(nb.streams_http1, 3);
    assert.equal(nb.listen, `127.0.0.1:${b.port}`);
    assert.equal(nb.pid, b.pid);
    assert.equal(nb.draining, false);
    assert.ok(c.now_ms - nb.seen_ms < 3000, 'rewritten about every second');
    // in Redis: a JSON entry with a TTL, and the index scored by the last write
    const ttl = Number(await redis.cmd('PTTL', 'ssehub:node:edge-b'));
    assert.ok(ttl > 0 && ttl <= c.ttl_ms, `PTTL ${ttl}`);
    assert.equal(JSON.parse(await redis.cmd('GET', 'ssehub:node:edge-b')).id, 'edge-b');
    assert.ok(Number(await redis.cmd('ZSCORE', 'ssehub:nodes', 'edge-a')) > 0);
    // /cluster is a GET resource
    assert.equal((await fetch(`${a.url}/cluster`, { method: 'POST' })).status, 405);
  } finally {
    streams.forEach((s) => s.close());
  }
});

test('the page shows the cluster live: nodes, streams, topics, and a killed node as gone', { timeout: 90000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const streams = [];
  try {
    await page.goto(`${a.url}/?topic=demo`);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'open', null, { timeout: 10000 });
    const row = (id, sel) => page.textContent(`#nodes tr[data-node="${id}"] ${sel}`);
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr').length === 2, null, { timeout: 10000 });
    // streams opened on the other node appear on this node's page
    for (const t of ['p', 'q', 'r', 's']) streams.push(await rawSse(`${b.url}/events?topic=${t}`));
    await page.waitForFunction(() => {
      const r = document.querySelector('#nodes tr[data-node="edge-b"]');
      return r && r.querySelector('.streams').textContent === '4';
    }, null, { timeout: 10000 });
    // the first test's topics are let go as their streams end (no linger)
    await page.waitForFunction(() => document.querySelector('#nodes tr[data-node="edge-b"] .topics').textContent === '4',
      null, { timeout: 10000 });
    assert.equal(await row('edge-b', '[data-state]'), 'alive');
    // this page's own stream is on edge-a
    await page.waitForFunction(() => {
      const r = document.querySelector('#nodes tr[data-node="edge-a"]');
      return r && r.querySelector('.streams').textContent === '1';
    }, null, { timeout: 10000 });
    assert.match(await page.getAttribute('#nodes tr[data-node="edge-a"]', 'class'), /self/);
    assert.match(await page.textContent('#cluster-summary'), /^2 nodes alive, 5 streams; read from edge-a/);
    await redis.cmd('PUBLISH', 'sse:demo', 'shown with the cluster');
    await page.waitForFunction(() => document.querySelector('#events td.data'), null, { timeout: 10000 });
    await page.screenshot({ path: path.join(buildDir, 'dashboard.png'), fullPage: true });

    // SIGKILL edge-b: it cannot say goodbye; its entry expires and the
    // page shows it as gone, still listed with when it was last seen
    await b.kill('SIGKILL');
    const t0 = Date.now();
    await page.waitForFunction(() => {
      const r = document.querySelector('#nodes tr[data-node="edge-b"] [data-state]');
      return r && r.dataset.state === 'gone';
    }, null, { timeout: 15000 });
    const took = Date.now() - t0;
    assert.ok(took <= 5000 + 2000 + 1500, `gone within the TTL plus one poll: ${took} ms`);
    assert.match(await row('edge-b', '[data-state]'), /^gone, last seen \d+ s ago$/);
    assert.equal(await row('edge-b', '.streams'), '-');
    assert.equal(await row('edge-a', '[data-state]'), 'alive');
    assert.match(await page.textContent('#cluster-summary'), /^1 node alive, 1 stream;/);
    await page.screenshot({ path: path.join(buildDir, 'dashboard-node-gone.png'), fullPage: true });
  } finally {
    streams.forEach((s) => s.close());
    await page.close();
  }
});
