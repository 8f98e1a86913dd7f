// Headless Chromium on the local cluster (issue 5): a page loaded through
// haproxy opens the browser's own EventSource on the Mercure endpoint; the
// node serving it is SIGKILLed mid-stream; the browser reconnects through
// the load balancer by itself (Last-Event-ID) and the page ends with every
// event exactly once, in order.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './lib/browser.mjs';

import { cleanupAll, waitFor } from './lib/harness.mjs';
import { startCluster, startPublisher, storedSeqs } from './lib/cluster.mjs';

let browser;
after(async () => {
  if (browser) await browser.close();
  await cleanupAll();
});

const TOPIC = 'browser-kill';
const EVENTS = 300;

test('the browser\'s EventSource survives the SIGKILL of its node: every event once, in order', { timeout: 120000 }, async () => {
  const cluster = await startCluster({ nodes: 2, brokers: 1, nodeArgs: ['--retry-ms', '500'] });
  browser = await launchChromium();
  const page = await browser.newPage();
  await page.goto(`${cluster.lb.url}/healthz`);
  await page.evaluate((topic) => {
    window.got = [];
    window.errors = 0;
    const es = new EventSource(`/.well-known/mercure?topic=${encodeURIComponent(topic)}`);
    es.onmessage = (e) => window.got.push(e.data);
    es.onerror = () => { window.errors++; };
    window.es = es;
  }, TOPIC);
  await page.waitForFunction(() => window.es.readyState === 1);

  const publisher = startPublisher(cluster.redis, { topics: [TOPIC], total: EVENTS, rate: 100 });
  await waitFor(async () => (await page.evaluate(() => window.got.length)) >= 50, { what: '50 events in the page' });
  // Kill the node that serves the page: try node 0; if the page did not
  // notice within 3 s it was on node 1, so bring node 0 back and kill node 1.
  await cluster.killNode(0, 'SIGKILL');
  let noticed = await waitFor(async () => (await page.evaluate(() => window.errors)) >= 1, { timeout: 3000 })
    .then(() => true, () => false);
  if (!noticed) {
    await cluster.startNodeAgain(0);
    await cluster.killNode(1, 'SIGKILL');
    noticed = await waitFor(async () => (await page.evaluate(() => window.errors)) >= 1, { timeout: 3000 })
      .then(() => true, () => false);
  }
  assert.ok(noticed, 'the page saw its stream end');
  assert.equal(await publisher.done, EVENTS);
  const seqs = await waitFor(async () => {
    const s = await storedSeqs(cluster.redis, TOPIC);
    return s.length >= EVENTS && s;
  }, { timeout: 30000, what: 'every event stored' });
  assert.deepEqual(seqs, Array.from({ length: EVENTS }, (_, k) => k + 1));
  await waitFor(async () => (await page.evaluate(() => window.got.length)) >= EVENTS, {
    timeout: 30000, what: 'every event in the page',
  });
  await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now
  const got = (await page.evaluate(() => window.got)).map((d) => Number(d.split(' ')[0]));
  assert.deepEqual(got, Array.from({ length: EVENTS }, (_, k) => k + 1), 'every event exactly once, in order');
  assert.equal(await page.evaluate(() => window.es.readyState), 1, 'reconnected by the browser itself');
});
