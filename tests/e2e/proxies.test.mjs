// Taken-over HTTP/1.1 streams through real reverse proxies in front (nginx
// and haproxy from Debian): the 200 head with "Connection: upgrade" and a
// close-delimited body pass through, events flow unbuffered, a client that
// leaves the proxy is noticed by the node, and resume works through it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis, startNode, spawnProcess, freePort, waitFor, cleanupAll, sleep } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';

let redis, node;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-proxies-'));

before(async () => {
  redis = await startRedis();
  // haproxy keeps the upstream connection after the client half-closes,
  // until a write fails: a 1 s heartbeat bounds that here
  node = await startNode(redis, { args: ['--threads', '1', '--heartbeat-interval', '1', '--topic-linger-ms', '0'] });
});
after(async () => {
  await cleanupAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function startNginx() {
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${node.port};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}`);
  const p = spawnProcess('/usr/sbin/nginx', ['-c', conf, '-p', dir], { name: 'nginx' });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200,
    { what: 'nginx up' });
  return { port, url: `http://127.0.0.1:${port}`, proc: p };
}

async function startHaproxy() {
  const port = await freePort();
  const conf = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(conf, `
global
  maxconn 1000
defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
frontend fe
  bind 127.0.0.1:${port}
  default_backend nodes
backend nodes
  server n1 127.0.0.1:${node.port}
`);
  const p = spawnProcess('/usr/sbin/haproxy', ['-db', '-f', conf], { name: 'haproxy' });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200,
    { what: 'haproxy up' });
  return { port, url: `http://127.0.0.1:${port}`, proc: p };
}

const numsub = async (topic) => Number((await redis.cmd('PUBSUB', 'NUMSUB', `ssehub:{${topic}}:l`))[1]);
const messages = (s) => s.events.filter((e) => e.type === 'message').map((e) => e.data);

for (const [name, start] of [['nginx', startNginx], ['haproxy', startHaproxy]]) {
  test(`through ${name}: live events, a leaving client, and resume`, async () => {
    const proxy = await start();
    const topic = `via${name}`;
    const s = await rawSse(`${proxy.url}/events?topic=${topic}`, { timeout: 20000 });
    assert.equal(s.status, 200);
    assert.match(s.headers['content-type'], /^text\/event-stream/);
    await waitFor(() => s.events.length, { what: 'cursor event through the proxy' });
    const ids = [];
    for (let i = 1; i <= 5; i++) {
      ids.push(await redis.cmd('FCALL', 'ssehub_publish', '1', `ssehub:{${topic}}:s`, `p${i}`));
      // unbuffered: each event arrives before the next is published
      await waitFor(() => messages(s).length === i, { timeout: 2000, what: `event ${i} through ${name}` });
    }
    assert.equal(await numsub(topic), 1);
    s.close();
    await waitFor(async () => (await numsub(topic)) === 0, { timeout: 4000, what: 'the node saw the client leave' });
    const r = await rawSse(`${proxy.url}/events?topic=${topic}`, { timeout: 5000, headers: { 'Last-Event-ID': ids[1] } });
    await waitFor(() => messages(r).length >= 3, { what: 'resume through the proxy' });
    await sleep(100);
    assert.deepEqual(messages(r), ['p3', 'p4', 'p5']);
    r.close();
    proxy.proc.kill('SIGTERM');
  });
}
