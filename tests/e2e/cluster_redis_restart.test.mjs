// Fault run through the load balancer (issue 4): the same cluster and load
// as cluster_node_kill, but Redis (AOF, appendfsync always) is SIGKILLed
// mid-run and started again on the same port after a pause. The publisher
// calls FCALL ssehub_publish directly (the app path with a known answer) and
// retries while Redis is down; when an answer is lost with the kill it first
// checks whether the event was stored, so each event is stored once. Every
// event stored must reach every client of its topics exactly once, in
// order, and the clients stay connected throughout (the nodes keep their
// streams and fill the hole from the stream when Redis is back). While no
// node is ready, haproxy answers new streams 200 + retry: (not 503).
// Scale (the same under ASan): 300 clients, 2,000 events at ~200/s.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, sleep, waitFor } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';
import { startCluster, startClients, startPublisher, storedByTopic, storedProblems } from './lib/cluster.mjs';

after(cleanupAll);

const CLIENTS = 300;
const EVENTS = 2000;
const RATE = 200;
const TOPICS = Array.from({ length: 10 }, (_, i) => `rr${i}`);
const DOWN_MS = 1500;

test(`Redis SIGKILLed and restarted mid-run: ${CLIENTS} clients through haproxy get every stored event once, in order`,
  { timeout: 240000 }, async () => {
    const t0 = Date.now();
    const cluster = await startCluster({ nodes: 3, brokers: 1, nodeArgs: ['--retry-ms', '1000'] });
    const { redis } = cluster;
    const clients = startClients(cluster.lb.url, { count: CLIENTS, topics: TOPICS, retryDefault: 1000 });
    await clients.waitStarted();

    const publisher = startPublisher(redis, { topics: TOPICS, total: EVENTS, rate: RATE, mode: 'fcall' });
    await waitFor(() => publisher.count() >= EVENTS * 0.4, { timeout: 60000, what: '40% of the events published' });
    const beforeKill = publisher.count();
    const tKill = Date.now();
    await redis.kill('SIGKILL');
    // the nodes notice: readiness fails, haproxy takes every node out
    await Promise.all(cluster.nodes.map((_, i) => cluster.lb.waitServer(i, 'DOWN')));
    const stalled = publisher.count();
    // No node is ready: the load balancer answers a new stream the way a node
    // would (200, retry:, a comment), so a browser's EventSource comes back
    // later instead of giving up on a 503.
    const refused = await rawSse(`${cluster.lb.url}/events?topic=${TOPICS[0]}`, { timeout: 5000 });
    await refused.ended;
    assert.equal(refused.status, 200);
    assert.match(refused.headers['content-type'], /^text\/event-stream/);
    assert.match(refused.raw(), /^retry: \d+\n: no ssehub node is ready/);
    await sleep(Math.max(DOWN_MS - (Date.now() - tKill), 0));
    await redis.restart();
    const tBack = Date.now();
    await Promise.all(cluster.nodes.map((_, i) => cluster.lb.waitServer(i, 'UP', { timeout: 30000 })));
    const tUp = Date.now();
    const published = await publisher.done;
    assert.equal(published, EVENTS);
    assert.ok(stalled - beforeKill <= 2, `the publisher paused while Redis was down (${stalled - beforeKill} events went through)`);

    // What Redis holds after the restart: every accepted event, once, in order.
    const stored = await storedByTopic(redis, TOPICS);
    assert.deepEqual(storedProblems(stored), []);
    const storedCount = [...stored.values()].reduce((n, l) => n + l.length, 0);
    assert.equal(storedCount, EVENTS, 'every event the publisher saw accepted is stored (AOF, appendfsync always)');

    await clients.waitComplete(stored, { timeout: 60000 });
    const tDone = Date.now();
    await sleep(500);
    const problems = clients.verify(stored);
    const fatal = clients.fatal();
    console.log(`redis restart: ${CLIENTS} clients (${clients.curlCount()} curl), ${EVENTS} events at ${RATE}/s via FCALL; `
      + `Redis down ${tBack - tKill} ms, every node UP in haproxy again after ${tUp - tBack} ms; `
      + `all caught up ${tDone - tBack} ms after the restart; reconnects ${clients.reconnects()}, `
      + `eventsource give-ups ${fatal.length}; total ${Date.now() - t0} ms`);
    clients.close();
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} delivery problems`);
    assert.equal(clients.reconnects(), 0, 'clients stayed connected through the Redis restart');
    assert.deepEqual(fatal, []);
  });
