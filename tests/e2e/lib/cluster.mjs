// A whole ssehub cluster on loopback for the end-to-end fault tests: a real
// redis-server (AOF), brokers, nodes and haproxy (Debian's, rendered from
// deploy/lb/haproxy.cfg.in), plus reconnecting SSE clients (curl and the
// eventsource npm client) that record what they receive, a paced publisher,
// and the checks. Built on harness.mjs; everything is registered for its
// cleanup (call cleanupAll in after()).
//
//   import { startCluster, startClients, startPublisher, storedSeqs, scale } from './lib/cluster.mjs';
//
// startCluster({nodes: 3, brokers: 1, redisArgs, nodeArgs, brokerArgs, check})
//   -> Promise<cluster>. redisArgs default to AOF with appendfsync always;
//   nodeArgs are added to every node (default threads 2), brokerArgs to every
//   broker (default history 100000 events); check = {inter, fall, rise}
//   replaces the template's default-server health-check timing. Resolves
//   when haproxy reports every node UP. The object:
//     redis                  the harness redis object
//     brokers[i], nodes[i]   harness process objects (nodes[i] is replaced by restarts)
//     lb: {url, port, proc, config, stat(), info(), serverStatus(i), waitServer(i, 'UP'|'DOWN', {timeout}), sessions()}
//         stat() -> Promise<[{name, status}]> from haproxy's stats socket ('show stat', nodes backend)
//         info() -> Promise<{Name: value}> haproxy's 'show info'
//         sessions() -> Promise<[{start, end, status, server: 'n1'|'<NOSRV>', path}]> the requests
//                     haproxy has finished, from its request log (an in-memory ring read through
//                     the stats socket; epoch ms; node i is server `n${i + 1}`)
//     startBroker(args) -> Promise<proc>     one more broker (appended to brokers)
//     killNode(i, sig='SIGKILL')            -> Promise<{code, signal}>
//     startNodeAgain(i)                      starts node i on its port, waits until haproxy sees it UP
//     restartNode(i, {timeout})              SIGTERM (drain), wait for exit, start again, wait UP;
//                                            -> {stoppedAt, exitedAt, upAt, exit, logs: the old process's lines}
//     leaseHolder() -> Promise<{value, pid, index} | null>  from P broker:leader
//     leaderIndex() -> Promise<number>                        -1 when no broker holds the lease
//     brokerLease() -> Promise<boolean>  the brokers run the leader lease (a broker logs
//                                        "lease acquired" or the lease key exists, within 5 s)
//
// startClients(url, {count, topics, curlShare: 0.5, multiEvery: 5, retryDefault: 3000})
//   -> ClientSet of `count` clients, curl (reconnecting wrapper) and
//   eventsource alternating by curlShare; every multiEvery-th client
//   subscribes to two topics (a multi-topic cursor). Each client records the
//   seqs of each of its topics from the payloads, connection attempts,
//   stream ends, ssehub.gap events and (eventsource) give-ups. The set:
//     clients, waitStarted({timeout})     every client got its ssehub.cursor
//     waitComplete(expected, {timeout, stall: 15000})  every client holds as many
//                                         events as expected (rejects early when
//                                         nothing arrives for `stall` ms)
//     verify(expected) -> [problem strings]  exactly the expected seqs, in order,
//                                         no strays, no gaps
//     connectStarts() (timestamps, first connections excluded), disconnects(),
//     sessions(), reconnects(), fatal(), gaps(), curlCount(), close()
//   expected: Map topic -> array of seqs in stream order.
//
// startPublisher(redis, {topics, total, rate, mode: 'publish'|'fcall', pad, maxlen})
//   -> {done: Promise, count(), stop(), log: [{topic, seq, at, ok}]}
//   Publishes "<seq> <topic> <pad>" round-robin over topics at `rate` per
//   second: mode 'publish' = PUBLISH sse:<topic> (through the broker);
//   'fcall' = FCALL ssehub_publish (acceptance known; retried while Redis is
//   down, checking first whether the lost reply's event was stored).
//
// storedSeqs(redis, topic) -> Promise<number[]>  seqs in the topic's stream, in order
// storedByTopic(redis, topics) -> Promise<Map topic -> seqs>;  storedProblems(map) -> [duplicates, disorder]
// streamKey(topic)                                'ssehub:{topic}:s'
// renderHaproxyConfig({lbPort, nodePorts, statsSocket, check, sessionLog}) -> the config text
// peakPer(times, ms=100) -> {peak, at}           most timestamps in one ms-wide bin
// scale(release, asan)                            the asan value under build-asan
// isAsan                                          SSEHUB_BUILD_DIR ends in build-asan

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { EventSource } from 'eventsource';

import { buildDir, sourceDir, freePort, sleep, spawnProcess, startNode, startRedis, waitFor } from './harness.mjs';
import { SseParser } from './sse.mjs';

export const isAsan = /build-asan\/?$/.test(buildDir);
export const scale = (release, asan) => (isAsan ? asan : release);

const tmpDirs = new Set();
const curls = new Set(); // curl processes still running
process.on('exit', () => {
  for (const p of curls) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  for (const d of tmpDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } }
});

export const streamKey = (topic) => `ssehub:{${topic}}:s`;

// ---------------------------------------------------------------- haproxy

// Sends one command to haproxy's stats socket; resolves with the answer.
function haproxyCommand(sock, command) {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let out = '';
    const timer = setTimeout(() => { c.destroy(); reject(new Error('haproxy stats socket timed out')); }, 3000);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d) => { out += d; });
    c.on('error', (e) => { clearTimeout(timer); reject(e); });
    c.on('close', () => { clearTimeout(timer); resolve(out); });
  });
}

// Renders deploy/lb/haproxy.cfg.in for the given node ports.
export function renderHaproxyConfig({ lbPort, nodePorts, statsSocket, check, sessionLog }) {
  const template = fs.readFileSync(path.join(sourceDir, 'deploy/lb/haproxy.cfg.in'), 'utf8');
  const servers = nodePorts.map((p, i) => `  server n${i + 1} 127.0.0.1:${p} check`).join('\n');
  let cfg = template.replaceAll('@LB_PORT@', String(lbPort)).replaceAll('@SERVERS@', servers);
  if (statsSocket) cfg = cfg.replace(/^global[ \t]*$/m, `global\n  stats socket ${statsSocket} mode 600 level admin`);
  if (sessionLog) {
    // one line per request into an in-memory ring (read at the end through
    // the stats socket: "show events"; stderr would drop lines in bursts):
    // accept time, idle time before the request (keep-alive), end time,
    // status, backend/server, path
    cfg = cfg.replace(/^(frontend .*)$/m, '$1\n  log ring@requests local0 info\n  option dontlognull\n'
      + '  log-format "SSEHUB_LB %Ts.%ms %Ti %[date(0,ms)] %ST %b/%s %HP"');
    cfg += '\nring requests\n  format raw\n  maxlen 200\n  size 33554432\n';
  }
  if (check) {
    const { inter = '500ms', fall = 2, rise = 2 } = check;
    cfg = cfg.replace(/^([ \t]*default-server).*$/m, `$1 inter ${inter} fall ${fall} rise ${rise}`);
  }
  if (/@[A-Z_]+@/.test(cfg)) throw new Error(`haproxy template has an unreplaced placeholder: ${cfg.match(/@[A-Z_]+@/)[0]}`);
  return cfg;
}

async function startHaproxy(nodePorts, check) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-lb-'));
  tmpDirs.add(dir);
  const port = await freePort();
  const statsSocket = path.join(dir, 'stats.sock');
  const config = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(config, renderHaproxyConfig({ lbPort: port, nodePorts, statsSocket, check, sessionLog: true }));
  const proc = spawnProcess('/usr/sbin/haproxy', ['-db', '-f', config], { name: 'haproxy' });
  const lb = {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    config,
    // [{name: 'n1', status: 'UP' | 'DOWN' | 'UP 1/2' | ...}] of the nodes backend
    async stat() {
      const csv = await haproxyCommand(statsSocket, 'show stat');
      const lines = csv.split('\n').filter(Boolean);
      const header = lines[0].replace(/^# /, '').split(',');
      const [px, sv, st] = ['pxname', 'svname', 'status'].map((n) => header.indexOf(n));
      return lines.slice(1).map((l) => l.split(','))
        .filter((f) => f[px] === 'nodes' && f[sv] !== 'BACKEND' && f[sv] !== 'FRONTEND')
        .map((f) => ({ name: f[sv], status: f[st] }));
    },
    async info() {
      const out = {};
      for (const l of (await haproxyCommand(statsSocket, 'show info')).split('\n')) {
        const i = l.indexOf(': ');
        if (i > 0) out[l.slice(0, i)] = l.slice(i + 2);
      }
      return out;
    },
    // Requests haproxy has finished, from its log: [{start, end, status, server, path}]
    // (start: when the request arrived, end: when it ended; epoch ms). A
    // request is logged when it ends: streams still open are not here.
    async sessions() {
      const out = [];
      for (const l of (await haproxyCommand(statsSocket, 'show events requests')).split('\n')) {
        const m = /^SSEHUB_LB (\d+)\.(\d+) (-?\d+) (\d+) (-?\d+) (\S+) (\S+)/.exec(l);
        if (!m) continue;
        const start = Number(m[1]) * 1000 + Number(m[2]) + Math.max(Number(m[3]), 0);
        out.push({ start, end: Number(m[4]), status: Number(m[5]), server: m[6].split('/')[1], path: m[7] });
      }
      return out;
    },
    async serverStatus(i) {
      return (await lb.stat()).find((s) => s.name === `n${i + 1}`)?.status;
    },
    waitServer(i, status, { timeout = 20000 } = {}) {
      return waitFor(async () => (await lb.serverStatus(i)) === status,
        { timeout, interval: 50, what: `haproxy to see node ${i} ${status}` });
    },
  };
  const gone = new AbortController();
  proc.exited.then(() => gone.abort());
  await waitFor(() => fs.existsSync(statsSocket), { timeout: 10000, what: 'haproxy stats socket', signal: gone.signal }).catch((e) => {
    throw new Error(`${e.message}; haproxy logs:\n${proc.logs().join('\n')}`);
  });
  return lb;
}

// ---------------------------------------------------------------- cluster

// Starts a broker with spawnProcess; ready once it logs "ready" or, for a
// standby under the leader lease, any line about the lease or standing by.
async function launchBroker(redis, args, readyTimeout = 20000) {
  const file = path.join(buildDir, 'ssehub-broker');
  const p = spawnProcess(file, ['--redis-url', redis.url, ...args], { name: 'ssehub-broker' });
  const ready = (o) => o.msg === 'ready' || /lease|standby|follower/i.test(String(o.msg));
  const gone = new AbortController();
  p.exited.then(() => gone.abort());
  try {
    await waitFor(() => p.jsonLogs().some(ready), { timeout: readyTimeout, what: 'ssehub-broker ready', signal: gone.signal });
  } catch (e) {
    await p.kill('SIGKILL');
    throw new Error(`ssehub-broker not ready: ${e.message}; logs:\n${p.logs().join('\n')}`);
  }
  return p;
}

export async function startCluster({
  nodes: nodeCount = 3,
  brokers: brokerCount = 1,
  redisArgs = ['--appendonly', 'yes', '--appendfsync', 'always'],
  nodeArgs = [],
  brokerArgs = [],
  check,
} = {}) {
  const redis = await startRedis({ args: redisArgs });
  const bArgs = ['--history-max-events', '100000', ...brokerArgs];
  const brokers = [];
  for (let i = 0; i < brokerCount; i++) brokers.push(await launchBroker(redis, bArgs));
  const nArgs = ['--threads', '2', '--history-max-events', '100000', ...nodeArgs];
  const nodes = await Promise.all(Array.from({ length: nodeCount }, () => startNode(redis, { args: nArgs })));
  const lb = await startHaproxy(nodes.map((n) => n.port), check);
  await Promise.all(nodes.map((_, i) => lb.waitServer(i, 'UP')));

  // Starts node i again on its port (retrying while the port is still taken).
  async function startNodeAgain(i) {
    const port = nodes[i].port;
    let lastError;
    for (let attempt = 0; ; attempt++) {
      try {
        nodes[i] = await startNode(redis, { args: nArgs, port });
        break;
      } catch (e) {
        lastError = e;
        if (attempt === 4) throw lastError;
        await sleep(300);
      }
    }
    await lb.waitServer(i, 'UP');
    return nodes[i];
  }

  const prefix = 'ssehub:';
  const cluster = {
    redis,
    brokers,
    nodes,
    lb,
    nodeArgs: nArgs,
    brokerArgs: bArgs,
    killNode: (i, sig = 'SIGKILL') => nodes[i].kill(sig),
    startNodeAgain,
    async restartNode(i, { timeout = 60000 } = {}) {
      const stoppedAt = Date.now();
      const old = nodes[i];
      const exit = await old.stop(timeout);
      const exitedAt = Date.now();
      await startNodeAgain(i);
      return { stoppedAt, exitedAt, upAt: Date.now(), exit, logs: old.logs() };
    },
    async startBroker(args = []) {
      const b = await launchBroker(redis, [...bArgs, ...args]);
      brokers.push(b);
      return b;
    },
    async leaseHolder() {
      const value = await redis.cmd('GET', `${prefix}broker:leader`);
      if (!value) return null;
      const parts = value.split(':');
      const pid = Number(parts[parts.length - 2]);
      return { value, pid, epoch: parts[parts.length - 1], index: brokers.findIndex((b) => b.pid === pid) };
    },
    async leaderIndex() {
      const h = await cluster.leaseHolder();
      return h ? h.index : -1;
    },
    async brokerLease({ timeout = 5000 } = {}) {
      return waitFor(async () => brokers.some((b) => b.jsonLogs().some((o) => /lease acquired/i.test(String(o.msg))))
        || (await redis.cmd('EXISTS', `${prefix}broker:leader`)) === 1, { timeout, what: 'the broker lease' })
        .then(() => true, () => false);
    },
  };
  return cluster;
}

// ---------------------------------------------------------------- clients

// Parses "<seq> <topic> ..." into {seq, topic}.
function parsePayload(data) {
  const a = data.indexOf(' ');
  const b = data.indexOf(' ', a + 1);
  return { seq: Number(data.slice(0, a)), topic: data.slice(a + 1, b < 0 ? undefined : b) };
}

class BaseClient {
  constructor(url, topics, index) {
    this.url = url;
    this.topics = topics;
    this.index = index;
    this.got = new Map(topics.map((t) => [t, []]));
    this.strays = []; // events of topics the client did not ask for
    this.gaps = [];
    this.lastId = '';
    this.started = false; // received its first ssehub.cursor
    this.connects = []; // timestamps of connection attempts (the first is the initial one)
    this.disconnects = []; // timestamps of the end of a stream that had answered
    this.fatal = []; // eventsource gave up for good (non-200 / wrong type): message
    this.sessions = []; // {start, end, events} per connection that answered (end: null while open)
    this.closed = false;
  }

  onEvent(type, data, id) {
    if (id) this.lastId = id;
    if (type === 'message') {
      const { seq, topic } = parsePayload(data);
      const list = this.got.get(topic);
      if (list) list.push(seq);
      else this.strays.push(data);
    } else if (type === 'ssehub.cursor') {
      this.started = true;
    } else if (type === 'ssehub.gap') {
      this.gaps.push(data);
    }
  }
}

// curl does not reconnect by itself: this re-runs it with Last-Event-ID
// after it exits, waiting the last retry: the stream sent (as EventSource does).
class CurlClient extends BaseClient {
  constructor(url, topics, index, { retryDefault = 3000 } = {}) {
    super(url, topics, index);
    this.kind = 'curl';
    this.retry = retryDefault;
    this.timer = null;
    this.proc = null;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const args = ['-sN', '--no-buffer', '--http1.1', '--max-time', '900', '-H', 'Accept: text/event-stream'];
    if (this.lastId) args.push('-H', `Last-Event-ID: ${this.lastId}`);
    args.push(this.url);
    const proc = spawn('curl', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc = proc;
    curls.add(proc);
    this.connects.push(Date.now());
    const parser = new SseParser();
    parser.lastEventId = this.lastId;
    const decoder = new TextDecoder('utf-8');
    let session = null;
    proc.stdout.on('data', (chunk) => {
      if (!session) this.sessions.push(session = { start: this.connects[this.connects.length - 1], end: null, events: 0 });
      parser.push(decoder.decode(chunk, { stream: true }));
      for (const e of parser.events.splice(0)) { session.events++; this.onEvent(e.type, e.data, e.id); }
      if (parser.retry !== null) this.retry = parser.retry;
    });
    proc.on('error', () => {});
    proc.on('close', () => {
      curls.delete(proc);
      if (session) { session.end = Date.now(); this.disconnects.push(session.end); }
      if (this.proc === proc) this.proc = null;
      if (!this.closed) this.timer = setTimeout(() => this.connect(), this.retry);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.proc) { this.proc.kill('SIGKILL'); this.proc = null; }
  }
}

// The eventsource npm client reconnects by itself with Last-Event-ID. If it
// gives up for good (a non-200 answer, which a browser would not survive),
// that is recorded in fatal and a new one is made with ?lastEventID=.
class EsClient extends BaseClient {
  constructor(url, topics, index) {
    super(url, topics, index);
    this.kind = 'eventsource';
    this.es = null;
    this.timer = null;
    this.connect(url);
  }

  connect(url) {
    if (this.closed) return;
    let open = false;
    let session = null;
    const es = new EventSource(url, {
      fetch: (u, init) => { this.connects.push(Date.now()); return fetch(u, init); },
    });
    this.es = es;
    es.onopen = () => {
      open = true;
      this.sessions.push(session = { start: this.connects[this.connects.length - 1], end: null, events: 0 });
    };
    es.onmessage = (e) => { session.events++; this.onEvent('message', e.data, e.lastEventId); };
    for (const type of ['ssehub.cursor', 'ssehub.gap']) {
      es.addEventListener(type, (e) => { session.events++; this.onEvent(type, e.data, e.lastEventId); });
    }
    es.onerror = (e) => {
      if (open) { session.end = Date.now(); this.disconnects.push(session.end); open = false; }
      if (es.readyState === EventSource.CLOSED && !this.closed) {
        this.fatal.push(`${e.code || ''} ${e.message || ''}`.trim());
        const sep = this.url.includes('?') ? '&' : '?';
        const next = this.lastId ? `${this.url}${sep}lastEventID=${encodeURIComponent(this.lastId)}` : this.url;
        this.timer = setTimeout(() => this.connect(next), 1000);
      }
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.es) this.es.close();
  }
}

export function startClients(baseUrl, { count, topics, curlShare = 0.5, multiEvery = 5, retryDefault = 3000 }) {
  const clients = [];
  for (let i = 0; i < count; i++) {
    const t = [topics[i % topics.length]];
    if (multiEvery && i % multiEvery === multiEvery - 1 && topics.length > 1) t.push(topics[(i + 1) % topics.length]);
    const url = `${baseUrl}/events?${t.map((x) => `topic=${encodeURIComponent(x)}`).join('&')}`;
    // spread curl clients evenly: client i is curl when i*share crosses an integer
    const useCurl = Math.floor((i + 1) * curlShare) > Math.floor(i * curlShare);
    clients.push(useCurl ? new CurlClient(url, t, i, { retryDefault }) : new EsClient(url, t, i));
  }
  const set = {
    clients,
    waitStarted({ timeout = 60000 } = {}) {
      return waitFor(() => clients.every((c) => c.started), {
        timeout, interval: 50,
        what: () => `every client started (${clients.filter((c) => c.started).length}/${clients.length})`,
      });
    },
    // Resolves when every client holds at least the expected number of events
    // of each topic; rejects after timeout, or sooner when no client received
    // anything for `stall` ms.
    waitComplete(expected, { timeout = 60000, stall = 15000 } = {}) {
      const behind = () => clients.filter((c) => !c.topics.every((t) => c.got.get(t).length >= (expected.get(t) || []).length));
      const received = () => clients.reduce((n, c) => n + c.topics.reduce((m, t) => m + c.got.get(t).length, 0), 0);
      return (async () => {
        const end = Date.now() + timeout;
        let last = received();
        let lastChange = Date.now();
        let why = null;
        while (behind().length) {
          const n = received();
          if (n !== last) { last = n; lastChange = Date.now(); }
          if (Date.now() - lastChange > stall) why = `no client received anything for ${stall} ms`;
          else if (Date.now() > end) why = `timed out after ${timeout} ms`;
          if (why) {
            const late = behind();
            throw new Error(`${why} waiting for every client to receive every event: ${late.length} clients behind, e.g. `
              + `${late.slice(0, 5).map((c) => `#${c.index} ${c.kind} [${c.topics}] `
                + `${c.topics.map((t) => `${c.got.get(t).length}/${(expected.get(t) || []).length}`)}`
                + ` conns ${c.connects.length} fatal ${c.fatal.length} last ${c.lastId}`).join('; ')}`);
          }
          await sleep(100);
        }
        return true;
      })();
    },
    // Problems (empty when every client got exactly the expected seqs, in order).
    verify(expected) {
      const problems = [];
      for (const c of clients) {
        for (const t of c.topics) {
          const want = expected.get(t) || [];
          const got = c.got.get(t);
          if (got.length === want.length && got.every((s, k) => s === want[k])) continue;
          const seen = new Set();
          let dups = 0;
          for (const s of got) { if (seen.has(s)) dups++; seen.add(s); }
          const missing = want.filter((s) => !seen.has(s));
          const firstDiff = got.findIndex((s, k) => s !== want[k]);
          problems.push(`client #${c.index} (${c.kind}, [${c.topics}]) topic ${t}: got ${got.length}, want ${want.length}, `
            + `${missing.length} missing (e.g. ${missing.slice(0, 5)}), ${dups} duplicates, first difference at ${firstDiff} `
            + `(got ${got.slice(Math.max(firstDiff - 2, 0), firstDiff + 3)} want ${want.slice(Math.max(firstDiff - 2, 0), firstDiff + 3)})`);
        }
        if (c.strays.length) problems.push(`client #${c.index}: ${c.strays.length} events of other topics`);
        if (c.gaps.length) problems.push(`client #${c.index}: ssehub.gap ${c.gaps[0]}`);
      }
      return problems;
    },
    connectStarts: () => clients.flatMap((c) => c.connects.slice(1)),
    disconnects: () => clients.flatMap((c) => c.disconnects),
    sessions: () => clients.flatMap((c) => c.sessions.map((x) => ({ ...x, client: c.index, kind: c.kind }))),
    reconnects: () => clients.reduce((n, c) => n + c.connects.length - 1, 0),
    fatal: () => clients.flatMap((c) => c.fatal.map((f) => `#${c.index}: ${f}`)),
    gaps: () => clients.flatMap((c) => c.gaps),
    curlCount: () => clients.filter((c) => c.kind === 'curl').length,
    close() { for (const c of clients) c.close(); },
  };
  return set;
}

// ---------------------------------------------------------------- publishing

// Resolves with the entry id once the event is stored: FCALL, and when the
// answer is lost (Redis killed, refused), checks the tail of the stream for
// the payload before trying again.
async function fcallStored(redis, key, payload, maxlen, deadline) {
  for (;;) {
    try {
      return await redis.cmd('FCALL', 'ssehub_publish', '1', key, payload, 'maxlen', String(maxlen));
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`publishing failed for too long: ${e.message}`);
      await sleep(50);
      try {
        const tail = await redis.cmd('XREVRANGE', key, '+', '-', 'COUNT', '5');
        const hit = tail.find(([, f]) => f[f.indexOf('data') + 1] === payload);
        if (hit) return hit[0];
      } catch { /* still down: try again */ }
    }
  }
}

export function startPublisher(redis, { topics, total = Infinity, rate = 200, mode = 'publish', pad = 48, maxlen = 100000,
  maxStall = 60000 } = {}) {
  const seqs = new Map(topics.map((t) => [t, 0]));
  const log = [];
  let stopped = false;
  let k = 0;
  const filler = 'x'.repeat(pad);
  const done = (async () => {
    const t0 = Date.now();
    while (k < total && !stopped) {
      const due = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000) + 1);
      while (k < due && !stopped) {
        const topic = topics[k % topics.length];
        const seq = seqs.get(topic) + 1;
        seqs.set(topic, seq);
        const payload = `${seq} ${topic} ${filler}`;
        const at = Date.now();
        if (mode === 'fcall') {
          const id = await fcallStored(redis, streamKey(topic), payload, maxlen, Date.now() + maxStall);
          log.push({ topic, seq, at, ok: true, id });
        } else {
          const receivers = await redis.cmd('PUBLISH', `sse:${topic}`, payload);
          log.push({ topic, seq, at, ok: receivers > 0, receivers });
        }
        k++;
      }
      await sleep(5);
    }
    return k;
  })();
  return {
    done,
    log,
    count: () => k,
    stop() { stopped = true; return done; },
  };
}

// The seqs stored in a topic's stream, in stream order.
export async function storedSeqs(redis, topic) {
  const rows = await redis.cmd('XRANGE', streamKey(topic), '-', '+');
  return rows.map(([, f]) => parsePayload(f[f.indexOf('data') + 1]).seq);
}

// Map topic -> stored seqs, for every topic.
export async function storedByTopic(redis, topics) {
  const m = new Map();
  for (const t of topics) m.set(t, await storedSeqs(redis, t));
  return m;
}

// Problems of a stored stream: duplicates or seqs out of order.
export function storedProblems(stored) {
  const problems = [];
  for (const [t, seqs] of stored) {
    const seen = new Set();
    for (let k = 0; k < seqs.length; k++) {
      if (seen.has(seqs[k])) problems.push(`${t}: seq ${seqs[k]} stored twice`);
      if (k && seqs[k] <= seqs[k - 1]) problems.push(`${t}: seq ${seqs[k]} stored after ${seqs[k - 1]}`);
      seen.add(seqs[k]);
    }
  }
  return problems;
}

// The most timestamps in one `ms`-wide bin (bins aligned on multiples of ms).
export function peakPer(times, ms = 100) {
  const bins = new Map();
  for (const t of times) {
    const b = Math.floor(t / ms);
    bins.set(b, (bins.get(b) || 0) + 1);
  }
  let peak = 0;
  let at = null;
  for (const [b, n] of bins) if (n > peak) { peak = n; at = b * ms; }
  return { peak, at };
}
