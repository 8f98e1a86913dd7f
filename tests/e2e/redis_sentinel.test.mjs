// A node on Redis with Sentinel (1 master, 1 replica, 3 sentinels on
// loopback): redis_url names the sentinels and the master; when the master
// is SIGKILLed the sentinels promote the replica, the node follows them to
// the new master and fills its clients' holes: every event the new master
// kept reaches every client once, in order, and the streams stay open.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, sleep, startNode, waitFor } from './lib/harness.mjs';
import { startRedisSentinel } from './lib/rediscluster.mjs';
import { rawSse } from './lib/sse.mjs';

let sg;
before(async () => { sg = await startRedisSentinel({ replicas: 1 }); });
after(async () => {
  if (sg) await sg.stop();
  await cleanupAll();
});

// FCALL on the master the sentinels name now, retried (as an app would)
// while they fail over; {id, replicated} (a replica had it within 100 ms).
async function publish(topic, data, timeout = 30000) {
  const until = Date.now() + timeout;
  for (;;) {
    try {
      const m = await sg.currentMaster();
      const id = await sg.cmd(m, 'FCALL', 'ssehub_publish', '1', `ssehub:{${topic}}:s`, data);
      return { id, replicated: Number(await sg.cmd(m, 'WAIT', '1', '100')) >= 1 };
    } catch (e) {
      if (Date.now() > until) throw e;
      await sleep(100);
    }
  }
}

test('the node follows Sentinel to the promoted replica and its clients miss nothing kept', { timeout: 120000 }, async () => {
  const node = await startNode(null, { redisUrl: sg.sentinelUrl, args: ['--threads', '2'] });
  const streams = [];
  for (let i = 0; i < 4; i++) streams.push(await rawSse(`${node.url}/events?topic=watched`));
  await Promise.all(streams.map((s) => s.waitForEvents(1)));
  const acked = [];
  let stop = false;
  const publisher = (async () => {
    for (let i = 0; !stop && i < 1000; i++) {
      acked.push({ ...(await publish('watched', `e${i}`)), data: `e${i}` });
      await sleep(20);
    }
  })();
  await waitFor(() => acked.length >= 30, { timeout: 20000, what: '30 events before the kill' });
  const old = await sg.currentMaster();
  await sg.killMaster('SIGKILL');
  const promoted = await sg.waitForFailover(old);
  const at = acked.length;
  await waitFor(() => acked.length >= at + 30, { timeout: 30000, what: '30 events on the new master' });
  stop = true;
  await publisher;

  const rows = await sg.cmd(promoted, 'XRANGE', 'ssehub:{watched}:s', '-', '+');
  const kept = rows.map(([id, f]) => ({ id, data: f[f.indexOf('data') + 1] }));
  const keptIds = new Set(kept.map((e) => e.id));
  assert.deepEqual(acked.filter((e) => e.replicated && !keptIds.has(e.id)), [], 'replicated events survive');
  for (const s of streams) {
    await s.waitForEvents(1 + kept.length, { timeout: 20000 });
    await sleep(100);
    assert.deepEqual(s.events.slice(1).map((e) => ({ id: e.id, data: e.data })), kept, 'everything kept, once, in order');
    assert.equal(s.isEnded, false, 'the stream stayed open');
  }
  const moved = node.jsonLogs().filter((o) => o.msg === 'redis master moved');
  assert.ok(moved.length > 0 && moved.every((o) => o.port === promoted.port), 'the node moved to the promoted replica');
  assert.equal((await fetch(`${node.url}/readyz`)).status, 200);
  streams.forEach((s) => s.close());
});
