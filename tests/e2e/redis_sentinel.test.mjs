// A node on Redis with Sentinel (1 master, 1 replica, 3 sentinels on
// loopback): redis_url names the sentinels and the master; when the master
// is SIGKILLed the sentinels promote the replica, the node follows them to
// the new master and fills its clients' holes: every event the new master
// kept reaches every client once, in order, and the streams stay open.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, sleep, startBroker, startNode, waitFor } from './lib/harness.mjs';
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

test('a broker follows Sentinel too: apps PUBLISH to the master before and after the failover', { timeout: 120000 }, async () => {
  // the master killed by the test before comes back as a replica to promote
  for (const n of sg.nodes) if (!n.running()) await sg.restartNode(n, { asReplica: true });
  const broker = await startBroker(null, { redisUrl: sg.sentinelUrl });
  assert.ok(broker.jsonLogs().some((o) => o.msg === 'redis found' && o.redis === 'single'));
  const node = await startNode(null, { redisUrl: sg.sentinelUrl, args: ['--threads', '1'] });
  const s = await rawSse(`${node.url}/events?topic=plain`);
  await s.waitForEvents(1);
  let m = await sg.currentMaster();
  for (let i = 0; i < 20; i++) await sg.cmd(m, 'PUBLISH', 'sse:plain', `before ${i}`);
  await s.waitForEvents(21);
  await sg.killMaster('SIGKILL');
  const promoted = await sg.waitForFailover(m);
  // the broker subscribes on the new master (plain PUBLISHes sent while no
  // broker is subscribed reach nobody: Redis Pub/Sub keeps nothing)
  await waitFor(() => broker.jsonLogs().some((o) => o.msg === 'resubscribed'), { timeout: 20000,
    what: 'the broker subscribed on the new master' });
  assert.ok(broker.jsonLogs().some((o) => o.msg === 'redis moved' && o.link === 'subscriber' && o.port === promoted.port));
  m = promoted;
  for (let i = 0; i < 20; i++) await sg.cmd(m, 'PUBLISH', 'sse:plain', `after ${i}`);
  await s.waitForEvents(41, { timeout: 20000 });
  await sleep(200);
  const got = s.events.slice(1).map((e) => e.data);
  assert.deepEqual(got, [...Array.from({ length: 20 }, (_, i) => `before ${i}`), ...Array.from({ length: 20 }, (_, i) => `after ${i}`)]);
  const moved = broker.jsonLogs().filter((o) => o.msg === 'redis moved');
  assert.ok(moved.some((o) => o.link === 'command' && o.port === promoted.port), 'publishes go to the new master');
  s.close();
});
