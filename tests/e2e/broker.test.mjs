// End-to-end tests of ssehub-broker against a real redis-server: plain and
// JSON ingest, the stored entries and live netstring messages, refusals,
// key escaping, pipelined bursts, AUTH/ACL, reloading the Function library,
// reconnecting after connection loss and Redis restarts, draining on
// SIGTERM, and bad settings. Every wait is bounded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import {
  buildDir, cleanupAll, spawnProcess, startBroker, startRedis, startTcpProxy, waitFor,
} from './lib/harness.mjs';

after(cleanupAll);

const T = { timeout: 60000 };

// Returns the entries of a stream as [{id, fields: [name, value, ...], f: {name: value}}].
async function entries(redis, key, client = null) {
  const rows = await (client || redis).cmd('XRANGE', key, '-', '+');
  return rows.map(([id, fields]) => {
    const f = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    return { id, fields, f };
  });
}

// Resolves with the entries once the stream holds at least n.
function waitEntries(redis, key, n, { timeout = 15000, client = null } = {}) {
  return waitFor(async () => {
    const e = await entries(redis, key, client);
    return e.length >= n && e;
  }, { timeout, what: `${n} entries in ${key}` });
}

// Returns the netstring of a string or Buffer.
function netstring(x) {
  const b = Buffer.isBuffer(x) ? x : Buffer.from(String(x));
  return Buffer.concat([Buffer.from(`${b.length}:`), b, Buffer.from(',')]);
}

// Publishes many messages at once (pipelined on one connection).
function publishAll(redis, channel, payloads) {
  return Promise.all(payloads.map((p) => redis.cmd('PUBLISH', channel, p)));
}

// Asserts the entries hold the expected data in order, each linked to the one before by prev.
function assertInOrder(list, expected) {
  assert.equal(list.length, expected.length);
  assert.deepEqual(list.map((e) => e.f.data), expected);
  for (let i = 1; i < list.length; i++) assert.equal(list[i].f.prev, list[i - 1].id, `prev of entry ${i}`);
}

describe('ingest', () => {
  let redis, broker;
  before(async () => {
    redis = await startRedis();
    broker = await startBroker(redis, { args: ['--history-max-events', '100000'] });
  });

  test('PUBLISH sse:<topic> stores the data verbatim with prev', T, async () => {
    assert.equal(await redis.cmd('PUBLISH', 'sse:news', 'hello'), 1, 'the broker is subscribed');
    const [first] = await waitEntries(redis, 'ssehub:{news}:s', 1);
    assert.deepEqual(first.fields, ['data', 'hello', 'prev', '0-0']);
    await redis.cmd('PUBLISH', 'sse:news', 'world');
    const list = await waitEntries(redis, 'ssehub:{news}:s', 2);
    assert.deepEqual(list[1].fields, ['data', 'world', 'prev', first.id]);
    assert.ok(await redis.cmd('PTTL', 'ssehub:{news}:s') > 0, 'the stream expires when quiet');
  });

  test('the live channel carries the exact netstring message, binary safe', T, async () => {
    const sub = await redis.client({ buffers: true });
    const got = [];
    await sub.subscribe('ssehub:{live}:l', (payload) => got.push(payload));
    const payload = Buffer.concat([Buffer.from('a,b:c\r\n'), Buffer.from([0]), Buffer.from('z 日本 12:x,')]);
    await redis.cmd('PUBLISH', 'sse:live', payload);
    await waitFor(() => got.length === 1, { what: 'the live message' });
    const [entry] = await waitEntries(redis, 'ssehub:{live}:s', 1);
    const stored = await redis.cmdBuffers('XRANGE', 'ssehub:{live}:s', '-', '+');
    assert.deepEqual(stored[0][1][1], payload, 'stored data is byte-exact');
    assert.deepEqual(got[0], Buffer.concat([netstring(entry.id), netstring('data'), netstring(payload)]));
    sub.close();
  });

  test('ssejson: sets type, retry and mid, in both the entry and the live message', T, async () => {
    const sub = await redis.client({ buffers: true });
    const got = [];
    await sub.subscribe('ssehub:{j}:l', (payload) => got.push(payload));
    const event = { data: 'line1\nline2', type: 'update', retry: 2500, id: 'pub-1' };
    await redis.cmd('PUBLISH', 'ssejson:j', JSON.stringify(event));
    await redis.cmd('PUBLISH', 'ssejson:j', JSON.stringify({ data: 'only data' }));
    const list = await waitEntries(redis, 'ssehub:{j}:s', 2);
    assert.deepEqual(list[0].fields,
      ['data', 'line1\nline2', 'type', 'update', 'retry', '2500', 'mid', 'pub-1', 'prev', '0-0']);
    assert.deepEqual(list[1].fields, ['data', 'only data', 'prev', list[0].id]);
    await waitFor(() => got.length === 2, { what: 'two live messages' });
    assert.equal(got[0].toString(), Buffer.concat([netstring(list[0].id), netstring('data'),
      netstring('line1\nline2'), netstring('type'), netstring('update'), netstring('retry'),
      netstring('2500'), netstring('mid'), netstring('pub-1')]).toString());
    sub.close();
  });

  test('topics with {, } and % map to escaped keys', T, async () => {
    await redis.cmd('PUBLISH', 'sse:a{b}%c', 'x1');
    await redis.cmd('PUBLISH', 'sse:%7B', 'x2');
    await redis.cmd('PUBLISH', 'ssejson:{}', JSON.stringify({ data: 'x3' }));
    assert.equal((await waitEntries(redis, 'ssehub:{a%7Bb%7D%25c}:s', 1))[0].f.data, 'x1');
    assert.equal((await waitEntries(redis, 'ssehub:{%257B}:s', 1))[0].f.data, 'x2');
    assert.equal((await waitEntries(redis, 'ssehub:{%7B%7D}:s', 1))[0].f.data, 'x3');
    assert.equal(await redis.cmd('EXISTS', 'ssehub:{a{b}%c}:s'), 0);
  });

  test('malformed JSON and bad topics are not stored, and are logged', T, async () => {
    const before = new Set(await redis.cmd('KEYS', '*'));
    const since = broker.jsonLogs().length;
    const bad = [
      ['ssejson:bad', '{not json'],
      ['ssejson:bad', JSON.stringify({ data: 1 })],
      ['ssejson:bad', JSON.stringify({ data: 'x', extra: true })],
      ['ssejson:bad', JSON.stringify({ data: 'x', type: 'a\nb' })],
      ['ssejson:bad', JSON.stringify({ data: 'x', retry: -5 })],
      [Buffer.concat([Buffer.from('sse:'), Buffer.from([0xff, 0xfe])]), 'bad utf8'],
      [Buffer.concat([Buffer.from('sse:'), Buffer.from([0xed, 0xa0, 0x80])]), 'surrogate'],
      ['sse:', 'empty topic'],
      ['sse:a\u0001b', 'control'],
      ['sse:a\u0085b', 'C1 control'],
      [`sse:${'x'.repeat(1025)}`, 'too long'],
    ];
    for (const [channel, payload] of bad) assert.equal(await redis.cmd('PUBLISH', channel, payload), 1);
    // a good message after them: once it is stored, the bad ones were handled
    await redis.cmd('PUBLISH', 'sse:marker', 'after');
    await waitEntries(redis, 'ssehub:{marker}:s', 1);
    const added = (await redis.cmd('KEYS', '*')).filter((k) => !before.has(k));
    assert.deepEqual(added.sort(), ['ssehub:{marker}:m', 'ssehub:{marker}:s'], 'the stream and its metadata');

    const logs = () => broker.jsonLogs().slice(since);
    const has = (msg, reason, channelPart) => logs().some((o) => o.msg === msg && o.reason === reason &&
      typeof o.channel === 'string' && o.channel.includes(channelPart));
    await waitFor(() => has('refused topic', 'bad_utf8', 'sse:\\xFF\\xFE'), { what: 'bad_utf8 log' });
    assert.ok(has('refused topic', 'empty', 'sse:'));
    assert.ok(has('refused topic', 'control_char', 'sse:a'));
    assert.ok(has('refused topic', 'too_long', 'sse:xxx'));
    assert.ok(has('malformed json', 'invalid JSON', 'ssejson:bad'));
    assert.ok(has('malformed json', 'data must be a string', 'ssejson:bad'));
    assert.ok(has('malformed json', 'unknown key', 'ssejson:bad'));
    assert.ok(has('malformed json', 'bad type', 'ssejson:bad'));
  });

  test('identical refusals are rate-limited with a suppressed count', T, async () => {
    await new Promise((r) => setTimeout(r, 1100)); // earlier tests logged this reason too
    const since = broker.jsonLogs().length;
    for (let i = 0; i < 50; i++) await redis.cmd('PUBLISH', 'ssejson:flood', '[');
    await redis.cmd('PUBLISH', 'sse:flood-marker', 'x');
    await waitEntries(redis, 'ssehub:{flood-marker}:s', 1);
    const lines = () => broker.jsonLogs().slice(since).filter((o) => o.channel === 'ssejson:flood');
    assert.ok(lines().length >= 1 && lines().length <= 2, `${lines().length} lines for 50 refusals`);
    assert.equal(lines()[0].suppressed, 0);
    // after a second the next one is logged with the count held back: every refusal is accounted for
    await new Promise((r) => setTimeout(r, 1100));
    await redis.cmd('PUBLISH', 'ssejson:flood', '[');
    await waitFor(() => lines().reduce((n, o) => n + 1 + o.suppressed, 0) === 51,
      { what: 'all 51 refusals logged or counted as suppressed' });
    assert.ok(lines().at(-1).suppressed > 0);
  });

  test('5,000 messages published in a burst are all stored in order', T, async () => {
    const payloads = Array.from({ length: 5000 }, (_, i) => `m${i}`);
    const started = Date.now();
    const receivers = await publishAll(redis, 'sse:burst', payloads);
    assert.ok(receivers.every((n) => n === 1));
    const list = await waitEntries(redis, 'ssehub:{burst}:s', 5000, { timeout: 30000 });
    assertInOrder(list, payloads);
    assert.ok(Date.now() - started < 30000);
  });

  test('FUNCTION DELETE while running: the library is reloaded and the next messages stored', T, async () => {
    const since = broker.jsonLogs().length;
    assert.equal(await redis.cmd('FUNCTION', 'DELETE', 'ssehub_1'), 'OK');
    const payloads = Array.from({ length: 300 }, (_, i) => `r${i}`);
    await publishAll(redis, 'sse:reload', payloads);
    assertInOrder(await waitEntries(redis, 'ssehub:{reload}:s', 300), payloads);
    const libs = await redis.cmd('FUNCTION', 'LIST', 'LIBRARYNAME', 'ssehub_1');
    assert.equal(libs.length, 1, 'the library is loaded again');
    await broker.waitForLog('function library reloaded', { since });
  });

  test('command connection killed: messages are queued and sent after reconnecting, in order', T, async () => {
    const since = broker.jsonLogs().length;
    assert.ok(await redis.cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes') >= 1);
    const payloads = Array.from({ length: 500 }, (_, i) => `q${i}`);
    await publishAll(redis, 'sse:queued', payloads);
    assertInOrder(await waitEntries(redis, 'ssehub:{queued}:s', 500), payloads);
    await broker.waitForLog((o) => o.msg === 'disconnected' && o.link === 'command', { since });
    await broker.waitForLog('function library loaded', { since });
  });

  test('Redis killed with SIGKILL and restarted on the same port: the broker reconnects', T, async () => {
    const since = broker.jsonLogs().length;
    await redis.kill('SIGKILL');
    await broker.waitForLog((o) => o.msg === 'disconnected' && o.link === 'subscriber', { since });
    await redis.restart();
    await broker.waitForLog('resubscribed', { since, timeout: 15000 });
    await broker.waitForLog('function library loaded', { since, timeout: 15000 });
    assert.equal(await redis.cmd('PUBLISH', 'sse:after', 'back'), 1);
    assert.equal((await waitEntries(redis, 'ssehub:{after}:s', 1))[0].f.data, 'back');
  });

  test('SIGTERM: exits 0 and logs its counters', T, async () => {
    const r = await broker.stop();
    assert.deepEqual(r, { code: 0, signal: null });
    const stopped = broker.jsonLogs().find((o) => o.msg === 'stopped');
    assert.ok(stopped, 'a stopped line');
    assert.ok(stopped.ingested >= 5000 + 300 + 500 + 1);
    assert.ok(stopped.refused_topic >= 6);
    assert.ok(stopped.malformed_json >= 5 + 51);
    assert.equal(stopped.dropped, 0);
  });
});

describe('order across a library reload', () => {
  test('"not found" answers interleaved with new messages are resent in arrival order', T, async () => {
    const redis = await startRedis();
    const proxy = await startTcpProxy(redis.port);
    const broker = await startBroker(null, { redisUrl: proxy.url });
    const cmdConn = await proxy.waitForConnection((c) => c.sent().includes('FUNCTION'));
    const subConn = await proxy.waitForConnection((c) => c.sent().includes('PSUBSCRIBE'));
    assert.equal(await redis.cmd('FUNCTION', 'DELETE', 'ssehub_1'), 'OK');
    // Hold the command connection's answers while A goes out, then let the
    // first 10 "not found" answers through: the broker starts a reload and
    // queues C behind it; then the other 90 answers arrive after C.
    cmdConn.hold();
    const a = Array.from({ length: 100 }, (_, i) => `a${i}`);
    const notFound = Buffer.byteLength('-ERR Function not found\r\n');
    await publishAll(redis, 'sse:order', a);
    await waitFor(() => cmdConn.held >= 100 * notFound, { what: '100 held answers' });
    cmdConn.release(10 * notFound);
    await broker.waitForLog('function library missing, reloading');
    const c = Array.from({ length: 100 }, (_, i) => `c${i}`);
    await publishAll(redis, 'sse:order', c);
    await waitFor(() => subConn.received().includes('c99'), { what: 'C forwarded to the broker' });
    await new Promise((r) => setTimeout(r, 100)); // and read by it
    cmdConn.release();
    assertInOrder(await waitEntries(redis, 'ssehub:{order}:s', 200), [...a, ...c]);
    assert.equal((await broker.stop()).code, 0);
    const stopped = broker.jsonLogs().find((o) => o.msg === 'stopped');
    assert.equal(stopped.ingested, 200);
    assert.equal(stopped.publish_errors, 0);
  });
});

describe('event size', () => {
  test('data over max_event_bytes is refused, counted and logged; the function refuses it too', T, async () => {
    const redis = await startRedis();
    const broker = await startBroker(redis, { args: ['--max-event-bytes', '2048'] });
    await redis.cmd('PUBLISH', 'sse:size', 'x'.repeat(2049));
    await redis.cmd('PUBLISH', 'ssejson:size', JSON.stringify({ data: 'y'.repeat(4000) }));
    await redis.cmd('PUBLISH', 'sse:size', 'x'.repeat(2048));
    const stored = await waitEntries(redis, 'ssehub:{size}:s', 1);
    assert.equal(stored.length, 1);
    assert.equal(stored[0].f.data.length, 2048);
    const line = await broker.waitForLog('event too large');
    assert.match(line.reason, /2049 bytes of data/);
    assert.equal((await broker.stop()).code, 0);
    assert.equal(broker.jsonLogs().find((o) => o.msg === 'stopped').oversized, 2);
    // a direct FCALL: 1 MiB unless maxbytes says otherwise
    await assert.rejects(redis.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{size}:s', 'z'.repeat(1048577)), /more than maxbytes 1048576/);
    await assert.rejects(redis.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{size}:s', 'z'.repeat(11), 'maxbytes', '10'), /more than maxbytes 10/);
    assert.match(await redis.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{size}:s', 'z'.repeat(10), 'maxbytes', '10'), /^\d+-\d+$/);
  });
});

describe('queue bound', () => {
  test('the queue is bounded in bytes: the newest messages beyond it are dropped, counted and logged', T, async () => {
    const redis = await startRedis();
    const proxy = await startTcpProxy(redis.port);
    const broker = await startBroker(null, {
      redisUrl: proxy.url, args: ['--broker-queue-bytes', '1048576', '--history-max-events', '100000'],
    });
    const cmdConn = await proxy.waitForConnection((c) => c.sent().includes('FUNCTION'));
    // Redis stops receiving the broker's calls: 10,000 small ones fill the
    // in-flight window, then 200 of 8 KB wait in the 1 MiB queue.
    cmdConn.holdSent();
    const small = Array.from({ length: 10000 }, (_, i) => `s${i}`);
    await publishAll(redis, 'sse:bound', small);
    const big = Array.from({ length: 200 }, (_, i) => `b${i}:`.padEnd(8192, 'x'));
    await publishAll(redis, 'sse:bound', big);
    await broker.waitForLog('queue full, message dropped');
    cmdConn.releaseSent();
    await waitFor(async () => {
      const n = await redis.cmd('XLEN', 'ssehub:{bound}:s');
      return n >= 10000 && n === (await redis.cmd('XLEN', 'ssehub:{bound}:s')) && n;
    }, { what: 'the held calls stored' });
    await new Promise((r) => setTimeout(r, 300));
    const stored = await entries(redis, 'ssehub:{bound}:s');
    const kept = stored.length - small.length;
    // 1 MiB holds about 120 messages of 8 KB (each counts its data, keys and header)
    assert.ok(kept >= 100 && kept < 128, `${kept} of the big messages kept`);
    assertInOrder(stored, [...small, ...big.slice(0, kept)]);
    assert.equal((await broker.stop()).code, 0);
    const stopped = broker.jsonLogs().find((o) => o.msg === 'stopped');
    assert.equal(stopped.dropped, big.length - kept);
    assert.equal(stopped.ingested, stored.length);
  });
});

describe('draining on SIGTERM', () => {
  test('in-flight and queued messages are stored before exit', T, async () => {
    const redis = await startRedis();
    const broker = await startBroker(redis, { args: ['--history-max-events', '100000'] });
    const payloads = Array.from({ length: 3000 }, (_, i) => `d${i}`);
    // PUBLISH and CLIENT PAUSE in one pipeline: the broker's FCALLs for the
    // last messages (at least) are held by the pause, so replies are still
    // owed when SIGTERM comes and the broker must wait for them.
    const c = await redis.client();
    await Promise.all([...payloads.map((p) => c.cmd('PUBLISH', 'sse:drain', p)),
      c.cmd('CLIENT', 'PAUSE', '1000', 'WRITE')]);
    await new Promise((r) => setTimeout(r, 200)); // the broker has read them all by now
    assert.ok(await redis.cmd('XLEN', 'ssehub:{drain}:s') < 3000, 'some are held by the pause');
    const started = Date.now();
    const r = await broker.stop();
    assert.deepEqual(r, { code: 0, signal: null });
    assert.ok(Date.now() - started < 6000, 'at most 5 s of draining');
    const stopped = broker.jsonLogs().find((o) => o.msg === 'stopped');
    assert.equal(stopped.dropped, 0);
    assert.equal(stopped.publish_errors, 0);
    assert.equal(stopped.ingested, 3000);
    assertInOrder(await entries(redis, 'ssehub:{drain}:s'), payloads);
  });

  test('gives up after 5 s when Redis does not answer: exits 0, the rest counted as dropped', T, async () => {
    const redis = await startRedis();
    const broker = await startBroker(redis);
    const c = await redis.client();
    const payloads = Array.from({ length: 100 }, (_, i) => `s${i}`);
    await Promise.all([...payloads.map((p) => c.cmd('PUBLISH', 'sse:stuck', p)),
      c.cmd('CLIENT', 'PAUSE', '15000', 'WRITE')]);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    assert.deepEqual(await broker.stop(), { code: 0, signal: null });
    const took = Date.now() - started;
    assert.ok(took >= 4500 && took < 9000, `stopped after ${took} ms`);
    await broker.waitForLog('drain timeout, giving up on unanswered messages');
    const stopped = broker.jsonLogs().find((o) => o.msg === 'stopped');
    assert.ok(stopped.dropped > 0);
    assert.equal(stopped.ingested + stopped.dropped, 100);
    await redis.cmd('CLIENT', 'UNPAUSE');
  });
});

describe('authentication', () => {
  test('password-protected Redis (--requirepass)', T, async () => {
    const redis = await startRedis({ args: ['--requirepass', 's3cret'] });
    const broker = await startBroker(redis, { redisUrl: `redis://:s3cret@127.0.0.1:${redis.port}` });
    await redis.cmd('PUBLISH', 'sse:auth', 'ok');
    assert.equal((await waitEntries(redis, 'ssehub:{auth}:s', 1))[0].f.data, 'ok');
    assert.equal((await broker.stop()).code, 0);
  });

  test('a wrong password is logged and retried, never ready', T, async () => {
    const redis = await startRedis({ args: ['--requirepass', 's3cret'] });
    const broker = spawnProcess(path.join(buildDir, 'ssehub-broker'),
      ['--redis-url', `redis://:n0tTheP4ss@127.0.0.1:${redis.port}`]);
    const refused = await broker.waitForLog('redis refused the connection setup');
    assert.match(refused.error, /WRONGPASS|invalid/i);
    assert.ok(!broker.jsonLogs().some((o) => o.msg === 'ready'));
    assert.ok(!broker.logs().some((l) => l.includes('n0tTheP4ss')), 'the password is never logged');
    assert.equal((await broker.stop()).code, 0);
  });

  test('an ACL user with a percent-encoded password and a database number', T, async () => {
    const redis = await startRedis({ args: ['--requirepass', 'admin'] });
    await redis.cmd('ACL', 'SETUSER', 'ingest', 'on', '>p@ss:w/rd', '~ssehub:*', '&*', '+@all');
    const url = `redis://ingest:${encodeURIComponent('p@ss:w/rd')}@127.0.0.1:${redis.port}/2`;
    const broker = await startBroker(redis, { redisUrl: url });
    await redis.cmd('PUBLISH', 'sse:acl', 'via acl');
    const db2 = await redis.client();
    await db2.cmd('SELECT', 2);
    assert.equal((await waitEntries(redis, 'ssehub:{acl}:s', 1, { client: db2 }))[0].f.data, 'via acl');
    assert.equal(await redis.cmd('EXISTS', 'ssehub:{acl}:s'), 0, 'nothing in db 0');
    assert.equal((await broker.stop()).code, 0);
  });
});

describe('settings', () => {
  test('when one ingest prefix is a prefix of the other, the longer one wins, once', T, async () => {
    const redis = await startRedis();
    const broker = await startBroker(redis, { args: ['--ingest-prefix', 'ev:', '--ingest-json-prefix', 'ev:json:'] });
    // both patterns match, so Redis delivers it twice; the broker must store it once
    assert.equal(await redis.cmd('PUBLISH', 'ev:json:t', JSON.stringify({ data: 'from json' })), 2);
    await redis.cmd('PUBLISH', 'ev:plain', 'from plain');
    await redis.cmd('PUBLISH', 'ev:json:t', JSON.stringify({ data: 'second' }));
    await waitEntries(redis, 'ssehub:{plain}:s', 1);
    const list = await waitEntries(redis, 'ssehub:{t}:s', 2);
    assert.deepEqual(list.map((e) => e.f.data), ['from json', 'second']);
    assert.equal(await redis.cmd('EXISTS', 'ssehub:{json:t}:s'), 0, 'not also stored as a plain topic');
    assert.equal((await broker.stop()).code, 0);
  });

  test('a bad setting exits 2 with a message naming it', T, async () => {
    const p = spawnProcess(path.join(buildDir, 'ssehub-broker'), ['--history-max-events', 'abc']);
    assert.equal((await p.exited).code, 2);
    assert.ok(p.logs().some((l) => l.includes('history_max_events')), p.logs().join('\n'));
  });

  test('equal ingest prefixes exit 2', T, async () => {
    const p = spawnProcess(path.join(buildDir, 'ssehub-broker'), [], { env: { SSEHUB_INGEST_JSON_PREFIX: 'sse:' } });
    assert.equal((await p.exited).code, 2);
    assert.ok(p.logs().some((l) => l.includes('ingest_prefix')));
  });

  test('--help exits 0', T, async () => {
    const p = spawnProcess(path.join(buildDir, 'ssehub-broker'), ['--help']);
    assert.equal((await p.exited).code, 0);
    assert.ok(p.logs().some((l) => l.includes('--redis-url')));
  });
});
