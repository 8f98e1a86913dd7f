// A node on Redis with Sentinel (1 master, 1 replica, 3 sentinels on
// loopback): redis_url names the sentinels and the master; when the master
// is SIGKILLed the sentinels promote the replica, the node follows them to
// the new master and fills its clients' holes: every event the new master
// kept reaches every client once, in order, and the streams stay open.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { buildDir, cleanupAll, sleep, spawnProcess, startBroker, startNode, waitFor } from './lib/harness.mjs';
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
  // each thread asks the Sentinels on its own: ready once both moved
  await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 200,
    { timeout: 10000, what: 'the node ready on the new master' });
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

test('Sentinels with requirepass: nodes and brokers send redis_sentinel_password, and say why without it', { timeout: 120000 }, async () => {
  const pw = 'sentinel-secret';
  const sp = await startRedisSentinel({ replicas: 1, sentinelPassword: pw });
  try {
    // the setting is for Sentinel URLs only: refused at start-up otherwise
    const misplaced = spawnProcess(path.join(buildDir, 'ssehub-node'),
      ['--redis-url', sp.url, '--redis-sentinel-password', pw, '--listen', '127.0.0.1:1'], { name: 'ssehub-node' });
    assert.notEqual((await misplaced.exited).code, 0);
    assert.ok(misplaced.logs().some((l) => l.includes('redis_sentinel_password is only for a redis-sentinel:// redis_url')),
      misplaced.logs().join('\n'));

    // without it, the Sentinels refuse: the node is not ready and logs why
    const bare = await startNode(null, { redisUrl: sp.sentinelUrl, args: ['--threads', '1'], waitReady: false });
    await waitFor(() => bare.jsonLogs().some((o) => o.msg === 'handshake failed' && /NOAUTH/.test(o.error)),
      { timeout: 10000, what: 'the node to log the NOAUTH refusal' });
    const r = await fetch(`${bare.url}/readyz`);
    assert.equal(r.status, 503);
    assert.equal((await r.json()).error, 'redis_unavailable');
    // a wrong one: the broker logs the refusal and never says ready
    const wrong = spawnProcess(path.join(buildDir, 'ssehub-broker'),
      ['--redis-url', sp.sentinelUrl, '--redis-sentinel-password', 'not-it'], { name: 'ssehub-broker' });
    await waitFor(() => wrong.jsonLogs().some((o) => o.msg === 'redis refused the connection setup' && o.link === 'sentinel'
      && /WRONGPASS|invalid password/.test(o.error)), { timeout: 10000, what: 'the broker to log the wrong password' });
    assert.ok(!wrong.jsonLogs().some((o) => o.msg === 'ready'));
    assert.ok(!wrong.logs().join('\n').includes(pw) && !wrong.logs().join('\n').includes('not-it'), 'no password in the logs');
    await wrong.kill('SIGKILL');

    // with it (flag for the broker, environment for the node): both work,
    // and the node keeps asking (and follows a failover) with it
    const broker = await startBroker(null, { redisUrl: sp.sentinelUrl, args: ['--redis-sentinel-password', pw] });
    const node = await startNode(null, { redisUrl: sp.sentinelUrl, args: ['--threads', '2'],
      env: { SSEHUB_REDIS_SENTINEL_PASSWORD: pw } });
    const s = await rawSse(`${node.url}/events?topic=locked`);
    await s.waitForEvents(1);
    let m = await sp.currentMaster();
    for (let i = 0; i < 5; i++) await sp.cmd(m, 'PUBLISH', 'sse:locked', `p${i}`);
    await s.waitForEvents(6);
    assert.ok(Number(await sp.cmd(m, 'WAIT', '1', '2000')) >= 1, 'the replica has them');
    await sp.killMaster('SIGKILL');
    m = await sp.waitForFailover(m);
    await waitFor(() => node.jsonLogs().some((o) => o.msg === 'redis master moved' && o.port === m.port),
      { timeout: 20000, what: 'the node to follow the failover' });
    const id = await sp.cmd(m, 'FCALL', 'ssehub_publish', '1', 'ssehub:{locked}:s', 'after');
    await s.waitForEvents(7, { timeout: 20000 });
    assert.deepEqual(s.events.slice(1).map((e) => e.data), ['p0', 'p1', 'p2', 'p3', 'p4', 'after']);
    assert.equal(s.events[6].id, id);
    // each thread asks the Sentinels on its own: ready once both moved
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 200,
      { timeout: 10000, what: 'the node ready on the new master' });
    assert.ok(!broker.jsonLogs().some((o) => o.level === 'error'), 'the broker had no error');
    s.close();
  } finally {
    await sp.stop();
  }
});
