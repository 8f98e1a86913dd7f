// ssehub-node's settings: --help, refused values, SSEHUB_* environment, and
// Redis with a password and with an ACL user.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startRedis, startNode, startBroker, spawnProcess, waitFor, cleanupAll, buildDir } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

after(cleanupAll);
const nodeBin = path.join(buildDir, 'ssehub-node');

test('--help lists every setting with its flag, variable and default, and exits 0', async () => {
  const p = spawnProcess(nodeBin, ['--help']);
  const { code } = await p.exited;
  assert.equal(code, 0);
  const text = p.logs().join('\n');
  for (const s of ['listen', 'redis_url', 'threads', 'prefix', 'history_max_events', 'history_max_age',
    'heartbeat_interval', 'retry_ms', 'max_connections', 'max_topics_per_connection', 'max_topic_length',
    'client_buffer_bytes', 'replay_batch', 'log_level']) {
    assert.ok(text.includes(`--${s.replace(/_/g, '-')}`), `--help names --${s}`);
    assert.ok(text.includes(`SSEHUB_${s.toUpperCase()}`), `--help names SSEHUB_${s.toUpperCase()}`);
  }
  assert.ok(text.includes('0.0.0.0:8080'), 'defaults are shown');
});

test('a bad value stops start-up with exit 2 and a message naming the setting', async () => {
  const cases = [
    [['--heartbeat-interval', 'soon'], {}, /heartbeat_interval/],
    [['--listen', 'nowhere'], {}, /listen/],
    [[], { SSEHUB_MAX_TOPIC_LENGTH: '-1' }, /max_topic_length.*SSEHUB_MAX_TOPIC_LENGTH/],
    [['--redis-url', 'rediss://127.0.0.1:1'], {}, /redis_url/],
    [['--no-such-setting', '1'], {}, /no-such-setting/],
  ];
  for (const [args, env, re] of cases) {
    const p = spawnProcess(nodeBin, args, { env });
    const { code } = await p.exited;
    assert.equal(code, 2, `exit code for ${JSON.stringify(args)} ${JSON.stringify(env)}`);
    assert.match(p.logs().join('\n'), re);
  }
});

// Starts a node on the given Redis URL and proves a published event flows.
async function proveStream(publisher, url, env) {
  const node = await startNode(null, { env: { SSEHUB_REDIS_URL: url, ...env } });
  await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 200, { what: 'ready' });
  const s = await rawSse(`${node.url}/events?topic=auth`, { timeout: 10000 });
  await waitFor(() => s.events.length >= 1, { what: 'cursor event' });
  await publisher.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{auth}:s', 'secret stuff');
  await waitFor(() => s.events.some((e) => e.data === 'secret stuff'), { what: 'event through an authenticated link' });
  s.close();
  await node.stop();
}

test('Redis with a password, given through SSEHUB_REDIS_URL', async () => {
  const redis = await startRedis({ args: ['--requirepass', 'p@ss:word'] });
  await redis.cmd('FUNCTION', 'LOAD', 'REPLACE', await loadLua());
  await proveStream(redis, `redis://:${encodeURIComponent('p@ss:word')}@127.0.0.1:${redis.port}/0`);
  // A wrong password: the node runs, is not ready, and says why.
  const node = await startNode(null, { waitReady: false, env: { SSEHUB_REDIS_URL: `redis://:wrong@127.0.0.1:${redis.port}` } });
  await node.waitForLog((o) => o.msg === 'handshake failed' && o.step === 'AUTH', { timeout: 5000 });
  assert.equal((await fetch(`${node.url}/readyz`)).status, 503);
  assert.ok(!node.logs().join('\n').includes('wrong'), 'the password is never logged');
});

test('Redis ACL user and a non-zero database', async () => {
  const redis = await startRedis();
  await redis.cmd('ACL', 'SETUSER', 'edge', 'on', '>edge-secret', '~ssehub:*', '&*', '+@all');
  const db3 = await redis.client();
  await db3.cmd('SELECT', '3');
  // The node loads the library (functions are server-wide) and reads db 3.
  const url = `redis://edge:edge-secret@127.0.0.1:${redis.port}/3`;
  await proveStream({ cmd: (...a) => waitFor(() => db3.cmd(...a), { what: 'publish' }) }, url);
  assert.equal(Number(await db3.cmd('XLEN', 'ssehub:{auth}:s')), 1, 'history is in db 3');
  assert.equal(Number(await redis.cmd('XLEN', 'ssehub:{auth}:s')), 0, 'and not in db 0');
  db3.close();
});

async function loadLua() {
  const fs = await import('node:fs/promises');
  const { sourceDir } = await import('./lib/harness.mjs');
  return fs.readFile(path.join(sourceDir, 'broker/functions.lua'), 'utf8');
}

test('a Redis that may evict history gets a start-up warning from nodes and brokers; noeviction none', async () => {
  const evicting = await startRedis({ args: ['--maxmemory', '512mb', '--maxmemory-policy', 'allkeys-lru'] });
  const node = await startNode(evicting);
  const broker = await startBroker(evicting);
  for (const p of [node, broker]) {
    const line = await p.waitForLog('redis may evict history');
    assert.equal(line.maxmemory_policy, 'allkeys-lru');
    assert.equal(line.level, 'warn');
  }
  const safe = await startRedis({ args: ['--maxmemory-policy', 'noeviction'] });
  const quiet = await startNode(safe);
  const quietBroker = await startBroker(safe);
  // the check runs right after the link is up: give its answer time to come
  await new Promise((r) => setTimeout(r, 500));
  for (const p of [quiet, quietBroker]) {
    assert.ok(!p.jsonLogs().some((o) => o.msg === 'redis may evict history'), 'no warning with noeviction');
  }
});
