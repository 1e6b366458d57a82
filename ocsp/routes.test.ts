/**
 * Bad input, as carefully as good: garbage, truncated, empty and oversize bodies, wrong media type,
 * a foreign issuer, an unsupported CertID hash, nonces out of bounds, missing or bad request
 * signatures when they are required; GET with RFC 5019 caching headers; extended revoke; and a
 * mutation fuzz of the request parser (never a crash, never a 500). Statuses are read by openssl.
 */
import t from 'tap';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as asn1js from 'asn1js';
import { toPem } from '../common/pem.ts';
import { parseOcspRequest } from './request.ts';
import { makeOcspFixture, run, runAsync, startResponder } from './testing.ts';
import { OCSP_REQUEST } from './routes.ts';

const fx = await makeOcspFixture();
t.teardown(() => fx.cleanup());
const server = await startResponder(fx);
t.teardown(() => server.close());
const { file: certFile, record } = await fx.issue('issuing', 'routes');

/** A request made by openssl (not by us). */
function opensslRequest(args: string[]): Uint8Array {
  const out = fx.file(`req-${randomBytes(4).toString('hex')}.der`, '');
  const r = run('openssl', ['ocsp', ...args, '-reqout', out]);
  if (r.code !== 0) throw new Error(r.out);
  return new Uint8Array(readFileSync(out));
}

/** What openssl reads in a response: the status line and, when successful, the text. */
function readResponse(der: Uint8Array, extra: string[] = []): string {
  const r = run('openssl', ['ocsp', '-respin', fx.file(`resp-${randomBytes(4).toString('hex')}.der`, der), '-resp_text', '-noverify', ...extra]);
  return r.out;
}

async function post(body: Uint8Array | string, contentType = OCSP_REQUEST) {
  return server.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': contentType }, payload: Buffer.from(body) });
}

const plain = opensslRequest(['-issuer', fx.files.issuing, '-cert', certFile, '-no_nonce']);

t.test('garbage, truncated and empty bodies: malformedRequest with HTTP 200', async (t) => {
  for (const [what, body] of [['garbage', randomBytes(64)], ['truncated', plain.subarray(0, plain.length - 5)], ['empty', new Uint8Array(0)],
    ['trailing bytes', Buffer.concat([plain, Buffer.from([0])])], ['text', Buffer.from('hello, is this certificate good?')]] as const) {
    const res = await post(new Uint8Array(body));
    t.equal(res.statusCode, 200, what);
    t.equal(res.headers['content-type'], 'application/ocsp-response', what);
    t.match(readResponse(res.rawPayload), /Responder Error: malformedrequest \(1\)/, what);
  }
});

t.test('wrong media type: 415 problem document', async (t) => {
  const res = await post(plain, 'application/json');
  t.equal(res.statusCode, 415);
  t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  t.match(res.json(), { type: 'urn:yinxin:error:unsupported-media-type', status: 415, code: 'unsupported-media-type', title: String, detail: String });
  const none = await server.app.inject({ method: 'POST', url: '/ocsp', payload: Buffer.from(plain) });
  t.equal(none.statusCode, 415);
});

t.test('oversize body: 413 problem document', async (t) => {
  const res = await post(randomBytes(17 * 1024));
  t.equal(res.statusCode, 413);
  t.match(res.json(), { code: 'payload-too-large', status: 413 });
});

t.test('a foreign issuer is unauthorized', async (t) => {
  const key = fx.file('foreign.key', '');
  const cert = fx.file('foreign.pem', '');
  const r = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=Foreign CA', '-days', '30']);
  t.equal(r.code, 0, r.out);
  const res = await post(opensslRequest(['-issuer', cert, '-serial', '0x1234']));
  t.equal(res.statusCode, 200);
  t.match(readResponse(res.rawPayload), /Responder Error: unauthorized \(6\)/);
  // Our issuer's name with another key: still not ours (identified by key, not by name).
  const sameName = fx.file('same-name.pem', '');
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', sameName, '-subj', '/C=CN/O=yinxin/CN=yinxin Issuing CA', '-days', '30']);
  const res2 = await post(opensslRequest(['-issuer', sameName, '-serial', `0x${record.serial}`]));
  t.match(readResponse(res2.rawPayload), /Responder Error: unauthorized \(6\)/);
});

t.test('CertIDs of two different issuers in one request are unauthorized', async (t) => {
  const other = await fx.issue('root', 'other');
  const res = await post(opensslRequest(['-issuer', fx.files.issuing, '-cert', certFile, '-issuer', fx.files.root, '-cert', other.file]));
  t.match(readResponse(res.rawPayload), /Responder Error: unauthorized \(6\)/);
});

t.test('an unsupported CertID hash algorithm is a malformedRequest', async (t) => {
  const res = await post(opensslRequest(['-md5', '-issuer', fx.files.issuing, '-cert', certFile]));
  t.match(readResponse(res.rawPayload), /Responder Error: malformedrequest \(1\)/);
  const sha512 = await post(opensslRequest(['-sha512', '-issuer', fx.files.issuing, '-cert', certFile]));
  t.match(readResponse(sha512.rawPayload), /Cert Status: good/, 'SHA-512 is supported');
});

/** An OCSPRequest with one CertID and the given request extensions, encoded with asn1js. */
function requestWithExtensions(certIdDer: Uint8Array, extensions: asn1js.Sequence[]): Uint8Array {
  const certId = asn1js.fromBER(certIdDer).result;
  const tbs: asn1js.BaseBlock[] = [new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [certId] })] })];
  if (extensions.length) tbs.push(new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 2 }, value: [new asn1js.Sequence({ value: extensions })] }));
  return new Uint8Array(new asn1js.Sequence({ value: [new asn1js.Sequence({ value: tbs })] }).toBER(false));
}
const nonceExtension = (nonce: Uint8Array) => new asn1js.Sequence({
  value: [new asn1js.ObjectIdentifier({ value: '1.3.6.1.5.5.7.48.1.2' }), new asn1js.OctetString({ valueHex: new asn1js.OctetString({ valueHex: nonce }).toBER(false) })],
});

t.test('nonce bounds (RFC 8954: 1 to 32 octets)', async (t) => {
  const certId = parseOcspRequest(plain).certIds[0].der;
  const ok = await post(requestWithExtensions(certId, [nonceExtension(randomBytes(32))]));
  t.match(readResponse(ok.rawPayload), /OCSP Nonce:/);
  const long = await post(requestWithExtensions(certId, [nonceExtension(randomBytes(33))]));
  t.match(readResponse(long.rawPayload), /Responder Error: malformedrequest \(1\)/);
  const empty = await post(requestWithExtensions(certId, [nonceExtension(new Uint8Array(0))]));
  t.match(readResponse(empty.rawPayload), /Responder Error: malformedrequest \(1\)/);
  const critical = await post(requestWithExtensions(certId, [new asn1js.Sequence({
    value: [new asn1js.ObjectIdentifier({ value: '1.2.3.4' }), new asn1js.Boolean({ value: true }), new asn1js.OctetString({ valueHex: new Uint8Array([5, 0]) })],
  })]));
  t.match(readResponse(critical.rawPayload), /Responder Error: malformedrequest \(1\)/, 'unknown critical extension');
});

t.test('GET: base64 path (with / and percent-encoding), RFC 5019 caching headers, 304', async (t) => {
  // Find a request whose base64 has a '/' in it (RFC 5019 s5 clients may send it raw).
  let der = plain;
  let b64 = Buffer.from(der).toString('base64');
  for (let i = 0; !b64.includes('/') && i < 200; i++) {
    der = opensslRequest(['-issuer', fx.files.issuing, '-cert', (await fx.issue('issuing', 'get')).file, '-no_nonce']);
    b64 = Buffer.from(der).toString('base64');
  }
  t.ok(b64.includes('/'), 'a base64 with a slash');
  for (const path of [b64, encodeURIComponent(b64)]) {
    const res = await server.app.inject({ method: 'GET', url: `/ocsp/${path}` });
    t.equal(res.statusCode, 200);
    t.equal(res.headers['content-type'], 'application/ocsp-response');
    t.match(res.headers['cache-control'], /^max-age=(\d+), public, no-transform, must-revalidate$/);
    const maxAge = Number(/max-age=(\d+)/.exec(String(res.headers['cache-control']))![1]);
    t.ok(maxAge > 3500 && maxAge <= 3600, `max-age ${maxAge}`);
    t.match(res.headers.etag, /^"[0-9a-f]{40}"$/);
    t.ok(!Number.isNaN(Date.parse(String(res.headers['last-modified']))));
    t.match(readResponse(res.rawPayload), /Cert Status: good/);
    const again = await server.app.inject({ method: 'GET', url: `/ocsp/${path}`, headers: { 'if-none-match': String(res.headers.etag) } });
    t.equal(again.statusCode, 304);
  }
  // A real client: openssl ocsp -reqin over GET? openssl 3.0 only POSTs; curl does the GET.
  const curl = await runAsync('curl', ['-s', '-o', fx.file('get.der', ''), '-w', '%{http_code}', `${server.url}/${encodeURIComponent(b64)}`]);
  t.equal(curl.out.trim(), '200');
  const bad = await server.app.inject({ method: 'GET', url: '/ocsp/not*base64!' });
  t.equal(bad.statusCode, 400);
  t.match(bad.json(), { code: 'bad-request' });
  const garbage = await server.app.inject({ method: 'GET', url: `/ocsp/${randomBytes(30).toString('base64url')}` });
  t.equal(garbage.statusCode, 200);
  t.match(readResponse(garbage.rawPayload), /malformedrequest/);
  const nothing = await server.app.inject({ method: 'GET', url: '/ocsp' });
  t.match(readResponse(nothing.rawPayload), /malformedrequest/);
});

t.test('signed requests required: sigRequired, unauthorized for a bad signature, good for a good one', async (t) => {
  const strict = await startResponder(fx, { requireSignedRequests: true });
  t.teardown(() => strict.close());
  const ask = (der: Uint8Array) => strict.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': OCSP_REQUEST }, payload: Buffer.from(der) });
  t.match(readResponse((await ask(plain)).rawPayload), /Responder Error: sigrequired \(5\)/);

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const client = await fx.authority.issue({
    ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: 'relying party' }],
    publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
  }, { actor: 'operator:test' });
  const signerCert = fx.file('rp.pem', toPem(client.der, 'CERTIFICATE'));
  const signerKey = fx.file('rp.key', privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const signed = opensslRequest(['-issuer', fx.files.issuing, '-cert', certFile, '-signer', signerCert, '-signkey', signerKey, '-no_nonce']);
  t.match(readResponse((await ask(signed)).rawPayload), /Cert Status: good/);

  const tampered = new Uint8Array(signed);
  const sig = parseOcspRequest(signed).signature!.signature;
  const at = Buffer.from(tampered).indexOf(Buffer.from(sig));
  tampered[at + 10] ^= 0x01;
  t.match(readResponse((await ask(tampered)).rawPayload), /Responder Error: unauthorized \(6\)/);

  // Signed with a key our CAs never certified (self-signed certificate): unauthorized.
  const selfKey = fx.file('self.key', '');
  const selfCert = fx.file('self.pem', '');
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', selfKey, '-out', selfCert, '-subj', '/CN=stranger', '-days', '3']);
  const stranger = opensslRequest(['-issuer', fx.files.issuing, '-cert', certFile, '-signer', selfCert, '-signkey', selfKey, '-no_nonce']);
  t.match(readResponse((await ask(stranger)).rawPayload), /Responder Error: unauthorized \(6\)/);
});

t.test('extended revoked definition: a serial never issued is revoked (certificateHold, 1970) when configured', async (t) => {
  const ext = await startResponder(fx, { extendedRevoke: true });
  t.teardown(() => ext.close());
  const der = opensslRequest(['-issuer', fx.files.issuing, '-serial', '0x4b1d0000000000000000000000000002']);
  const res = await ext.app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': OCSP_REQUEST }, payload: Buffer.from(der) });
  const text = readResponse(res.rawPayload);
  t.match(text, /Cert Status: revoked/);
  t.match(text, /Revocation Time: Jan  1 00:00:00 1970 GMT/);
  t.match(text, /Reason: certificateHold/);
  // openssl 3.0 names 1.3.6.1.5.5.7.48.1.9 (id-pkix-ocsp-extended-revoke) by its old short name "valid".
  t.match(text, /Response Extensions:[\s\S]*(valid|Extended)/);
  t.ok(res.rawPayload.includes(Buffer.from('06092b0601050507300109', 'hex')), 'the extension is id-pkix-ocsp-extended-revoke');
});

t.test('fuzz: mutated requests never crash the responder and never give a 500', async (t) => {
  const seeds = [plain, opensslRequest(['-sha256', '-issuer', fx.files.issuing, '-cert', certFile, '-nonce'])];
  const allowed = new Set([0, 1, 6]);
  let n = 0;
  for (let i = 0; i < 3000; i++) {
    const seed = seeds[i % seeds.length];
    const m = new Uint8Array(seed);
    const kind = i % 4;
    let input: Uint8Array;
    if (kind === 0) { for (let k = 0; k < 1 + (i % 4); k++) m[(i * 7 + k * 13) % m.length] ^= 1 << (k % 8); input = m; }
    else if (kind === 1) input = m.subarray(0, i % m.length);
    else if (kind === 2) { const at = i % m.length; input = new Uint8Array(Buffer.concat([m.subarray(0, at), randomBytes(1 + (i % 5)), m.subarray(at)])); }
    else { m[(i * 3) % m.length] = randomBytes(1)[0]; m[1] = randomBytes(1)[0]; input = m; }
    const der = await server.responder.respond(input);
    const decoded = asn1js.fromBER(der);
    const status = ((decoded.result as asn1js.Sequence).valueBlock.value[0] as asn1js.Enumerated).valueBlock.valueDec;
    if (!allowed.has(status)) t.fail(`status ${status} for input ${Buffer.from(input).toString('hex')}`);
    n++;
    if (i % 100 === 0) {
      const res = await post(input);
      if (res.statusCode !== 200) t.fail(`HTTP ${res.statusCode} for ${Buffer.from(input).toString('hex')}`);
    }
  }
  t.equal(n, 3000);
  t.equal(server.responder.stats().byStatus.internalError, 0, 'no internal errors');
});
