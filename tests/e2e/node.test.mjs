// End-to-end tests of the core path: PUBLISH -> broker -> Redis Stream ->
// node -> SSE client, and exact resume on any node. Real redis-server, real
// ssehub-broker and ssehub-node processes, real clients (curl, node:http,
// the eventsource npm package).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startRedis, startBroker, startNode, waitFor, cleanupAll, onCluster } from './lib/harness.mjs';
import { keySlot } from './lib/rediscluster.mjs';
import { curlStream, rawSse } from './lib/sse.mjs';

let redis, broker, nodeA, nodeB;

before(async () => {
  redis = await startRedis();
  broker = await startBroker(redis);
  nodeA = await startNode(redis, { args: ['--threads', '2', '--heartbeat-interval', '1'] });
  nodeB = await startNode(redis, { args: ['--threads', '1'] });
});
after(cleanupAll);

// Publishes through the broker's plain ingest channel and waits until the
// stream holds `count` entries, so ordering between publishes is certain.
async function publishPlain(topic, payloads) {
  for (const p of payloads) await redis.cmd('PUBLISH', `sse:${topic}`, p);
}

async function streamLength(topic) {
  return Number(await redis.cmd('XLEN', `ssehub:{${topic}}:s`));
}

// Opens an EventSource and collects message events.
function openEventSource(url, init) {
  const es = new EventSource(url, init);
  const got = [];
  es.onmessage = (e) => got.push({ id: e.lastEventId, data: e.data });
  return { es, got };
}

test('redis-cli PUBLISH reaches curl -N as the exact SSE frame', async () => {
  const s = curlStream(`${nodeA.url}/events?topic=exact`);
  try {
    await waitFor(() => s.text().includes('event: ssehub.cursor'), { what: 'cursor event' });
    await publishPlain('exact', ['hello world']);
    await waitFor(() => s.text().includes('hello world'), { what: 'published event' });
    const id = (await redis.cmd('XRANGE', 'ssehub:{exact}:s', '-', '+'))[0][0];
    const text = s.text();
    assert.ok(text.startsWith('retry: 3000\n\n'), `stream starts with retry: ${JSON.stringify(text)}`);
    assert.ok(text.includes(`id: ${id}\ndata: hello world\n\n`), `exact frame in ${JSON.stringify(text)}`);
  } finally {
    s.close();
  }
});

test('response head: text/event-stream, no caching, no proxy buffering; heartbeats flow', async () => {
  const s = await rawSse(`${nodeA.url}/events?topic=head`, { timeout: 5000 });
  try {
    assert.equal(s.status, 200);
    assert.match(s.headers['content-type'], /^text\/event-stream/);
    assert.equal(s.headers['cache-control'], 'no-store');
    assert.equal(s.headers['x-accel-buffering'], 'no');
    // HTTP/1.1 streams are taken over from h2o after the head: no chunked
    // framing, the body ends when the connection closes.
    assert.equal(s.headers.connection, 'upgrade');
    assert.equal(s.headers['transfer-encoding'], undefined);
    // heartbeat_interval is 1 s on node A: a comment arrives while idle.
    await waitFor(() => /\n:[^\n]*\n/.test(s.raw()), { timeout: 4000, what: 'heartbeat comment' });
  } finally {
    s.close();
  }
});

test('ssejson: sets the event type, retry and publisher id field', async () => {
  const s = await rawSse(`${nodeA.url}/events?topic=typed`, { timeout: 5000 });
  try {
    await waitFor(() => s.events.some((e) => e.type === 'ssehub.cursor'), { what: 'cursor event' });
    await redis.cmd('PUBLISH', 'ssejson:typed', JSON.stringify({ data: 'payload', type: 'price', retry: 1234, id: 'pub-1' }));
    await waitFor(() => s.events.some((e) => e.type === 'price'), { what: 'typed event' });
    const ev = s.events.find((e) => e.type === 'price');
    assert.equal(ev.data, 'payload');
    assert.match(ev.id, /^\d+-\d+$/, 'the SSE id on /events is the stream position');
    assert.ok(s.raw().includes('retry: 1234\n'));
  } finally {
    s.close();
  }
});

test('payloads with CR, LF and CRLF cannot inject fields or end an event early', async () => {
  const s = await rawSse(`${nodeA.url}/events?topic=inject`, { timeout: 5000 });
  try {
    await waitFor(() => s.events.some((e) => e.type === 'ssehub.cursor'), { what: 'cursor event' });
    const evil = 'a\n\nid: 999-0\nevent: evil\r\ndata: x\rretry: 1\r\n\r\nb';
    await publishPlain('inject', [evil, 'next']);
    await waitFor(() => s.events.some((e) => e.data === 'next'), { what: 'second event' });
    const evs = s.events.filter((e) => e.type !== 'ssehub.cursor');
    assert.equal(evs.length, 2, `exactly two events, got ${JSON.stringify(evs)}`);
    assert.equal(evs[0].type, 'message');
    assert.equal(evs[0].data, evil.replace(/\r\n|\r/g, '\n'));
    assert.notEqual(evs[0].id, '999-0');
    assert.ok(!s.raw().includes('\nretry: 1\n'), 'no injected retry field');
  } finally {
    s.close();
  }
});

test('eventsource client receives 1,000 events in order', async () => {
  const { es, got } = openEventSource(`${nodeA.url}/events?topic=thousand`);
  try {
    await new Promise((resolve, reject) => {
      es.onopen = resolve;
      setTimeout(() => reject(new Error('no open')), 5000);
    });
    // the subscription is confirmed once the cursor event was sent
    await new Promise((r) => setTimeout(r, 200));
    const payloads = Array.from({ length: 1000 }, (_, i) => `event ${i + 1}`);
    await publishPlain('thousand', payloads);
    await waitFor(() => got.length >= 1000, { timeout: 15000, what: `1000 events (have ${got.length})` });
    assert.deepEqual(got.map((e) => e.data), payloads);
    const ids = got.map((e) => e.id);
    assert.equal(new Set(ids).size, 1000, 'ids are distinct');
  } finally {
    es.close();
  }
});

test('a client cut at event 500 resumes on a second node: 501..1000, then live, none twice', async () => {
  const topic = 'resume';
  const payloads = Array.from({ length: 1000 }, (_, i) => `r${i + 1}`);
  await publishPlain(topic, payloads);
  await waitFor(async () => (await streamLength(topic)) === 1000, { timeout: 15000, what: '1000 stored' });

  // First connection on node A from the beginning; stop after event 500.
  const first = openEventSource(`${nodeA.url}/events?topic=${topic}&lastEventID=earliest`);
  await waitFor(() => first.got.length >= 500, { timeout: 10000, what: '500 events on node A' });
  first.es.close();
  const cut = first.got.slice(0, 500);
  assert.deepEqual(cut.map((e) => e.data), payloads.slice(0, 500));
  const lastId = cut[499].id;

  // Resume on node B with Last-Event-ID of event 500.
  const second = openEventSource(`${nodeB.url}/events?topic=${topic}`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, 'Last-Event-ID': lastId } }),
  });
  try {
    await waitFor(() => second.got.length >= 500, { timeout: 10000, what: 'replay on node B' });
    await publishPlain(topic, ['live-1', 'live-2']);
    await waitFor(() => second.got.length >= 502, { timeout: 10000, what: 'live events after replay' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(second.got.map((e) => e.data), [...payloads.slice(500), 'live-1', 'live-2']);
    assert.equal(new Set(second.got.map((e) => e.id)).size, second.got.length, 'no id twice');
  } finally {
    second.es.close();
  }
});

test('resume from the lastEventID query parameter; the Last-Event-ID header wins over it', async () => {
  const topic = 'qresume';
  await publishPlain(topic, ['q1', 'q2', 'q3']);
  await waitFor(async () => (await streamLength(topic)) === 3, { what: '3 stored' });
  const ids = (await redis.cmd('XRANGE', `ssehub:{${topic}}:s`, '-', '+')).map((e) => e[0]);
  const q = await rawSse(`${nodeB.url}/events?topic=${topic}&lastEventID=${ids[0]}`, { timeout: 5000 });
  const h = await rawSse(`${nodeB.url}/events?topic=${topic}&lastEventID=${ids[0]}`, {
    timeout: 5000, headers: { 'Last-Event-ID': ids[1] },
  });
  try {
    await waitFor(() => q.events.length >= 2 && h.events.length >= 1, { what: 'replays' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(q.events.map((e) => e.data), ['q2', 'q3']);
    assert.deepEqual(h.events.map((e) => e.data), ['q3']);
  } finally {
    q.close();
    h.close();
  }
});

test('a client that leaves before its first event gets, on return, what was published meanwhile', async () => {
  const topic = 'early';
  await publishPlain(topic, ['before']);
  await waitFor(async () => (await streamLength(topic)) === 1, { what: 'stored' });
  const s = await rawSse(`${nodeA.url}/events?topic=${topic}`, { timeout: 5000 });
  await waitFor(() => s.events.some((e) => e.type === 'ssehub.cursor'), { what: 'cursor event' });
  const cursor = s.events.find((e) => e.type === 'ssehub.cursor').id;
  s.close();
  assert.equal(s.events.filter((e) => e.type === 'message').length, 0);
  await publishPlain(topic, ['m1', 'm2']);
  await waitFor(async () => (await streamLength(topic)) === 3, { what: 'stored' });
  const back = await rawSse(`${nodeB.url}/events?topic=${topic}`, { timeout: 5000, headers: { 'Last-Event-ID': cursor } });
  try {
    await waitFor(() => back.events.length >= 2, { what: 'missed events' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(back.events.map((e) => e.data), ['m1', 'm2']);
  } finally {
    back.close();
  }
});

// A topic name starting with prefix whose stream shares topic's slot.
function sameSlotTopic(topic, prefix) {
  const slot = keySlot(`ssehub:{${topic}}:s`);
  for (let i = 0; ; i++) if (keySlot(`ssehub:{${prefix}${i}}:s`) === slot) return `${prefix}${i}`;
}

test('multi-topic resume is exact when two topics hold the same entry id', async () => {
  // on a Redis Cluster MULTI needs both keys in one slot: a second name
  // that shares ma's, and a connection to that slot's master
  const mb = onCluster ? sameSlotTopic('ma', 'mb') : 'mb';
  const url = `${nodeA.url}/events?topic=ma&topic=${mb}`;
  const s = await rawSse(url, { timeout: 5000 });
  await waitFor(() => s.events.some((e) => e.type === 'ssehub.cursor'), { what: 'cursor event' });
  // Both publishes in one MULTI: both streams usually get the same entry
  // id (Redis 7.0 reads the clock per command, so retry until they do).
  const c = onCluster ? await redis.cluster.client(await redis.cluster.masterOf('ssehub:{ma}:s')) : await redis.client();
  let pair = null;
  for (let k = 0; k < 50 && !pair; k++) {
    const replies = (await Promise.all([
      c.cmd('MULTI'),
      c.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{ma}:s', `from a ${k}`),
      c.cmd('FCALL', 'ssehub_publish', '1', `ssehub:{${mb}}:s`, `from b ${k}`),
      c.cmd('EXEC'),
    ]))[3];
    if (replies[0] === replies[1]) pair = { k, id: replies[0] };
  }
  c.close();
  assert.ok(pair, 'two topics got the same entry id');
  const wanted = [`from a ${pair.k}`, `from b ${pair.k}`];
  await waitFor(() => wanted.every((d) => s.events.some((e) => e.data === d)), { what: 'both events' });
  s.close();
  const all = s.events.filter((e) => e.type === 'message');
  const msgs = all.filter((e) => wanted.includes(e.data));
  assert.equal(msgs.length, 2);
  assert.equal(all[all.length - 1], msgs[1], 'the pair came last');
  assert.match(msgs[0].id, /^1\.[A-Za-z0-9._~-]+$/, 'multi-topic ids are URL-safe cursors');
  const replies = [pair.id];

  // Resume after the first of the two: exactly the second follows.
  const r1 = await rawSse(url, { timeout: 5000, headers: { 'Last-Event-ID': msgs[0].id } });
  // Resume after both: nothing is repeated; a new event comes live.
  const r2 = await rawSse(url, { timeout: 5000, headers: { 'Last-Event-ID': msgs[1].id } });
  try {
    await waitFor(() => r1.events.length >= 1, { what: 'second event replayed' });
    await publishPlain(mb, ['later']);
    await waitFor(() => r2.events.length >= 1 && r1.events.length >= 2, { what: 'live event' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(r1.events.map((e) => e.data), [msgs[1].data, 'later']);
    assert.deepEqual(r2.events.map((e) => e.data), ['later']);
    // A bare entry id means "after this id" in every topic: it skips both.
    const r3 = await rawSse(url, { timeout: 5000, headers: { 'Last-Event-ID': replies[0] } });
    await waitFor(() => r3.events.length >= 1, { what: 'bare-id replay' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(r3.events.map((e) => e.data), ['later']);
    r3.close();
  } finally {
    r1.close();
    r2.close();
  }
});

test('trimmed history and bad cursors give ssehub.gap, then what is retained', async () => {
  const topic = 'trim';
  // Publish directly with a small maxlen: Redis trims whole nodes of 100.
  let firstId;
  for (let i = 1; i <= 300; i++) {
    const id = await redis.cmd('FCALL', 'ssehub_publish', '1', `ssehub:{${topic}}:s`, `t${i}`, 'maxlen', '10');
    if (i === 1) firstId = id;
  }
  const retained = await redis.cmd('XRANGE', `ssehub:{${topic}}:s`, '-', '+');
  assert.ok(retained.length < 300, 'history was trimmed');
  const s = await rawSse(`${nodeB.url}/events?topic=${topic}`, { timeout: 5000, headers: { 'Last-Event-ID': firstId } });
  const bad = await rawSse(`${nodeB.url}/events?topic=${topic}`, { timeout: 5000, headers: { 'Last-Event-ID': 'nonsense' } });
  try {
    await waitFor(() => s.events.length >= retained.length + 1, { what: 'gap + retained' });
    const gap = s.events[0];
    assert.equal(gap.type, 'ssehub.gap');
    assert.deepEqual(JSON.parse(gap.data), { reason: 'trimmed', topics: [topic] });
    assert.deepEqual(s.events.slice(1).map((e) => e.data), retained.map((e) => e[1][1]));
    await waitFor(() => bad.events.length >= 1, { what: 'bad cursor gap' });
    assert.equal(bad.events[0].type, 'ssehub.gap');
    assert.equal(JSON.parse(bad.events[0].data).reason, 'bad_cursor');
    // A cursor within retained history is no gap.
    const ok = await rawSse(`${nodeB.url}/events?topic=${topic}`, {
      timeout: 5000, headers: { 'Last-Event-ID': retained[retained.length - 2][0] },
    });
    await waitFor(() => ok.events.length >= 1, { what: 'tail replay' });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ok.events.map((e) => e.type), ['message']);
    ok.close();
  } finally {
    s.close();
    bad.close();
  }
});

test('permanent errors are JSON 4xx; health and readiness answer', async () => {
  const cases = [
    ['/events', 400, 'missing_topic'],
    ['/events?topic=', 400, 'bad_topic'],
    ['/events?topic=%FF', 400, 'bad_topic'],
    ['/events?topic=a%0Ab', 400, 'bad_topic'],
    ['/events?topic=%G1', 400, 'bad_query'],
    [`/events?topic=${'x'.repeat(1025)}`, 400, 'bad_topic'],
    ['/nope', 404, 'not_found'],
  ];
  for (const [path, status, code] of cases) {
    const res = await fetch(nodeA.url + path);
    assert.equal(res.status, status, path);
    assert.match(res.headers.get('content-type'), /application\/json/);
    assert.equal((await res.json()).error, code, path);
  }
  assert.equal((await fetch(`${nodeA.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${nodeA.url}/readyz`)).status, 200);
  const page = await fetch(`${nodeA.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /EventSource/);
});

test('one Redis subscription per topic and thread, dropped at once after the last client', async () => {
  const channel = 'ssehub:{shared}:l';
  // heartbeats every 15 s: a taken-over HTTP/1.1 stream sees EOF at once
  const node = await startNode(redis, { args: ['--threads', '1', '--topic-linger-ms', '0'] });
  const a = await rawSse(`${node.url}/events?topic=shared`, { timeout: 10000 });
  const b = await rawSse(`${node.url}/events?topic=shared`, { timeout: 10000 });
  await waitFor(() => a.events.length && b.events.length, { what: 'both connected' });
  const numsub = async () => Number((await redis.cmd('PUBSUB', 'NUMSUB', channel))[1]);
  assert.equal(await numsub(), 1);
  a.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await numsub(), 1, 'still subscribed for the second client');
  b.close();
  await waitFor(async () => (await numsub()) === 0, { timeout: 1000, what: 'unsubscribed within 1 s' });
  await node.stop();
});

test('a topic lingers for topic_linger_ms after its last client, then is unsubscribed', async () => {
  const channel = 'ssehub:{linger}:l';
  const node = await startNode(redis, { args: ['--threads', '1', '--topic-linger-ms', '2000'] });
  const a = await rawSse(`${node.url}/events?topic=linger`, { timeout: 10000 });
  await waitFor(() => a.events.length, { what: 'connected' });
  const numsub = async () => Number((await redis.cmd('PUBSUB', 'NUMSUB', channel))[1]);
  a.close();
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(await numsub(), 1, 'still subscribed while it lingers');
  await waitFor(async () => (await numsub()) === 0, { timeout: 5000, what: 'unsubscribed after the linger' });
  await node.stop();
});

test('with http1_takeover off, streams use h2o chunked responses and heartbeats reveal leavers', async () => {
  const channel = 'ssehub:{chunked}:l';
  const node = await startNode(redis, { args: ['--threads', '1', '--http1-takeover', 'false', '--heartbeat-interval', '1',
    '--topic-linger-ms', '0'] });
  const a = await rawSse(`${node.url}/events?topic=chunked`, { timeout: 10000 });
  try {
    assert.equal(a.headers['transfer-encoding'], 'chunked');
    await waitFor(() => a.events.length, { what: 'cursor event' });
    await publishPlain('chunked', ['over h2o']);
    await waitFor(() => a.events.some((e) => e.data === 'over h2o'), { what: 'event over the generator path' });
  } finally {
    a.close();
  }
  const numsub = async () => Number((await redis.cmd('PUBSUB', 'NUMSUB', channel))[1]);
  await waitFor(async () => (await numsub()) === 0, { timeout: 5000, what: 'unsubscribed after a heartbeat' });
  await node.stop();
});

test('a client that never reads is dropped at client_buffer_bytes; others get everything', async () => {
  const node = await startNode(redis, { args: ['--threads', '1', '--client-buffer-bytes', '262144'] });
  const net = await import('node:net');
  const stuck = net.createConnection({ port: node.port, host: '127.0.0.1' });
  stuck.pause(); // never read: the kernel buffers fill, then the node's queue
  let stuckClosed = false;
  stuck.on('close', () => { stuckClosed = true; });
  stuck.on('error', () => {});
  stuck.write('GET /events?topic=slow HTTP/1.1\r\nHost: x\r\n\r\n');
  const good = await rawSse(`${node.url}/events?topic=slow`, { timeout: 30000 });
  try {
    await waitFor(() => good.events.length, { what: 'cursor event' });
    await new Promise((r) => setTimeout(r, 200));
    const big = 'x'.repeat(64 * 1024);
    const n = 200; // 12.5 MiB: more than loopback socket buffers and the cap
    const received = () => good.events.filter((e) => e.type === 'message').length;
    for (let i = 0; i < n; i++) {
      // paced to the reader, so only the client that never reads falls behind
      await waitFor(() => received() >= i - 2, { timeout: 10000, what: `reader at event ${i - 2}` });
      await redis.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{slow}:s', `${i} ${big}`);
    }
    await waitFor(() => received() === n, { timeout: 20000, what: 'all events at the reading client' });
    const got = good.events.filter((e) => e.type === 'message').map((e) => Number(e.data.split(' ')[0]));
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i));
    await node.waitForLog((o) => o.msg === 'client dropped' && o.reason === 'slow consumer', { timeout: 5000 });
    assert.equal(node.jsonLogs().filter((o) => o.msg === 'client dropped').length, 1, 'only the stuck client');
    stuck.resume(); // drain what the kernel held: then the close is seen
    await waitFor(() => stuckClosed, { timeout: 5000, what: 'the stuck client was disconnected' });
  } finally {
    good.close();
    stuck.destroy();
  }
});
