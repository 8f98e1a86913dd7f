// Server-Sent Events clients for ssehub's end-to-end tests (node built-ins
// and the curl binary only). Every stream has a bounded lifetime: it closes
// itself after `timeout` ms (default 30 s) so a hung test cannot hang CI.
//
//   import { curlStream, rawSse, SseParser } from './sse.mjs';
//
//   const c = curlStream(url, {headers: {'Last-Event-ID': '1-0'}, timeout: 10000, args: []});
//   c.bytes() -> Buffer of everything received so far;  c.text() -> the same as UTF-8
//   await c.waitForText(t => t.includes('data: x'), {timeout: 5000});
//   c.close();  await c.exited  -> {code, signal}
//
//   const s = await rawSse(url, {headers: {...}, timeout: 10000});  // resolves on the response head
//   s.status, s.headers                  // numbers / lower-case header object
//   s.events                             // live array of {type, data, id, retry}
//   s.comments, s.retry                  // comment lines seen, last valid retry: value
//   s.raw()                              // all body text received so far
//   await s.waitForEvents(3, {timeout})  // resolves with s.events once it holds >= 3
//   s.close();  await s.ended            // resolves when the body ended or was closed
//
// SseParser follows the WHATWG EventSource parsing rules: CR, LF and CRLF
// line ends (also split across chunks), a leading BOM, comment lines,
// data/event/id/retry fields, "field" without a colon, one optional space
// after the colon, dispatch on a blank line, ids containing NUL ignored.

import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';

const DEFAULT_TIMEOUT = 30000;

// Resolves when predicate() is truthy, checking every 20 ms; rejects after
// timeout naming what was awaited.
async function poll(predicate, timeout, what) {
  const end = Date.now() + timeout;
  for (;;) {
    if (predicate()) return;
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class SseParser {
  constructor() {
    this.events = [];
    this.comments = [];
    this.retry = null;
    this.lastEventId = '';
    this.data = '';
    this.type = '';
    this.line = '';
    this.afterCR = false;
    this.first = true;
  }

  // Feeds decoded text; dispatches complete events into this.events.
  push(text) {
    if (this.first && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.first = false;
    }
    // Scan for line ends with a sticky regex: linear in the input, so
    // multi-megabyte streams parse quickly.
    const eol = /[\r\n]/g;
    let i = 0;
    if (this.afterCR && text.length) {
      this.afterCR = false;
      if (text[0] === '\n') i = 1; // the LF of a CRLF split across chunks
    }
    while (i < text.length) {
      eol.lastIndex = i;
      const m = eol.exec(text);
      if (m === null) {
        this.line += text.slice(i);
        break;
      }
      let end = m.index;
      this.onLine(this.line + text.slice(i, end));
      this.line = '';
      if (text[end] === '\r') {
        if (end + 1 === text.length) this.afterCR = true;
        else if (text[end + 1] === '\n') end++;
      }
      i = end + 1;
    }
  }

  onLine(line) {
    if (line === '') return this.dispatch();
    if (line[0] === ':') return void this.comments.push(line.slice(1));
    const colon = line.indexOf(':');
    let field = line, value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
    }
    if (field === 'data') this.data += value + '\n';
    else if (field === 'event') this.type = value;
    else if (field === 'id') { if (!value.includes('\0')) this.lastEventId = value; }
    else if (field === 'retry') { if (/^[0-9]+$/.test(value)) this.retry = Number(value); }
  }

  dispatch() {
    if (this.data === '') { this.type = ''; return; }
    const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
    this.events.push({ type: this.type || 'message', data, id: this.lastEventId, retry: this.retry });
    this.data = '';
    this.type = '';
  }
}

// Returns a curl process streaming url (see the top of this file).
export function curlStream(url, { headers = {}, timeout = DEFAULT_TIMEOUT, args = [] } = {}) {
  const h = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const proc = spawn('curl', ['-sN', '--no-buffer', ...h, ...args, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  let stderr = '';
  proc.stdout.on('data', (c) => chunks.push(c));
  proc.stderr.on('data', (c) => { stderr += c; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
  exited.then(() => clearTimeout(timer));
  const bytes = () => Buffer.concat(chunks);
  return {
    proc,
    exited,
    bytes,
    text: () => bytes().toString('utf8'),
    stderr: () => stderr,
    waitForText(pred, { timeout: t = 10000, what = 'curl output' } = {}) {
      return poll(() => pred(bytes().toString('utf8')), t, what);
    },
    close() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

// Opens an SSE request with node:http(s); resolves on the response head
// with the live stream object described at the top of this file.
export function rawSse(url, { headers = {}, timeout = DEFAULT_TIMEOUT, method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.request(url, { method, headers: { Accept: 'text/event-stream', ...headers } });
    const timer = setTimeout(() => req.destroy(new Error(`SSE stream closed after ${timeout} ms`)), timeout);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.on('response', (res) => {
      const parser = new SseParser();
      const decoder = new TextDecoder('utf-8');
      let raw = '';
      let endedFlag = false;
      const ended = new Promise((r) => {
        const done = () => { endedFlag = true; clearTimeout(timer); r(); };
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      });
      res.on('data', (chunk) => {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        parser.push(text);
      });
      resolve({
        status: res.statusCode,
        headers: res.headers,
        res,
        events: parser.events,
        comments: parser.comments,
        get retry() { return parser.retry; },
        get ended() { return ended; },
        get isEnded() { return endedFlag; },
        raw: () => raw,
        waitForEvents(n, { timeout: t = 10000 } = {}) {
          return poll(() => parser.events.length >= n, t, () => `${n} SSE events (have ${parser.events.length})`)
            .then(() => parser.events);
        },
        waitForRaw(pred, { timeout: t = 10000, what = 'SSE body text' } = {}) {
          return poll(() => pred(raw), t, what);
        },
        close() { req.destroy(); return ended; },
      });
    });
    req.end();
  });
}
