// Rolling restart behind the load balancer (issue 4, "Graceful drain"):
// clients (curl reconnecting wrapper and eventsource, every fifth on two
// topics) listen through haproxy while events flow (plain PUBLISH through the
// broker); every node is restarted one after another: SIGTERM (readyz 503,
// listener closed after drain_seconds/10, streams ended evenly over
// drain_seconds = 3 with a jittered retry:), wait for its exit, start it
// again on the same port, wait until haproxy sees it UP, next node.
// Asserts: no client lost or got twice any event of its topics (in order);
// every node exited 0 after its drain; each node's streams were ended over
// time, not at once (disconnects per 100 ms, client side); the reconnects
// (connection starts seen by the clients) are spread: the peak per 100 ms is
// logged and bounded well below "all clients at once".
// Scale (the same under ASan): 500 clients on 10 topics, ~100 events/s for
// the whole run (~15 s of restarts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cleanupAll, sleep, waitFor } from './lib/harness.mjs';
import { startCluster, startClients, startPublisher, storedByTopic, storedProblems, peakPer } from './lib/cluster.mjs';

after(cleanupAll);

const CLIENTS = 500;
const RATE = 100;
const DRAIN_S = 3;
const RETRY_MS = 1000;
const TOPICS = Array.from({ length: 10 }, (_, i) => `rl${i}`);

test(`rolling restart of every node behind haproxy: ${CLIENTS} clients lose nothing, reconnects spread`,
  { timeout: 280000 }, async () => {
    const t0 = Date.now();
    const cluster = await startCluster({
      nodes: 3, brokers: 1, nodeArgs: ['--drain-seconds', String(DRAIN_S), '--retry-ms', String(RETRY_MS)],
    });
    const clients = startClients(cluster.lb.url, { count: CLIENTS, topics: TOPICS, retryDefault: RETRY_MS });
    await clients.waitStarted({ timeout: 90000 });
    const tStarted = Date.now();
    const publisher = startPublisher(cluster.redis, { topics: TOPICS, rate: RATE });
    await sleep(1500);

    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const phases = [];
    for (let i = 0; i < cluster.nodes.length; i++) {
      const r = await cluster.restartNode(i);
      phases.push({ node: i, ...r });
    }
    await sleep(1500);
    lag.disable();
    const published = await publisher.stop();
    assert.ok(publisher.log.every((e) => e.ok), 'the broker was subscribed for every PUBLISH');

    const stored = await storedByTopic(cluster.redis, TOPICS);
    assert.deepEqual(storedProblems(stored), []);
    assert.equal([...stored.values()].reduce((n, l) => n + l.length, 0), published, 'every event stored');
    await clients.waitComplete(stored, { timeout: 60000 });
    await sleep(500);
    const problems = clients.verify(stored);

    // Spread, as haproxy saw it (its log: when each /events request arrived
    // and ended, and on which node; independent of the test process's own
    // scheduling): connection starts after the restarts began, per 100 ms,
    // and per restarted node, its streams' ends per 100 ms.
    const clientConnects = clients.clients.reduce((n, c) => n + c.connects.length, 0);
    clients.close();
    // haproxy logs a request when it ends; a stream whose client left ends
    // at the node's next write: stop the nodes so every stream is logged now
    await Promise.all(cluster.nodes.map((n) => n.kill('SIGKILL')));
    const logged = async () => (await cluster.lb.sessions()).filter((x) => x.path === '/events');
    await waitFor(async () => (await logged()).length >= clientConnects, { timeout: 10000, what: 'haproxy to log every stream' })
      .catch(() => {}); // asserted below, after the delivery verdict
    const sessions = await logged();
    const tFirstStop = phases[0].stoppedAt;
    const starts = sessions.filter((x) => x.start >= tFirstStop).map((x) => x.start);
    const reconnectPeak = peakPer(starts, 100);
    const perPhase = phases.map((p) => {
      const mine = sessions.filter((x) => x.server === `n${p.node + 1}` && x.end >= p.stoppedAt && x.end <= p.exitedAt + 100)
        .map((x) => x.end);
      const { peak } = peakPer(mine, 100);
      const spread = mine.length ? Math.max(...mine) - Math.min(...mine) : 0;
      return { node: p.node, exit: p.exit, logs: p.logs, ended: mine.length, peak, spread, drainMs: p.exitedAt - p.stoppedAt, upMs: p.upAt - p.exitedAt };
    });
    const clientPeak = peakPer(clients.connectStarts(), 100);
    const fatal = clients.fatal();
    console.log(`rolling restart: ${CLIENTS} clients (${clients.curlCount()} curl), ${published} events at ${RATE}/s, `
      + `drain ${DRAIN_S} s, retry ${RETRY_MS} ms; reconnects ${starts.length} (haproxy log; clients counted `
      + `${clients.reconnects()}), peak ${reconnectPeak.peak} per 100 ms = ${((100 * reconnectPeak.peak) / CLIENTS).toFixed(1)}% `
      + `of the clients (client-side timestamps: ${clientPeak.peak}); per node: ${perPhase.map((p) =>
        `n${p.node}: ${p.ended} streams ended over ${p.spread} ms, peak ${p.peak}/100 ms, drain ${p.drainMs} ms, `
        + `UP again ${p.upMs} ms later`).join('; ')}; eventsource give-ups ${fatal.length}; test process event loop `
      + `delay max ${(lag.max / 1e6).toFixed(0)} ms; setup ${tStarted - t0} ms, total ${Date.now() - t0} ms`);

    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} delivery problems`);
    assert.ok(sessions.length >= clientConnects, `haproxy logged ${sessions.length} of the ${clientConnects} streams`);
    for (const p of perPhase) {
      assert.equal(p.exit.code, 0, `node ${p.node} exited 0 after draining (${JSON.stringify(p.exit)}); its last lines:\n`
        + `${p.logs.filter((l) => !/"level":"info"/.test(l)).slice(-60).join('\n')}`);
      assert.ok(p.ended >= CLIENTS / 10, `node ${p.node} had streams to drain (${p.ended})`);
      // ended evenly over drain_seconds: all at once would put them all in one or two bins
      assert.ok(p.peak <= Math.max(10, p.ended / 3), `node ${p.node}: ${p.peak} of ${p.ended} streams ended in one 100 ms`);
      assert.ok(p.spread >= DRAIN_S * 1000 * 0.5, `node ${p.node}: streams ended over ${p.spread} ms`);
    }
    assert.ok(starts.length >= CLIENTS * 0.9, `the restarts moved the clients (${starts.length} reconnects)`);
    assert.ok(reconnectPeak.peak <= CLIENTS * 0.4, `reconnect peak ${reconnectPeak.peak} per 100 ms`);
    assert.deepEqual(fatal, [], 'no eventsource client was answered with a non-200 by the load balancer');
  });
