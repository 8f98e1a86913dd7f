// Graceful drain (DESIGN §7): SIGTERM turns readiness to 503 at once, new
// streams are refused the EventSource way, and open streams are ended
// gradually over drain_seconds with a jittered retry:, then the process
// exits 0. SIGINT drains faster; a second signal stops at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startNode, waitFor, cleanupAll } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

let redis;
before(async () => { redis = await startRedis(); });
after(cleanupAll);

async function openClients(node, n) {
  const clients = await Promise.all(Array.from({ length: n }, (_, i) =>
    rawSse(`${node.url}/events?topic=drain${i % 5}`, { timeout: 30000 })));
  await waitFor(() => clients.every((c) => c.events.length > 0), { what: 'all streams started' });
  for (const c of clients) c.ended.then(() => { c.endedAt = Date.now(); });
  return clients;
}

test('SIGTERM: 503 at once, refusals, streams ended gradually with retry:, exit 0', async () => {
  const node = await startNode(redis, { args: ['--threads', '2', '--drain-seconds', '3', '--retry-ms', '1000'] });
  const clients = await openClients(node, 60);
  const t0 = Date.now();
  node.proc.kill('SIGTERM');
  await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 503, { timeout: 1000, what: 'readyz 503' });
  const refused = await rawSse(`${node.url}/events?topic=late`, { timeout: 5000 });
  await refused.ended;
  assert.equal(refused.status, 200);
  assert.match(refused.raw(), /^retry: \d+\n: node shutting down/);

  const exit = await node.exited;
  assert.equal(exit.code, 0, `exits 0 after the drain: ${JSON.stringify(exit)} ${node.logs().filter((l) => !l.includes("\"info\"")).join('\n')}`);
  await waitFor(() => clients.every((c) => c.endedAt), { timeout: 2000, what: 'every stream ended' });
  for (const c of clients) {
    const m = c.raw().match(/: node draining, reconnect\n\nretry: (\d+)\n\n$/);
    assert.ok(m, `ends with a comment and retry: ${JSON.stringify(c.raw().slice(-80))}`);
    assert.ok(Number(m[1]) >= 1000 && Number(m[1]) <= 2000, 'jittered retry between retry_ms and twice it');
  }
  const ends = clients.map((c) => c.endedAt - t0).sort((a, b) => a - b);
  const spread = ends[ends.length - 1] - ends[0];
  assert.ok(spread >= 1500, `streams were ended over time, not at once (spread ${spread} ms)`);
  const perSlot = new Map();
  for (const e of ends) perSlot.set(Math.floor(e / 100), (perSlot.get(Math.floor(e / 100)) || 0) + 1);
  const peak = Math.max(...perSlot.values());
  assert.ok(peak <= 20, `at most 20 of 60 streams end in one 100 ms slot (peak ${peak})`);
  assert.ok(ends[ends.length - 1] <= 8000, 'done within the drain time and a margin');
});

test('SIGINT drains within about a second; a second SIGTERM stops at once', async () => {
  const a = await startNode(redis, { args: ['--threads', '1', '--drain-seconds', '30'] });
  await openClients(a, 10);
  const t0 = Date.now();
  a.proc.kill('SIGINT');
  assert.equal((await a.exited).code, 0);
  assert.ok(Date.now() - t0 < 4000, `SIGINT drain took ${Date.now() - t0} ms`);

  const b = await startNode(redis, { args: ['--threads', '1', '--drain-seconds', '30'] });
  const clients = await openClients(b, 10);
  const t1 = Date.now();
  b.proc.kill('SIGTERM');
  await waitFor(async () => (await fetch(`${b.url}/readyz`).catch(() => ({ status: 0 }))).status === 503, { what: 'draining' });
  b.proc.kill('SIGTERM');
  assert.equal((await b.exited).code, 0);
  assert.ok(Date.now() - t1 < 5000, `second signal stopped at once (${Date.now() - t1} ms)`);
  await waitFor(() => clients.every((c) => c.isEnded), { timeout: 2000, what: 'streams ended' });
});
