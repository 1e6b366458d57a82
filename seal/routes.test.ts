/**
 * The seal API through fastify (inject): role checks per route, the two-person approval, sealing
 * a raw PDF body (checked by pdfsig), at B-LT and beside an anchor text, a .p7s (checked by
 * openssl), B-LTA (the document time-stamp checked by openssl ts -verify), a PNG seal image, oversize
 * and wrong media types refused, the public verification endpoint, and the OpenAPI entries of the
 * raw-body routes and of the public POST /seal/verify.
 */
import type { LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { buildPublicApp, buildSecureApp } from '../appliance/app.ts';
import { MetricsRegistry } from '../common/metrics.ts';
import type { Principal } from '../auth/operators.ts';
import type { Role } from '../auth/roles.ts';
import { YinxinError } from '../common/errors.ts';
import { SealRegistry } from './registry.ts';
import { sealApiRoutes, sealPublicRoutes } from './routes.ts';
import { CREDIT_CODE, makeSealPki, run, signaturesByRegex } from './test-support.ts';
import { encodePng, simplePdf } from './testing-pdfs.ts';
import { caStatusLookup } from './verify.ts';

const pki = await makeSealPki();
const registry = new SealRegistry({ store: pki.store, keys: pki.keys, audit: pki.audit, clock: pki.clock, ca: pki.ca, timeStamper: pki.timeStamper, validationData: pki.validationData });
const verifyOptions = { trustAnchors: [pki.root], statusOf: caStatusLookup(pki.ca) };
const principals: Record<string, Principal> = {};
function who(username: string, roles: Role[], kind: Principal['kind'] = 'operator', tokenId = `s-${username}`): string {
  const token = `${kind}-${username}`;
  principals[token] = { kind, username, roles, tokenId, mustChangePassword: false };
  return token;
}
const admin1 = who('sa1', ['seal-admin']);
const admin2 = who('sa2', ['seal-admin']);
const clerk = who('clerk', ['ra-officer']);
const auditor = who('aud', ['auditor']);
const app1 = who('svc', ['auditor'], 'api-token', 'app1');
const LIMIT = 200_000;
const common = { logger: pino({ level: 'silent' }), metrics: new MetricsRegistry(), bodyLimit: 64 * 1024, trustProxy: false, health: [] };
const http = await buildPublicApp({ ...common, plugins: [(app) => sealPublicRoutes(app, { verifyOptions, maxUploadBytes: LIMIT })] });
const https = await buildSecureApp({
  ...common, version: 'test',
  authenticator: { authenticate(b: string) { const p = principals[b]; if (!p) throw new YinxinError('unauthenticated', 'unknown'); return p; } },
  plugins: [(app) => sealApiRoutes(app, { registry, verifyOptions, maxUploadBytes: LIMIT })],
  publicApp: { app: http, url: 'http://127.0.0.1:8080' },
});
t.teardown(async () => { await https.close(); await http.close(); pki.cleanup(); });

function api(token: string | null, method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown, type?: string): Promise<LightMyRequestResponse> {
  return https.inject({ method, url, ...(payload !== undefined ? { payload: payload as string } : {}),
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(type ? { 'content-type': type } : {}) } });
}

t.test('registry over the API, sealing and verifying', async (t) => {
  t.equal((await api(clerk, 'POST', '/api/v1/seals', { organization: '办公厅', creditCode: CREDIT_CODE, name: '公章', kind: 'official' })).statusCode, 403, 'ra-officer cannot create seals');
  t.equal((await api(null, 'GET', '/api/v1/seals')).statusCode, 401);
  const created = await api(admin1, 'POST', '/api/v1/seals', { organization: '福州市人民政府办公厅', creditCode: CREDIT_CODE, name: '公章', kind: 'official', users: ['clerk'], clients: ['app1'] });
  t.equal(created.statusCode, 201, created.body);
  const id = created.json().id as string;
  const self = await api(admin1, 'POST', `/api/v1/seals/${id}/approve`);
  t.equal(self.statusCode, 403);
  t.equal(self.json().code, 'separation-of-duties');
  const approved = await api(admin2, 'POST', `/api/v1/seals/${id}/approve`);
  t.equal(approved.json().state, 'active', approved.body);
  t.equal((await api(auditor, 'GET', `/api/v1/seals/${id}`)).statusCode, 200);

  const sealed = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf?page=1&x=100&y=100&reason=approved`, Buffer.from(simplePdf()), 'application/pdf');
  t.equal(sealed.statusCode, 200, sealed.body.slice(0, 300));
  t.equal(sealed.headers['content-type'], 'application/pdf');
  t.equal(Number(sealed.headers['content-length']), sealed.rawPayload.length, 'sent as the original and the update, with their joint length');
  const out = run('pdfsig', [pki.file('api.pdf', sealed.rawPayload)]).out;
  t.match(out, /Signature is Valid\./, out);
  t.equal((await api(auditor, 'POST', `/api/v1/seals/${id}/pdf`, Buffer.from(simplePdf()), 'application/pdf')).statusCode, 403, 'not on the access list');
  t.equal((await api(clerk, 'POST', `/api/v1/seals/${id}/pdf`, 'x', 'text/plain')).statusCode, 415);
  const big = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf`, Buffer.alloc(LIMIT + 1), 'application/pdf');
  t.equal(big.statusCode, 413, big.body);
  const junk = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf`, Buffer.from('%PDF-1.7 junk'), 'application/pdf');
  t.equal(junk.statusCode, 400);
  t.equal(junk.json().details?.reason, 'pdf-malformed');

  const p7s = await api(app1, 'POST', `/api/v1/seals/${id}/file`, Buffer.from('any file'), 'application/octet-stream');
  t.equal(p7s.statusCode, 200, p7s.body.slice(0, 300));
  const v = run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', pki.file('api.p7s', p7s.rawPayload), '-content', pki.file('api.txt', 'any file'), '-CAfile', pki.rootFile, '-purpose', 'any', '-out', '/dev/null']);
  t.equal(v.status, 0, v.out);

  const pub = await http.inject({ method: 'POST', url: '/seal/verify', payload: sealed.rawPayload, headers: { 'content-type': 'application/pdf' } });
  t.equal(pub.statusCode, 200, pub.body.slice(0, 300));
  t.equal(pub.json().valid, true, pub.json().summary);
  const detached = await http.inject({ method: 'POST', url: '/seal/verify', payload: { file: Buffer.from('any file').toString('base64'), signature: p7s.rawPayload.toString('base64') } });
  t.equal(detached.json().valid, true, detached.body);
  const usage = await api(auditor, 'GET', `/api/v1/seals/${id}/usage`);
  t.equal(usage.json().stats.uses, 2);

  t.equal((await api(admin2, 'POST', `/api/v1/seals/${id}/suspend`)).json().state, 'suspended');
  const refused = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf`, Buffer.from(simplePdf()), 'application/pdf');
  t.equal(refused.statusCode, 409);
  t.ok(https.apiRoutes.filter((r) => r.url.startsWith('/api/v1/seals')).every((r) => r.permission), 'every route declares a permission');
});

t.test('B-LT, anchors, PNG images and bad query parameters over the API', async (t) => {
  const png = Buffer.from(encodePng(2, 2, 6, new Uint8Array([215, 20, 20, 255, 215, 20, 20, 0, 215, 20, 20, 0, 215, 20, 20, 255])));
  const created = await api(admin1, 'POST', '/api/v1/seals', { organization: '福州市财政局', creditCode: CREDIT_CODE, name: '财务专用章', kind: 'finance', users: ['clerk'], imagePng: png.toString('base64') });
  t.equal(created.statusCode, 201, created.body);
  t.equal(created.json().hasImage, true);
  const id = created.json().id as string;
  t.equal((await api(admin2, 'POST', `/api/v1/seals/${id}/approve`)).json().state, 'active');
  const broken = Buffer.from(png);
  broken[20] ^= 1;
  const refused = await api(admin1, 'POST', '/api/v1/seals', { organization: '福州市财政局', creditCode: CREDIT_CODE, name: '章', kind: 'finance', imagePng: broken.toString('base64') });
  t.equal(refused.statusCode, 422, refused.body);
  t.equal(refused.json().details?.reason, 'png-invalid');

  const lt = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf?level=B-LT&anchor=${encodeURIComponent('Official document')}&size=60&anchorX=5`, Buffer.from(simplePdf()), 'application/pdf');
  t.equal(lt.statusCode, 200, lt.body.slice(0, 300));
  t.match(run('pdfsig', [pki.file('api-blt.pdf', lt.rawPayload)]).out, /Signature is Valid\./);
  t.match(lt.rawPayload.toString('latin1'), /\/DSS \d+ 0 R/);
  const report = await http.inject({ method: 'POST', url: '/seal/verify', payload: lt.rawPayload, headers: { 'content-type': 'application/pdf' } });
  t.equal(report.json().signatures[0].level, 'B-LT', report.json().summary);

  const notFound = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf?anchor=nowhere`, Buffer.from(simplePdf()), 'application/pdf');
  t.equal(notFound.statusCode, 422);
  t.equal(notFound.headers['content-type'], 'application/problem+json; charset=utf-8');
  t.same([notFound.json().code, notFound.json().details?.reason], ['validation-failed', 'anchor-not-found']);
  for (const query of ['level=B-B', 'level=B-LTX', 'page=0', 'size=5', 'x=abc']) {
    const bad = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf?${query}`, Buffer.from(simplePdf()), 'application/pdf');
    t.equal(bad.statusCode, 400, `${query}: ${bad.body}`);
  }
  t.equal((await api(clerk, 'POST', `/api/v1/seals/${id}/file?level=B-T`, Buffer.from('x'), 'application/octet-stream')).statusCode, 200);
  const ltFile = await api(clerk, 'POST', `/api/v1/seals/${id}/file?level=B-LT`, Buffer.from('x'), 'application/octet-stream');
  t.equal(ltFile.statusCode, 400, 'detached CAdES is B-T only');

  const lta = await api(clerk, 'POST', `/api/v1/seals/${id}/pdf?level=B-LTA`, Buffer.from(simplePdf()), 'application/pdf');
  t.equal(lta.statusCode, 200, lta.body.slice(0, 300));
  const [, stamp] = signaturesByRegex(lta.rawPayload);
  const ts = run('openssl', ['ts', '-verify', '-token_in', '-in', pki.file('api-lta.tst', stamp.cms), '-data', pki.file('api-lta.data', stamp.signed), '-CAfile', pki.rootFile, '-untrusted', pki.chainFile]);
  t.equal(ts.status, 0, ts.out);
  const ltaReport = (await http.inject({ method: 'POST', url: '/seal/verify', payload: lta.rawPayload, headers: { 'content-type': 'application/pdf' } })).json();
  t.equal(ltaReport.signatures[0].level, 'B-LTA', ltaReport.summary);
  t.equal(ltaReport.documentTimestamps[0].field, 'DocTimeStamp1');
});

t.test('OpenAPI: raw-body routes document their media types, query and problems', async (t) => {
  const doc = (await https.inject({ method: 'GET', url: '/api/docs' })).json();
  const seal = doc.paths['/api/v1/seals/{id}/pdf'].post;
  t.same(seal.requestBody.content['application/pdf'].schema, { type: 'string', format: 'binary' });
  t.same(seal.responses['200'].content['application/pdf'].schema, { type: 'string', format: 'binary' });
  t.same(seal.parameters.filter((p: { in: string }) => p.in === 'query').map((p: { name: string }) => p.name).sort(),
    ['anchor', 'anchorX', 'anchorY', 'level', 'location', 'page', 'reason', 'size', 'x', 'y']);
  t.same(seal.parameters.find((p: { name: string }) => p.name === 'level').schema.enum, ['B-T', 'B-LT', 'B-LTA']);
  t.match(seal.responses['422'].content['application/problem+json'].schema.required, ['type', 'title', 'status', 'detail', 'code']);
  const file = doc.paths['/api/v1/seals/{id}/file'].post;
  t.same(file.requestBody.content['application/octet-stream'].schema, { type: 'string', format: 'binary' });
  t.ok(file.responses['200'].content['application/pkcs7-signature']);
  t.same(file.parameters.find((p: { name: string }) => p.name === 'level').schema.enum, ['B-T']);
  const verify = doc.paths['/api/v1/seals/verify'].post;
  t.same(Object.keys(verify.requestBody.content).sort(), ['application/json', 'application/pdf']);
  t.ok(verify.responses['200'].content['application/json'].schema.properties.signatures);

  // The public verification endpoint, documented on the public server without authentication.
  const pub = doc.paths['/seal/verify'];
  t.ok(pub?.post, 'POST /seal/verify is in the document');
  t.same(pub.servers, [{ url: 'http://127.0.0.1:8080', description: 'public HTTP port (no authentication)' }]);
  t.same(pub.post.security, [], 'no bearer token');
  t.same(Object.keys(pub.post.requestBody.content).sort(), ['application/json', 'application/pdf']);
  t.same(pub.post.requestBody.content['application/json'].schema.required, ['file', 'signature']);
  t.ok(pub.post.responses['200'].content['application/json'].schema.properties.documentTimestamps);
  for (const status of ['400', '413', '415']) t.match(pub.post.responses[status].content['application/problem+json'].schema.required, ['type', 'title', 'status', 'detail', 'code']);
  t.notOk(doc.paths['/healthz'] || doc.paths['/metrics'], 'untagged public routes stay out');
});
