// Hostile input: a corpus of bad requests, each with the status and JSON
// error it must get; bytes that must not break framing; trickled headers
// (slowloris), oversized heads and bodies, connect/disconnect floods. After
// the corpus the node still serves a normal stream, and (this suite also
// runs under ASan/UBSan) reports no error and no leak when it stops.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { cleanupAll, onCluster, sleep, startBroker, startNode, startRedis, waitFor } from './lib/harness.mjs';
import { rawSse } from './lib/sse.mjs';
import { mercureToken } from './lib/jwt.mjs';

const T = { timeout: 90000 };

// Waits until a stream opened at url stays open (is not refused).
function waitForRoom(url) {
  return waitFor(async () => {
    const d = await rawSse(url);
    await sleep(100);
    const ok = !d.isEnded;
    d.close();
    return ok;
  }, { timeout: 5000, what: 'room for a new stream once one ended' });
}
const KEY = 'hostile-test-key';
let redis, broker, node;

before(async () => {
  redis = await startRedis();
  broker = await startBroker(redis);
  node = await startNode(redis, { args: ['--jwt-key', KEY, '--max-topic-length', '64', '--max-topics-per-connection', '8'] });
});
after(cleanupAll);

// Sends raw bytes on a fresh connection; resolves with what came back when
// the server closed it (or after ms).
function raw(bytes, { ms = 3000 } = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    const sock = net.connect(node.port, '127.0.0.1', () => sock.write(bytes));
    const done = () => { clearTimeout(timer); sock.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); };
    const timer = setTimeout(done, ms);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', done);
    sock.on('error', done);
  });
}

// Status and parsed JSON body of a raw HTTP/1.1 answer.
function parseAnswer(text) {
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1]);
  const body = text.split('\r\n\r\n').slice(1).join('\r\n\r\n');
  let json = null;
  try { json = JSON.parse(body); } catch { /* not JSON */ }
  return { status, json, text };
}

const get = (target) => raw(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`).then(parseAnswer);

describe('the corpus of bad requests', () => {
  const long = 'a'.repeat(65);
  const corpus = [
    ['no topic', '/events', 400, 'missing_topic'],
    ['empty topic', '/events?topic=', 400, 'bad_topic'],
    ['topic over max_topic_length', `/events?topic=${long}`, 400, 'bad_topic'],
    ['control byte in a topic', '/events?topic=a%01b', 400, 'bad_topic'],
    ['NUL in a topic', '/events?topic=a%00b', 400, 'bad_topic'],
    ['invalid UTF-8 in a topic', '/events?topic=%FF%FE', 400, 'bad_topic'],
    ['overlong UTF-8 in a topic', '/events?topic=%C0%AF', 400, 'bad_topic'],
    ['CR LF in a topic', '/events?topic=a%0D%0Ab', 400, 'bad_topic'],
    ['bad percent-encoding', '/events?topic=%G1', 400, 'bad_query'],
    ['truncated percent-encoding', '/events?topic=ab%', 400, 'bad_query'],
    ['more topics than max_topics_per_connection', `/events?${Array.from({ length: 9 }, (_, i) => `topic=t${i}`).join('&')}`, 400, 'too_many_topics'],
    ['Mercure endpoint without a topic', '/.well-known/mercure', 400, 'missing_topic'],
    ['Mercure selector with a control byte', '/.well-known/mercure?topic=%07', 400, 'bad_topic'],
    ['unknown path', '/nope', 404, 'not_found'],
    ['a bad token', '/events?topic=a&authorization=x.y.z', 401, 'malformed'],
  ];
  for (const [name, target, status, error] of corpus) {
    test(`${name}: ${status} ${error}`, T, async () => {
      const a = await get(target);
      assert.equal(a.status, status, a.text.slice(0, 300));
      assert.equal(a.json?.error, error, a.text.slice(0, 300));
      assert.equal(typeof a.json.message, 'string');
    });
  }

  test('methods the endpoints do not take: 405 with JSON', T, async () => {
    for (const m of ['PUT', 'DELETE', 'PATCH']) {
      const a = parseAnswer(await raw(`${m} /events?topic=a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
      assert.equal(a.status, 405);
      assert.equal(a.json.error, 'method_not_allowed');
    }
  });

  test('malformed and huge cursors: 200, ssehub.gap bad_cursor, then the retained history', T, async () => {
    await redis.cmd('FCALL', 'ssehub_publish', '1', 'ssehub:{cur}:s', 'kept');
    for (const cursor of ['garbage', '1.AAAAAA~zz-zz.AAAAAA~1-1', '99999999999999999999999-0', `1${'.AAAAAA~1-1'.repeat(300)}`, '-1-0']) {
      const s = await rawSse(`${node.url}/events?topic=cur&lastEventID=${encodeURIComponent(cursor)}`);
      assert.equal(s.status, 200);
      await s.waitForEvents(2);
      assert.equal(s.events[0].type, 'ssehub.gap');
      assert.equal(JSON.parse(s.events[0].data).reason, 'bad_cursor');
      assert.equal(s.events[1].data, 'kept');
      s.close();
    }
  });

  test('oversized request heads and bodies are refused; the node stays up', T, async () => {
    const bigHeader = parseAnswer(await raw(`GET /events?topic=a HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(200000)}\r\n\r\n`));
    assert.equal(bigHeader.status, 431, bigHeader.text.slice(0, 200));
    assert.equal(bigHeader.json.error, 'headers_too_large');
    const bigTarget = parseAnswer(await raw(`GET /events?topic=a&x=${'c'.repeat(40000)} HTTP/1.1\r\nHost: x\r\n\r\n`));
    assert.equal(bigTarget.status, 431);
    const manyHeaders = Array.from({ length: 200 }, (_, i) => `X-H${i}: v`).join('\r\n');
    const many = parseAnswer(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\n${manyHeaders}\r\nConnection: close\r\n\r\n`));
    assert.ok(many.status >= 400 || many.text === '', `200 headers are refused (${many.status})`);
    const body = new URLSearchParams({ topic: 't', data: 'x'.repeat(4 * 1024 * 1024) });
    const res = await fetch(`${node.url}/.well-known/mercure`, { method: 'POST', body }).catch((e) => ({ status: 0, e }));
    assert.ok(res.status === 413 || res.status === 0, `a 4 MiB publish body is refused (${res.status})`);
    assert.equal((await fetch(`${node.url}/healthz`)).status, 200);
  });
});

describe('bytes that must not break framing', () => {
  test('CR, LF and NUL in data, invalid UTF-8 in data, CR/LF in ssejson type and id', T, async () => {
    const s = await rawSse(`${node.url}/events?topic=frame`);
    await s.waitForEvents(1); // ssehub.cursor
    await redis.cmd('PUBLISH', 'sse:frame', 'a\r\nevent: evil\r\n\r\ndata: injected');
    await redis.cmd('PUBLISH', 'ssejson:frame', JSON.stringify({ data: 'x', type: 'a\nb' }));
    await redis.cmd('PUBLISH', 'ssejson:frame', JSON.stringify({ data: 'x', id: 'a\rb' }));
    await redis.cmd('PUBLISH', 'ssejson:frame', '{"data":"\\u0000nul"}');
    await redis.cmd('PUBLISH', 'sse:frame', Buffer.from([0x66, 0xff, 0xfe, 0x67]));
    await s.waitForEvents(4);
    await sleep(200);
    const got = s.events.slice(1);
    assert.equal(got.length, 3, JSON.stringify(got));
    assert.equal(got[0].type, 'message');
    assert.equal(got[0].data, 'a\nevent: evil\n\ndata: injected', 'one event: every line became data');
    assert.equal(got[1].data, '\0nul');
    assert.equal(got[2].data, 'f\ufffd\ufffdg', 'invalid UTF-8 reaches the client as bytes (decoded with replacement)');
    const refused = await broker.waitForLog((o) => o.msg === 'malformed json' && /type|id/.test(o.reason || ''));
    assert.ok(refused);
    s.close();
  });
});

describe('slow and flooding clients', () => {
  test('trickled request heads are closed by the request timeout while others are served', T, async () => {
    const sock = net.connect(node.port, '127.0.0.1');
    let closed = false;
    sock.on('close', () => { closed = true; });
    sock.on('error', () => {});
    const head = 'GET /events?topic=slow HTTP/1.1\r\nHost: x\r\n';
    let i = 0;
    const trickle = setInterval(() => { if (!closed) sock.write(head[i++ % head.length]); }, 500);
    try {
      const s = await rawSse(`${node.url}/events?topic=slow`);
      assert.equal(s.status, 200, 'served while a slowloris connection trickles');
      s.close();
      await waitFor(() => closed, { timeout: 20000, what: 'the trickling connection closed by the node' });
    } finally {
      clearInterval(trickle);
      sock.destroy();
    }
  });

  test('a flood of connects and abrupt disconnects: the node keeps serving and ends with no open stream', T, async () => {
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      await Promise.all(Array.from({ length: 200 }, (_, k) => new Promise((resolve) => {
        const sock = net.connect(node.port, '127.0.0.1', () => {
          if (k % 3 === 0) sock.write('GET /events?topic=flood HTTP/1.1\r\nHost: x\r\n\r\n');
          else if (k % 3 === 1) sock.write('GET /events?topic=flo');
          setTimeout(() => { sock.resetAndDestroy?.() ?? sock.destroy(); resolve(); }, k % 2 ? 0 : 20);
        });
        sock.on('error', resolve);
      })));
    }
    const s = await rawSse(`${node.url}/events?topic=flood`);
    await s.waitForEvents(1);
    await redis.cmd('PUBLISH', 'sse:flood', 'after the flood');
    await s.waitForEvents(2);
    assert.equal(s.events[1].data, 'after the flood');
    s.close();
    await waitFor(async () => {
      const m = await (await fetch(`${node.url}/metrics`)).text();
      return /ssehub_node_connections\{protocol="http1"\} 0/.test(m);
    }, { timeout: 10000, what: 'every flooded stream gone' });
  });
});

describe('max_connections_per_ip', () => {
  test('a third stream from one address is refused with retry:, a stream freed makes room', T, async () => {
    const n = await startNode(redis, { args: ['--max-connections-per-ip', '2', '--retry-ms', '1000'] });
    const a = await rawSse(`${n.url}/events?topic=ip`);
    const b = await rawSse(`${n.url}/.well-known/mercure?topic=ip`);
    await a.waitForEvents(1);
    const c = await rawSse(`${n.url}/events?topic=ip`);
    assert.equal(c.status, 200, 'refused the EventSource way: 200, so browsers retry');
    await c.ended;
    assert.match(c.raw(), /^retry: \d+\n: too many streams from this address, retry later\n/);
    assert.match(c.headers['retry-after'], /^[12]$/, 'Retry-After in whole seconds, retry_ms to twice it');
    a.close();
    await waitForRoom(`${n.url}/events?topic=ip`);
    // counted (a thread publishes its figures once a second)
    await waitFor(async () => /ssehub_node_refused_total\{reason="limit"\} [1-9]/.test(await (await fetch(`${n.url}/metrics`)).text()),
      { timeout: 5000, what: 'the refusal counted' });
    b.close();
  });
});

describe('max_connections', () => {
  test('over it: 200 with retry: and Retry-After for EventSource, 503 JSON with Retry-After for JSON clients', T, async () => {
    const n = await startNode(redis, { args: ['--max-connections', '2', '--retry-ms', '2000', '--threads', '2'] });
    const a = await rawSse(`${n.url}/events?topic=cap`);
    const b = await rawSse(`${n.url}/events?topic=cap2`);
    await a.waitForEvents(1);
    await b.waitForEvents(1);
    const c = await rawSse(`${n.url}/events?topic=cap`);
    assert.equal(c.status, 200);
    await c.ended;
    assert.match(c.raw(), /^retry: (\d+)\n: connection limit reached, retry later\n\n$/);
    const retryMs = Number(/^retry: (\d+)/.exec(c.raw())[1]);
    assert.ok(retryMs >= 2000 && retryMs <= 4000, `jittered between retry_ms and twice it: ${retryMs}`);
    assert.equal(Number(c.headers['retry-after']), Math.ceil(retryMs / 1000));
    // a script or probe that accepts only JSON gets the status it can act on
    const r = await fetch(`${n.url}/events?topic=cap`, { headers: { Accept: 'application/json' } });
    assert.equal(r.status, 503);
    assert.match(r.headers.get('retry-after'), /^[234]$/);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(await r.json(), { error: 'too_many_connections', message: 'connection limit reached, retry later' });
    // an EventSource's Accept still gets the EventSource answer
    const e = await fetch(`${n.url}/events?topic=cap`, { headers: { Accept: 'text/event-stream, application/json' } });
    assert.equal(e.status, 200);
    assert.match(await e.text(), /connection limit reached/);
    a.close();
    await waitForRoom(`${n.url}/events?topic=cap`);
    b.close();
  });

  test('503 answers of /readyz and publishing carry Retry-After', { ...T, skip: onCluster && 'stops the one Redis' }, async () => {
    const r2 = await startRedis();
    const n = await startNode(r2, { args: ['--retry-ms', '3000', '--jwt-key', 'k'.repeat(32)] });
    await r2.kill('SIGKILL');
    await waitFor(async () => (await fetch(`${n.url}/readyz`)).status === 503, { timeout: 10000, what: 'not ready' });
    const r = await fetch(`${n.url}/readyz`);
    assert.equal(r.headers.get('retry-after'), '3');
    assert.equal((await r.json()).error, 'redis_unavailable');
    const s = await fetch(`${n.url}/events?topic=x`, { headers: { Accept: 'application/json' } });
    assert.equal(s.status, 503);
    assert.equal((await s.json()).error, 'redis_unavailable');
    assert.ok(Number(s.headers.get('retry-after')) >= 3);
    const p = await fetch(`${n.url}/.well-known/mercure`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${mercureToken({ publish: ['*'] }, { key: 'k'.repeat(32) })}`,
        'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'topic=x&data=y',
    });
    assert.equal(p.status, 503);
    assert.equal(p.headers.get('retry-after'), '1');
    assert.equal((await p.json()).error, 'redis_unavailable');
    const c = await fetch(`${n.url}/cluster`);
    assert.equal(c.status, 503);
    assert.equal(c.headers.get('retry-after'), '1');
  });
});
