/**
 * POST /tsa over fastify (inject and a real socket), the offline verifier, and openssl reading what
 * the route returns. Problem documents for what RFC 3161 has no answer to.
 */
import t from 'tap';
import Fastify from 'fastify';
import { readFileSync } from 'node:fs';
import { buildTimeStampQuery, parseTimeStampResponse, requestTimeStamp, verifyTimeStampToken } from './client.ts';
import { tsaRoutes } from './routes.ts';
import { makeFixture, POLICY } from './testing/fixture.ts';
import { makeTestPki } from './testing/pki.ts';

const fx = await makeFixture();
t.teardown(() => fx.cleanup());
const tsa = fx.make({ precisionMs: 10 });
const app = Fastify();
await app.register(tsaRoutes, { authority: tsa, bodyLimit: 4096 });
const address = await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());

const data = new Uint8Array(Buffer.from('公文 2026-001'));
const anchors = { trustAnchors: [fx.pki.root], intermediates: [fx.pki.issuing] };

t.test('openssl query over a real socket, reply verified by openssl and by our verifier', async (t) => {
  const dataFile = fx.file('doc.bin', data);
  const q = fx.file('q.tsq', '');
  t.equal(fx.run(['ts', '-query', '-data', dataFile, '-sha256', '-cert', '-out', q]).code, 0);
  const res = await fetch(`${address}/tsa`, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: readFileSync(q) });
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'application/timestamp-reply');
  const reply = new Uint8Array(await res.arrayBuffer());
  const v = fx.run(['ts', '-verify', '-data', dataFile, '-in', fx.file('r.tsr', reply), '-CAfile', fx.pki.files.root, '-untrusted', fx.pki.files.issuing]);
  t.equal(v.code, 0, v.out);
  const info = await verifyTimeStampToken(parseTimeStampResponse(reply).token!, data, anchors);
  t.equal(info.policy, POLICY);
  t.equal(info.hashAlgorithm, 'SHA-256');
  t.match(info.tsaName, /CN=Test TSA/);
});

t.test('requestTimeStamp + verifyTimeStampToken, and what the verifier refuses', async (t) => {
  const { token, query } = await requestTimeStamp(`${address}/tsa`, data, { hash: 'SHA-384', nonce: 0x1234567890abcdefn });
  const info = await verifyTimeStampToken(token, data, { ...anchors, nonce: query.nonce });
  t.equal(info.nonce, 0x1234567890abcdefn);
  t.equal(info.hashAlgorithm, 'SHA-384');
  t.ok(tsa.record(info.serialNumber), 'the verified serial is in the ledger');
  // openssl agrees the token (not just the reply) verifies.
  const v = fx.run(['ts', '-verify', '-token_in', '-in', fx.file('t.der', token), '-digest', Buffer.from(query.imprint).toString('hex'), '-sha384',
    '-CAfile', fx.pki.files.root, '-untrusted', fx.pki.files.issuing]);
  t.equal(v.code, 0, v.out);

  await t.rejects(verifyTimeStampToken(token, new Uint8Array(Buffer.from('other')), anchors), { code: 'bad-signature', message: /imprint/ });
  await t.rejects(verifyTimeStampToken(token, data, { ...anchors, nonce: 5n }), { code: 'bad-signature', message: /nonce/ });
  const stranger = makeTestPki(fx.signer.publicKeyInfo);
  t.teardown(() => stranger.cleanup());
  await t.rejects(verifyTimeStampToken(token, data, { trustAnchors: [stranger.root], intermediates: [fx.pki.issuing] }), { code: 'bad-signature', message: /chain/ });
  const tampered = new Uint8Array(token);
  tampered[tampered.length - 2] ^= 1;
  await t.rejects(verifyTimeStampToken(tampered, data, anchors), { code: 'bad-signature' });
  await t.rejects(verifyTimeStampToken(new Uint8Array([1, 2, 3]), data, anchors), { code: 'malformed-der' });
  // Without certReq the token has no certificate: the verifier needs it given.
  const bare = await requestTimeStamp(`${address}/tsa`, data, { certReq: false, nonce: false });
  await t.rejects(verifyTimeStampToken(bare.token, data, anchors), { message: /neither in the token/ });
  t.ok(await verifyTimeStampToken(bare.token, data, { trustAnchors: [fx.pki.root], intermediates: [fx.pki.issuing, fx.pki.tsa] }));
});

t.test('wrong media type -> 415 problem JSON; oversize -> 413; bad DER -> 200 with a rejection', async (t) => {
  const query = Buffer.from(buildTimeStampQuery(data).der);
  for (const type of ['application/octet-stream', 'application/timestamp-reply', 'text/plain']) {
    const res = await app.inject({ method: 'POST', url: '/tsa', headers: { 'content-type': type }, payload: query });
    t.equal(res.statusCode, 415, type);
    t.match(res.headers['content-type'], /^application\/problem\+json/);
    t.match(res.json(), { status: 415, code: 'unsupported-media-type', type: String, title: String, detail: String });
  }
  const none = await app.inject({ method: 'POST', url: '/tsa' });
  t.equal(none.statusCode, 415);
  const big = await app.inject({ method: 'POST', url: '/tsa', headers: { 'content-type': 'application/timestamp-query' }, payload: Buffer.alloc(5000) });
  t.equal(big.statusCode, 413);
  t.match(big.json(), { code: 'payload-too-large', status: 413 });
  const garbage = await app.inject({ method: 'POST', url: '/tsa', headers: { 'content-type': 'application/timestamp-query' }, payload: Buffer.from('not DER at all') });
  t.equal(garbage.statusCode, 200);
  t.equal(garbage.headers['content-type'], 'application/timestamp-reply');
  t.same(parseTimeStampResponse(new Uint8Array(garbage.rawPayload)).failInfo, ['badDataFormat']);
  const withParams = await app.inject({ method: 'POST', url: '/tsa', headers: { 'content-type': 'Application/TimeStamp-Query; charset=binary' }, payload: query });
  t.equal(parseTimeStampResponse(new Uint8Array(withParams.rawPayload)).status, 0, 'media type compared without parameters, case-insensitively');
});
