// A real Redis Cluster (and a Redis Sentinel group) on loopback for ssehub's
// end-to-end tests. Node 20, built-ins only; built on harness.mjs: every
// redis-server is a harness spawnProcess (killed by cleanupAll), and each
// cluster's temporary directory is removed by stop() or at process exit.
//
//   import { after } from 'node:test';
//   import { cleanupAll } from './lib/harness.mjs';
//   import { startRedisCluster, keySlot } from './lib/rediscluster.mjs';
//   after(cleanupAll);
//   const rc = await startRedisCluster({ masters: 3, replicas: 1 });
//   after(() => rc.stop());
//
// keySlot(key) -> 0..16383: the cluster hash slot of a key (string or Buffer):
//   CRC16-XMODEM of the key, or of the first non-empty {hash tag}, mod 16384.
// crc16(buf) -> the CRC16-XMODEM (CCITT, poly 0x1021, init 0) of a Buffer.
// patternSubscriberPorts(cluster) -> Promise<port[]>: the nodes where a client
//   holds PSUBSCRIBEs (the brokers').
// startClusterAsRedis({args}) -> Promise<redis>: a cluster behind the object
//   harness.startRedis returns (SSEHUB_TEST_REDIS=cluster; see below).
// seedUrl(portsOrNodes, {scheme = 'redis', host = '127.0.0.1', path = ''})
//   -> 'redis://127.0.0.1:P1,127.0.0.1:P2' (the multi-seed redis_url form).
//
// startRedisCluster({masters = 3, replicas = 1, nodeTimeoutMs = 1000,
//   appendonly = false, args = [], timeout = 30000}) -> Promise<cluster>:
//   starts masters * (1 + replicas) redis-server processes, each with its own
//   --dir (<tmp>/<port>), --cluster-config-file <tmp>/nodes-<port>.conf, a free
//   client port and a free cluster-bus port (--cluster-port, so the bus port
//   need not be port + 10000), --cluster-node-timeout nodeTimeoutMs,
//   --enable-debug-command yes, fast replication (repl-diskless-sync-delay 0,
//   repl-ping-replica-period 1: see FAST_REPLICATION) and then `args` (which
//   win, e.g. ['--cluster-require-full-coverage', 'no']); runs
//   `redis-cli --cluster create ... --cluster-replicas R --cluster-yes` and
//   resolves once every node reports cluster_state:ok, every node returns
//   the same CLUSTER SLOTS, all 16384 slots are covered and every master
//   lists R replicas (about 2.5 s after the create on an idle machine;
//   rejects with the nodes' last log lines otherwise). The object:
//     nodes[i]: {port, busPort, addr ('127.0.0.1:P'), dir, conf, id, role
//               ('master' | 'replica', as of the last refresh), masterPort
//               (replicas), proc, pid, running(), paused, logs(), killedAt, slotsAtKill}
//     masters(), replicas() -> nodes by their last known role
//     url                       'redis://127.0.0.1:<first node>'
//     seeds                     every node as a multi-seed url
//     seedUrl(portsOrNodes, opts)  the helper above
//     nodeByPort(port), slotsOf(node) -> Promise<[[start, end], ...]>
//     masterOf(key | {slot}) -> Promise<node>   the master serving the key's slot
//                                               (CLUSTER SLOTS of a live node)
//     replicasOf(node) -> Promise<node[]>
//     cli(port | node, ...args) -> Promise<string>  `redis-cli -h 127.0.0.1 -p P args`,
//                               stdout without the final newline (error replies
//                               are printed, not thrown: redis-cli exits 0); rejects
//                               when redis-cli fails with nothing on stdout
//                               (cannot connect). No -c: add it in args to follow MOVED.
//     cmd(port | node, ...args) -> Promise<reply>  one persistent resp.mjs
//                               connection per node (reconnected after restarts)
//     client(port | node, opts) -> Promise<resp client>  a new connection, closed by stop()
//     rawClient(port | node) -> Promise<raw>  see below (sharded pub/sub pushes)
//     clusterSlots(port | node) -> Promise<[{start, end, master: 'ip:port', replicas: ['ip:port']}]>
//     clusterNodes(port | node) -> Promise<[{id, addr, port, flags: [], masterId, linkState, slots}]>
//     info(port | node, section) -> Promise<{field: value}>
//     waitStable({timeout, replicas, exclude}) -> Promise<slots>  every running node
//                               (minus `exclude` ports) cluster_state:ok, the same
//                               CLUSTER SLOTS, full coverage (and each master with
//                               `replicas` replicas when given); refreshes roles
//     refresh() -> Promise      re-reads each running node's role from itself
//     killNode(node, signal = 'SIGKILL') -> Promise<{code, signal}>  waits for the exit;
//                               'SIGSTOP' instead pauses it (node.paused: left out of
//                               every wait and refresh until resumeNode)
//     killMaster(node, signal = 'SIGKILL') -> Promise<{code, signal}>  the same, asserting
//                               node is a master (records node.slotsAtKill)
//     resumeNode(node) -> node  SIGCONT for a paused node (a paused master that was
//                               failed over rejoins as a replica by itself)
//     waitForFailover(oldMaster, {timeout = 30000}) -> Promise<node>  the promoted
//                               replica, once every surviving node is cluster_state:ok,
//                               agrees on CLUSTER SLOTS and the old master's slots are
//                               served by another node (which reports itself master)
//     restartNode(node, {timeout = 30000, waitSync = true}) -> Promise<node>  starts
//                               it again (SIGTERM first if it runs) on the same port,
//                               bus port, dir and nodes.conf; resolves once the cluster
//                               is stable with it in the slot map (a failed-over master
//                               rejoins as a replica of its successor) and, when it is
//                               a replica and waitSync, its master_link_status is up
//                               (a master restarted BEFORE its replica took over comes
//                               back as the master of its slots, empty unless appendonly)
//     stop() -> Promise         closes connections, SIGKILLs every node, removes the tmp dir
//     dir                       the temporary directory
//     timings                   {createMs: redis-cli --cluster create, okMs: every node
//                               cluster_state:ok with one slot map, stableMs: replicas
//                               listed too}, from the start of the create
//   With Redis's defaults kept here (cluster-replica-validity-factor 10) a replica
//   refuses to fail over when its master was unreachable for longer than
//   nodeTimeoutMs * 10 + 1 s before the failure was agreed (e.g. a second master
//   stopped meanwhile, so no majority): pass ['--cluster-replica-validity-factor', '0']
//   in args when a test makes such double faults.
//
// rawClient: a connection that records every RESP value it receives, pushes
//   included, each as {at (ms epoch), value} (bulk strings as UTF-8 strings,
//   error replies as Error objects):
//     send(...args)             writes one command (does not wait)
//     values                    the array of everything received so far
//     bytes() -> Buffer         every byte received so far (the exact RESP)
//     next(pred, {timeout = 5000, since}) -> Promise<value>  the first value
//                               (from index `since`, default: the next one) matching pred
//     call(...args) -> Promise<value>  send + the next value received
//     closed: Promise<{at, error}>  resolves when the connection goes away;
//     isClosed                  true once it has
//     close()
//
// startRedisSentinel({replicas = 1, sentinels = 3, quorum = 2, masterName = 'mymaster',
//   downAfterMs = 1000, failoverTimeoutMs = 5000, args = [], timeout = 30000,
//   sentinelPassword = ''})
//   -> Promise<sentinel>: one master, `replicas` replicas (--replicaof) and
//   `sentinels` redis-server --sentinel processes monitoring it; resolves once
//   the replicas are in sync and every sentinel sees the replicas and the
//   other sentinels. With sentinelPassword the sentinels have requirepass (and
//   sentinel-pass for each other); the object's own connections AUTH. The object:
//     master, replicas[]        the data nodes as started (roles change: see currentMaster
//                               and node.role, updated by waitForFailover / restartNode)
//     sentinels[]               nodes {port, addr, dir, conf, role, proc, pid, running(), logs()}
//     nodes                             master and replicas (data nodes)
//     url ('redis://127.0.0.1:<master>'), sentinelUrl
//                               'redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster'
//     masterName
//     cli(port | node, ...args), cmd(port | node, ...args), client(port | node, opts),
//     rawClient(port | node)    as for clusters
//     masterAddr(sentinel = any running) -> Promise<{host, port}>
//                               SENTINEL get-master-addr-by-name
//     currentMaster() -> Promise<node>  the data node sentinels name as master
//     killMaster(signal = 'SIGKILL') -> Promise<node>  kills the current master ('SIGSTOP'
//                               pauses it instead; SIGCONT it with node.proc.kill)
//     waitForFailover(oldMaster = the last killed, {timeout = 30000}) -> Promise<node>
//                               every running sentinel names a new address and that
//                               node answers ROLE with master
//     restartNode(node, {timeout, asReplica = false}) -> Promise<node>  starts a data node
//                               again on its port (SIGTERM first if it runs). A former
//                               master comes back as a master (stale, empty: a split
//                               brain) until the sentinels turn it into a replica, which
//                               takes about 10 s; asReplica starts it with --replicaof
//                               the current master instead. Resolves once it is a
//                               replica of the current master with its link up (or the
//                               sentinels still name it master and it answers as one)
//     stop() -> Promise
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { freePort, spawnProcess, waitFor } from './harness.mjs';
import { connect, convert, encode, parse } from './resp.mjs';

const HOST = '127.0.0.1';
const SLOTS = 16384;
// Test-friendly replication defaults (args given to start* come after them
// and win): a replica's full sync starts at once instead of after 5 s
// (repl-diskless-sync-delay), and a master PINGs its replicas every second
// instead of every 10 s. Redis 7.0 leaves a replica out of CLUSTER SLOTS
// until its replication offset is non-zero, which on an idle master takes
// that first PING: with the defaults a fresh cluster only lists its replicas
// about 10 s after `--cluster create`, with these about 2.5 s.
const FAST_REPLICATION = ['--repl-diskless-sync-delay', '0', '--repl-ping-replica-period', '1'];

const ownDirs = new Set(); // removed at exit if stop() was not called
process.on('exit', () => {
  for (const d of ownDirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

// ---- hash slots -----------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

export function crc16(buf) {
  let crc = 0;
  for (const b of buf) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ b) & 0xff];
  return crc;
}

export function keySlot(key) {
  const b = Buffer.isBuffer(key) ? key : Buffer.from(String(key), 'utf8');
  const open = b.indexOf(0x7b); // {
  if (open >= 0) {
    const close = b.indexOf(0x7d, open + 1); // }
    if (close > open + 1) return crc16(b.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(b) % SLOTS;
}

export function seedUrl(portsOrNodes, { scheme = 'redis', host = HOST, path: suffix = '' } = {}) {
  const ports = portsOrNodes.map((p) => (typeof p === 'object' ? p.port : p));
  return `${scheme}://${ports.map((p) => `${host}:${p}`).join(',')}${suffix}`;
}

// ---- small helpers --------------------------------------------------------

// Runs redis-cli; resolves its stdout without the final newline.
function runCli(port, args, { timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn('redis-cli', ['-h', HOST, '-p', String(port), ...args.map(String)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if ((code !== 0 || signal) && !out) {
        reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${signal || `exit ${code}`}: ${err.trim()}`));
      } else resolve(out.replace(/\n$/, ''));
    });
  });
}

// Parses "field:value" lines (INFO, CLUSTER INFO).
function parseInfo(text) {
  const o = {};
  for (const line of String(text).split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) o[line.slice(0, i)] = line.slice(i + 1);
  }
  return o;
}

// Resolves true when `ready` resolves first, or a text saying why not.
function readyOrExit(ready, p) {
  return Promise.race([
    ready.then(() => true, (e) => e.message),
    p.exited.then((r) => `exited early (code ${r.code}, signal ${r.signal})`),
  ]);
}

// Resolves n distinct free loopback ports.
async function freePorts(n, taken = new Set()) {
  const out = [];
  while (out.length < n) {
    const p = await freePort();
    if (!taken.has(p)) { taken.add(p); out.push(p); }
  }
  return out;
}

// rawClient's RESP: resp.mjs's reader, with bulk strings as UTF-8 strings.
function parseResp(buf, pos) {
  const r = parse(buf, pos);
  return r && { value: convert(r.value, false), pos: r.pos };
}

function openRawClient(port) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ port, host: HOST });
    const values = [];
    const chunks = [];
    const waiters = new Set();
    let rest = Buffer.alloc(0);
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    let closedInfo = null;
    const raw = {
      port,
      values,
      bytes: () => Buffer.concat(chunks),
      closed,
      get isClosed() { return closedInfo !== null; },
      send(...args) { sock.write(encode(args)); },
      next(pred = () => true, { timeout = 5000, since = values.length } = {}) {
        return new Promise((res, rej) => {
          const w = { since, pred, res, rej };
          const found = values.slice(since).find((v) => pred(v.value));
          if (found) { res(found.value); return; }
          if (closedInfo) { rej(new Error(`connection to ${port} closed`)); return; }
          w.timer = setTimeout(() => { waiters.delete(w); rej(new Error(`no matching value from ${port} in ${timeout} ms`)); }, timeout);
          waiters.add(w);
        });
      },
      call(...args) {
        const since = values.length;
        raw.send(...args);
        return raw.next(() => true, { since });
      },
      close() { sock.destroy(); },
    };
    sock.on('data', (chunk) => {
      chunks.push(chunk);
      rest = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      let pos = 0;
      for (;;) {
        const r = parseResp(rest, pos);
        if (!r) break;
        pos = r.pos;
        values.push({ at: Date.now(), value: r.value });
        for (const w of waiters) {
          if (w.pred(r.value) && values.length - 1 >= w.since) {
            clearTimeout(w.timer);
            waiters.delete(w);
            w.res(r.value);
          }
        }
      }
      rest = rest.subarray(pos);
    });
    sock.once('connect', () => resolve(raw));
    sock.on('error', (e) => {
      if (!closedInfo) closedInfo = { at: Date.now(), error: e };
      reject(e);
    });
    sock.on('close', () => {
      if (!closedInfo) closedInfo = { at: Date.now(), error: null };
      for (const w of waiters) { clearTimeout(w.timer); w.rej(new Error(`connection to ${port} closed`)); }
      waiters.clear();
      resolveClosed(closedInfo);
    });
  });
}

// Connections shared by the cluster and sentinel objects; ports listed in
// passwords get AUTH first.
function connectionPool(passwords = new Map()) {
  const mains = new Map(); // port -> resp client
  const pending = new Map(); // port -> Promise<resp client>
  const all = new Set();
  async function client(port, opts) {
    const c = await connect(port, opts);
    all.add(c);
    if (passwords.has(port)) await c.cmd('AUTH', passwords.get(port));
    return c;
  }
  async function main(port) {
    const c = mains.get(port);
    if (c && !c.closed) return c;
    if (!pending.has(port)) {
      pending.set(port, client(port).then((n) => { mains.set(port, n); return n; })
        .finally(() => pending.delete(port)));
    }
    return pending.get(port);
  }
  return {
    client,
    async raw(port) {
      const r = await openRawClient(port);
      all.add(r);
      return r;
    },
    cmd: async (port, ...args) => (await main(port)).cmd(...args),
    drop(port) { const c = mains.get(port); if (c) c.close(); mains.delete(port); },
    closeAll() { for (const c of all) c.close(); all.clear(); mains.clear(); },
  };
}

const portOf = (x) => (typeof x === 'object' && x !== null ? x.port : Number(x));

// Starts one redis-server and waits until it answers PING (or LOADING).
async function launchServer(args, name, port, password = '') {
  const p = spawnProcess('redis-server', args.map(String), { name });
  const gone = new AbortController();
  p.exited.then(() => gone.abort());
  const pinged = waitFor(async () => {
    const c = await connect(port);
    try {
      if (password) await c.cmd('AUTH', password);
      await c.cmd('PING');
      return true;
    } finally {
      c.close();
    }
  }, { timeout: 10000, interval: 20, what: `${name} on port ${port} to answer PING`, signal: gone.signal });
  const outcome = await readyOrExit(pinged, p);
  if (outcome !== true) {
    await p.kill();
    throw new Error(`${name} ${outcome}; logs:\n${p.logs().join('\n')}`);
  }
  return p;
}

function makeNode(fields) {
  const node = {
    server: null,
    paused: false,
    role: null,
    masterPort: null,
    id: null,
    killedAt: null,
    slotsAtKill: null,
    ...fields,
    get proc() { return node.server && node.server.proc; },
    get pid() { return node.server && node.server.pid; },
    running() { return !!node.server && node.server.proc.exitCode === null && node.server.proc.signalCode === null; },
    logs() { return node.server ? node.server.logs() : []; },
  };
  Object.defineProperty(node, 'server', { enumerable: false, writable: true });
  return node;
}

// ---- Redis Cluster --------------------------------------------------------

// Normalizes a CLUSTER SLOTS reply: [{start, end, master, replicas}] sorted.
function normalizeSlots(reply) {
  const addr = (n) => `${n[0]}:${n[1]}`;
  return reply.map((e) => ({
    start: e[0], end: e[1], master: addr(e[2]), masterId: e[2][2],
    replicas: e.slice(3).map(addr).sort(),
  })).sort((a, b) => a.start - b.start);
}

function slotsKey(slots) {
  return JSON.stringify(slots.map((s) => [s.start, s.end, s.master, s.replicas]));
}

function coversAll(slots) {
  let next = 0;
  for (const s of slots) {
    if (s.start !== next) return false;
    next = s.end + 1;
  }
  return next === SLOTS;
}

// Parses CLUSTER NODES.
function parseNodes(text) {
  return String(text).trim().split('\n').filter(Boolean).map((line) => {
    const f = line.split(' ');
    const addr = f[1].split('@')[0];
    return {
      id: f[0], addr, port: Number(addr.slice(addr.lastIndexOf(':') + 1)), bus: f[1],
      flags: f[2].split(','), masterId: f[3] === '-' ? null : f[3],
      configEpoch: Number(f[6]), linkState: f[7], slots: f.slice(8),
    };
  });
}

export async function startRedisCluster({ masters = 3, replicas = 1, nodeTimeoutMs = 1000, appendonly = false,
  args = [], timeout = 30000 } = {}) {
  if (masters < 3) throw new Error('redis-cli --cluster create needs at least 3 masters');
  const count = masters * (1 + replicas);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-rcluster-'));
  ownDirs.add(dir);
  const pool = connectionPool();
  const taken = new Set();
  const ports = await freePorts(count, taken);
  const busPorts = await freePorts(count, taken);
  const nodes = ports.map((port, i) => makeNode({
    port, busPort: busPorts[i], addr: `${HOST}:${port}`,
    dir: path.join(dir, String(port)), conf: path.join(dir, `nodes-${port}.conf`),
  }));

  const serverArgs = (n) => ['--port', n.port, '--bind', HOST, '--cluster-enabled', 'yes',
    '--cluster-port', n.busPort, '--cluster-config-file', n.conf,
    '--cluster-node-timeout', nodeTimeoutMs, '--save', '', '--appendonly', appendonly ? 'yes' : 'no',
    '--dir', n.dir, '--enable-debug-command', 'yes', ...FAST_REPLICATION, ...args];
  async function launch(n) {
    fs.mkdirSync(n.dir, { recursive: true });
    pool.drop(n.port);
    n.server = await launchServer(serverArgs(n), `redis-cluster-${n.port}`, n.port);
    n.killedAt = null;
  }

  const byPort = (p) => nodes.find((n) => n.port === portOf(p));
  const cmd = (p, ...a) => pool.cmd(portOf(p), ...a);
  const cli = (p, ...a) => runCli(portOf(p), a);
  const info = async (p, section = 'default') => parseInfo(await cmd(p, 'INFO', section));
  const clusterSlots = async (p) => normalizeSlots(await cmd(p, 'CLUSTER', 'SLOTS'));
  const clusterNodes = async (p) => parseNodes(await cmd(p, 'CLUSTER', 'NODES'));
  // running and not paused (SIGSTOP): the nodes that can answer
  const live = () => nodes.filter((n) => n.running() && !n.paused);

  async function refresh() {
    for (const n of live()) {
      const me = (await clusterNodes(n)).find((x) => x.flags.includes('myself'));
      n.id = me.id;
      n.role = me.flags.includes('master') ? 'master' : 'replica';
      n.masterPort = null;
    }
    const ids = new Map(nodes.filter((n) => n.id).map((n) => [n.id, n]));
    for (const n of live()) {
      if (n.role !== 'replica') continue;
      const me = (await clusterNodes(n)).find((x) => x.flags.includes('myself'));
      n.masterPort = ids.has(me.masterId) ? ids.get(me.masterId).port : null;
    }
  }

  // One check of the stable condition; returns the slot map or false.
  async function stableOnce({ replicas: want, exclude = [] } = {}) {
    const skip = new Set(exclude.map(portOf));
    const check = live().filter((n) => !skip.has(n.port));
    if (!check.length) return false;
    let first = null;
    for (const n of check) {
      if (parseInfo(await cmd(n, 'CLUSTER', 'INFO')).cluster_state !== 'ok') return false;
      const s = await clusterSlots(n);
      if (first === null) {
        if (!coversAll(s)) return false;
        if (want !== undefined) {
          const perMaster = new Map();
          for (const e of s) perMaster.set(e.master, e.replicas.length);
          if ([...perMaster.values()].some((r) => r !== want)) return false;
        }
        first = s;
      } else if (slotsKey(s) !== slotsKey(first)) return false;
    }
    return first;
  }

  async function waitStable({ timeout: t = timeout, replicas: want, exclude = [] } = {}) {
    const slots = await waitFor(() => stableOnce({ replicas: want, exclude }),
      { timeout: t, interval: 50, what: 'the Redis Cluster to be stable (cluster_state:ok, one slot map)' });
    await refresh();
    return slots;
  }

  async function anySlots() {
    let lastErr;
    for (const n of live()) {
      try { return await clusterSlots(n); } catch (e) { lastErr = e; }
    }
    throw lastErr || new Error('no running cluster node');
  }

  async function slotsOf(node) {
    const addr = byPort(node).addr;
    return (await anySlots()).filter((s) => s.master === addr).map((s) => [s.start, s.end]);
  }

  async function masterOf(key) {
    const slot = typeof key === 'object' && key !== null && !Buffer.isBuffer(key) ? key.slot : keySlot(key);
    const e = (await anySlots()).find((s) => s.start <= slot && slot <= s.end);
    if (!e) throw new Error(`slot ${slot} is not served`);
    return byPort(Number(e.master.split(':').pop()));
  }

  async function replicasOf(node) {
    const addr = byPort(node).addr;
    const e = (await anySlots()).find((s) => s.master === addr);
    return e ? e.replicas.map((a) => byPort(Number(a.split(':').pop()))) : [];
  }

  async function killNode(node, signal = 'SIGKILL') {
    const n = byPort(node);
    try { n.slotsAtKill = await slotsOf(n); } catch { n.slotsAtKill = null; }
    n.killedAt = Date.now();
    if (signal === 'SIGSTOP') { // a hung node: no exit to wait for
      n.paused = true;
      n.server.proc.kill('SIGSTOP');
      return { code: null, signal: 'SIGSTOP' };
    }
    const r = await n.server.kill(signal);
    pool.drop(n.port);
    return r;
  }

  function resumeNode(node) {
    const n = byPort(node);
    if (n.running()) n.server.proc.kill('SIGCONT');
    n.paused = false;
    return n;
  }

  async function killMaster(node, signal = 'SIGKILL') {
    const n = byPort(node);
    if (!n) throw new Error(`no cluster node ${portOf(node)}`);
    const me = (await clusterNodes(n)).find((x) => x.flags.includes('myself'));
    if (!me.flags.includes('master')) throw new Error(`node ${n.port} is not a master (${me.flags})`);
    return killNode(n, signal);
  }

  async function waitForFailover(oldMaster, { timeout: t = 30000 } = {}) {
    const old = byPort(oldMaster);
    const ranges = old.slotsAtKill;
    if (!ranges || !ranges.length) throw new Error(`no slots recorded for ${old.port} (kill it with killMaster)`);
    const promoted = await waitFor(async () => {
      const slots = await stableOnce({ exclude: [old.port] });
      if (!slots) return false;
      const owners = new Set();
      for (const [a, b] of ranges) {
        for (const s of slots) if (s.start <= b && s.end >= a) owners.add(s.master);
      }
      if (owners.size !== 1 || owners.has(old.addr)) return false;
      const n = byPort(Number([...owners][0].split(':').pop()));
      const r = await cmd(n, 'ROLE');
      return r[0] === 'master' ? n : false;
    }, { timeout: t, interval: 50, what: `a replica of ${old.port} to take over its slots` })
      .catch(async (e) => { throw new Error(`${e.message}\n${await diagnose(old)}`); });
    await refresh();
    return promoted;
  }

  // Text for a failed wait: a survivor's CLUSTER NODES and the failover lines
  // of old's replicas (e.g. "Currently unable to failover: Disconnected from
  // master for longer than allowed" when cluster-replica-validity-factor bites).
  async function diagnose(old) {
    const lines = [];
    const survivor = live().find((n) => n !== old);
    if (survivor) {
      lines.push(`CLUSTER NODES from ${survivor.port}:`);
      lines.push(await cmd(survivor, 'CLUSTER', 'NODES').catch((e) => e.message));
    }
    for (const n of nodes.filter((x) => x.masterPort === old.port)) {
      lines.push(`replica ${n.port}:`, ...n.logs().filter((l) => /failover|election|FAIL|validity/i.test(l)).slice(-5));
    }
    return lines.join('\n');
  }

  async function restartNode(node, { timeout: t = 30000, waitSync = true } = {}) {
    const n = byPort(node);
    if (n.paused) resumeNode(n);
    if (n.running()) { await n.server.stop(); pool.drop(n.port); }
    await launch(n);
    await waitFor(async () => {
      const slots = await stableOnce();
      if (!slots) return false;
      const inMap = slots.some((s) => s.master === n.addr || s.replicas.includes(n.addr));
      if (!inMap) return false;
      if (!waitSync) return true;
      const repl = await info(n, 'replication');
      return repl.role === 'master' || repl.master_link_status === 'up';
    }, { timeout: t, interval: 50, what: `node ${n.port} to rejoin the Redis Cluster` });
    await refresh();
    return n;
  }

  async function stop() {
    pool.closeAll();
    await Promise.all(nodes.map((n) => (n.running() ? n.server.kill('SIGKILL') : null)));
    fs.rmSync(dir, { recursive: true, force: true });
    ownDirs.delete(dir);
  }

  const cluster = {
    dir, nodes,
    url: `redis://${HOST}:${nodes[0].port}`,
    seeds: seedUrl(nodes),
    seedUrl,
    masters: () => nodes.filter((n) => n.role === 'master'),
    replicas: () => nodes.filter((n) => n.role === 'replica'),
    nodeByPort: byPort,
    cli, cmd, info, clusterSlots, clusterNodes,
    client: (p, opts) => pool.client(portOf(p), opts),
    rawClient: (p) => pool.raw(portOf(p)),
    refresh, waitStable, slotsOf, masterOf, replicasOf,
    killNode, killMaster, resumeNode, waitForFailover, restartNode, stop,
    timings: {},
  };

  try {
    await Promise.all(nodes.map(launch));
    const t0 = Date.now();
    const out = await runCli(nodes[0].port,
      ['--cluster', 'create', ...nodes.map((n) => n.addr), '--cluster-replicas', String(replicas), '--cluster-yes'],
      { timeout: timeout });
    if (!/\[OK\] All 16384 slots covered/.test(out)) throw new Error(`redis-cli --cluster create failed:\n${out}`);
    cluster.timings.createMs = Date.now() - t0;
    await waitStable();
    cluster.timings.okMs = Date.now() - t0;
    await waitStable({ replicas });
    cluster.timings.stableMs = Date.now() - t0;
  } catch (e) {
    const logs = nodes.map((n) => `--- ${n.port}\n${n.logs().slice(-20).join('\n')}`).join('\n');
    await stop();
    throw new Error(`${e.message}\n${logs}`);
  }
  return cluster;
}

// ---- Redis Sentinel -------------------------------------------------------

export async function startRedisSentinel({ replicas = 1, sentinels = 3, quorum = 2, masterName = 'mymaster',
  downAfterMs = 1000, failoverTimeoutMs = 5000, args = [], timeout = 30000, sentinelPassword = '' } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-rsentinel-'));
  ownDirs.add(dir);
  const taken = new Set();
  const dataPorts = await freePorts(1 + replicas, taken);
  const sentPorts = await freePorts(sentinels, taken);
  const pool = connectionPool(new Map(sentinelPassword ? sentPorts.map((p) => [p, sentinelPassword]) : []));
  const data = dataPorts.map((port) => makeNode({ port, addr: `${HOST}:${port}`, dir: path.join(dir, String(port)) }));
  const sents = sentPorts.map((port) => makeNode({ port, addr: `${HOST}:${port}`, dir: path.join(dir, `s${port}`),
    conf: path.join(dir, `s${port}`, 'sentinel.conf'), role: 'sentinel' }));
  const master0 = data[0];
  let lastKilled = null;

  const dataArgs = (n, replicaOf) => ['--port', n.port, '--bind', HOST, '--save', '', '--appendonly', 'no',
    '--dir', n.dir, '--enable-debug-command', 'yes', ...FAST_REPLICATION,
    ...(replicaOf ? ['--replicaof', HOST, replicaOf] : []), ...args];
  async function launchData(n, replicaOf) {
    fs.mkdirSync(n.dir, { recursive: true });
    pool.drop(n.port);
    n.server = await launchServer(dataArgs(n, replicaOf), `redis-${n.port}`, n.port);
    n.killedAt = null;
  }
  async function launchSentinel(s) {
    fs.mkdirSync(s.dir, { recursive: true });
    fs.writeFileSync(s.conf, [
      `port ${s.port}`, `bind ${HOST}`, `dir ${s.dir}`,
      `sentinel monitor ${masterName} ${HOST} ${master0.port} ${quorum}`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${masterName} 1`,
      // clients and the other sentinels must AUTH
      ...(sentinelPassword ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`] : []),
      '',
    ].join('\n'));
    s.server = await launchServer([s.conf, '--sentinel'], `redis-sentinel-${s.port}`, s.port, sentinelPassword);
  }

  const byPort = (p) => [...data, ...sents].find((n) => n.port === portOf(p));
  const cmd = (p, ...a) => pool.cmd(portOf(p), ...a);
  const info = async (p, section = 'default') => parseInfo(await cmd(p, 'INFO', section));

  async function masterAddr(sentinel) {
    const list = sentinel ? [byPort(sentinel)] : sents.filter((s) => s.running());
    let lastErr;
    for (const s of list) {
      try {
        const r = await cmd(s, 'SENTINEL', 'get-master-addr-by-name', masterName);
        if (r) return { host: r[0], port: Number(r[1]) };
      } catch (e) { lastErr = e; }
    }
    throw lastErr || new Error('no sentinel knows the master');
  }

  async function currentMaster() {
    const { port } = await masterAddr();
    return byPort(port);
  }

  async function killMaster(signal = 'SIGKILL') {
    const m = await currentMaster();
    m.killedAt = Date.now();
    lastKilled = m;
    if (signal === 'SIGSTOP') { // a hung master: no exit to wait for (SIGCONT it with node.proc.kill)
      m.server.proc.kill('SIGSTOP');
      return m;
    }
    await m.server.kill(signal);
    pool.drop(m.port);
    return m;
  }

  async function waitForFailover(oldMaster = lastKilled, { timeout: t = 30000 } = {}) {
    const old = byPort(oldMaster);
    if (!old) throw new Error('waitForFailover: which master? (none killed with killMaster)');
    const promoted = await waitFor(async () => {
      const ports = new Set();
      for (const s of sents.filter((x) => x.running())) {
        const r = await cmd(s, 'SENTINEL', 'get-master-addr-by-name', masterName);
        ports.add(r ? Number(r[1]) : null);
      }
      if (ports.size !== 1) return false;
      const port = [...ports][0];
      if (!port || port === old.port) return false;
      const n = byPort(port);
      const role = await cmd(n, 'ROLE');
      return role[0] === 'master' ? n : false;
    }, { timeout: t, interval: 50, what: `the sentinels to fail ${masterName} over from ${old.port}` });
    for (const n of data) n.role = n === promoted ? 'master' : n.running() ? 'replica' : n.role;
    return promoted;
  }

  async function restartNode(node, { timeout: t = 30000, asReplica = false } = {}) {
    const n = byPort(node);
    if (n.running()) { await n.server.stop(); pool.drop(n.port); }
    const current = (await masterAddr()).port;
    await launchData(n, current !== n.port && (asReplica || n.role === 'replica') ? current : null);
    await waitFor(async () => {
      const m = await masterAddr();
      const repl = await info(n, 'replication');
      if (m.port === n.port) return repl.role === 'master';
      return repl.role === 'slave' && Number(repl.master_port) === m.port && repl.master_link_status === 'up';
    }, { timeout: t, interval: 50, what: `node ${n.port} to rejoin ${masterName}` });
    n.role = (await masterAddr()).port === n.port ? 'master' : 'replica';
    return n;
  }

  async function stop() {
    pool.closeAll();
    await Promise.all([...data, ...sents].map((n) => (n.running() ? n.server.kill('SIGKILL') : null)));
    fs.rmSync(dir, { recursive: true, force: true });
    ownDirs.delete(dir);
  }

  const group = {
    dir, masterName,
    master: master0,
    replicas: data.slice(1),
    nodes: data,
    sentinels: sents,
    url: `redis://${HOST}:${master0.port}`,
    sentinelUrl: seedUrl(sents, { scheme: 'redis-sentinel', path: `/${masterName}` }),
    cli: (p, ...a) => runCli(portOf(p), a),
    cmd, info,
    client: (p, opts) => pool.client(portOf(p), opts),
    rawClient: (p) => pool.raw(portOf(p)),
    masterAddr, currentMaster, killMaster, waitForFailover, restartNode, stop,
  };

  try {
    await launchData(master0, null);
    master0.role = 'master';
    await Promise.all(data.slice(1).map(async (n) => { await launchData(n, master0.port); n.role = 'replica'; }));
    await waitFor(async () => {
      for (const n of data.slice(1)) if ((await info(n, 'replication')).master_link_status !== 'up') return false;
      return true;
    }, { timeout, interval: 50, what: 'the replicas to sync' });
    await Promise.all(sents.map(launchSentinel));
    await waitFor(async () => {
      for (const s of sents) {
        const flat = await cmd(s, 'SENTINEL', 'MASTER', masterName);
        const m = {};
        for (let i = 0; i < flat.length; i += 2) m[flat[i]] = flat[i + 1];
        if (Number(m['num-slaves']) !== replicas || Number(m['num-other-sentinels']) !== sentinels - 1) return false;
      }
      return true;
    }, { timeout, interval: 50, what: 'every sentinel to see the replicas and the other sentinels' });
  } catch (e) {
    await stop();
    throw e;
  }
  return group;
}

// ---- a cluster in place of one Redis ------------------------------------------

// Where the key of a command is (argument index), for the commands the
// end-to-end tests send through startRedis().cmd.
const KEY_ARG = new Map(['XLEN', 'XRANGE', 'XREVRANGE', 'XADD', 'XTRIM', 'XINFO', 'EXISTS', 'PTTL', 'TTL', 'PEXPIRE',
  'GET', 'SET', 'DEL', 'INCR', 'ZSCORE', 'ZRANGE', 'ZCARD', 'HGET', 'HGETALL', 'HLEN', 'TYPE'].map((c) => [c, 1]));

// startClusterAsRedis({args}) -> Promise<redis>: a 3-master, 3-replica
// cluster (full coverage off) behind the object startRedis returns, so the
// end-to-end files run unchanged on a cluster (SSEHUB_TEST_REDIS=cluster,
// see harness.mjs). url names every node (seeds). cmd routes by key: a
// command with a key (FCALL with keys, XLEN, GET, ...) goes to the master of
// its slot (MOVED re-reads the map); PUBLISH to the node the brokers
// subscribe on (Redis forwards it to the others over the bus; the answer
// counts that node's subscribers, the brokers); PUBSUB NUMSUB counts the channel's sharded subscribers
// on its master (nodes use SSUBSCRIBE there); INFO and KEYS add up or join
// every master's answer; FUNCTION goes to every master; anything else to
// the first master. client() connects to the first master (SUBSCRIBE there
// sees every PUBLISH) and routes its commands as cmd does. stop/kill/restart
// and the port of a single server do not apply: the tests that use them are
// not run this way. cluster: the startRedisCluster object.
export async function startClusterAsRedis({ args = [] } = {}) {
  const rc = await startRedisCluster({ masters: 3, replicas: 1,
    args: ['--cluster-require-full-coverage', 'no', ...args] });
  let map = null; // CLUSTER SLOTS, normalized
  const readMap = async () => { await rc.refresh(); map = await rc.clusterSlots(rc.masters()[0]); };
  await readMap();
  const masterPorts = () => [...new Set(map.map((s) => Number(s.master.split(':').pop())))];
  const portOfSlot = (slot) => Number(map.find((s) => s.start <= slot && slot <= s.end).master.split(':').pop());
  const keyOf = (a) => {
    const c = String(a[0]).toUpperCase();
    if ((c === 'FCALL' || c === 'FCALL_RO') && Number(a[2]) > 0) return a[3];
    return KEY_ARG.has(c) ? a[KEY_ARG.get(c)] : undefined;
  };
  async function routed(port, a, buffers) {
    for (let tries = 0; ; tries++) {
      try {
        const c = await rc.client(port, { buffers });
        try { return await c.cmd(...a); } finally { c.close(); }
      } catch (e) {
        if (tries < 3 && /^(MOVED|TRYAGAIN|CLUSTERDOWN)/.test(e.message)) {
          await sleepMs(100);
          await readMap();
          const key = keyOf(a);
          if (key !== undefined) port = portOfSlot(keySlot(key));
          continue;
        }
        throw e;
      }
    }
  }
  async function cmd(buffers, ...a) {
    const c = String(a[0]).toUpperCase();
    const key = keyOf(a);
    const send = (p, args) => (buffers ? routed(p, args, true) : sendOn(p, args));
    if (key !== undefined) return send(portOfSlot(keySlot(key)), a);
    if (c === 'PUBLISH') {
      // on the node the brokers subscribe on, so the answer counts them
      pubPort ??= await subscriberPort();
      const n = await send(pubPort, a);
      if (!n) pubPort = null; // look again next time
      return n;
    }
    if (c === 'PUBSUB' && String(a[1]).toUpperCase() === 'NUMSUB') {
      const out = [];
      for (const ch of a.slice(2)) out.push(ch, (await send(portOfSlot(keySlot(ch)), ['PUBSUB', 'SHARDNUMSUB', ch]))[1]);
      return out;
    }
    if (c === 'INFO') {
      const texts = await Promise.all(masterPorts().map((p) => send(p, a)));
      return sumInfo(texts);
    }
    if (c === 'KEYS') return (await Promise.all(masterPorts().map((p) => send(p, a)))).flat();
    if (c === 'FUNCTION' && String(a[1]).toUpperCase() !== 'LIST')
      return (await Promise.all(masterPorts().map((p) => send(p, a))))[0];
    return send(masterPorts()[0], a);
  }
  // The node where a client holds pattern subscriptions (a broker), or
  // the first master.
  let pubPort = null;
  const subscriberPort = async () => (await patternSubscriberPorts(rc))[0] ?? masterPorts()[0];
  // one persistent connection per master (rc.cmd), a fresh one after MOVED
  async function sendOn(port, a) {
    try {
      return await rc.cmd(port, ...a);
    } catch (e) {
      if (/^(MOVED|TRYAGAIN|CLUSTERDOWN)/.test(e.message)) return routed(port, a, false);
      throw e;
    }
  }
  return {
    cluster: rc,
    url: rc.seeds,
    get port() { throw new Error('a cluster has no single port (SSEHUB_TEST_REDIS=cluster)'); },
    dir: rc.dir,
    logs: () => rc.nodes.flatMap((n) => n.logs()),
    cmd: (...a) => cmd(false, ...a),
    cmdBuffers: (...a) => cmd(true, ...a),
    // a connection of its own (for SUBSCRIBE) whose commands are routed
    async client(opts) {
      const c = await rc.client(masterPorts()[0], opts);
      return {
        port: c.port,
        get closed() { return c.closed; },
        cmd: (...a) => cmd(false, ...a),
        cmdBuffers: (...a) => cmd(true, ...a),
        subscribe: (...a) => c.subscribe(...a),
        psubscribe: (...a) => c.psubscribe(...a),
        close: () => c.close(),
      };
    },
    stop: () => rc.stop(),
    kill: () => { throw new Error('kill: not on a cluster (SSEHUB_TEST_REDIS=cluster)'); },
    restart: () => { throw new Error('restart: not on a cluster (SSEHUB_TEST_REDIS=cluster)'); },
  };
}

const sleepMs = (ms) => new Promise((r) => setTimeout(r, ms));

// patternSubscriberPorts(cluster) -> Promise<port[]>: the running nodes
// where a client holds pattern subscriptions: the brokers' PSUBSCRIBE
// (ssehub nodes use SSUBSCRIBE on a cluster).
export async function patternSubscriberPorts(rc) {
  const ports = [];
  for (const n of rc.nodes.filter((x) => x.running())) {
    if (/ psub=[1-9]/.test(String(await rc.cmd(n, 'CLIENT', 'LIST', 'TYPE', 'pubsub')))) ports.push(n.port);
  }
  return ports;
}

// INFO answers of several servers as one: numbers in `key:value` and in
// `cmdstat_x:calls=N,...` fields added up, other fields from the first.
function sumInfo(texts) {
  const order = [];
  const fields = new Map();
  for (const t of texts) {
    for (const line of String(t).split('\r\n')) {
      const i = line.indexOf(':');
      if (line.startsWith('#') || i < 0) { if (!fields.has(line)) { fields.set(line, null); order.push(line); } continue; }
      const k = line.slice(0, i), v = line.slice(i + 1);
      if (!fields.has(k)) { fields.set(k, v); order.push(k); continue; }
      const prev = fields.get(k);
      if (/^\d+$/.test(v) && /^\d+$/.test(prev)) fields.set(k, String(Number(prev) + Number(v)));
      else if (/^cmdstat_/.test(k)) {
        const add = Object.fromEntries(v.split(',').map((p) => p.split('=')));
        fields.set(k, prev.split(',').map((p) => {
          const [a, b] = p.split('=');
          return a === 'calls' || a === 'rejected_calls' || a === 'failed_calls' ? `${a}=${Number(b) + Number(add[a] || 0)}` : p;
        }).join(','));
      }
    }
  }
  return order.map((k) => (fields.get(k) === null ? k : `${k}:${fields.get(k)}`)).join('\r\n');
}
