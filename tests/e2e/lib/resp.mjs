// A tiny RESP2 client over node:net for ssehub's end-to-end tests (no
// dependencies). Binary safe: arguments may be strings, numbers or Buffers;
// bulk replies come back as UTF-8 strings, or as Buffers when asked.
//
//   import { connect } from './resp.mjs';
//   const c = await connect(6379);                  // {host, buffers} optional
//   await c.cmd('SET', 'k', Buffer.from([0, 1]));   // 'OK'
//   await c.cmdBuffers('GET', 'k');                 // <Buffer 00 01>
//   await c.cmd('NOPE');                            // rejects: Error('ERR unknown command ...')
//   const s = await connect(6379, {buffers: true});
//   await s.subscribe('ch', (payload, channel) => {...});   // payload a Buffer here
//   await s.psubscribe('ch*', (payload, channel, pattern) => {...});
//   c.close(); s.close();
//
// Commands pipeline naturally: every call writes at once and waits on a FIFO
// of pending replies. Error replies reject with an Error whose message is
// the Redis error text (err.redis === true); errors nested inside arrays
// (EXEC) are Error values. A closed connection rejects everything pending.

import net from 'node:net';

const CRLF = Buffer.from('\r\n');

// Returns the RESP encoding of one command.
export function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

// Parses one reply at buf[pos]; returns {value, pos} or null when more bytes
// are needed. Bulk strings are Buffers, errors Error objects.
export function parse(buf, pos) {
  const eol = buf.indexOf(CRLF, pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, pos: next };
    case '-': { const e = new Error(line); e.redis = true; return { value: e, pos: next }; }
    case ':': return { value: Number(line), pos: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, pos: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.subarray(next, next + n), pos: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, pos: next };
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        arr.push(r.value);
        p = r.pos;
      }
      return { value: arr, pos: p };
    }
    default:
      throw new Error(`RESP protocol error: unexpected byte ${JSON.stringify(type)}`);
  }
}

// Converts Buffers inside a reply to strings unless buffers are wanted.
export function convert(v, buffers) {
  if (Buffer.isBuffer(v)) return buffers ? v : v.toString('utf8');
  if (Array.isArray(v)) return v.map((x) => convert(x, buffers));
  return v;
}

// Returns a connected client (see the top of this file).
export function connect(port, { host = '127.0.0.1', buffers = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ port, host });
    const pending = []; // {resolve, reject, buffers}
    const handlers = new Map(); // 'message:<ch>' / 'pmessage:<pattern>' -> fn
    let rest = Buffer.alloc(0);
    let closed = false;
    let subscribed = false;

    const client = {
      port,
      get closed() { return closed; },
      cmd: (...args) => send(args, buffers),
      cmdBuffers: (...args) => send(args, true),
      subscribe: (channel, onMessage) => sub('SUBSCRIBE', 'message', channel, onMessage),
      psubscribe: (pattern, onMessage) => sub('PSUBSCRIBE', 'pmessage', pattern, onMessage),
      close() {
        closed = true;
        sock.destroy();
        failAll(new Error('connection closed'));
      },
    };

    function send(args, asBuffers) {
      if (closed) return Promise.reject(new Error('connection closed'));
      return new Promise((res, rej) => {
        pending.push({ resolve: res, reject: rej, buffers: asBuffers });
        sock.write(encode(args));
      });
    }

    function sub(command, kind, name, onMessage) {
      subscribed = true;
      handlers.set(`${kind}:${Buffer.isBuffer(name) ? name.toString('latin1') : name}`, onMessage);
      return send([command, name], buffers);
    }

    function failAll(err) {
      while (pending.length) pending.shift().reject(err);
    }

    // Delivers pub/sub pushes to their handler; returns true when v was one.
    function deliverPush(v) {
      if (!subscribed || !Array.isArray(v) || !Buffer.isBuffer(v[0])) return false;
      const kind = v[0].toString();
      if (kind === 'message' && v.length === 3) {
        const fn = handlers.get(`message:${v[1].toString('latin1')}`);
        if (fn) fn(convert(v[2], buffers), convert(v[1], buffers));
        return true;
      }
      if (kind === 'pmessage' && v.length === 4) {
        const fn = handlers.get(`pmessage:${v[1].toString('latin1')}`);
        if (fn) fn(convert(v[3], buffers), convert(v[2], buffers), convert(v[1], buffers));
        return true;
      }
      return false;
    }

    function onValue(v) {
      if (deliverPush(v)) return;
      const p = pending.shift();
      if (!p) return;
      if (v instanceof Error) p.reject(v);
      else p.resolve(convert(v, p.buffers));
    }

    sock.on('data', (chunk) => {
      rest = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      let pos = 0;
      try {
        for (;;) {
          const r = parse(rest, pos);
          if (!r) break;
          pos = r.pos;
          onValue(r.value);
        }
      } catch (e) {
        client.close();
        failAll(e);
        return;
      }
      rest = rest.subarray(pos);
    });
    sock.once('connect', () => resolve(client));
    sock.on('error', (e) => {
      if (!closed) { closed = true; failAll(e); }
      reject(e);
    });
    sock.on('close', () => {
      closed = true;
      failAll(new Error('connection closed'));
    });
  });
}
