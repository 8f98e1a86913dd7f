// JSON Web Tokens for the tests (node:crypto only): HS256 and RS256 signing,
// and Mercure claims.
//
//   import { signJwt, mercureToken } from './jwt.mjs';
//   signJwt({ mercure: { publish: ['*'] } }, { key: 'secret' })          // HS256
//   signJwt(claims, { alg: 'RS256', key: privateKeyPem })
//   mercureToken({ publish: ['*'], subscribe: ['a'], exp: seconds }, opts)
import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function signJwt(claims, { alg = 'HS256', key, header = {} } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else sig = Buffer.alloc(0);
  return `${input}.${b64url(sig)}`;
}

// A token with the mercure claim: publish/subscribe selectors; exp in
// seconds since the epoch (omitted when undefined).
export function mercureToken({ publish, subscribe, exp, payload } = {}, opts = {}) {
  const mercure = {};
  if (publish) mercure.publish = publish;
  if (subscribe) mercure.subscribe = subscribe;
  if (payload) mercure.payload = payload;
  const claims = { mercure };
  if (exp !== undefined) claims.exp = exp;
  return signJwt(claims, opts);
}

// A fresh 2048-bit RSA key pair as PEM strings {privateKey, publicKey}.
export function rsaKeyPair() {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}
