// A silent partition between a node and Redis (packets dropped, no RST:
// the common cloud failure), on real separate hosts: the node runs in its
// own network namespace, joined to the test's by a veth pair, and the
// partition is an iptables DROP of its Redis traffic. The node must notice
// within its probe bound (~3 s), report not-ready, keep its clients, and
// after the heal deliver what was published meanwhile, exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startRedis, spawnProcess, freePort, waitFor, cleanupAll, buildDir, sleep } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

const tag = String(process.pid % 100000);
const ns = `ssehub-p${tag}`;
const vethHost = `vsh${tag}a`, vethNode = `vsh${tag}b`;
const hostIp = '10.211.77.1', nodeIp = '10.211.77.2';
const sh = (...args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const inNs = (...args) => sh('ip', 'netns', 'exec', ns, ...args);

let redis, node, nodeUrl;

before(async () => {
  sh('ip', 'netns', 'add', ns);
  sh('ip', 'link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNode);
  sh('ip', 'link', 'set', vethNode, 'netns', ns);
  sh('ip', 'addr', 'add', `${hostIp}/24`, 'dev', vethHost);
  sh('ip', 'link', 'set', vethHost, 'up');
  inNs('ip', 'addr', 'add', `${nodeIp}/24`, 'dev', vethNode);
  inNs('ip', 'link', 'set', vethNode, 'up');
  inNs('ip', 'link', 'set', 'lo', 'up');
  redis = await startRedis({ args: ['--bind', '127.0.0.1', hostIp, '--protected-mode', 'no'] });
  const port = await freePort();
  nodeUrl = `http://${nodeIp}:${port}`;
  node = spawnProcess('ip', ['netns', 'exec', ns, path.join(buildDir, 'ssehub-node'), '--threads', '1',
    '--redis-url', `redis://${hostIp}:${redis.port}`, '--listen', `${nodeIp}:${port}`], { name: 'node-in-netns' });
  await waitFor(async () => (await fetch(`${nodeUrl}/readyz`).catch(() => null))?.status === 200,
    { timeout: 15000, what: 'node in its namespace ready' });
});

after(async () => {
  await cleanupAll();
  try { sh('ip', 'netns', 'del', ns); } catch { /* already gone */ }
  try { sh('ip', 'link', 'del', vethHost); } catch { /* removed with the namespace */ }
});

const publish = (data) => redis.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{part}:s', data);
const messages = (s) => s.events.filter((e) => e.type === 'message').map((e) => e.data);
const dropRules = (op) => {
  inNs('iptables', op, 'OUTPUT', '-p', 'tcp', '-d', hostIp, '--dport', String(redis.port), '-j', 'DROP');
  inNs('iptables', op, 'INPUT', '-p', 'tcp', '-s', hostIp, '--sport', String(redis.port), '-j', 'DROP');
};

test('silent partition from Redis: detected within the probe bound, healed without loss', async () => {
  const s = await rawSse(`${nodeUrl}/events?topic=part`, { timeout: 60000 });
  await waitFor(() => s.events.length, { what: 'cursor event' });
  await publish('before');
  await waitFor(() => messages(s).length === 1, { what: 'first event' });

  dropRules('-A');
  const t0 = Date.now();
  await waitFor(async () => (await fetch(`${nodeUrl}/readyz`)).status === 503, { timeout: 8000, what: 'partition noticed' });
  const noticed = Date.now() - t0;
  console.log(`partition noticed after ${noticed} ms`);
  assert.ok(noticed <= 5000, `noticed within the documented ~3 s bound (plus slack): ${noticed} ms`);
  await publish('during-1');
  await publish('during-2');
  await sleep(500);
  assert.equal(s.isEnded, false, 'the client stays connected through the partition');

  dropRules('-D');
  await waitFor(async () => (await fetch(`${nodeUrl}/readyz`)).status === 200, { timeout: 15000, what: 'relinked' });
  await publish('after');
  await waitFor(() => messages(s).length === 4, { timeout: 10000, what: `all events (${messages(s)})` });
  await sleep(200);
  assert.deepEqual(messages(s), ['before', 'during-1', 'during-2', 'after']);
  assert.equal(s.isEnded, false);
  s.close();
});
