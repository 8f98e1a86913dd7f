// Nodes on a real Redis Cluster (3 masters, 3 replicas, loopback): found
// from one seed, the function library loaded on every master, each topic's
// live channel SSUBSCRIBEd on the shard that owns its slot (sharded pub/sub:
// no other shard sees its messages), exact resume on another node, HTTP
// publishes across shards, and a master SIGKILLed while clients listen:
// its replica is promoted, the nodes re-map and fill the hole, and every
// event the cluster kept reaches every client once, in order.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, sleep, startBroker, startNode, waitFor } from './lib/harness.mjs';
import { keySlot, patternSubscriberPorts, startRedisCluster } from './lib/rediscluster.mjs';
import { rawSse } from './lib/sse.mjs';
import { mercureToken } from './lib/jwt.mjs';

const T = { timeout: 120000 };
const KEY = 'cluster-test-key-0123456789abcdef';
let rc;

before(async () => {
  // full coverage off: one shard failing over does not stop the others
  rc = await startRedisCluster({ masters: 3, replicas: 1, args: ['--cluster-require-full-coverage', 'no'] });
});
after(async () => {
  if (rc) await rc.stop();
  await cleanupAll();
});

const streamKey = (topic) => `ssehub:{${topic}}:s`;

// One topic name per master, each in a slot that master owns.
async function topicsPerMaster(prefix) {
  const out = [];
  await rc.refresh();
  for (const m of rc.masters().filter((n) => n.running())) {
    const ranges = await rc.slotsOf(m);
    for (let i = 0; ; i++) {
      const t = `${prefix}-${i}`;
      const slot = keySlot(streamKey(t));
      if (ranges.some(([a, b]) => slot >= a && slot <= b)) { out.push({ topic: t, master: m }); break; }
    }
  }
  return out;
}

// Publishes through the publish function on the master that owns the
// topic now, retrying (as an app would) while a shard fails over. Returns
// the entry id, or with replicated {id, replicated}: whether a replica had
// the write within 100 ms (WAIT), which makes it survive a failover.
async function publish(topic, data, { replicated = false, timeout = 20000 } = {}) {
  const until = Date.now() + timeout;
  for (;;) {
    try {
      const m = await rc.masterOf(streamKey(topic));
      const id = await rc.cmd(m, 'FCALL', 'ssehub_publish', '1', streamKey(topic), data);
      if (replicated) return { id, replicated: Number(await rc.cmd(m, 'WAIT', '1', '100')) >= 1 };
      return id;
    } catch (e) {
      if (Date.now() > until) throw e;
      await sleep(100);
    }
  }
}

// Moves a slot's keys from one master to another, as redis-cli --cluster
// reshard does, but stops before the slot itself moves (the caller ends
// the migration with CLUSTER SETSLOT <slot> NODE <returned id>): meanwhile
// the old master answers ASK for those keys.
async function migrateKeys(slot, from, to) {
  const fromId = (await rc.cli(from, 'CLUSTER', 'MYID')).trim();
  const toId = (await rc.cli(to, 'CLUSTER', 'MYID')).trim();
  await rc.cmd(to, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId);
  await rc.cmd(from, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId);
  for (;;) {
    const keys = await rc.cmd(from, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100');
    if (keys.length === 0) return toId;
    await rc.cmd(from, 'MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys);
  }
}

// The cluster nodes the brokers subscribe on.
const brokerSubscriptionPorts = async () => new Set(await patternSubscriberPorts(rc));

async function xrange(topic) {
  const m = await rc.masterOf(streamKey(topic));
  const rows = await rc.cmd(m, 'XRANGE', streamKey(topic), '-', '+');
  return rows.map(([id, fields]) => ({ id, data: fields[fields.indexOf('data') + 1] }));
}

describe('a node on a Redis Cluster', () => {
  let node, topics;
  before(async () => {
    node = await startNode(null, { redisUrl: rc.url, args: ['--threads', '2'] });
    topics = await topicsPerMaster('shard');
  });

  test('finds the masters from one seed and loads the library (SPUBLISH form) on each', T, async () => {
    for (const m of rc.masters()) {
      const libs = await rc.cmd(m, 'FUNCTION', 'LIST', 'LIBRARYNAME', 'ssehub_1', 'WITHCODE');
      const code = libs[0][libs[0].indexOf('library_code') + 1];
      assert.match(code, /local LIVE_PUBLISH = 'SPUBLISH'/, `library on master ${m.port}`);
    }
    const logs = node.jsonLogs();
    assert.ok(logs.some((o) => o.msg === 'redis cluster' && o.masters === 3), 'logged the cluster it found');
    // the registry's keys live on different masters
    const c = await waitFor(async () => {
      const r = await fetch(`${node.url}/cluster`);
      const v = r.status === 200 && await r.json();
      return v && v.nodes.some((n) => n.id === v.self && n.alive && n.redis_up) && v;
    }, { timeout: 5000, what: 'the node in /cluster' });
    assert.equal(c.nodes.find((n) => n.id === c.self).listen, `127.0.0.1:${node.port}`);
  });

  test('serves topics of every shard; live messages stay inside their shard', T, async () => {
    // a classic subscriber on every node of the cluster: sharded messages never reach it
    const watchers = await Promise.all(rc.nodes.map(async (n) => {
      const c = await rc.rawClient(n);
      await c.call('PSUBSCRIBE', 'ssehub:*');
      return c;
    }));
    const all = await rawSse(`${node.url}/events?${topics.map((t) => `topic=${t.topic}`).join('&')}`);
    const one = await Promise.all(topics.map((t) => rawSse(`${node.url}/events?topic=${t.topic}`)));
    await all.waitForEvents(1); // the cursor event
    await Promise.all(one.map((s) => s.waitForEvents(1)));
    for (let i = 0; i < 5; i++)
      for (const t of topics) await publish(t.topic, `${t.topic} #${i}`);
    await all.waitForEvents(1 + 15);
    for (const t of topics) {
      const got = all.events.slice(1).filter((e) => e.data.startsWith(`${t.topic} `)).map((e) => e.data);
      assert.deepEqual(got, [0, 1, 2, 3, 4].map((i) => `${t.topic} #${i}`), `in order on ${t.topic}`);
    }
    for (const [k, s] of one.entries()) {
      await s.waitForEvents(6);
      assert.deepEqual(s.events.slice(1).map((e) => e.data), [0, 1, 2, 3, 4].map((i) => `${topics[k].topic} #${i}`));
    }
    // each channel is subscribed on its own master only, as a sharded channel
    for (const t of topics) {
      const chan = `ssehub:{${t.topic}}:l`;
      for (const m of rc.masters()) {
        const [, n] = await rc.cmd(m, 'PUBSUB', 'SHARDNUMSUB', chan);
        assert.equal(Number(n) > 0, m === t.master, `${chan} on master ${m.port}`);
        const [, classic] = await rc.cmd(m, 'PUBSUB', 'NUMSUB', chan);
        assert.equal(Number(classic), 0);
      }
    }
    await sleep(200);
    for (const w of watchers) {
      assert.equal(w.values.filter((v) => Array.isArray(v.value) && v.value[0] === 'pmessage').length, 0,
        'no classic pub/sub message anywhere');
      w.close();
    }
    all.close();
    one.forEach((s) => s.close());
  });

  test('a client resumes on another node (seeds: every node) with its cursor, exactly', T, async () => {
    const other = await startNode(null, { redisUrl: rc.seeds, args: ['--threads', '1'] });
    const q = topics.map((t) => `topic=${t.topic}`).join('&');
    const a = await rawSse(`${node.url}/events?${q}`);
    await a.waitForEvents(1);
    for (const t of topics) await publish(t.topic, `${t.topic} before`);
    await a.waitForEvents(4);
    const cursor = a.events[3].id;
    a.close();
    for (const t of topics) await publish(t.topic, `${t.topic} while away`);
    const b = await rawSse(`${other.url}/events?${q}`, { headers: { 'Last-Event-ID': cursor } });
    await b.waitForEvents(3);
    for (const t of topics) await publish(t.topic, `${t.topic} live`);
    await b.waitForEvents(6);
    await sleep(200);
    const got = b.events.map((e) => e.data);
    assert.equal(got.length, 6, `no repeats: ${JSON.stringify(got)}`);
    for (const t of topics)
      assert.deepEqual(got.filter((d) => d.startsWith(`${t.topic} `)), [`${t.topic} while away`, `${t.topic} live`]);
    b.close();
    await other.kill('SIGTERM');
  });

  test('Mercure: an HTTP publish to topics on different shards reaches a subscriber once', T, async () => {
    const key = KEY;
    const n = await startNode(null, { redisUrl: rc.url, args: ['--threads', '1', '--jwt-key', key] });
    const [x, y] = topics;
    const s = await rawSse(`${n.url}/events?topic=${x.topic}&topic=${y.topic}`);
    await s.waitForEvents(1);
    const r = await fetch(`${n.url}/.well-known/mercure`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${mercureToken({ publish: ['*'] }, { key })}`,
        'Content-Type': 'application/x-www-form-urlencoded' },
      body: `topic=${x.topic}&topic=${y.topic}&data=both&id=upd-1`,
    });
    assert.equal(r.status, 200, await r.clone().text());
    await s.waitForEvents(2);
    await sleep(300);
    assert.deepEqual(s.events.slice(1).map((e) => e.data), ['both']);
    assert.equal((await xrange(x.topic)).at(-1).data, 'both');
    assert.equal((await xrange(y.topic)).at(-1).data, 'both');
    // `*` selectors need classic pub/sub: refused clearly on a cluster
    const p = await fetch(`${n.url}/.well-known/mercure?topic=*`);
    assert.equal(p.status, 400);
    assert.equal((await p.json()).error, 'patterns_unavailable');
    s.close();
    await n.kill('SIGTERM');
  });
});

describe('a slot migrates to another master while clients listen', () => {
  test('the sharded subscription ends (sunsubscribe); nodes re-map, subscribe on the new master and fill the hole', T, async () => {
    // no replay from memory: resumes read Redis
    const n = await startNode(null, { redisUrl: rc.url, args: ['--threads', '2', '--replay-memory-events', '0'] });
    const [{ topic, master: from }, { master: to }] = await topicsPerMaster('migrating');
    const slot = keySlot(streamKey(topic));
    const s = await rawSse(`${n.url}/events?topic=${topic}`);
    await s.waitForEvents(1);
    let stop = false, sent = 0;
    const publisher = (async () => {
      for (; !stop && sent < 2000; sent++) { await publish(topic, `m${sent}`); await sleep(5); }
    })();
    await waitFor(() => sent >= 20, { what: '20 events before the move' });
    const toId = await migrateKeys(slot, from, to);
    // keys moved, slot not yet: the old master answers ASK; a client that
    // resumes now is served by the node's history read following it
    const seen = s.events.slice(6).map((e) => e.data);
    const r = await rawSse(`${n.url}/events?topic=${topic}`, { headers: { 'Last-Event-ID': s.events[5].id } });
    await r.waitForEvents(seen.length);
    assert.deepEqual(r.events.slice(0, seen.length).map((e) => e.data), seen, 'replayed from Redis while the slot migrates');
    r.close();
    for (const m of rc.masters().filter((x) => x.running())) await rc.cmd(m, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
    const moved = sent;
    await waitFor(() => sent >= moved + 20, { timeout: 20000, what: '20 events after the move' });
    stop = true;
    await publisher;
    assert.equal((await rc.masterOf(streamKey(topic))).port, to.port, 'the slot lives on the other master now');
    const kept = await xrange(topic);
    assert.equal(kept.length, sent);
    await s.waitForEvents(1 + sent, { timeout: 20000 });
    await sleep(200);
    assert.deepEqual(s.events.slice(1).map((e) => ({ id: e.id, data: e.data })), kept, 'everything, once, in order');
    assert.equal(s.isEnded, false);
    const [, subs] = await rc.cmd(to, 'PUBSUB', 'SHARDNUMSUB', `ssehub:{${topic}}:l`);
    assert.ok(Number(subs) >= 1, 'subscribed on the new master');
    assert.ok(n.jsonLogs().some((o) => o.msg === 'subscription ended by redis: slot moved' && o.topic === topic),
      'the node saw the sunsubscribe');
    s.close();
    await n.kill('SIGTERM');
  });
});

describe('a master fails while clients listen', () => {
  test('its replica is promoted; nodes re-map and resume; every event kept arrives once, in order', T, async () => {
    const n1 = await startNode(null, { redisUrl: rc.url, args: ['--threads', '2'] });
    const n2 = await startNode(null, { redisUrl: rc.seeds, args: ['--threads', '2'] });
    const [victim, bystander] = await topicsPerMaster('failover');
    const names = [victim.topic, bystander.topic];
    const clients = [];
    for (const n of [n1, n2])
      for (const t of names) clients.push({ topic: t, s: await rawSse(`${n.url}/events?topic=${t}`) });
    await Promise.all(clients.map((c) => c.s.waitForEvents(1)));

    const acked = { [victim.topic]: [], [bystander.topic]: [] };
    let stop = false;
    const publisher = (async () => {
      for (let i = 0; !stop && i < 400; i++) {
        for (const t of names) {
          const { id, replicated } = await publish(t, `${t} ${i}`, { replicated: true });
          acked[t].push({ id, data: `${t} ${i}`, replicated });
        }
        await sleep(20);
      }
    })();
    await waitFor(() => acked[victim.topic].length >= 30, { timeout: 20000, what: '30 events before the kill' });
    const t0 = Date.now();
    await rc.killMaster(victim.master);
    // while that master is down, the node stays ready and the other
    // masters' topics take new streams
    await waitFor(async () => /ssehub_node_redis_up 0/.test(await (await fetch(`${n1.url}/metrics`)).text()),
      { timeout: 3000, interval: 50, what: 'the node saw the master go' });
    assert.equal((await fetch(`${n1.url}/readyz`)).status, 200, 'one master down: the node is still ready');
    const late = await rawSse(`${n1.url}/events?topic=${bystander.topic}`);
    await late.waitForEvents(1);
    assert.equal(late.events[0].type, 'ssehub.cursor', 'a stream of another master\'s topic starts');
    late.close();
    const promoted = await rc.waitForFailover(victim.master);
    const failoverMs = Date.now() - t0;
    const after = acked[victim.topic].length;
    await waitFor(() => acked[victim.topic].length >= after + 30, { timeout: 30000, what: '30 events after the failover' });
    stop = true;
    await publisher;

    for (const t of names) {
      const kept = await xrange(t);
      // acknowledged once a replica had it: kept through the failover (an
      // event acknowledged by the master alone may be lost with it)
      const keptIds = new Set(kept.map((e) => e.id));
      const lost = acked[t].filter((e) => !keptIds.has(e.id));
      assert.deepEqual(lost.filter((e) => e.replicated), [], `replicated events of ${t} survive`);
      if (lost.length) console.log(`# ${t}: ${lost.length} events acknowledged by the master alone were lost`);
      for (const c of clients.filter((c) => c.topic === t)) {
        await c.s.waitForEvents(1 + kept.length, { timeout: 20000 });
        await sleep(100);
        const got = c.s.events.slice(1).map((e) => ({ id: e.id, data: e.data }));
        assert.deepEqual(got, kept, `a client of ${t}: everything kept, once, in order`);
        assert.equal(c.s.isEnded, false, 'the stream stayed open through the failover');
      }
    }
    assert.notEqual(promoted.port, victim.master.port);
    const m = await (await fetch(`${n1.url}/metrics`)).text();
    assert.match(m, /ssehub_node_redis_up 1/);
    clients.forEach((c) => c.s.close());
    console.log(`# failover: ${failoverMs} ms from SIGKILL to a promoted replica`);
  });
});

describe('brokers on the cluster', () => {
  let b1, b2, node;
  before(async () => {
    // the master an earlier test killed comes back as its successor's
    // replica, so every shard can fail over again
    for (const n of rc.nodes) if (!n.running()) await rc.restartNode(n);
    const live = rc.seedUrl(rc.nodes.slice(-1));
    // long histories: the tests count every stored event
    const args = ['--history-max-events', '100000'];
    b1 = await startBroker(null, { redisUrl: rc.seeds, args });
    b2 = await startBroker(null, { redisUrl: live, args });
    node = await startNode(null, { redisUrl: live, args: ['--threads', '2'] });
  });

  // Publishes with a plain PUBLISH on the given cluster node.
  const pub = (n, topic, data) => rc.cmd(n, 'PUBLISH', `sse:${topic}`, data);

  // Redis Cluster forwards a PUBLISH to the other nodes over its bus: what
  // one node publishes keeps its order, what different nodes publish does
  // not (README: publish a topic's events through one node).
  test('apps PUBLISH on any node (a topic through one); the leader stores each event once on its topic\'s master, in order', T, async () => {
    for (const b of [b1, b2])
      assert.ok(b.jsonLogs().some((o) => o.msg === 'redis found' && o.redis === 'cluster' && o.masters === 3));
    const topics = await topicsPerMaster('ingest');
    const streams = await Promise.all(topics.map((t) => rawSse(`${node.url}/events?topic=${t.topic}`)));
    await Promise.all(streams.map((x) => x.waitForEvents(1)));
    for (let i = 0; i < 30; i++)
      for (const [k, t] of topics.entries()) await pub(rc.nodes[(2 * k + 1) % rc.nodes.length], t.topic, `${t.topic} ${i}`);
    for (const [k, t] of topics.entries()) {
      await streams[k].waitForEvents(31, { timeout: 15000 });
      await sleep(200);
      const want = Array.from({ length: 30 }, (_, i) => `${t.topic} ${i}`);
      assert.deepEqual(streams[k].events.slice(1).map((e) => e.data), want);
      assert.deepEqual((await xrange(t.topic)).map((e) => e.data), want, 'stored once each, on its master');
      streams[k].close();
    }
  });

  test('the master of the brokers\' sync shard fails while apps publish: nothing published after the kill is lost', T, async () => {
    const syncMaster = await rc.masterOf('ssehub:broker:sync');
    const topics = await topicsPerMaster('held');
    const victim = topics.find((t) => t.master === syncMaster);
    const bystander = topics.find((t) => t.master !== syncMaster);
    const names = [victim.topic, bystander.topic];
    const streams = await Promise.all(names.map((t) => rawSse(`${node.url}/events?topic=${t}`)));
    await Promise.all(streams.map((x) => x.waitForEvents(1)));
    const at = bystander.master; // apps publish on a node that stays up
    const sent = [];
    let stop = false, killedAt = Infinity;
    const publisher = (async () => {
      for (let i = 0; !stop && i < 3000; i++) {
        for (const t of names) {
          await pub(at, t, `${t} ${i}`);
          sent.push({ topic: t, data: `${t} ${i}`, at: Date.now() });
        }
        await sleep(10);
      }
    })();
    await waitFor(() => sent.length >= 100, { timeout: 20000, what: 'events before the kill' });
    killedAt = Date.now();
    await rc.killMaster(syncMaster);
    await rc.waitForFailover(syncMaster);
    const n = sent.length;
    await waitFor(() => sent.length >= n + 100, { timeout: 30000, what: 'events after the failover' });
    stop = true;
    await publisher;
    for (const [k, t] of names.entries()) {
      const mine = sent.filter((e) => e.topic === t);
      const must = mine.filter((e) => e.at >= killedAt || e.at < killedAt - 1000).map((e) => e.data);
      let kept;
      await waitFor(async () => {
        kept = (await xrange(t)).map((e) => e.data);
        return must.every((d) => kept.includes(d));
      }, { timeout: 20000, what: `every event of ${t} published after the kill (and long before) stored` });
      const order = kept.map((d) => Number(d.split(' ')[1]));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `${t} stored in publish order`);
      assert.equal(new Set(kept).size, kept.length, `${t} stored once each`);
      if (kept.length < mine.length)
        console.log(`# ${t}: ${mine.length - kept.length} events published just before the kill were lost with the master`);
      await streams[k].waitForEvents(1 + kept.length, { timeout: 20000 });
      await sleep(200);
      assert.deepEqual(streams[k].events.slice(1).map((e) => e.data), kept, `a client of ${t}: everything stored, once, in order`);
      streams[k].close();
    }
  });

  // A broker sends each message on its topic's master: a master failing
  // over holds up its own topics only. (The lease and the sync marks live
  // on the other masters, or nothing would move: see the test above.)
  test('a master fails while apps publish: the other masters\' topics are stored at once, its own after the failover', T, async () => {
    for (const n of rc.nodes) if (!n.running()) await rc.restartNode(n);
    const topics = await topicsPerMaster('sharded');
    const victimMaster = await rc.masterOf('ssehub:broker:epoch'); // only read when a broker takes the lease
    for (const k of ['ssehub:broker:leader', 'ssehub:broker:sync'])
      assert.notEqual((await rc.masterOf(k)).port, victimMaster.port, `${k} on another master`);
    assert.ok(!(await brokerSubscriptionPorts()).has(victimMaster.port), 'the brokers subscribe on another node');
    const victim = topics.find((t) => t.master === victimMaster);
    const others = topics.filter((t) => t !== victim);
    const at = others[0].master; // apps publish on a node that stays up
    const sent = Object.fromEntries(topics.map((t) => [t.topic, []]));
    let stop = false;
    const publisher = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        for (const t of topics) {
          await pub(at, t.topic, `${t.topic} ${i}`);
          sent[t.topic].push({ data: `${t.topic} ${i}`, at: Date.now() });
        }
        await sleep(10);
      }
    })();
    let killedAt;
    try {
      await waitFor(() => sent[victim.topic].length >= 50, { timeout: 20000, what: 'events before the kill' });
      killedAt = Date.now();
      await rc.killMaster(victimMaster);
      await sleep(300);
      // what was published by now on the other masters' topics is stored
      // while the failed master's slots have no master yet
      const due = others.map((t) => ({ ...t, n: sent[t.topic].length }));
      const xlen = async (t) => Number(await rc.cmd(t.master, 'XLEN', streamKey(t.topic)));
      await waitFor(async () => {
        for (const t of due) if ((await xlen(t)) < t.n) return false;
        return true;
      }, { timeout: 5000, interval: 20, what: 'the other masters\' topics stored during the failover' });
      const storedAfter = Date.now() - killedAt;
      // a command link made since the kill (the brokers log each)
      const moved = () => [b1, b2].flatMap((b) => b.jsonLogs())
        .filter((o) => o.msg === 'function library loaded' && Date.parse(o.ts) >= killedAt);
      assert.deepEqual(moved(), [], `stored ${storedAfter} ms after the kill, before any broker reached the promoted replica`);
      const promoted = await rc.waitForFailover(victimMaster);
      await waitFor(() => moved().some((o) => o.port === promoted.port), { timeout: 20000, what: 'the brokers on the promoted replica' });
      const n = sent[victim.topic].length;
      await waitFor(() => sent[victim.topic].length >= n + 50, { timeout: 30000, what: 'events after the failover' });
    } finally {
      stop = true;
      await publisher;
    }
    for (const t of topics) {
      const mine = sent[t.topic];
      const must = (t === victim ? mine.filter((e) => e.at >= killedAt) : mine).map((e) => e.data);
      let kept = [];
      await waitFor(async () => {
        kept = (await xrange(t.topic)).map((e) => e.data);
        return must.every((d) => kept.includes(d));
      }, { timeout: 20000, what: `every event of ${t.topic} that must be kept stored` });
      const order = kept.map((d) => Number(d.split(' ')[1]));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `${t.topic} stored in publish order`);
      assert.equal(new Set(kept).size, kept.length, `${t.topic} stored once each`);
    }
  });

  test('with cluster-require-full-coverage yes every master refuses for a moment: the brokers hold and retry; nothing of the other masters\' topics is lost', T, async () => {
    for (const n of rc.nodes) if (!n.running()) await rc.restartNode(n);
    const set = async (v) => { for (const n of rc.nodes.filter((x) => x.running())) await rc.cmd(n, 'CONFIG', 'SET', 'cluster-require-full-coverage', v); };
    await set('yes');
    try {
      const topics = await topicsPerMaster('coverage');
      // not the node the brokers subscribe on (a failover promoted it
      // earlier): plain PUBLISHes sent while they resubscribe elsewhere
      // reach nobody (README, Redis Cluster and Sentinel)
      const subs = await brokerSubscriptionPorts();
      assert.ok(subs.size > 0, 'the brokers\' subscription found');
      const victim = topics.find((t) => !subs.has(t.master.port));
      const others = topics.filter((t) => t !== victim);
      const at = others[0].master;
      const sent = Object.fromEntries(topics.map((t) => [t.topic, []]));
      let stop = false, killedAt = Infinity;
      // bursts of pipelined PUBLISHes: calls are in flight when the cluster comes back
      const publisher = (async () => {
        for (let i = 0; !stop && i < 5000; i++) {
          const batch = [];
          for (let j = 0; j < 5; j++)
            for (const t of topics) {
              const data = `${t.topic} ${i * 5 + j}`;
              batch.push(rc.cmd(at, 'PUBLISH', `sse:${t.topic}`, data));
              sent[t.topic].push({ data, at: Date.now() });
            }
          await Promise.all(batch);
          await sleep(10);
        }
      })();
      await waitFor(() => sent[victim.topic].length >= 300, { timeout: 20000, what: 'events before the kill' });
      killedAt = Date.now();
      await rc.killMaster(victim.master);
      await rc.waitForFailover(victim.master);
      const n = sent[victim.topic].length;
      await waitFor(() => sent[victim.topic].length >= n + 300, { timeout: 30000, what: 'events after the failover' });
      stop = true;
      await publisher;
      const stored = async (t) => (await xrange(t)).map((e) => e.data);
      for (const t of others) {
        let kept;
        await waitFor(async () => (kept = await stored(t.topic)).length >= sent[t.topic].length,
          { timeout: 20000, what: `every event of ${t.topic} stored` });
        assert.deepEqual([...kept].sort(), sent[t.topic].map((e) => e.data).sort(), `${t.topic}: all, once`);
        const seq = kept.map((d) => Number(d.split(' ')[1]));
        const late = seq.filter((x, i) => i > 0 && x < seq[i - 1]).length;
        if (late) console.log(`# ${t.topic}: ${late} events stored after a later one (refused by CLUSTERDOWN first)`);
      }
      const mustVictim = sent[victim.topic].filter((e) => e.at >= killedAt).map((e) => e.data);
      let kept = [];
      await waitFor(async () => {
        kept = await stored(victim.topic);
        return mustVictim.every((d) => kept.includes(d));
      }, { timeout: 20000, what: 'the failed master\'s topic: everything published after the kill stored' });
      assert.equal(new Set(kept).size, kept.length, 'once each');
    } finally {
      await set('no');
    }
  });

  test('a slot migrates while apps publish: the leader follows ASK to the importing master at once', T, async () => {
    const [{ topic, master: from }, { master: to }] = await topicsPerMaster('asked');
    const key = streamKey(topic);
    const slot = keySlot(key);
    const at = rc.nodes.find((n) => n.running());
    let i = 0, stop = false;
    const publisher = (async () => {
      for (; !stop && i < 5000; i++) { await pub(at, topic, `${topic} ${i}`); await sleep(5); }
    })();
    await waitFor(() => i >= 50, { what: 'events before the migration' });
    const toId = await migrateKeys(slot, from, to);
    // the slot still belongs to the old master: only ASK leads to the new one
    const asker = await rc.client(to);
    const len = async () => { await asker.cmd('ASKING'); return Number(await asker.cmd('XLEN', key)); };
    const before = await len();
    await waitFor(async () => (await len()) >= before + 20, { timeout: 10000, what: 'publishes stored on the importing master while the slot migrates' });
    for (const m of rc.masters().filter((x) => x.running())) await rc.cmd(m, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
    const n = i;
    await waitFor(() => i >= n + 50, { what: 'events after the migration' });
    stop = true;
    await publisher;
    let kept = [];
    await waitFor(async () => (kept = await xrange(topic)).length >= i, { timeout: 20000, what: 'every event stored' });
    assert.deepEqual(kept.map((e) => e.data), Array.from({ length: i }, (_, k) => `${topic} ${k}`), 'all, once, in order');
  });
});
