// The Mercure-compatible API of the node (DESIGN §5): publishing with the
// form, publisher and generated ids, exact / `*` / URI template selectors,
// updates with several topics reaching a connection once, private updates,
// JWT (HS256, RS256, key rotation, separate keys) from the header, the
// cookie and the query, expiry, resume by publisher id on any node with the
// Last-Event-ID response header, and refusals.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { cleanupAll, onCluster, sleep, startBroker, startNode, startRedis, waitFor } from './lib/harness.mjs';
import { mercureToken, rsaKeyPair, signJwt } from './lib/jwt.mjs';
import { rawSse } from './lib/sse.mjs';

const T = { timeout: 60000 };
const PATTERNS_ON_CLUSTER = onCluster && '`*` and template selectors are refused on a Redis Cluster (patterns_unavailable, tested in redis_cluster)';
const KEY = '!ChangeThisMercureHubJWTSecretKey!';
const PUB = mercureToken({ publish: ['*'] }, { key: KEY });
const SUB_ALL = mercureToken({ subscribe: ['*'] }, { key: KEY });
let redis, nodeA, nodeB;

before(async () => {
  redis = await startRedis();
  await startBroker(redis);
  const args = ['--jwt-key', KEY, '--threads', '2'];
  nodeA = await startNode(redis, { args });
  nodeB = await startNode(redis, { args });
});
after(cleanupAll);

let seq = 0;
const uniq = (p) => `${p}-${process.pid}-${++seq}`;

// POSTs an update; resolves with {status, type, body}.
async function publish(node, fields, { token = PUB, headers = {} } = {}) {
  const body = new URLSearchParams();
  for (const [k, v] of fields) body.append(k, v);
  const h = { 'content-type': 'application/x-www-form-urlencoded', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(`${node.url}/.well-known/mercure`, { method: 'POST', headers: h, body });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

// Opens a Mercure subscription; resolves once the stream is open.
function subscribe(node, selectors, { headers = {}, query = '' } = {}) {
  const q = selectors.map((s) => `topic=${encodeURIComponent(s)}`).join('&');
  return rawSse(`${node.url}/.well-known/mercure?${q}${query}`, { headers });
}

// The message events (not ssehub.* control events) of a stream.
const messages = (s) => s.events.filter((e) => e.type === 'message');

// Resolves after every given stream has seen its cursor event or 300 ms
// (a stream with only pattern selectors has no cursor event).
async function settled(...streams) {
  await sleep(300);
  return streams;
}

describe('publishing', () => {
  test('a form update reaches a subscriber with the publisher id as the SSE id', T, async () => {
    const topic = `https://example.net/books/${uniq('b')}`;
    const s = await subscribe(nodeA, [topic]);
    assert.equal(s.status, 200);
    await settled(s);
    const data = 'line one\n\n    line three';
    const r = await publish(nodeA, [['topic', topic], ['data', data], ['id', 'id-["x"]'], ['type', 'book'], ['retry', '1500']]);
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain/);
    assert.equal(r.body, 'id-["x"]');
    const [e] = await s.waitForEvents(1 + 1).then(() => s.events.filter((x) => x.type === 'book'));
    assert.deepEqual({ type: e.type, data: e.data, id: e.id, retry: e.retry }, { type: 'book', data, id: 'id-["x"]', retry: 1500 });
    s.close();
  });

  test('without an id the hub generates a urn:uuid, which is the SSE id', T, async () => {
    const topic = uniq('gen');
    const s = await subscribe(nodeA, [topic]);
    await settled(s);
    const r = await publish(nodeA, [['topic', topic], ['data', 'x']]);
    assert.equal(r.status, 200);
    assert.match(r.body, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await waitFor(() => messages(s).length === 1, { what: 'the update' });
    assert.equal(messages(s)[0].id, r.body);
    s.close();
  });

  test('ids with CR, LF, NUL or a leading # and bad fields are refused with 400', T, async () => {
    for (const [id, code] of [['a\nb', 'bad_id'], ['a\rb', 'bad_id'], ['a\0b', 'bad_id'], ['#frag', 'bad_id']]) {
      const r = await publish(nodeA, [['topic', 't'], ['data', 'x'], ['id', id]]);
      assert.equal(r.status, 400, JSON.stringify(id));
      assert.equal(JSON.parse(r.body).error, code);
    }
    let r = await publish(nodeA, [['data', 'x']]);
    assert.equal(JSON.parse(r.body).error, 'missing_topic');
    r = await publish(nodeA, [['topic', 't'], ['type', 'a\nb']]);
    assert.equal(JSON.parse(r.body).error, 'bad_type');
    r = await publish(nodeA, [['topic', 't'], ['retry', 'soon']]);
    assert.equal(JSON.parse(r.body).error, 'bad_retry');
    const res = await fetch(`${nodeA.url}/.well-known/mercure`, {
      method: 'POST', headers: { authorization: `Bearer ${PUB}`, 'content-type': 'application/json' }, body: '{}',
    });
    assert.equal(res.status, 415);
    r = await publish(nodeA, [['topic', 't'], ['data', 'x'.repeat(1048577)]]);
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body).error, 'too_large');
  });

  test('publish authorization: no token 401, bad token 401, expired 401, topic not allowed 403', T, async () => {
    const fields = [['topic', 'https://example.net/a/1'], ['data', 'x']];
    let r = await publish(nodeA, fields, { token: null });
    assert.equal(r.status, 401);
    r = await publish(nodeA, fields, { token: mercureToken({ publish: ['*'] }, { key: 'wrong' }) });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error, 'bad_signature');
    r = await publish(nodeA, fields, { token: mercureToken({ publish: ['*'], exp: Math.floor(Date.now() / 1000) - 5 }, { key: KEY }) });
    assert.equal(JSON.parse(r.body).error, 'expired');
    r = await publish(nodeA, fields, { token: signJwt({ mercure: { publish: ['*'] } }, { alg: 'none', key: KEY }) });
    assert.equal(r.status, 401);
    // every topic of the update must be allowed
    const tok = mercureToken({ publish: ['https://example.net/a/{id}'] }, { key: KEY });
    assert.equal((await publish(nodeA, fields, { token: tok })).status, 200);
    r = await publish(nodeA, [...fields, ['topic', 'https://example.net/b/1']], { token: tok });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error, 'forbidden');
    r = await publish(nodeA, fields, { token: mercureToken({ subscribe: ['*'] }, { key: KEY }) });
    assert.equal(r.status, 403, 'no mercure.publish claim');
  });

  test('the token may come from the authorization query parameter or the mercureAuthorization cookie', T, async () => {
    const topic = uniq('tokq');
    const body = new URLSearchParams({ topic, data: 'q' });
    let res = await fetch(`${nodeA.url}/.well-known/mercure?authorization=${PUB}`, { method: 'POST', body });
    assert.equal(res.status, 200);
    res = await fetch(`${nodeA.url}/.well-known/mercure`, { method: 'POST', body, headers: { cookie: `a=b; mercureAuthorization=${PUB}` } });
    assert.equal(res.status, 200);
    // the Authorization header wins over the cookie
    res = await fetch(`${nodeA.url}/.well-known/mercure`, {
      method: 'POST', body, headers: { cookie: `mercureAuthorization=${PUB}`, authorization: 'Bearer nope' },
    });
    assert.equal(res.status, 401);
  });
});

describe('selectors', () => {
  test('exact, `*` and URI template selectors; non-matching ones get nothing', { ...T, skip: PATTERNS_ON_CLUSTER }, async () => {
    const id = uniq('x');
    const topic = `https://example.net/foo/${id}`;
    const exact = await subscribe(nodeA, [topic]);
    const star = await subscribe(nodeB, ['*']);
    const tmpl = await subscribe(nodeA, ['https://example.net/foo/{id}']);
    const other = await subscribe(nodeB, ['https://example.net/bar/{id}', 'another-name']);
    await settled(exact, star, tmpl, other);
    assert.equal((await publish(nodeA, [['topic', topic], ['data', 'hello'], ['id', id]])).status, 200);
    for (const s of [exact, star, tmpl]) {
      await waitFor(() => messages(s).some((e) => e.id === id), { what: 'the update on a matching selector' });
    }
    await sleep(300);
    assert.equal(messages(other).length, 0);
    for (const s of [exact, star, tmpl, other]) s.close();
  });

  test('an update with several topics reaches each connection once, however many of its topics match', { ...T, skip: PATTERNS_ON_CLUSTER }, async () => {
    const a = uniq('multi-a');
    const b = `https://example.net/m/${uniq('b')}`;
    const both = await subscribe(nodeA, [a, b]);
    const onlyB = await subscribe(nodeB, [b]);
    const patterns = await subscribe(nodeA, ['*', 'https://example.net/m/{x}', a]);
    await settled(both, onlyB, patterns);
    const r = await publish(nodeA, [['topic', a], ['topic', b], ['data', 'once'], ['id', uniq('u')]]);
    assert.equal(r.status, 200);
    for (const s of [both, onlyB, patterns]) await waitFor(() => messages(s).length >= 1, { what: 'the update' });
    await sleep(400);
    for (const s of [both, onlyB, patterns]) {
      assert.deepEqual(messages(s).map((e) => [e.id, e.data]), [[r.body, 'once']]);
    }
    // stored in each topic's stream with the list of all topics
    const rows = await redis.cmd('XRANGE', `ssehub:{${a}}:s`, '-', '+');
    const fields = Object.fromEntries(rows[0][1].reduce((acc, v, i, arr) => (i % 2 ? acc : [...acc, [v, arr[i + 1]]]), []));
    assert.deepEqual(JSON.parse(fields.topics), [a, b]);
    assert.equal(fields.mid, r.body);
    assert.equal(Number(await redis.cmd('XLEN', `ssehub:{${b}}:s`)), 1);
    for (const s of [both, onlyB, patterns]) s.close();
  });
});

describe('private updates', () => {
  test('only subscribers whose token allows one of the update topics get them', { ...T, skip: PATTERNS_ON_CLUSTER }, async () => {
    const book = `https://example.com/books/${uniq('p')}`;
    const alt = `https://example.com/users/foo/?topic=${encodeURIComponent(book)}`;
    const anon = await subscribe(nodeA, [book]);
    const all = await subscribe(nodeA, [book], { headers: { authorization: `Bearer ${SUB_ALL}` } });
    const viaAlt = await subscribe(nodeB, ['https://example.com/books/{id}'], {
      headers: { authorization: `Bearer ${mercureToken({ subscribe: ['https://example.com/users/foo/{?topic}'] }, { key: KEY })}` },
    });
    const wrong = await subscribe(nodeB, [book], {
      headers: { cookie: `mercureAuthorization=${mercureToken({ subscribe: ['https://example.com/other'] }, { key: KEY })}` },
    });
    const byCookie = await subscribe(nodeA, [book], { headers: { cookie: `mercureAuthorization=${SUB_ALL}` } });
    const byQuery = await subscribe(nodeB, [book], { query: `&authorization=${SUB_ALL}` });
    await settled(anon, all, viaAlt, wrong, byCookie, byQuery);
    const r = await publish(nodeA, [['topic', book], ['topic', alt], ['data', 'secret'], ['private', 'on']]);
    assert.equal(r.status, 200);
    await publish(nodeA, [['topic', book], ['data', 'public']]);
    for (const s of [all, viaAlt, byCookie, byQuery]) {
      await waitFor(() => messages(s).length >= 2, { what: 'the private and the public update' });
      assert.deepEqual(messages(s).map((e) => e.data), ['secret', 'public']);
    }
    for (const s of [anon, wrong]) {
      await waitFor(() => messages(s).length >= 1, { what: 'the public update' });
      assert.deepEqual(messages(s).map((e) => e.data), ['public']);
    }
    // the native endpoint applies the same rule
    const native = await rawSse(`${nodeB.url}/events?topic=${encodeURIComponent(book)}&lastEventID=earliest`);
    await waitFor(() => messages(native).length >= 1, { what: 'replay on /events' });
    await sleep(200);
    assert.deepEqual(messages(native).map((e) => e.data), ['public']);
    for (const s of [anon, all, viaAlt, wrong, byCookie, byQuery, native]) s.close();
  });

  test('subscriber tokens: invalid ones are refused with 401, an expiring one ends the stream at exp', T, async () => {
    const bad = await subscribe(nodeA, ['x'], { headers: { authorization: 'Bearer not.a.token' } });
    assert.equal(bad.status, 401);
    await bad.ended;
    assert.equal(JSON.parse(bad.raw()).error, 'malformed');
    const exp = Math.floor(Date.now() / 1000) + 2;
    const s = await subscribe(nodeA, ['x'], { headers: { authorization: `Bearer ${mercureToken({ subscribe: ['*'], exp }, { key: KEY })}` } });
    assert.equal(s.status, 200);
    await s.ended;
    assert.ok(Date.now() / 1000 >= exp - 0.05, 'not before exp');
    assert.match(s.raw(), /: token expired/);
  });
});

describe('resume', () => {
  test('Last-Event-ID with a publisher id resumes after it on any node, with the Last-Event-ID header', T, async () => {
    const topic = uniq('res');
    for (let i = 1; i <= 5; i++) assert.equal((await publish(nodeA, [['topic', topic], ['data', `e${i}`], ['id', `${topic}#${i}`.replace('#', '-')]])).status, 200);
    const s = await subscribe(nodeB, [topic], { headers: { 'Last-Event-ID': `${topic}-2` } });
    assert.equal(s.headers['last-event-id'], `${topic}-2`);
    await waitFor(() => messages(s).length === 3, { what: 'events 3..5' });
    assert.deepEqual(messages(s).map((e) => e.data), ['e3', 'e4', 'e5']);
    await publish(nodeA, [['topic', topic], ['data', 'e6'], ['id', `${topic}-6`]]);
    await waitFor(() => messages(s).length === 4, { what: 'then live' });
    s.close();
    // the query parameter works as well
    const q = await subscribe(nodeA, [topic], { query: `&lastEventID=${encodeURIComponent(`${topic}-5`)}` });
    assert.equal(q.headers['last-event-id'], `${topic}-5`);
    await waitFor(() => messages(q).length === 1, { what: 'event 6' });
    assert.equal(messages(q)[0].data, 'e6');
    q.close();
  });

  test('an unknown id answers Last-Event-ID: earliest and replays what is retained; so does earliest', T, async () => {
    const topic = uniq('unk');
    await publish(nodeA, [['topic', topic], ['data', 'kept'], ['id', uniq('k')]]);
    for (const id of ['no-such-id', 'earliest']) {
      const s = await subscribe(nodeB, [topic], { headers: { 'Last-Event-ID': id } });
      assert.equal(s.headers['last-event-id'], 'earliest');
      await waitFor(() => messages(s).length === 1, { what: 'the retained event' });
      s.close();
    }
  });

  test('the last use of a repeated publisher id wins', T, async () => {
    const topic = uniq('rep');
    await publish(nodeA, [['topic', topic], ['data', 'a'], ['id', 'same']]);
    await publish(nodeA, [['topic', topic], ['data', 'b']]);
    await publish(nodeA, [['topic', topic], ['data', 'c'], ['id', 'same']]);
    await publish(nodeA, [['topic', topic], ['data', 'd']]);
    const s = await subscribe(nodeB, [topic], { headers: { 'Last-Event-ID': 'same' } });
    await waitFor(() => messages(s).length >= 1, { what: 'events after the second use' });
    await sleep(200);
    assert.deepEqual(messages(s).map((e) => e.data), ['d']);
    s.close();
  });

  test('a multi-topic resume by publisher id misses nothing', T, async () => {
    const a = uniq('ma');
    const b = uniq('mb');
    await publish(nodeA, [['topic', a], ['data', 'a1'], ['id', `${a}-1`]]);
    await publish(nodeA, [['topic', b], ['data', 'b1'], ['id', `${b}-1`]]);
    await publish(nodeA, [['topic', a], ['data', 'a2'], ['id', `${a}-2`]]);
    await sleep(5);
    await publish(nodeA, [['topic', b], ['data', 'b2'], ['id', `${b}-2`]]);
    const s = await subscribe(nodeB, [a, b], { headers: { 'Last-Event-ID': `${a}-2` } });
    assert.equal(s.headers['last-event-id'], `${a}-2`);
    await waitFor(() => messages(s).some((e) => e.data === 'b2'), { what: 'b2' });
    await sleep(200);
    const got = messages(s).map((e) => e.data);
    assert.ok(!got.includes('a1') && !got.includes('a2') && !got.includes('b1'), got.join());
    s.close();
  });
});

describe('keys', () => {
  test('RS256 with a PEM public key; HS256 tokens are then refused', T, async () => {
    const { privateKey, publicKey } = rsaKeyPair();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-rs256-'));
    fs.writeFileSync(path.join(dir, 'pub.pem'), publicKey);
    const node = await startNode(redis, { args: ['--jwt-algorithm', 'RS256', '--jwt-key', path.join(dir, 'pub.pem')] });
    const topic = uniq('rs');
    const good = mercureToken({ publish: ['*'] }, { alg: 'RS256', key: privateKey });
    assert.equal((await publish(node, [['topic', topic], ['data', 'x']], { token: good })).status, 200);
    const hs = mercureToken({ publish: ['*'] }, { key: publicKey });
    const r = await publish(node, [['topic', topic], ['data', 'x']], { token: hs });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error, 'bad_algorithm');
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('key rotation (jwt_key_previous) and separate publisher and subscriber keys', T, async () => {
    const node = await startNode(redis, {
      args: ['--jwt-publisher-key', 'pub-new', '--jwt-subscriber-key', 'sub-new', '--jwt-key-previous', 'old',
        '--subscribe-anonymous', 'false'],
    });
    const topic = uniq('rot');
    const tok = (claims, key) => mercureToken(claims, { key });
    assert.equal((await publish(node, [['topic', topic], ['data', 'x']], { token: tok({ publish: ['*'] }, 'pub-new') })).status, 200);
    assert.equal((await publish(node, [['topic', topic], ['data', 'x']], { token: tok({ publish: ['*'] }, 'old') })).status, 200);
    assert.equal((await publish(node, [['topic', topic], ['data', 'x']], { token: tok({ publish: ['*'] }, 'sub-new') })).status, 401);
    const anon = await subscribe(node, [topic]);
    assert.equal(anon.status, 401, 'subscribe_anonymous=false');
    const withPub = await subscribe(node, [topic], { headers: { authorization: `Bearer ${tok({ subscribe: ['*'] }, 'pub-new')}` } });
    assert.equal(withPub.status, 401, 'the publisher key does not sign subscriptions');
    const s = await subscribe(node, [topic], { headers: { authorization: `Bearer ${tok({ subscribe: ['*'] }, 'sub-new')}` } });
    assert.equal(s.status, 200);
    s.close();
    await node.stop();
  });

  test('without jwt_key publishing over HTTP is off', T, async () => {
    const node = await startNode(redis);
    const r = await publish(node, [['topic', 't'], ['data', 'x']]);
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error, 'publishing_off');
    await node.stop();
  });
});
