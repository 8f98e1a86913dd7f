// TLS, HTTP/2 and h2c on the node: ALPN, curl and nghttp over TLS, the
// HTTP/1.1 socket takeover inside TLS, h2c by prior knowledge and by
// upgrade on listen_plain, many streams on one connection, the HTTP/2 Rapid
// Reset guard, bad TLS settings, and 20 EventSources of one page in
// headless Chromium over HTTPS (HTTP/2) against the 6 HTTP/1.1 allows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import tls from 'node:tls';
import { launchChromium } from './lib/browser.mjs';

import {
  buildDir, cleanupAll, makeCert, sleep, startBroker, startNode, startRedis, waitFor,
} from './lib/harness.mjs';
import { SseParser, curlStream } from './lib/sse.mjs';

const T = { timeout: 60000 };
let redis, node, cert;

before(async () => {
  cert = makeCert();
  redis = await startRedis();
  await startBroker(redis);
  node = await startNode(redis, { tls: cert, args: ['--threads', '2', '--http2-max-stream-starts', '100'] });
});
after(cleanupAll);

// Publishes and resolves once the event is stored (so it is also live).
async function publish(topic, data) {
  const key = `ssehub:{${topic}}:s`;
  const before = Number(await redis.cmd('XLEN', key));
  await redis.cmd('PUBLISH', `sse:${topic}`, data);
  await waitFor(async () => Number(await redis.cmd('XLEN', key)) > before, { what: `${topic} stored` });
}

// Opens an SSE stream on an HTTP/2 session; resolves on the response head.
function h2Stream(session, urlPath) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': urlPath, accept: 'text/event-stream' });
    const parser = new SseParser();
    req.setEncoding('utf8');
    req.on('data', (t) => parser.push(t));
    req.on('error', reject);
    req.on('response', (headers) => resolve({
      status: headers[':status'],
      headers,
      events: parser.events,
      waitFor: (pred, what) => waitFor(() => pred(parser.events), { what }),
      close: () => req.close(),
    }));
  });
}

// A raw HTTP/2-over-TLS client that opens streams and resets them at once
// (HTTP/2 Rapid Reset, CVE-2023-44487).
function rapidResetClient() {
  const frame = (type, flags, id, payload) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    return Buffer.concat([h, payload]);
  };
  const literal = (index, value) => Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value)]);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: node.port, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      assert.equal(sock.alpnProtocol, 'h2');
      sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
      resolve(client);
    });
    const client = {
      closed: false,
      // writes n streams from id first on (odd ids), each HEADERS then RST_STREAM (CANCEL)
      burst(first, n, urlPath) {
        const parts = [];
        for (let k = 0; k < n; k++) {
          const id = first + 2 * k;
          // :method GET, :scheme https (static table), :authority and :path as literals without indexing
          const block = Buffer.concat([Buffer.from([0x82, 0x87]), literal(0x01, 'localhost'), literal(0x04, urlPath)]);
          parts.push(frame(1, 0x5, id, block), frame(3, 0, id, Buffer.from([0, 0, 0, 8])));
        }
        return new Promise((r) => {
          if (client.closed || !sock.write(Buffer.concat(parts))) sock.once('drain', r); else setImmediate(r);
          sock.once('close', r);
        });
      },
    };
    sock.on('data', () => {});
    sock.on('error', () => {});
    sock.on('close', () => { client.closed = true; });
    sock.once('error', reject);
  });
}

function alpn(protocols) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: node.port, servername: 'localhost', ALPNProtocols: protocols,
      ca: fs.readFileSync(cert.cert) }, () => {
      resolve({ protocol: s.alpnProtocol, authorized: s.authorized, version: s.getProtocol() });
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('TLS and ALPN', () => {
  test('ALPN offers h2 and http/1.1; the certificate from tls_cert is served', T, async () => {
    const h2 = await alpn(['h2', 'http/1.1']);
    assert.equal(h2.protocol, 'h2');
    assert.equal(h2.authorized, true, 'the chain verifies against the test CA');
    assert.match(h2.version, /^TLSv1\.[23]$/);
    assert.equal((await alpn(['http/1.1'])).protocol, 'http/1.1');
  });

  test('curl --http2 over TLS receives a PUBLISHed event', T, async () => {
    const c = curlStream(`${node.url}/events?topic=tls-h2`, { args: ['-k', '--http2', '-i'] });
    await c.waitForText((t) => t.includes('event: ssehub.cursor'));
    assert.match(c.text(), /^HTTP\/2 200/);
    await publish('tls-h2', 'over h2');
    await c.waitForText((t) => t.includes('data: over h2\n'));
    await c.close();
  });

  test('curl --http1.1 over TLS (the socket taken over inside TLS) receives events', T, async () => {
    const c = curlStream(`${node.url}/events?topic=tls-h1`, { args: ['-k', '--http1.1', '-i'] });
    await c.waitForText((t) => t.includes('event: ssehub.cursor'));
    assert.match(c.text(), /^HTTP\/1\.1 200/);
    for (let i = 0; i < 3; i++) await publish('tls-h1', `h1 ${i}`);
    await c.waitForText((t) => t.includes('data: h1 2\n'));
    assert.deepEqual([...c.text().matchAll(/data: (h1 \d)/g)].map((m) => m[1]), ['h1 0', 'h1 1', 'h1 2']);
    await c.close();
  });

  test('nghttp negotiates h2 and streams', T, async () => {
    const p = spawn('nghttp', ['-v', `${node.url}/events?topic=tls-nghttp`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    try {
      await waitFor(() => out.includes('event: ssehub.cursor'), { what: 'nghttp stream open' });
      assert.match(out, /The negotiated protocol: h2/);
      await publish('tls-nghttp', 'to nghttp');
      await waitFor(() => out.includes('data: to nghttp'), { what: 'the event through nghttp' });
    } finally {
      p.kill('SIGKILL');
    }
  });
});

describe('h2c on listen_plain', () => {
  test('prior knowledge and Upgrade: h2c both stream', T, async () => {
    const pk = curlStream(`${node.plainUrl}/events?topic=h2c`, { args: ['--http2-prior-knowledge', '-i'] });
    const up = curlStream(`${node.plainUrl}/events?topic=h2c`, { args: ['--http2', '-i'] });
    for (const c of [pk, up]) await c.waitForText((t) => t.includes('event: ssehub.cursor'));
    assert.match(pk.text(), /^HTTP\/2 200/);
    assert.match(up.text(), /^HTTP\/1\.1 101 Switching Protocols[\s\S]*upgrade: h2c[\s\S]*HTTP\/2 200/i);
    await publish('h2c', 'cleartext h2');
    for (const c of [pk, up]) await c.waitForText((t) => t.includes('data: cleartext h2\n'));
    await Promise.all([pk.close(), up.close()]);
  });

  test('listen_plain serves HTTP/1.1 too', T, async () => {
    const res = await fetch(`${node.plainUrl}/healthz`);
    assert.equal(res.status, 200);
  });
});

describe('HTTP/2 multiplexing', () => {
  test('50 streams on one TLS connection each receive their own topic', T, async () => {
    const session = http2.connect(node.url, { rejectUnauthorized: false });
    try {
      const streams = await Promise.all(Array.from({ length: 50 }, (_, i) => h2Stream(session, `/events?topic=mux${i}`)));
      assert.ok(streams.every((s) => s.status === 200));
      await Promise.all(streams.map((s) => s.waitFor((ev) => ev.some((e) => e.type === 'ssehub.cursor'), 'cursor')));
      await Promise.all(streams.map((_, i) => publish(`mux${i}`, `event ${i}`)));
      await Promise.all(streams.map((s, i) => s.waitFor((ev) => ev.some((e) => e.data === `event ${i}`), `mux${i}`)));
      for (const [i, s] of streams.entries()) {
        assert.deepEqual(s.events.filter((e) => e.type === 'message').map((e) => e.data), [`event ${i}`]);
      }
    } finally {
      session.destroy();
    }
  });
});

describe('HTTP/2 Rapid Reset guard', () => {
  test('a connection opening and resetting streams in a loop is cut; others keep streaming', T, async () => {
    const since = node.jsonLogs().length;
    const good = http2.connect(node.url, { rejectUnauthorized: false });
    const s = await h2Stream(good, '/events?topic=rr-good');
    await s.waitFor((ev) => ev.some((e) => e.type === 'ssehub.cursor'), 'cursor');

    // Node's HTTP/2 client does not send a stream it cancels at once, so the
    // attack is written frame by frame: HEADERS then RST_STREAM, in a loop.
    const bad = await rapidResetClient();
    let opened = 0;
    const deadline = Date.now() + 15000;
    while (!bad.closed && opened < 20000 && Date.now() < deadline) {
      await bad.burst(opened * 2 + 1, 100, `/events?topic=rr${opened % 10}`);
      opened += 100;
    }
    const closed = () => bad.closed;
    await waitFor(closed, { timeout: 10000, what: 'the abusive connection closed by the node' });
    assert.ok(opened > 100, `cut after ${opened} stream starts, not before the limit`);
    const log = await node.waitForLog('connection cut: too many HTTP/2 stream starts', { since });
    assert.equal(log.limit_per_second, 100);
    assert.equal(log.peer, '127.0.0.1');

    await publish('rr-good', 'still here');
    await s.waitFor((ev) => ev.some((e) => e.data === 'still here'), 'the other connection still streams');
    good.destroy();
    // a new connection is served
    const fresh = http2.connect(node.url, { rejectUnauthorized: false });
    const f = await h2Stream(fresh, '/events?topic=rr-good');
    assert.equal(f.status, 200);
    fresh.destroy();
  });
});

describe('bad TLS settings stop start-up with a message naming the setting', () => {
  const bin = path.join(buildDir, 'ssehub-node');
  const run = (args) => spawnSync(bin, ['--redis-url', 'redis://127.0.0.1:1', '--listen', '127.0.0.1:9', ...args],
    { encoding: 'utf8', timeout: 10000 });
  test('certificate without key, missing files, a key of another certificate, listen_plain without TLS', T, () => {
    let r = run(['--tls-cert', cert.cert]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /tls_key: set tls_cert and tls_key together/);
    r = run(['--tls-cert', '/nonexistent/cert.pem', '--tls-key', cert.key]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /tls_cert: cannot load the certificate chain \/nonexistent\/cert\.pem/);
    const other = makeCert();
    r = run(['--tls-cert', cert.cert, '--tls-key', other.key]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /tls_key: /);
    r = run(['--listen-plain', '127.0.0.1:9']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /listen_plain: only with tls_cert/);
  });
});

describe('browser', () => {
  let browser;
  before(async () => {
    browser = await launchChromium(['--ignore-certificate-errors']);
  });
  after(async () => { if (browser) await browser.close(); });

  // Opens n EventSources from a page of origin base; returns the page.
  async function openSources(base, prefix, n) {
    const page = await browser.newPage({ ignoreHTTPSErrors: true });
    await page.goto(`${base}/healthz`);
    await page.evaluate(({ prefix: p, n: count }) => {
      window.opened = 0;
      window.got = {};
      window.sources = [];
      for (let i = 0; i < count; i++) {
        const es = new EventSource(`/events?topic=${p}${i}`);
        es.onopen = () => { window.opened++; };
        es.onmessage = (e) => { window.got[i] = e.data; };
        window.sources.push(es);
      }
    }, { prefix, n });
    return page;
  }

  test('one HTTPS page: 20 EventSources over HTTP/2 all receive live events at once', T, async () => {
    const page = await openSources(node.url, 'page', 20);
    try {
      await page.waitForFunction(() => window.opened === 20, null, { timeout: 15000 });
      const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      assert.equal(proto, 'h2');
      await sleep(200);
      await Promise.all(Array.from({ length: 20 }, (_, i) => publish(`page${i}`, `to ${i}`)));
      await page.waitForFunction(() => Object.keys(window.got).length === 20, null, { timeout: 15000 });
      const got = await page.evaluate(() => window.got);
      for (let i = 0; i < 20; i++) assert.equal(got[i], `to ${i}`);
    } finally {
      await page.close();
    }
  });

  test('the same page over cleartext HTTP/1.1 gets only 6 streams open (why HTTP/2 matters)', T, async () => {
    const page = await openSources(node.plainUrl, 'plain', 20);
    try {
      await page.waitForFunction(() => window.opened === 6, null, { timeout: 15000 });
      await sleep(1500);
      assert.equal(await page.evaluate(() => window.opened), 6);
    } finally {
      await page.close();
    }
  });
});
