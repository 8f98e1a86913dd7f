// The node's demo page in headless Debian Chromium (playwright-core): it
// subscribes, shows a published event, and resumes after a reconnect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import { startRedis, startBroker, startNode, waitFor, cleanupAll, buildDir } from './lib/harness.mjs';

let redis, node, browser;

before(async () => {
  redis = await startRedis();
  await startBroker(redis);
  node = await startNode(redis, { args: ['--threads', '1', '--retry-ms', '200'] });
  browser = await launchChromium();
});
after(async () => {
  if (browser) await browser.close();
  await cleanupAll();
});

test('the demo page shows a PUBLISHed event and resumes after the node restarts', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${node.url}/?topic=demo`);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'open', null, { timeout: 10000 });
    // the subscription is in place once the cursor event has been received
    await page.waitForFunction(() => window.ssehubSource && window.ssehubSource.readyState === 1);
    await new Promise((r) => setTimeout(r, 300));
    await redis.cmd('PUBLISH', 'sse:demo', 'hello <b>page</b>');
    await page.waitForFunction(() => document.querySelector('#events td.data'), null, { timeout: 10000 });
    assert.equal(await page.textContent('#events td.data'), 'hello <b>page</b>', 'shown as text, not HTML');
    assert.equal(await page.textContent('#count'), '1');
    await page.screenshot({ path: path.join(buildDir, 'demo-page.png') });

    // Kill the node, publish while it is gone, start a new one on the same
    // port: the browser reconnects with Last-Event-ID and gets the missed event.
    const port = node.port;
    await node.kill('SIGKILL');
    await redis.cmd('PUBLISH', 'sse:demo', 'while away');
    await waitFor(async () => Number(await redis.cmd('XLEN', 'ssehub:{demo}:s')) === 2, { what: 'stored' });
    node = await startNode(redis, { port, args: ['--threads', '1', '--retry-ms', '200'] });
    await page.waitForFunction(() => document.getElementById('count').textContent === '2', null, { timeout: 15000 });
    assert.equal(await page.textContent('#events td.data'), 'while away');
    assert.equal(await page.textContent('#reconnects'), '1');
  } finally {
    await page.close();
  }
});
