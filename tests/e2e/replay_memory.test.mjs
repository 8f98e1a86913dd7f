// Replay without Redis: a node keeps the last events of each active topic
// in memory, serves resumes inside that window without reading Redis, and
// makes concurrent resumes of one topic share a single read.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startNode, waitFor, cleanupAll, sleep } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

let redis;
before(async () => { redis = await startRedis(); });
after(cleanupAll);

const publish = (topic, data) => redis.cmd('FCALL', 'ssehub_publish', '1', `ssehub:{${topic}}:s`, data);
const messages = (s) => s.events.filter((e) => e.type === 'message').map((e) => e.data);

// Calls of FCALL_RO (ssehub_read) so far, from INFO commandstats.
async function historyReads() {
  const info = await redis.cmd('INFO', 'commandstats');
  const m = info.match(/cmdstat_fcall_ro:calls=(\d+)/);
  return m ? Number(m[1]) : 0;
}

async function publishMany(topic, n, prefix) {
  const ids = [];
  for (let i = 1; i <= n; i++) ids.push(await publish(topic, `${prefix}${i}`));
  return ids;
}

test('resumes inside the window of an active topic read nothing from Redis', async () => {
  const node = await startNode(redis, { args: ['--threads', '1', '--replay-memory-events', '64'] });
  const keeper = await rawSse(`${node.url}/events?topic=warm`, { timeout: 20000 });
  await waitFor(() => keeper.events.length, { what: 'keeper connected' });
  const ids = await publishMany('warm', 20, 'w');
  await waitFor(() => messages(keeper).length === 20, { what: 'keeper got 20' });
  const reads = await historyReads();
  const clients = await Promise.all(Array.from({ length: 50 }, () =>
    rawSse(`${node.url}/events?topic=warm`, { timeout: 20000, headers: { 'Last-Event-ID': ids[4] } })));
  try {
    await waitFor(() => clients.every((c) => messages(c).length >= 15), { what: '50 replays' });
    await sleep(100);
    for (const c of clients) assert.deepEqual(messages(c), ids.slice(5).map((_, i) => `w${i + 6}`));
    assert.equal(await historyReads(), reads, 'no Redis read for resumes inside the window');
    // and a client without a cursor learns the position from memory too
    const fresh = await rawSse(`${node.url}/events?topic=warm`, { timeout: 5000 });
    await waitFor(() => fresh.events.length, { what: 'cursor event' });
    assert.equal(fresh.events[0].type, 'ssehub.cursor');
    assert.equal(fresh.events[0].id, ids[19]);
    fresh.close();
    assert.equal(await historyReads(), reads);
  } finally {
    clients.forEach((c) => c.close());
    keeper.close();
    await node.stop();
  }
});

test('a reconnect storm on a node new to the topic costs one Redis read', async () => {
  const ids = await publishMany('storm', 150, 's');
  const node = await startNode(redis, { args: ['--threads', '1'] });
  const reads = await historyReads();
  // 300 clients, all 100 events behind, at once
  const clients = await Promise.all(Array.from({ length: 300 }, () =>
    rawSse(`${node.url}/events?topic=storm`, { timeout: 20000, headers: { 'Last-Event-ID': ids[49] } })));
  try {
    await waitFor(() => clients.every((c) => messages(c).length >= 100), { timeout: 15000, what: 'all caught up' });
    await publish('storm', 'live');
    await waitFor(() => clients.every((c) => messages(c).length >= 101), { what: 'live event' });
    await sleep(100);
    const want = [...ids.slice(50).map((_, i) => `s${i + 51}`), 'live'];
    for (const c of clients) assert.deepEqual(messages(c), want);
    assert.equal(await historyReads() - reads, 1, 'one read for 300 concurrent resumes of one topic');
    // A cursor older than that read: one more read, which backfills...
    const old = await rawSse(`${node.url}/events?topic=storm`, { timeout: 5000, headers: { 'Last-Event-ID': ids[9] } });
    await waitFor(() => messages(old).length >= 141, { what: 'older replay' });
    assert.equal(await historyReads() - reads, 2);
    // ...so a cursor inside it is now served from memory.
    const mid = await rawSse(`${node.url}/events?topic=storm`, { timeout: 5000, headers: { 'Last-Event-ID': ids[19] } });
    await waitFor(() => messages(mid).length >= 131, { what: 'replay from the backfilled window' });
    await sleep(100);
    assert.deepEqual(messages(mid), [...ids.slice(20).map((_, i) => `s${i + 21}`), 'live']);
    assert.equal(await historyReads() - reads, 2, 'served from memory');
    old.close();
    mid.close();
  } finally {
    clients.forEach((c) => c.close());
    await node.stop();
  }
});

test('cursors older than the window, and replay_memory_events=0, still resume exactly from Redis', async () => {
  for (const mem of ['8', '0']) {
    const topic = `small${mem}`;
    const node = await startNode(redis, { args: ['--threads', '1', '--replay-memory-events', mem] });
    const keeper = await rawSse(`${node.url}/events?topic=${topic}`, { timeout: 20000 });
    await waitFor(() => keeper.events.length, { what: 'keeper' });
    const ids = await publishMany(topic, 30, 'x');
    await waitFor(() => messages(keeper).length === 30, { what: 'keeper got 30' });
    const reads = await historyReads();
    const a = await rawSse(`${node.url}/events?topic=${topic}`, { timeout: 5000, headers: { 'Last-Event-ID': ids[2] } });
    const b = await rawSse(`${node.url}/events?topic=${topic}`, { timeout: 5000, headers: { 'Last-Event-ID': ids[27] } });
    await waitFor(() => messages(a).length >= 27 && messages(b).length >= 2, { what: 'replays' });
    await sleep(100);
    assert.deepEqual(messages(a), ids.slice(3).map((_, i) => `x${i + 4}`));
    assert.deepEqual(messages(b), ['x29', 'x30']);
    const used = await historyReads() - reads;
    if (mem === '8') assert.equal(used, 1, 'only the cursor outside the window read Redis');
    else assert.equal(used, 2, 'without a window every resume reads Redis');
    [a, b, keeper].forEach((c) => c.close());
    await node.stop();
  }
});

test('clients that leave and come back while the topic lingers are served from memory', async () => {
  const node = await startNode(redis, { args: ['--threads', '1', '--topic-linger-ms', '10000'] });
  const first = await Promise.all(Array.from({ length: 100 }, () => rawSse(`${node.url}/events?topic=bounce`, { timeout: 20000 })));
  await waitFor(() => first.every((c) => c.events.length), { what: 'connected' });
  const ids = await publishMany('bounce', 10, 'b');
  await waitFor(() => first.every((c) => messages(c).length === 10), { what: 'live events' });
  first.forEach((c) => c.close()); // every client of the topic leaves
  await sleep(300);
  await publishMany('bounce', 5, 'late'); // published while nobody listens
  const reads = await historyReads();
  const back = await Promise.all(Array.from({ length: 100 }, () =>
    rawSse(`${node.url}/events?topic=bounce`, { timeout: 20000, headers: { 'Last-Event-ID': ids[9] } })));
  try {
    await waitFor(() => back.every((c) => messages(c).length >= 5), { what: 'missed events' });
    await sleep(100);
    for (const c of back) assert.deepEqual(messages(c), ['late1', 'late2', 'late3', 'late4', 'late5']);
    assert.equal(await historyReads(), reads, 'no Redis read: the lingering topic kept recording');
  } finally {
    back.forEach((c) => c.close());
    await node.stop();
  }
});
