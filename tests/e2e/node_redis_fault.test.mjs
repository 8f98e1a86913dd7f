// A node whose Redis dies and comes back (SIGKILL, restart with AOF): its
// connected clients stay connected and miss nothing, readiness reports the
// outage, and new streams are refused the EventSource way (200 + retry).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startNode, waitFor, cleanupAll, sleep } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

let redis, node;

before(async () => {
  redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  node = await startNode(redis, { args: ['--threads', '2'] });
});
after(cleanupAll);

const publish = (topic, data) => redis.cmd('FCALL', 'ssehub_publish', '1', `ssehub:{${topic}}:s`, data);
const messages = (s) => s.events.filter((e) => e.type === 'message').map((e) => e.data);

test('Redis SIGKILLed and restarted: clients stay connected and get every event once', async () => {
  const single = await rawSse(`${node.url}/events?topic=f1`, { timeout: 60000 });
  const multi = await rawSse(`${node.url}/events?topic=f1&topic=f2`, { timeout: 60000 });
  await waitFor(() => single.events.length && multi.events.length, { what: 'cursor events' });
  await publish('f1', 'before');
  await waitFor(() => messages(single).length === 1 && messages(multi).length === 1, { what: 'first event' });

  await redis.kill('SIGKILL');
  await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 503, { what: 'readyz 503' });
  const refused = await rawSse(`${node.url}/events?topic=f1`, { timeout: 5000 });
  await refused.ended;
  assert.equal(refused.status, 200, 'a refused stream still gets 200 (EventSource would give up otherwise)');
  assert.match(refused.raw(), /^retry: \d+\n: [^\n]*redis[^\n]*\n\n$/);

  await redis.restart();
  // Published while the node is still reconnecting: the hole it must fill.
  await publish('f1', 'during-1');
  await publish('f2', 'during-2');
  await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 200, { timeout: 15000, what: 'readyz 200' });
  await publish('f1', 'after');
  await waitFor(() => messages(single).length === 3 && messages(multi).length === 4,
    { timeout: 10000, what: `all events (single ${messages(single)}, multi ${messages(multi)})` });
  await sleep(300);
  assert.equal(single.isEnded, false, 'the single-topic client was never disconnected');
  assert.equal(multi.isEnded, false, 'the multi-topic client was never disconnected');
  assert.deepEqual(messages(single), ['before', 'during-1', 'after']);
  assert.deepEqual(messages(multi).sort(), ['after', 'before', 'during-1', 'during-2']);
  assert.equal(messages(multi).indexOf('during-1') < messages(multi).indexOf('after'), true, 'per-topic order');
  single.close();
  multi.close();
});

test('Function library deleted at run time: reads reload it and streams still resume', async () => {
  await publish('fl', 'one');
  const id = (await redis.cmd('XRANGE', 'ssehub:{fl}:s', '-', '+'))[0][0];
  await publish('fl', 'two');
  await redis.cmd('FUNCTION', 'DELETE', 'ssehub_1');
  // The first read fails with "function not found"; the node reconnects,
  // loads the library again, and the client's retry resumes exactly.
  let got = [];
  await waitFor(async () => {
    const s = await rawSse(`${node.url}/events?topic=fl`, { timeout: 3000, headers: { 'Last-Event-ID': id } });
    await Promise.race([s.waitForEvents(1, { timeout: 1000 }).catch(() => {}), s.ended]);
    got = messages(s);
    s.close();
    return got.length > 0;
  }, { timeout: 15000, what: 'a stream after the library was reloaded' });
  assert.deepEqual(got, ['two']);
  const libs = await redis.cmd('FUNCTION', 'LIST', 'LIBRARYNAME', 'ssehub_1');
  assert.equal(libs.length, 1, 'the node loaded the library again');
});
