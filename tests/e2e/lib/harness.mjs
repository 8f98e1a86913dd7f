// ssehub end-to-end test harness: real redis-server, ssehub-broker and
// ssehub-node processes on loopback, with bounded waits and guaranteed
// cleanup. Node 20, built-ins only. Keep this API stable: every e2e test
// imports it.
//
//   import { after } from 'node:test';
//   import { startRedis, startBroker, startNode, waitFor, cleanupAll, freePort } from './lib/harness.mjs';
//   after(cleanupAll);                       // kill everything this file started
//
// freePort() -> Promise<number>: a currently free TCP port on 127.0.0.1.
// makeCert() -> {dir, cert, key}: a self-signed PEM certificate for localhost
//   and 127.0.0.1 (openssl), removed at cleanup.
//
// With SSEHUB_TEST_REDIS=cluster in the environment, startRedis starts a
// 3-master, 3-replica Redis Cluster instead and returns an object of the
// same shape (rediscluster.mjs, startClusterAsRedis): url names every node,
// cmd routes each command to the master of its key; kill, restart and port
// throw. `onCluster` is true then (tests skip what needs one server).
//
// startRedis({args: [], password}) -> Promise<redis>: starts redis-server with
//   --save '' --appendonly no --port P --bind 127.0.0.1 --dir <tmpdir> ...args
//   and waits until it answers PING. If args hold --requirepass, cmd() AUTHs
//   with it (or pass password). The object:
//     port, url ('redis://127.0.0.1:P', no credentials), dir, proc
//     cmd(...args) -> Promise<reply>   one persistent RESP connection (resp.mjs),
//                                      reconnected on the next call after a restart
//     cmdBuffers(...args)              the same with Buffer bulk replies
//     client(opts) -> Promise<resp client>  a new connection (AUTHed), closed at cleanup
//     logs() -> string[]               redis-server's output lines
//     stop() -> Promise<{code,signal}> SHUTDOWN-free SIGTERM, waits for exit
//     kill(signal='SIGKILL') -> Promise<{code,signal}>
//     restart() -> Promise             stops it if running, starts it again on the same port
//
// startBroker(redis, {env: {}, args: [], redisUrl, readyTimeout: 15000})
// startNode(redis, {env: {}, args: [], redisUrl, readyTimeout: 15000, port, waitReady: true, tls})
//   (tls: {cert, key} from makeCert(): TLS on port, url https://...; plainPort /
//   plainUrl: the cleartext listen_plain port, where readiness is checked)
//   -> Promise<proc>: spawn ${SSEHUB_BUILD_DIR}/ssehub-broker | ssehub-node
//   (SSEHUB_BUILD_DIR, default <repo>/build) with --redis-url (redisUrl or
//   redis.url; pass redis = null to give everything in args) and, for nodes,
//   --listen 127.0.0.1:<free port>. Waits until ready: the broker logs
//   {"msg":"ready"} (Function library loaded and PSUBSCRIBE confirmed); a node
//   answers GET /readyz with 200 (its Redis link
//   is up; with waitReady: false, /healthz: the process serves). Rejects with the logs if it exits first or
//   is not ready in time. The object:
//     port (node only), url ('http://127.0.0.1:port', node only), proc, pid
//     logs() -> string[]        stdout+stderr lines so far
//     jsonLogs() -> object[]    the lines that parse as JSON
//     waitForLog(pred | msg, {timeout, since}) -> Promise<object>  the first JSON log line
//                               (from index `since` on) matching pred(obj) or obj.msg === msg
//     stop(timeout=10000) -> Promise<{code,signal}>  SIGTERM, waits for exit (SIGKILL after timeout)
//     kill(sig='SIGKILL') -> Promise<{code,signal}>
//     exited: Promise<{code,signal}>
//
// spawnProcess(cmd, args, {env, name}) -> proc object as above without
//   readiness (for bad-config tests and other binaries); registered for cleanup.
//
// waitFor(predicate, {timeout=10000, interval=20, what, signal}) -> Promise<value>:
//   resolves with the first truthy value of predicate() (sync or async; a
//   throwing predicate counts as falsy), rejects naming `what` on timeout
//   (with the predicate's last error), or at once when the AbortSignal fires.
//
// startTcpProxy(targetPort, {host='127.0.0.1'}) -> Promise<proxy>: a loopback
//   TCP proxy to simulate a slow or stalled network between a process and Redis.
//     port, url ('redis://127.0.0.1:port'), connections (array, accept order)
//     waitForConnection(pred, {timeout}) -> Promise<conn>  first conn with pred(conn)
//     close()                          closes the listener and every connection
//   Each conn: id, sent() -> Buffer (client->server bytes so far), received() ->
//   Buffer (server->client bytes forwarded so far), held -> bytes held back,
//   hold() (stop forwarding server->client, buffering instead),
//   release(n = Infinity) (forward n held bytes; Infinity also stops holding),
//   heldSent -> client->server bytes held back, holdSent() (stop forwarding
//   client->server, buffering instead: the process's writes stall on the way
//   to Redis), releaseSent() (forward them all and stop holding),
//   destroy() (reset both sides).
//
// cleanupAll() -> Promise: kills every process started here (SIGKILL), closes
//   RESP connections and proxies and removes temporary directories. Also runs
//   at process exit.
//
// buildDir, sourceDir: where the binaries and the repository are.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { connect } from './resp.mjs';

export const sourceDir =
  process.env.SSEHUB_SOURCE_DIR || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const onCluster = process.env.SSEHUB_TEST_REDIS === 'cluster';
export const buildDir = process.env.SSEHUB_BUILD_DIR || path.join(sourceDir, 'build');

const live = new Set(); // child processes still running
const clients = new Set(); // RESP connections
const tmpDirs = new Set();
const proxies = new Set();

process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const d of tmpDirs) {
    try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

export async function cleanupAll() {
  for (const c of clients) c.close();
  clients.clear();
  for (const p of proxies) p.close();
  proxies.clear();
  const exits = [];
  for (const p of live) {
    exits.push(new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', r))));
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  let timer;
  await Promise.race([Promise.all(exits), new Promise((r) => { timer = setTimeout(r, 5000); })]);
  clearTimeout(timer);
  live.clear();
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(predicate, { timeout = 10000, interval = 20, what = 'condition', signal } = {}) {
  const end = Date.now() + timeout;
  let lastError;
  for (;;) {
    if (signal && signal.aborted) throw new Error(`stopped waiting for ${what}`);
    let timer;
    try {
      // a predicate that never settles (a command to a stalled Redis) must not outlive the timeout
      const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('predicate did not settle')), Math.max(end - Date.now(), 1));
      });
      const v = await Promise.race([predicate(), expired]);
      if (v) return v;
    } catch (e) {
      lastError = e;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= end) {
      const why = lastError ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${why}`);
    }
    await sleep(interval);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Collects a stream's output as lines into out.
function collectLines(stream, out) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    out.push(...parts);
  });
  stream.on('end', () => { if (partial) out.push(partial); partial = ''; });
}

export function spawnProcess(cmd, args, { env = {}, name = path.basename(cmd) } = {}) {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  live.add(proc);
  collectLines(proc.stdout, lines);
  collectLines(proc.stderr, lines);
  const exited = new Promise((resolve) => {
    proc.on('error', (e) => { lines.push(`spawn error: ${e.message}`); live.delete(proc); resolve({ code: -1, signal: null }); });
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      // let the pipes drain so logs() holds the last lines
      setImmediate(() => resolve({ code, signal }));
    });
  });
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const jsonLogs = () => lines.flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try { return [JSON.parse(l)]; } catch { return []; }
  });
  return {
    name,
    proc,
    pid: proc.pid,
    exited,
    logs: () => lines.slice(),
    jsonLogs,
    waitForLog(pred, { timeout = 10000, since = 0 } = {}) {
      const match = typeof pred === 'function' ? pred : (o) => o.msg === pred;
      const what = typeof pred === 'function' ? `a matching ${name} log line` : `${name} log "${pred}"`;
      return waitFor(() => jsonLogs().slice(since).find(match), { timeout, what });
    },
    kill(signal = 'SIGKILL') {
      if (running()) proc.kill(signal);
      return exited;
    },
    async stop(timeout = 10000) {
      if (running()) proc.kill('SIGTERM');
      const t = setTimeout(() => { if (running()) proc.kill('SIGKILL'); }, timeout);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// Returns the value after --requirepass in redis-server arguments, if any.
function requirepassOf(args) {
  const i = args.indexOf('--requirepass');
  return i >= 0 ? args[i + 1] : undefined;
}

export async function startRedis({ args = [], password = requirepassOf(args) } = {}) {
  if (process.env.SSEHUB_TEST_REDIS === 'cluster') {
    // the same test file on a 3-master Redis Cluster (rediscluster.mjs)
    const { startClusterAsRedis } = await import('./rediscluster.mjs');
    return startClusterAsRedis({ args });
  }
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-redis-'));
  tmpDirs.add(dir);
  const fullArgs = ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1',
    '--dir', dir, ...args];
  let server = null;
  let main = null; // the cmd() connection
  let mainPending = null; // its connect, shared by calls made meanwhile

  async function newClient(opts = {}) {
    const c = await connect(port, opts);
    clients.add(c);
    if (password !== undefined) await c.cmd('AUTH', password);
    return c;
  }

  async function launch() {
    server = spawnProcess('redis-server', fullArgs, { name: 'redis-server' });
    const gone = new AbortController();
    server.exited.then(() => gone.abort());
    const pinged = waitFor(async () => {
      const c = await connect(port);
      try {
        await c.cmd('PING').catch((e) => { if (!/NOAUTH/.test(e.message)) throw e; });
        return true;
      } finally {
        c.close();
      }
    }, { timeout: 10000, what: `redis-server on port ${port} to answer PING`, signal: gone.signal });
    const outcome = await untilReadyOrExit(pinged, server);
    if (outcome !== true) {
      await server.kill();
      throw new Error(`redis-server ${outcome}; logs:\n${server.logs().join('\n')}`);
    }
  }

  async function mainClient() {
    if (main && !main.closed) return main;
    if (!mainPending) {
      mainPending = newClient().then((c) => { main = c; return c; })
        .finally(() => { mainPending = null; });
    }
    return mainPending;
  }

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get proc() { return server.proc; },
    logs: () => server.logs(),
    cmd: async (...a) => (await mainClient()).cmd(...a),
    cmdBuffers: async (...a) => (await mainClient()).cmdBuffers(...a),
    client: (opts) => newClient(opts),
    stop: () => server.stop(),
    kill: (signal = 'SIGKILL') => server.kill(signal),
    async restart() {
      await server.stop();
      if (main) { main.close(); main = null; }
      await launch();
    },
  };
}

// Resolves true when `ready` resolves first, or a text saying why not
// (the process exited, or ready rejected: timeout).
async function untilReadyOrExit(ready, p) {
  return Promise.race([
    ready.then(() => true, (e) => e.message),
    p.exited.then((r) => `exited early (code ${r.code}, signal ${r.signal})`),
  ]);
}

// Spawns an ssehub binary and waits until readyCheck(proc) is truthy.
async function startSsehub(binary, args, env, readyCheck, readyTimeout) {
  const file = path.join(buildDir, binary);
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist (set SSEHUB_BUILD_DIR)`);
  const p = spawnProcess(file, args, { env, name: binary });
  const gone = new AbortController();
  p.exited.then(() => gone.abort());
  const ready = waitFor(() => readyCheck(p), { timeout: readyTimeout, what: `${binary} to be ready`, signal: gone.signal });
  const outcome = await untilReadyOrExit(ready, p);
  if (outcome !== true) {
    await p.kill('SIGKILL');
    throw new Error(`${binary} ${outcome}; logs:\n${p.logs().join('\n')}`);
  }
  return p;
}

// Returns the --redis-url arguments for a process.
function redisArgs(redis, redisUrl) {
  const url = redisUrl || (redis && redis.url);
  return url ? ['--redis-url', url] : [];
}

export async function startBroker(redis, { env = {}, args = [], redisUrl, readyTimeout = 15000 } = {}) {
  const ready = (p) => p.jsonLogs().some((o) => o.msg === 'ready');
  return startSsehub('ssehub-broker', [...redisArgs(redis, redisUrl), ...args], env, ready, readyTimeout);
}

// Resolves true when GET url answers 200 (false on any error).
function healthy(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
}

// tls: {cert, key} (see makeCert) serves TLS on port and cleartext HTTP/1.1
// + h2c on plainPort (listen_plain); url is then https://, plainUrl http://.
export async function startNode(redis, { env = {}, args = [], redisUrl, readyTimeout = 15000, port: fixedPort,
  waitReady = true, tls = null } = {}) {
  const port = fixedPort || await freePort();
  const plainPort = tls ? await freePort() : port;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const plainUrl = `http://127.0.0.1:${plainPort}`;
  const tlsArgs = tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key, '--listen-plain', `127.0.0.1:${plainPort}`] : [];
  // /readyz: the node's Redis link is up, so streams are not refused
  const p = await startSsehub('ssehub-node',
    [...redisArgs(redis, redisUrl), '--listen', `127.0.0.1:${port}`, ...tlsArgs, ...args], env,
    () => healthy(`${plainUrl}/${waitReady ? 'readyz' : 'healthz'}`), readyTimeout);
  return Object.assign(p, { port, url, plainPort, plainUrl });
}

// Makes a self-signed certificate for localhost and 127.0.0.1 with the
// openssl command; returns {dir, cert, key} (PEM file paths).
export function makeCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-tls-'));
  tmpDirs.add(dir);
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { dir, cert, key };
}

// Returns the per-connection control object of a proxied connection.
function proxyConnection(id, client, upstream) {
  const sent = [];
  const received = [];
  let holding = false;
  let heldChunks = [];
  let holdingSent = false;
  let heldSentChunks = [];
  const conn = {
    id,
    get held() { return heldChunks.reduce((n, b) => n + b.length, 0); },
    get heldSent() { return heldSentChunks.reduce((n, b) => n + b.length, 0); },
    holdSent() { holdingSent = true; },
    releaseSent() {
      holdingSent = false;
      const out = Buffer.concat(heldSentChunks);
      heldSentChunks = [];
      if (out.length) upstream.write(out);
    },
    sent: () => Buffer.concat(sent),
    received: () => Buffer.concat(received),
    hold() { holding = true; },
    release(n = Infinity) {
      let out = Buffer.concat(heldChunks);
      const take = Math.min(n, out.length);
      heldChunks = take < out.length ? [out.subarray(take)] : [];
      out = out.subarray(0, take);
      if (n === Infinity) holding = false;
      if (out.length) { received.push(out); client.write(out); }
    },
    destroy() { client.destroy(); upstream.destroy(); },
  };
  client.on('data', (d) => {
    sent.push(d);
    if (holdingSent) heldSentChunks.push(d);
    else upstream.write(d);
  });
  upstream.on('data', (d) => {
    if (holding) heldChunks.push(d);
    else { received.push(d); client.write(d); }
  });
  for (const [a, b] of [[client, upstream], [upstream, client]]) {
    a.on('error', () => b.destroy());
    a.on('close', () => b.destroy());
  }
  return conn;
}

export function startTcpProxy(targetPort, { host = '127.0.0.1' } = {}) {
  const connections = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.createConnection({ port: targetPort, host });
    sockets.add(client).add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    connections.push(proxyConnection(connections.length, client, upstream));
  });
  const proxy = {
    port: 0,
    url: '',
    connections,
    waitForConnection(pred, { timeout = 10000 } = {}) {
      return waitFor(() => connections.find(pred), { timeout, what: 'a matching proxied connection' });
    },
    close() {
      server.close();
      for (const s of sockets) s.destroy();
      proxies.delete(proxy);
    },
  };
  proxies.add(proxy);
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      proxy.port = server.address().port;
      proxy.url = `redis://127.0.0.1:${proxy.port}`;
      resolve(proxy);
    });
  });
}
