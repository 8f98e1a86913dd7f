// End-to-end tests of several ssehub-broker processes against a real
// redis-server: the publish function's fencing and ingest positions, the
// lease functions, exactly one broker ingesting, SIGKILL of the leader while
// messages flow (takeover time, the plain-PUBLISH loss window and the
// handover that closes it, the direct FCALL path), a leader paused past its
// lease (SIGSTOP/SIGCONT), a stale leader's late writes fenced, resends
// after a lost reply, and a clean shutdown handing the lease over at once.
// Every wait is bounded.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { cleanupAll, sleep, startBroker, startRedis, startTcpProxy, waitFor } from './lib/harness.mjs';

after(cleanupAll);

const T = { timeout: 90000 };
const LEASE = 1000;
const ARGS = ['--broker-lease-ms', String(LEASE), '--history-max-events', '100000'];

const streamKey = (topic) => `ssehub:{${topic}}:s`;
const metaKey = (topic) => `ssehub:{${topic}}:m`;

// Returns the data fields of a stream, in order.
async function dataOf(redis, topic) {
  const rows = await redis.cmd('XRANGE', streamKey(topic), '-', '+');
  return rows.map(([, f]) => f[f.indexOf('data') + 1]);
}

// Returns a hash as an object.
async function hash(redis, key) {
  const flat = await redis.cmd('HGETALL', key);
  const o = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
}

// Starts sending `rate` messages a second, round robin over topics, each
// with a unique payload "<topic>-<n>", through send(topic, payload) (not
// awaited one by one: commands pipeline). stop() resolves with every
// command's outcome.
function startFlow({ rate, topics, send }) {
  const published = new Map(topics.map((t) => [t, []]));
  const outcomes = [];
  let n = 0;
  let stopped = false;
  const start = Date.now();
  const loop = (async () => {
    while (!stopped) {
      const due = Math.floor(((Date.now() - start) * rate) / 1000);
      for (; n < due; n++) {
        const topic = topics[n % topics.length];
        const payload = `${topic}-${published.get(topic).length}`;
        published.get(topic).push(payload);
        outcomes.push(send(topic, payload).then((r) => ({ ok: true, r }), (e) => ({ ok: false, e })));
      }
      await sleep(5);
    }
    return Promise.all(outcomes);
  })();
  return {
    published,
    get count() { return n; },
    async stop() { stopped = true; return loop; },
  };
}

const plainSend = (client) => (topic, payload) => client.cmd('PUBLISH', `sse:${topic}`, payload);

// Waits (bounded) until every topic's stream holds at least what was
// published, then compares: returns {published, stored, lost, duplicates,
// outOfOrder} over all topics, never throwing on a shortfall.
async function settle(redis, published, { timeout = 20000 } = {}) {
  const want = [...published.values()].reduce((n, l) => n + l.length, 0);
  const total = async () => {
    let n = 0;
    for (const t of published.keys()) n += await redis.cmd('XLEN', streamKey(t));
    return n;
  };
  await waitFor(async () => (await total()) >= want, { timeout, what: `${want} stored messages` }).catch(() => {});
  await sleep(300); // anything still arriving would be a duplicate: let it show
  const r = { published: want, stored: 0, lost: 0, duplicates: 0, outOfOrder: [] };
  for (const [topic, sent] of published) {
    const data = await dataOf(redis, topic);
    r.stored += data.length;
    const seen = new Set(data);
    r.duplicates += data.length - seen.size;
    r.lost += sent.filter((p) => !seen.has(p)).length;
    const order = sent.filter((p) => seen.has(p));
    if (JSON.stringify([...seen]) !== JSON.stringify(order)) r.outOfOrder.push(topic);
  }
  return r;
}

// Asserts every published message was stored exactly once, in order.
function assertExactlyOnce(r) {
  assert.equal(r.duplicates, 0, `stored twice: ${JSON.stringify(r)}`);
  assert.equal(r.lost, 0, `lost: ${JSON.stringify(r)}`);
  assert.deepEqual(r.outOfOrder, [], 'per-topic order');
  assert.equal(r.stored, r.published);
}

// Starts two brokers, the first one leading; returns [leader, standby].
async function startPair(redis, { args = ARGS, leaderUrl } = {}) {
  const leader = await startBroker(leaderUrl ? null : redis, { args, redisUrl: leaderUrl });
  const standby = await startBroker(redis, { args });
  assert.equal(leader.jsonLogs().find((o) => o.msg === 'ready').role, 'leader');
  assert.equal(standby.jsonLogs().find((o) => o.msg === 'ready').role, 'standby');
  return [leader, standby];
}

// Returns the JSON log lines of a broker with the given msg, from index since.
const logsOf = (p, msg, since = 0) => p.jsonLogs().slice(since).filter((o) => o.msg === msg);

describe('the publish function: fencing and ingest positions', () => {
  let redis;
  const fcall = (...a) => redis.cmd('FCALL', 'ssehub_publish', ...a);

  test('the app-facing 1-key form is unchanged and writes no metadata', T, async () => {
    redis = await startRedis();
    const b = await startBroker(redis); // loads the library
    const id = await fcall('1', streamKey('app'), 'hello', 'type', 't');
    assert.match(id, /^\d+-\d+$/);
    assert.deepEqual(await dataOf(redis, 'app'), ['hello']);
    assert.equal(await redis.cmd('EXISTS', metaKey('app')), 0);
    await assert.rejects(fcall('1', streamKey('app'), 'x', 'fence', '5'), /metadata key/);
    await assert.rejects(fcall('1', streamKey('app'), 'x', 'in', '1.1'), /metadata key/);
    await b.stop();
  });

  test('in POSITION: stored once per position, identical payloads at two positions both stored', T, async () => {
    const k = [streamKey('pos'), metaKey('pos')];
    assert.match(await fcall('2', ...k, 'same', 'in', '100.1'), /^\d+-\d+$/);
    assert.equal(await fcall('2', ...k, 'same', 'in', '100.1'), 'DUPLICATE', 'a resend');
    assert.match(await fcall('2', ...k, 'same', 'in', '100.2'), /^\d+-\d+$/, 'the same payload published again');
    assert.equal(await fcall('2', ...k, 'older', 'in', '99.7'), 'DUPLICATE', 'an older position');
    assert.equal(await fcall('2', ...k, 'older', 'in', '100.1'), 'DUPLICATE');
    assert.match(await fcall('2', ...k, 'next', 'in', '100.10'), /^\d+-\d+$/, '10 is after 2 (numbers, not text)');
    assert.match(await fcall('2', ...k, 'floor', 'in', '100.1000000000000001'), /^\d+-\d+$/);
    assert.equal(await fcall('2', ...k, 'late', 'in', '100.11'), 'DUPLICATE', 'a floor position is after every count');
    assert.match(await fcall('2', ...k, 'new mark', 'in', '101.1'), /^\d+-\d+$/);
    assert.deepEqual(await dataOf(redis, 'pos'), ['same', 'same', 'next', 'floor', 'new mark']);
    assert.equal((await hash(redis, metaKey('pos'))).in, '101.1');
    await assert.rejects(fcall('2', ...k, 'x', 'in', '1'), /bad ingest position/);
    await assert.rejects(fcall('2', ...k, 'x', 'in', '1.x'), /bad ingest position/);
  });

  test('fence EPOCH: an older epoch is refused once a newer one wrote the topic', T, async () => {
    const k = [streamKey('fen'), metaKey('fen')];
    assert.match(await fcall('2', ...k, 'e5', 'fence', '5', 'in', '1.1'), /^\d+-\d+$/);
    assert.match(await fcall('2', ...k, 'e5 again', 'fence', '5', 'in', '1.2'), /^\d+-\d+$/);
    assert.match(await fcall('2', ...k, 'e7', 'fence', '7', 'in', '1.3'), /^\d+-\d+$/);
    await assert.rejects(fcall('2', ...k, 'stale', 'fence', '5', 'in', '1.4'), (e) => e.message === 'ERR ssehub: fenced');
    await assert.rejects(fcall('2', ...k, 'stale dup', 'fence', '6', 'in', '1.1'), /fenced/, 'fenced before dedup');
    assert.equal(await fcall('2', ...k, 'e9 dup', 'fence', '9', 'in', '1.3'), 'DUPLICATE');
    assert.equal((await hash(redis, metaKey('fen'))).epoch, '9', 'a newer resend still raises the epoch');
    await assert.rejects(fcall('2', ...k, 'x', 'fence', '8', 'in', '1.5'), /fenced/);
    assert.deepEqual(await dataOf(redis, 'fen'), ['e5', 'e5 again', 'e7']);
    await assert.rejects(fcall('2', ...k, 'x', 'fence', 'abc'), /epoch number/);
  });

  test('the metadata key shares the stream expiry and must belong to the same topic', T, async () => {
    await fcall('2', streamKey('exp'), metaKey('exp'), 'x', 'fence', '1', 'in', '1.1', 'maxage', '100');
    const [s, m] = [await redis.cmd('PTTL', streamKey('exp')), await redis.cmd('PTTL', metaKey('exp'))];
    assert.ok(s > 90000 && s <= 100000 && m > 90000 && m <= 100000, `PTTL ${s} / ${m}`);
    await assert.rejects(fcall('2', streamKey('exp'), metaKey('other'), 'x'), /topic metadata/);
    await assert.rejects(fcall('2', streamKey('exp'), streamKey('exp'), 'x'), /topic metadata/);
  });

  test('lease functions: renew and release only while the value is ours; ssehub_next never goes back', T, async () => {
    const key = 'ssehub:broker:leader-test';
    await redis.cmd('SET', key, 'h:1:5', 'PX', '1000');
    assert.equal(await redis.cmd('FCALL', 'ssehub_lease_renew', '1', key, 'h:1:4', '60000'), 0);
    assert.ok(await redis.cmd('PTTL', key) <= 1000);
    assert.equal(await redis.cmd('FCALL', 'ssehub_lease_renew', '1', key, 'h:1:5', '60000'), 1);
    assert.ok(await redis.cmd('PTTL', key) > 50000);
    const sub = await redis.client();
    const notices = [];
    await sub.subscribe('chan-test', (p) => notices.push(String(p)));
    assert.equal(await redis.cmd('FCALL', 'ssehub_lease_release', '1', key, 'h:2:5', 'chan-test'), 0);
    assert.equal(await redis.cmd('GET', key), 'h:1:5');
    assert.equal(await redis.cmd('FCALL', 'ssehub_lease_release', '1', key, 'h:1:5', 'chan-test'), 1);
    assert.equal(await redis.cmd('EXISTS', key), 0);
    await waitFor(() => notices.includes('released h:1:5'), { what: 'the release notice' });
    const a = await redis.cmd('FCALL', 'ssehub_next', '1', 'ctr-test');
    const b = await redis.cmd('FCALL', 'ssehub_next', '1', 'ctr-test');
    assert.ok(b > a && a > 1700000000000, `${a} then ${b}`);
    await redis.cmd('DEL', 'ctr-test');
    assert.ok(await redis.cmd('FCALL', 'ssehub_next', '1', 'ctr-test') >= a, 'not back to 1 after the key was lost');
    sub.close();
  });
});

describe('two brokers', () => {
  test('exactly one ingests: every message stored once, the standby sends nothing', T, async () => {
    const redis = await startRedis();
    const [leader, standby] = await startPair(redis);
    const holder = await redis.cmd('GET', 'ssehub:broker:leader');
    const [, pid, epoch] = holder.match(/^.+:(\d+):(\d+)$/);
    assert.equal(Number(pid), leader.pid, `the lease names the leader: ${holder}`);
    assert.equal(logsOf(standby, 'standby')[0].leader, holder);
    const published = new Map(['x1', 'x2', 'x3'].map((t) => [t, Array.from({ length: 200 }, (_, i) => `${t}-${i}`)]));
    const c = await redis.client();
    const receivers = await Promise.all([...published].flatMap(([t, l]) => l.map((p) => c.cmd('PUBLISH', `sse:${t}`, p))));
    assert.ok(receivers.every((n) => n === 2), 'both brokers subscribed');
    assertExactlyOnce(await settle(redis, published));
    assert.equal((await hash(redis, metaKey('x1'))).epoch, epoch, 'writes carry the leader epoch');
    assert.equal((await standby.stop()).code, 0);
    assert.equal(logsOf(standby, 'stopped')[0].sent, 0, 'the standby wrote nothing');
    assert.equal((await leader.stop()).code, 0);
    const stopped = logsOf(leader, 'stopped')[0];
    assert.equal(stopped.ingested, 600);
    assert.equal(stopped.duplicates, 0);
    assert.equal(await redis.cmd('EXISTS', 'ssehub:broker:leader'), 0, 'released on a clean stop');
  });

  test('SIGKILL of the leader at ~200 msg/s: the standby takes over within the lease, nothing lost or doubled', T, async (t) => {
    const redis = await startRedis();
    const [leader, standby] = await startPair(redis);
    const plainClient = await redis.client();
    const directClient = await redis.client();
    const plain = startFlow({ rate: 200, topics: ['k1', 'k2', 'k3', 'k4'], send: plainSend(plainClient) });
    const direct = startFlow({
      rate: 100,
      topics: ['direct'],
      send: (topic, payload) => directClient.cmd('FCALL', 'ssehub_publish', '1', streamKey(topic), payload),
    });
    await sleep(1500);
    const killedAt = Date.now();
    const publishedBeforeKill = plain.count;
    await leader.kill('SIGKILL');
    const acquired = await standby.waitForLog('lease acquired', { timeout: 10000 });
    const takeoverMs = Date.parse(acquired.ts) - killedAt;
    await sleep(2000);
    const plainOutcomes = await plain.stop();
    const directOutcomes = await direct.stop();
    assert.ok(plainOutcomes.every((o) => o.ok), 'every PUBLISH was accepted by Redis');

    const handover = await standby.waitForLog('handover complete', { timeout: 15000 });
    const r = await settle(redis, plain.published);
    t.diagnostic(`takeover ${takeoverMs} ms after SIGKILL (lease ${LEASE} ms); ${r.published} plain PUBLISH ` +
      `messages (${publishedBeforeKill} before the kill); the standby re-sent ${handover.buffered} buffered ` +
      `messages: ${handover.stored} had not been stored by the killed leader (the loss window without the ` +
      `handover), ${handover.duplicates} had; lost: ${r.lost}, stored twice: ${r.duplicates}`);
    assert.ok(takeoverMs <= LEASE + 750, `took over ${takeoverMs} ms after the kill`);
    assert.ok(acquired.epoch > 0 && acquired.buffered > 0);
    assert.ok(handover.stored > 0, 'messages published while nobody led were recovered from the buffer');
    assert.equal(handover.not_stored, 0);
    assertExactlyOnce(r);

    // the direct FCALL path has no broker on it: every call answered with an id, all stored once
    assert.ok(directOutcomes.length > 300);
    assert.ok(directOutcomes.every((o) => o.ok && /^\d+-\d+$/.test(o.r)), 'every FCALL returned an entry id');
    assert.deepEqual(await dataOf(redis, 'direct'), direct.published.get('direct'));
    assert.equal((await standby.stop()).code, 0);
  });

  test('a leader SIGSTOPped past its lease, then resumed, writes nothing more: nothing stored twice', T, async (t) => {
    const redis = await startRedis();
    const [leader, standby] = await startPair(redis);
    const client = await redis.client();
    const flow = startFlow({ rate: 200, topics: ['s1', 's2'], send: plainSend(client) });
    await sleep(800);
    leader.proc.kill('SIGSTOP');
    const pausedAt = Date.now();
    const acquired = await standby.waitForLog('lease acquired', { timeout: 10000 });
    await sleep(700); // the new leader writes both topics with its epoch
    const since = leader.jsonLogs().length;
    leader.proc.kill('SIGCONT');
    const lost = await leader.waitForLog('lease lost', { since, timeout: 10000 });
    await leader.waitForLog('standby', { since, timeout: 10000 });
    await sleep(1000);
    await flow.stop();
    const r = await settle(redis, flow.published);
    assert.equal((await leader.stop()).code, 0);
    const stopped = logsOf(leader, 'stopped')[0];
    t.diagnostic(`paused ${Date.parse(acquired.ts) - pausedAt} ms before the standby took over; the resumed ` +
      `leader stepped down ("${lost.reason}") having sent ${lost.sent}, sent ${stopped.sent} in all, ` +
      `${stopped.fenced} refused by fencing; lost ${r.lost}, stored twice ${r.duplicates}`);
    assert.ok(['expired', 'fenced', 'taken'].includes(lost.reason), lost.reason);
    assert.equal(stopped.sent, lost.sent, 'no write after the lease ran out on its own clock');
    assert.equal(logsOf(leader, 'lease acquired').length, 1, 'it did not lead again');
    assertExactlyOnce(r);
    assert.equal((await standby.stop()).code, 0);
  });

  test("a deposed leader's late writes are fenced in Redis", T, async (t) => {
    const redis = await startRedis();
    const proxy = await startTcpProxy(redis.port);
    const [leader, standby] = await startPair(redis, { leaderUrl: proxy.url });
    const cmdConn = await proxy.waitForConnection((c) => c.sent().includes('FUNCTION'));
    // the lease has a connection of its own (renewals never wait behind
    // publish calls): its handshake is a bare PING
    const leaseConn = await proxy.waitForConnection((c) => c.sent().includes('PING') &&
      !c.sent().includes('FUNCTION') && !c.sent().includes('SUBSCRIBE'));
    const client = await redis.client();
    const warmup = Array.from({ length: 20 }, (_, i) => `f-w${i}`);
    await Promise.all(warmup.map((p) => client.cmd('PUBLISH', 'sse:f', p)));
    await waitFor(async () => (await redis.cmd('XLEN', streamKey('f'))) === 20, { what: 'the warm-up stored' });
    // the leader's writes (publish calls and renewals) now stall on the way to Redis
    cmdConn.holdSent();
    leaseConn.holdSent();
    const flow = startFlow({ rate: 100, topics: ['f'], send: plainSend(client) });
    const lost = await leader.waitForLog('lease lost', { timeout: 10000 });
    await standby.waitForLog('lease acquired', { timeout: 10000 });
    await standby.waitForLog('handover complete', { timeout: 10000 });
    assert.ok(cmdConn.heldSent > 0, 'the old leader sent calls that did not arrive');
    cmdConn.releaseSent(); // they arrive now, after the new leader wrote the topic
    leaseConn.releaseSent();
    await waitFor(() => logsOf(leader, 'standby').length > 0, { what: 'the old leader standing by' });
    await sleep(500);
    await flow.stop();
    flow.published.get('f').unshift(...warmup);
    const r = await settle(redis, flow.published);
    assert.equal((await leader.stop()).code, 0);
    const stopped = logsOf(leader, 'stopped')[0];
    t.diagnostic(`old leader: lease lost ("${lost.reason}") with ${lost.sent} sent; ${stopped.fenced} late ` +
      `writes refused by the fence; lost ${r.lost}, stored twice ${r.duplicates}`);
    assert.equal(lost.reason, 'expired');
    assert.ok(stopped.fenced > 0, 'late writes were refused with ERR ssehub: fenced');
    assert.equal(stopped.sent, lost.sent, 'nothing sent after the lease ran out');
    assertExactlyOnce(r);
    assert.equal((await standby.stop()).code, 0);
  });

  test('clean shutdown releases the lease: the standby takes over at once, nothing lost', T, async (t) => {
    const redis = await startRedis();
    const long = ['--broker-lease-ms', '10000', '--history-max-events', '100000'];
    const [leader, standby] = await startPair(redis, { args: long });
    const client = await redis.client();
    const flow = startFlow({ rate: 200, topics: ['c1', 'c2'], send: plainSend(client) });
    await sleep(800);
    const stopping = leader.stop();
    const released = await leader.waitForLog('lease released', { timeout: 10000 });
    const acquired = await standby.waitForLog('lease acquired', { timeout: 10000 });
    assert.deepEqual(await stopping, { code: 0, signal: null });
    await sleep(800);
    await flow.stop();
    const r = await settle(redis, flow.published);
    const gap = Date.parse(acquired.ts) - Date.parse(released.ts);
    t.diagnostic(`the standby took over ${gap} ms after the release (lease 10000 ms); lost ${r.lost}`);
    assert.ok(gap < 2000, `took over ${gap} ms after the release, not after the lease ran out`);
    assert.equal(logsOf(leader, 'stopped')[0].dropped, 0);
    assertExactlyOnce(r);
    assert.equal((await standby.stop()).code, 0);
  });

  test('brokers with other ingest prefixes are reported', T, async () => {
    const redis = await startRedis();
    const a = await startBroker(redis, { args: ARGS });
    await startBroker(redis, { args: [...ARGS, '--ingest-prefix', 'other:'] });
    const line = await a.waitForLog((o) => o.level === 'error' && /other ingest prefixes/.test(o.msg));
    assert.equal(line.theirs, 'other:* ssejson:*');
  });
});

describe('one broker', () => {
  test('an older library without fence/in (loaded by an older process) is replaced and the call re-sent', T, async () => {
    const redis = await startRedis();
    const broker = await startBroker(redis);
    const older = [
      '#!lua name=ssehub_1',
      "redis.register_function('ssehub_publish', function(keys, args)",
      "  for i = 2, #args, 2 do",
      "    if args[i] ~= 'maxlen' and args[i] ~= 'maxage' then",
      "      return redis.error_reply('ERR ssehub: unknown option ' .. args[i])",
      '    end',
      '  end',
      "  return redis.call('XADD', keys[1], '*', 'data', args[1])",
      'end)',
    ].join('\n');
    assert.equal(await redis.cmd('FUNCTION', 'LOAD', 'REPLACE', older), 'ssehub_1');
    const since = broker.jsonLogs().length;
    await redis.cmd('PUBLISH', 'sse:old', 'after the downgrade');
    assertExactlyOnce(await settle(redis, new Map([['old', ['after the downgrade']]])));
    await broker.waitForLog('function library reloaded', { since });
    const [lib] = await redis.cmd('FUNCTION', 'LIST', 'LIBRARYNAME', 'ssehub_1');
    const names = lib[lib.indexOf('functions') + 1].map((f) => f[f.indexOf('name') + 1]);
    assert.ok(names.includes('ssehub_lease_renew'), `the broker's library is back: ${names}`);
    assert.equal((await broker.stop()).code, 0);
    assert.equal(logsOf(broker, 'stopped')[0].publish_errors, 0);
  });

  test('calls re-sent after a lost reply are not stored twice', T, async () => {
    const redis = await startRedis();
    const proxy = await startTcpProxy(redis.port);
    const broker = await startBroker(null, { redisUrl: proxy.url });
    const cmdConn = await proxy.waitForConnection((c) => c.sent().includes('FUNCTION'));
    cmdConn.hold(); // Redis executes the calls, the broker never hears back
    const first = Array.from({ length: 100 }, (_, i) => `r-${i}`);
    const c = await redis.client();
    await Promise.all(first.map((p) => c.cmd('PUBLISH', 'sse:r', p)));
    await waitFor(async () => (await redis.cmd('XLEN', streamKey('r'))) === 100, { what: '100 stored' });
    const since = broker.jsonLogs().length;
    cmdConn.destroy(); // the answers are lost with the connection: the broker re-sends all 100
    await broker.waitForLog('function library loaded', { since });
    const second = Array.from({ length: 10 }, (_, i) => `r-${100 + i}`);
    await Promise.all(second.map((p) => c.cmd('PUBLISH', 'sse:r', p)));
    assertExactlyOnce(await settle(redis, new Map([['r', [...first, ...second]]])));
    assert.equal((await broker.stop()).code, 0);
    const stopped = logsOf(broker, 'stopped')[0];
    assert.equal(stopped.duplicates, 100, 'the re-sent calls were answered DUPLICATE');
    assert.equal(stopped.ingested, 10);
    assert.equal(stopped.sent, 210);
  });
});
