// Fault run through the load balancer (issue 4): Redis (AOF), one broker,
// three nodes behind haproxy (deploy/lb/haproxy.cfg.in), clients mixing a
// reconnecting curl and the eventsource npm client on 10 topics (every
// fifth on two topics: multi-topic cursors), events published with plain
// PUBLISH sse:<topic> through the broker at a steady rate; one node is
// SIGKILLed mid-run. Every client must end with every event of its topics
// exactly once and in order, having resumed on another node.
// Scale (the same under ASan): 300 clients, 2,000 events at ~200/s.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, sleep, waitFor } from './lib/harness.mjs';
import { startCluster, startClients, startPublisher, storedByTopic } from './lib/cluster.mjs';

after(cleanupAll);

const CLIENTS = 300;
const EVENTS = 2000;
const RATE = 200;
const TOPICS = Array.from({ length: 10 }, (_, i) => `nk${i}`);

test(`SIGKILL of a node mid-run: ${CLIENTS} clients through haproxy get every event once, in order`, { timeout: 240000 }, async () => {
  const t0 = Date.now();
  const cluster = await startCluster({ nodes: 3, brokers: 1, nodeArgs: ['--retry-ms', '1000'] });
  const clients = startClients(cluster.lb.url, { count: CLIENTS, topics: TOPICS, retryDefault: 1000 });
  await clients.waitStarted();
  const tStarted = Date.now();

  const publisher = startPublisher(cluster.redis, { topics: TOPICS, total: EVENTS, rate: RATE });
  await waitFor(() => publisher.count() >= EVENTS * 0.4, { timeout: 60000, what: '40% of the events published' });
  const victim = 1;
  const tKill = Date.now();
  await cluster.killNode(victim, 'SIGKILL');
  await cluster.lb.waitServer(victim, 'DOWN');
  const published = await publisher.done;
  assert.equal(published, EVENTS);
  assert.ok(publisher.log.every((e) => e.ok), 'the broker was subscribed for every PUBLISH');

  // The broker stored every event (one broker, no broker fault here).
  const stored = await waitFor(async () => {
    const s = await storedByTopic(cluster.redis, TOPICS);
    return [...s.values()].reduce((n, l) => n + l.length, 0) >= EVENTS && s;
  }, { timeout: 30000, what: 'every event stored' });
  for (const [t, seqs] of stored) {
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, k) => k + 1), `stream ${t} holds 1..n in order`);
  }

  await clients.waitComplete(stored, { timeout: 60000 });
  const tDone = Date.now();
  await sleep(500); // anything delivered twice would show up now
  const problems = clients.verify(stored);
  const reconnected = clients.clients.filter((c) => c.connects.length > 1).length;
  const fatal = clients.fatal();
  console.log(`node kill: ${CLIENTS} clients (${clients.curlCount()} curl), ${EVENTS} events at ${RATE}/s; `
    + `${reconnected} clients reconnected after the kill (${clients.reconnects()} reconnects), `
    + `all caught up ${tDone - tKill} ms after the kill; setup ${tStarted - t0} ms, total ${Date.now() - t0} ms; `
    + `eventsource give-ups: ${fatal.length}`);
  clients.close();
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} delivery problems`);
  // about a third of the clients were on the killed node and had to resume elsewhere
  assert.ok(reconnected >= CLIENTS / 6, `the kill moved clients to other nodes (${reconnected} reconnected)`);
  assert.deepEqual(fatal, [], 'no eventsource client was answered with a non-200 by the load balancer');
});
