// /metrics of the node and of the broker's metrics_listen port: the values
// follow what really happens (streams by protocol, events in and out,
// replays from memory and Redis, refusals, slow-consumer drops of clients
// that never read, Redis reconnects, draining; the broker's ingest counters,
// queue and lease), and the text is valid Prometheus exposition.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';

import { cleanupAll, freePort, onCluster, sleep, spawnProcess, buildDir, startBroker, startNode, startRedis, waitFor } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

const T = { timeout: 60000 };
let redis, broker, node, brokerMetrics;

before(async () => {
  redis = await startRedis();
  const port = await freePort();
  brokerMetrics = `http://127.0.0.1:${port}`;
  broker = await startBroker(redis, { args: ['--metrics-listen', `127.0.0.1:${port}`] });
  node = await startNode(redis, { args: ['--threads', '2', '--client-buffer-bytes', '1048576'] });
});
after(cleanupAll);

// Parses an exposition into Map(series -> value), checking its shape.
function parse(text) {
  const series = new Map();
  const declared = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') declared.set(m[2], m[3]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(declared.has(m[1]) || declared.has(family), `# TYPE before ${m[1]}`);
    assert.ok(!Number.isNaN(Number(m[3])) || m[3] === '+Inf', `a number: ${line}`);
    const key = m[1] + (m[2] || '');
    assert.ok(!series.has(key), `no duplicate series ${key}`);
    series.set(key, Number(m[3]));
  }
  return series;
}

async function scrape(url) {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

// A cheap HTTP/1.1 SSE reader for big volumes: keeps only the sequence
// number at the start of each event's data ("data: <n> ...").
function fastReader(port, urlPath) {
  const r = { seqs: [], closed: false, close: () => sock.destroy() };
  let tail = '';
  const sock = net.connect(port, '127.0.0.1', () => sock.write(`GET ${urlPath} HTTP/1.1\r\nHost: x\r\n\r\n`));
  sock.setEncoding('utf8');
  sock.on('data', (chunk) => {
    const text = tail + chunk;
    let from = 0;
    for (;;) {
      const end = text.indexOf('\n\n', from);
      if (end < 0) break;
      const m = /(?:^|\n)data: (\d+) /.exec(text.slice(from, Math.min(end, from + 64)));
      if (m) r.seqs.push(Number(m[1]));
      from = end + 2;
    }
    tail = text.slice(from);
  });
  sock.on('close', () => { r.closed = true; });
  sock.on('error', () => {});
  return r;
}

// Polls the node's metrics until pred(series) holds (snapshots are up to 1 s old).
function until(pred, what) {
  return waitFor(async () => { const s = await scrape(node.url); return pred(s) && s; }, { timeout: 5000, what });
}

describe('node /metrics', () => {
  test('streams by protocol, subscriptions, events in and out, replays, refusals', T, async () => {
    const topic = 'met-a';
    const h1 = await rawSse(`${node.url}/events?topic=${topic}`);
    const session = http2.connect(node.url);
    const h2 = session.request({ ':path': `/events?topic=${topic}&topic=met-b` });
    h2.on('data', () => {});
    await until((s) => s.get('ssehub_node_connections{protocol="http1"}') === 1
      && s.get('ssehub_node_connections{protocol="http2"}') === 1 && s.get('ssehub_node_redis_up') === 1,
    'one stream of each protocol');
    let s = await scrape(node.url);
    assert.equal(s.get('ssehub_node_subscriptions'), 3);
    assert.equal(s.get('ssehub_node_redis_up'), 1);
    assert.equal(s.get('ssehub_node_draining'), 0);
    const before = { in: s.get('ssehub_node_events_in_total'), out: s.get('ssehub_node_events_out_total') };
    for (let i = 0; i < 5; i++) await redis.cmd('PUBLISH', `sse:${topic}`, `m${i}`);
    await h1.waitForEvents(6);
    s = await until((x) => x.get('ssehub_node_events_out_total') >= before.out + 10, 'events out counted');
    assert.ok(s.get('ssehub_node_events_in_total') >= before.in + 5, 'events in: one per thread that serves the topic');
    assert.ok(s.get('ssehub_node_bytes_out_total') > 0);
    assert.ok(s.get('ssehub_node_replays_total{source="redis"}') >= 1, 'the anchoring reads');
    // a resume inside the window is served from memory
    const r = await rawSse(`${node.url}/events?topic=${topic}`, { headers: { 'Last-Event-ID': h1.events[1].id } });
    await r.waitForEvents(4);
    await until((x) => x.get('ssehub_node_replays_total{source="memory"}') >= 1, 'a replay from memory');
    const bad = await fetch(`${node.url}/events`);
    assert.equal(bad.status, 400);
    await until((x) => x.get('ssehub_node_refused_total{reason="bad_request"}') >= 1, 'the refusal counted');
    assert.ok(s.get('ssehub_node_redis_command_seconds_count') > 0);
    assert.equal(s.get('ssehub_node_redis_command_seconds_bucket{le="+Inf"}'), s.get('ssehub_node_redis_command_seconds_count'));
    h1.close();
    r.close();
    session.destroy();
    await until((x) => x.get('ssehub_node_connections{protocol="http1"}') === 0
      && x.get('ssehub_node_connections{protocol="http2"}') === 0, 'streams gone');
  });

  test('clients that never read are dropped as slow consumers; a reading client is not delayed', T, async () => {
    const topic = 'met-slow';
    // raw sockets that send the request and never read again
    const stalled = [];
    for (let i = 0; i < 3; i++) {
      const sock = net.connect(node.port, '127.0.0.1');
      sock.on('error', () => {});
      sock.write(`GET /events?topic=${topic} HTTP/1.1\r\nHost: x\r\n\r\n`);
      sock.pause();
      stalled.push(sock);
    }
    const reader = fastReader(node.port, `/events?topic=${topic}`);
    try {
      await until((s) => s.get('ssehub_node_connections{protocol="http1"}') >= 4, 'all four streams open');
      // more than the kernel's socket buffers hold for a reader that never reads
      const big = 'x'.repeat(32768);
      // paced (about 200 events, 6.5 MB a second): a reader that keeps up must never be dropped
      for (let i = 0; i < 600; i++) {
        await redis.cmd('PUBLISH', `sse:${topic}`, `${i} ${big}`);
        if (i % 10 === 9) await sleep(50);
      }
      await waitFor(() => reader.seqs.length >= 600 || reader.closed, { timeout: 30000, what: '600 events read' });
      assert.deepEqual(reader.seqs, Array.from({ length: 600 }, (_, i) => i), `the reading client got every event (${reader.seqs.length}, closed: ${reader.closed})`);
      const s = await until((x) => x.get('ssehub_node_slow_consumer_drops_total') >= 3, 'the three stalled clients dropped');
      assert.equal(s.get('ssehub_node_slow_consumer_drops_total'), 3, 'only the stalled ones');
    } finally {
      reader.close();
      for (const sock of stalled) sock.destroy();
    }
  });

  test('a Redis connection killed is counted as a reconnect', { ...T, skip: onCluster && 'kills connections of one server (CLIENT KILL); on a cluster see redis_cluster' }, async () => {
    const s0 = await scrape(node.url);
    // the node's subscriber connections only (the broker's hold pattern subscriptions)
    const list = (await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').filter((l) => / psub=0 /.test(l));
    assert.ok(list.length >= 1);
    for (const line of list) await redis.cmd('CLIENT', 'KILL', 'ID', /^id=(\d+)/.exec(line)[1]);
    await until((s) => s.get('ssehub_node_redis_reconnects_total') > s0.get('ssehub_node_redis_reconnects_total')
      && s.get('ssehub_node_redis_up') === 1, 'the reconnect counted and the link up again');
  });
});

describe('broker metrics_listen', () => {
  test('ingest counters, queue and lease; /healthz; other paths 404', T, async () => {
    for (let i = 0; i < 10; i++) await redis.cmd('PUBLISH', 'sse:met-broker', `b${i}`);
    await redis.cmd('PUBLISH', 'ssejson:met-broker', '{not json');
    await waitFor(async () => Number(await redis.cmd('XLEN', 'ssehub:{met-broker}:s')) === 10, { what: 'stored' });
    const s = await waitFor(async () => {
      const x = await scrape(brokerMetrics);
      return x.get('ssehub_broker_malformed_json_total') >= 1 && x;
    }, { what: 'broker counters' });
    assert.ok(s.get('ssehub_broker_ingested_total') >= 10);
    assert.equal(s.get('ssehub_broker_lease_held'), 1);
    assert.equal(s.get('ssehub_broker_redis_up'), 1);
    assert.equal(s.get('ssehub_broker_queued_messages'), 0);
    const h = await fetch(`${brokerMetrics}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok', role: 'leader', redis: true });
    assert.equal((await fetch(`${brokerMetrics}/other`)).status, 404);
  });

  test('a metrics_listen that cannot be bound stops start-up with a message', T, async () => {
    const holder = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => holder.on('listening', r));
    const p = spawnProcess(`${buildDir}/ssehub-broker`, ['--redis-url', redis.url, '--metrics-listen', `127.0.0.1:${holder.address().port}`]);
    const exit = await p.exited;
    holder.close();
    assert.equal(exit.code, 1);
    assert.match(p.logs().join('\n'), /metrics_listen: cannot bind 127\.0\.0\.1:\d+/);
  });
});

describe('draining', () => {
  test('ssehub_node_draining is 1 after SIGTERM', T, async () => {
    const n = await startNode(redis, { args: ['--drain-seconds', '10'] });
    const s = await rawSse(`${n.url}/events?topic=met-drain`);
    process.kill(n.pid, 'SIGTERM');
    await sleep(200);
    const res = await fetch(`${n.url}/metrics`);
    const m = parse(await res.text());
    assert.equal(m.get('ssehub_node_draining'), 1);
    s.close();
  });
});
