/**
 * The CA over HTTP: the /api/v1 REST API on the secure app and the public PKI routes on the
 * public app, built as the appliance builds them (buildSecureApp / buildPublicApp, the API guard),
 * with a stub authenticator, the in-memory store and software keys. Everything issued is checked
 * with openssl (verify, verify -crl_check, crl -verify, pkcs12, x509); bad input gets its problem
 * document (the `code` field asserted).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { buildPublicApp, buildSecureApp } from '../appliance/app.ts';
import { MetricsRegistry } from '../common/metrics.ts';
import type { Principal } from '../auth/operators.ts';
import type { Role } from '../auth/roles.ts';
import { FixedClock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { fromPemAll, toPem } from '../common/pem.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { CertificateAuthority } from './authority.ts';
import { CrlPublisher } from './crl-publisher.ts';
import { buildPkcs12 } from './pkcs12.ts';
import { RegistrationAuthority } from './ra.ts';
import { caApiRoutes, caPublicRoutes } from './routes.ts';
import { MemoryStore, TableAuditLog } from './test-support.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-ca-routes-'));
let n = 0;

function file(content: string | Uint8Array, ext = 'pem'): string {
  const p = join(dir, `f${n++}.${ext}`);
  writeFileSync(p, content);
  return p;
}

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A CSR from `openssl req` (PEM text, or DER bytes). */
function opensslCsr(subj: string, extra: string[] = []): { pem: string; der: Uint8Array } {
  const keyFile = join(dir, `k${n}.pem`);
  const csrFile = join(dir, `r${n++}.pem`);
  execFileSync('openssl', ['req', '-new', '-utf8', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', keyFile, '-subj', subj, '-out', csrFile, ...extra], { stdio: 'pipe' });
  const pem = readFileSync(csrFile, 'utf8');
  return { pem, der: fromPemAll(pem)[0] };
}

const CITIZEN_ID = '11010519491231002X';
const CIVIL = `/C=CN/O=北京市人民政府/CN=张三/serialNumber=${CITIZEN_ID}`;

// ---------------------------------------------------------------- the appliance, assembled

const principals: Record<string, Principal> = {};
function operator(username: string, roles: Role[], kind: Principal['kind'] = 'operator', tokenId = `session-${username}`): string {
  const token = `${kind}-${username}-${roles.join('+')}`;
  principals[token] = { kind, username, roles, tokenId, mustChangePassword: false };
  return token;
}
const alice = operator('alice', ['ra-officer']);
const aliceScript = operator('alice', ['ra-officer'], 'api-token', 'tok123');
const bob = operator('bob', ['ra-officer']);
const carol = operator('carol', ['ra-officer']);
const admin = operator('admin', ['ca-admin']);
const auditor = operator('audrey', ['auditor']);

// A minute behind: the tests move it forward (CRL after CRL) without getting ahead of openssl's clock.
const clock = new FixedClock(Math.floor(Date.now() / 1000) * 1000 - 60_000);
const store = new MemoryStore();
const keys = new SoftwareKeyStore();
const audit = new TableAuditLog(store, clock);
const authority = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
await authority.initialize();
const ra = await RegistrationAuthority.open({ store, keys, audit, authority, buildPkcs12 });
// Publication happens when the tests ask for it (the API's force-publish or a first fetch).
const crls = new CrlPublisher({ store, audit, clock, authority, options: { debounceMs: 3_600_000 } });

const BODY_LIMIT = 64 * 1024;
const common = { logger: pino({ level: 'silent' }), metrics: new MetricsRegistry(), bodyLimit: BODY_LIMIT, trustProxy: false, health: [] };
const http: FastifyInstance = await buildPublicApp({ ...common, plugins: [(app) => caPublicRoutes(app, { authority, crls })] });
const https: FastifyInstance = await buildSecureApp({
  ...common, version: 'test',
  authenticator: {
    authenticate(bearer: string): Principal {
      const p = principals[bearer];
      if (!p) throw new YinxinError('unauthenticated', 'unknown token');
      return p;
    },
  },
  plugins: [(app) => caApiRoutes(app, { authority, ra, crls })],
});
await http.ready();
await https.ready();
t.teardown(async () => {
  await crls.stop();
  await http.close();
  await https.close();
  rmSync(dir, { recursive: true, force: true });
});

type Method = 'GET' | 'POST';
async function api(token: string | null, method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return https.inject({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}), headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
}

function json<T = Record<string, any>>(res: LightMyRequestResponse): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  return res.json() as T;
}

function isProblem(t: Test, res: LightMyRequestResponse, status: number, code: string, what: string): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  t.equal(res.statusCode, status, `${what}: HTTP ${status} (got ${res.statusCode}: ${res.body.slice(0, 300)})`);
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: problem document`);
  const body = res.json();
  t.equal(body.code, code, `${what}: code ${code}`);
  return body;
}

const rootPem = file(toPem(authority.caCertificate('root'), 'CERTIFICATE'));
const issuingPem = file(toPem(authority.caCertificate('issuing'), 'CERTIFICATE'));

/** Submit (alice) and approve (bob) a CSR through the API; returns the issued certificate view. */
async function issueThroughApi(subj: string, profile = 'civil-servant-signing'): Promise<{ serial: string; requestId: string }> {
  const { pem } = opensslCsr(subj);
  const submitted = await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile, csr: pem });
  if (submitted.statusCode !== 201) throw new Error(`submit failed: ${submitted.body}`);
  const approved = await api(bob, 'POST', `/api/v1/requests/${json(submitted).id}/approve`);
  if (approved.statusCode !== 200) throw new Error(`approve failed: ${approved.body}`);
  return { serial: json(approved).certificates[0].serial, requestId: json(submitted).id };
}

// ---------------------------------------------------------------- tests

t.test('RA flow over HTTP: officer A submits an openssl CSR with a Chinese name, officer B approves, downloads verify with openssl', async (t) => {
  const { pem } = opensslCsr(CIVIL, ['-addext', 'subjectAltName=email:zhangsan@bj.gov.cn']);
  const submitted = await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: pem });
  t.equal(submitted.statusCode, 201, submitted.body);
  const request = json(submitted);
  t.equal(request.status, 'pending');
  t.equal(request.requester, 'alice', 'the requester is the person, whichever credential they used');
  t.equal(request.subject, `serialNumber=${CITIZEN_ID},CN=张三,O=北京市人民政府,C=CN`, 'RFC 4514 string order');
  t.same(request.san, { email: ['zhangsan@bj.gov.cn'] });
  t.equal(request.key.source, 'csr');
  t.equal(request.key.description, 'ECDSA P-256');
  t.equal(submitted.headers.location, `/api/v1/requests/${request.id}`);

  isProblem(t, await api(alice, 'POST', `/api/v1/requests/${request.id}/approve`), 403, 'separation-of-duties', 'the requester approving');
  isProblem(t, await api(aliceScript, 'POST', `/api/v1/requests/${request.id}/approve`), 403, 'separation-of-duties', 'the requester approving with an API token');
  isProblem(t, await api(admin, 'POST', `/api/v1/requests/${request.id}/approve`), 403, 'forbidden', 'a ca-admin approving');
  isProblem(t, await api(null, 'POST', `/api/v1/requests/${request.id}/approve`), 401, 'unauthenticated', 'no token');
  t.equal(json(await api(auditor, 'GET', `/api/v1/requests/${request.id}`)).status, 'pending', 'still pending after refused approvals');

  const approved = await api(bob, 'POST', `/api/v1/requests/${request.id}/approve`);
  t.equal(approved.statusCode, 200, approved.body);
  const result = json(approved);
  t.equal(result.request.status, 'issued');
  t.same(result.request.approvals.map((a: { officer: string }) => a.officer), ['bob']);
  t.notOk(result.oneTimePassword, 'no PKCS#12 for a key the subject holds');
  const cert = result.certificates[0];
  t.equal(cert.identifier, CITIZEN_ID);
  t.equal(cert.status, 'good');
  isProblem(t, await api(carol, 'POST', `/api/v1/requests/${request.id}/approve`), 409, 'conflict', 'approving an issued request');

  const got = json(await api(auditor, 'GET', `/api/v1/certificates/issuing/${cert.serial}`));
  t.equal(got.subject, cert.subject);
  t.equal(got.requestId, request.id);

  const pemRes = await api(alice, 'GET', `/api/v1/certificates/issuing/${cert.serial}/download?format=pem`);
  t.equal(pemRes.statusCode, 200);
  t.match(pemRes.headers['content-type'], /^application\/x-pem-file/);
  t.match(pemRes.headers['content-disposition'], new RegExp(`attachment; filename="${cert.serial}.pem"`));
  const leafPem = file(pemRes.body);

  const derRes = await api(alice, 'GET', `/api/v1/certificates/issuing/${cert.serial}/download?format=der`);
  t.equal(derRes.headers['content-type'], 'application/pkix-cert');
  t.same(Buffer.from(derRes.rawPayload), Buffer.from(fromPemAll(pemRes.body)[0]), 'DER is the PEM decoded');
  const subject = run('openssl', ['x509', '-inform', 'DER', '-in', file(derRes.rawPayload, 'cer'), '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space']);
  t.match(subject.out, /O=北京市人民政府, CN=张三, serialNumber=11010519491231002X/, 'openssl reads the Chinese subject from the DER download');

  const chainRes = await api(alice, 'GET', `/api/v1/certificates/issuing/${cert.serial}/download?format=chain`);
  t.match(chainRes.headers['content-type'], /^application\/pem-certificate-chain/);
  const chain = fromPemAll(chainRes.body, 'CERTIFICATE');
  t.equal(chain.length, 3, 'leaf, issuing CA, root');
  t.same(Buffer.from(chain[2]), Buffer.from(authority.caCertificate('root')));
  const chainFile = file(chainRes.body);
  const verified = run('openssl', ['verify', '-CAfile', rootPem, '-untrusted', chainFile, leafPem]);
  t.equal(verified.status, 0, `openssl verify: ${verified.out}`);

  isProblem(t, await api(alice, 'GET', `/api/v1/certificates/issuing/${cert.serial}/download?format=p7b`), 400, 'bad-request', 'unknown format');
  isProblem(t, await api(alice, 'GET', '/api/v1/certificates/issuing/40aabbccdd/download'), 404, 'not-found', 'unknown serial');
  isProblem(t, await api(alice, 'GET', '/api/v1/certificates/issuing/not-hex'), 422, 'validation-failed', 'a serial that is not hex');
  t.ok(audit.list().some((r) => r.action === 'certificate.approve' && r.actor === 'operator:bob' && r.requestId), 'approval audited with the HTTP request id');
});

t.test('a CSR as base64 DER; a two-officer profile needs two distinct approvers', async (t) => {
  const { der } = opensslCsr('/C=CN/O=北京市人民政府/CN=北京市人民政府/organizationIdentifier=91350100M000100Y43');
  const submitted = await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'organization', csr: Buffer.from(der).toString('base64') });
  t.equal(submitted.statusCode, 201, submitted.body);
  const id = json(submitted).id;
  t.equal(json(submitted).approvalsNeeded, 2);
  const first = json(await api(bob, 'POST', `/api/v1/requests/${id}/approve`));
  t.equal(first.request.status, 'pending');
  t.notOk(first.certificates);
  isProblem(t, await api(bob, 'POST', `/api/v1/requests/${id}/approve`), 409, 'conflict', 'the same officer approving twice');
  const second = json(await api(carol, 'POST', `/api/v1/requests/${id}/approve`));
  t.equal(second.request.status, 'issued');
  t.equal(second.certificates[0].organization, '北京市人民政府');
});

t.test('key generated on behalf: one-time PKCS#12 pickup opens with openssl, a second pickup is refused', async (t) => {
  const submitted = await api(alice, 'POST', '/api/v1/requests', {
    ca: 'issuing', profile: 'civil-servant-signing', generateKey: 'ec-p256',
    subject: `CN=李四,O=上海市人民政府,C=CN,serialNumber=${CITIZEN_ID}`,
  });
  t.equal(submitted.statusCode, 201, submitted.body);
  t.same(json(submitted).key, { source: 'generate', spec: 'ec-p256', description: 'ECDSA P-256' });
  const approved = json(await api(bob, 'POST', `/api/v1/requests/${json(submitted).id}/approve`));
  t.match(approved.oneTimePassword, /^[A-Za-z0-9]{20}$/);
  t.same(approved.pkcs12, [{ role: 'certificate', href: `/api/v1/requests/${json(submitted).id}/pkcs12` }]);

  isProblem(t, await api(auditor, 'POST', approved.pkcs12[0].href), 403, 'forbidden', 'an auditor collecting a key');
  const p12 = await api(alice, 'POST', approved.pkcs12[0].href);
  t.equal(p12.statusCode, 200);
  t.equal(p12.headers['content-type'], 'application/x-pkcs12');
  t.equal(p12.headers['cache-control'], 'no-store');
  const p12File = file(p12.rawPayload, 'p12');
  const opened = run('openssl', ['pkcs12', '-in', p12File, '-nodes', '-passin', `pass:${approved.oneTimePassword}`]);
  t.equal(opened.status, 0, opened.out);
  t.match(opened.out, /BEGIN PRIVATE KEY/);
  const certs = fromPemAll(opened.out, 'CERTIFICATE');
  t.equal(certs.length, 3, 'certificate and chain inside');
  const holder = run('openssl', ['x509', '-in', file(toPem(certs[0], 'CERTIFICATE')), '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space']);
  t.match(holder.out, /O=上海市人民政府, CN=李四, serialNumber=11010519491231002X/, 'the PKCS#12 holds the certificate issued for the request');
  t.not(run('openssl', ['pkcs12', '-in', p12File, '-nodes', '-passin', 'pass:wrong-password']).status, 0, 'a wrong password does not open it');

  isProblem(t, await api(alice, 'POST', approved.pkcs12[0].href), 404, 'not-found', 'second pickup');
  t.ok(audit.list().some((r) => r.action === 'key.pkcs12-delivered'), 'delivery audited');
});

t.test('signing + generated encryption pair; key recovery needs a second officer', async (t) => {
  const { pem } = opensslCsr(CIVIL);
  const submitted = await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: pem, encryption: { generateKey: 'ec-p256' } });
  t.equal(submitted.statusCode, 201, submitted.body);
  const approved = json(await api(bob, 'POST', `/api/v1/requests/${json(submitted).id}/approve`));
  t.equal(approved.certificates.length, 2);
  t.same(approved.pkcs12.map((p: { role: string }) => p.role), ['encryption']);
  const enc = approved.certificates.find((c: { profile: string }) => c.profile === 'civil-servant-encryption');

  const asked = await api(alice, 'POST', `/api/v1/certificates/issuing/${enc.serial}/key-recovery`, { reason: 'lost smart card' });
  t.equal(asked.statusCode, 201, asked.body);
  const recoveryId = json(asked).id;
  isProblem(t, await api(alice, 'POST', `/api/v1/key-recoveries/${recoveryId}/approve`), 403, 'separation-of-duties', 'the asking officer approving the recovery');
  isProblem(t, await api(aliceScript, 'POST', `/api/v1/key-recoveries/${recoveryId}/approve`), 403, 'separation-of-duties', 'the asking officer approving with a token');
  const ok = json(await api(carol, 'POST', `/api/v1/key-recoveries/${recoveryId}/approve`));
  t.equal(ok.recovery.status, 'completed');
  t.equal(ok.recovery.approvedBy, 'carol');
  const p12 = await api(carol, 'POST', ok.pkcs12);
  t.equal(p12.headers['content-type'], 'application/x-pkcs12');
  t.equal(run('openssl', ['pkcs12', '-in', file(p12.rawPayload, 'p12'), '-nodes', '-passin', `pass:${ok.oneTimePassword}`]).status, 0, 'the recovered PKCS#12 opens');
  isProblem(t, await api(carol, 'POST', ok.pkcs12), 404, 'not-found', 'recovered key collected twice');
  isProblem(t, await api(alice, 'POST', `/api/v1/certificates/issuing/${approved.certificates[0].serial}/key-recovery`, { reason: 'x' }), 404, 'not-found', 'recovery of a key that was never archived');
  t.equal(json(await api(auditor, 'GET', `/api/v1/key-recoveries/${recoveryId}`)).status, 'completed');
});

t.test('bad requests: forged CSR, bad citizen ID, unknown CA or profile, wrong fields; nothing stored', async (t) => {
  const before = store.totalEntries();
  const { der } = opensslCsr(CIVIL);
  const forged = new Uint8Array(der);
  forged[forged.length - 5] ^= 0x01; // inside the ECDSA signature value
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: Buffer.from(forged).toString('base64') }), 400, 'bad-signature', 'forged CSR');

  const badId = opensslCsr('/C=CN/O=北京市人民政府/CN=张三/serialNumber=110105194912310021');
  const p = isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: badId.pem }), 422, 'validation-failed', 'bad citizen ID check character');
  t.equal(p.details.position, 18, 'the problem names the position');
  t.match(p.detail, /position 18/);
  t.equal(p.details.expected, 'X');

  const badSubject = await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', generateKey: 'ec-p256', subject: 'CN=王五,O=某局,C=CN,serialNumber=11010519491231002Y' });
  t.equal(json(badSubject).details.position, 18, 'the same for a subject given as text');

  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'nope', profile: 'civil-servant-signing', csr: opensslCsr(CIVIL).pem }), 404, 'unknown-issuer', 'unknown CA');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'nope', csr: opensslCsr(CIVIL).pem }), 404, 'not-found', 'unknown profile');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: '%%% not base64 %%%' }), 400, 'malformed-der', 'CSR neither PEM nor base64');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: Buffer.from('garbage').toString('base64') }), 400, 'malformed-der', 'CSR that is not DER');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'organization', generateKey: 'ec-p256', subject: 'CN=x,O=y,C=CN,organizationIdentifier=91350100M000100Y43' }), 422, 'policy-violation', 'generated key on a CSR-only profile');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', generateKey: 'ec-p256', subject: 'CN=x,Q=y' }), 422, 'validation-failed', 'unknown subject attribute in text');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', generateKey: 'dsa-1024', subject: 'CN=x' }), 400, 'bad-request', 'unknown key spec');
  t.equal(store.totalEntries(), before, 'nothing was stored');
});

t.test('wrong content type (415), oversize body (413), unknown routes and CAs (404)', async (t) => {
  const pem = opensslCsr(CIVIL).pem;
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', pem, { 'content-type': 'text/plain' }), 415, 'unsupported-media-type', 'text/plain');
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported-media-type', 'form encoding');
  const big = { ca: 'issuing', profile: 'civil-servant-signing', csr: 'A'.repeat(BODY_LIMIT + 10) };
  isProblem(t, await api(alice, 'POST', '/api/v1/requests', big), 413, 'payload-too-large', 'body over the limit');
  isProblem(t, await api(auditor, 'GET', '/api/v1/cas/nope'), 404, 'unknown-issuer', 'unknown CA in the API');
  isProblem(t, await api(auditor, 'GET', '/api/v1/certificates/nope/40aa'), 404, 'unknown-issuer', 'certificate of an unknown CA');
  isProblem(t, await http.inject({ method: 'GET', url: '/ca/nope.crt' }), 404, 'unknown-issuer', 'unknown CA certificate');
  isProblem(t, await http.inject({ method: 'GET', url: '/crl/nope.crl' }), 404, 'unknown-issuer', 'unknown CA CRL');
  isProblem(t, await http.inject({ method: 'GET', url: '/crl/nope-delta.crl' }), 404, 'unknown-issuer', 'unknown CA delta CRL');
  isProblem(t, await http.inject({ method: 'GET', url: '/ca/issuing.pem' }), 404, 'not-found', 'no such public route');
});

t.test('GET /ca/{ca}.crt: DER, application/pkix-cert, caching headers, 304', async (t) => {
  const res = await http.inject({ method: 'GET', url: '/ca/issuing.crt' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'application/pkix-cert');
  t.same(Buffer.from(res.rawPayload), Buffer.from(authority.caCertificate('issuing')));
  const parsed = run('openssl', ['x509', '-inform', 'DER', '-in', file(res.rawPayload, 'crt'), '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space']);
  t.match(parsed.out, /CN=yinxin Issuing CA/);
  const verified = run('openssl', ['verify', '-CAfile', rootPem, issuingPem]);
  t.equal(verified.status, 0, verified.out);
  t.match(res.headers['cache-control'], /max-age=86400/);
  const etag = res.headers.etag as string;
  t.match(etag, /^"[0-9a-f]+"$/);
  t.ok(res.headers['last-modified']);
  const again = await http.inject({ method: 'GET', url: '/ca/issuing.crt', headers: { 'if-none-match': etag } });
  t.equal(again.statusCode, 304);
  t.equal(again.rawPayload.length, 0);
  t.equal(again.headers.etag, etag);
  t.equal((await http.inject({ method: 'GET', url: '/ca/issuing.crt', headers: { 'if-none-match': '"other"' } })).statusCode, 200, 'another ETag gets the body');
  t.equal((await http.inject({ method: 'GET', url: '/ca/issuing.crt', headers: { 'if-modified-since': res.headers['last-modified'] as string } })).statusCode, 304, 'If-Modified-Since');
  t.equal((await http.inject({ method: 'GET', url: '/ca/root.crt' })).statusCode, 200);
  const head = await http.inject({ method: 'HEAD', url: '/ca/issuing.crt' });
  t.equal(head.statusCode, 200, 'HEAD');
});

t.test('revoke -> the served CRL makes openssl verify -crl_check fail; the delta CRL verifies; caching and 304', async (t) => {
  const a = await issueThroughApi(CIVIL);
  const b = await issueThroughApi(CIVIL);
  const pemA = (await api(alice, 'GET', `/api/v1/certificates/issuing/${a.serial}/download`)).body;
  const pemB = (await api(alice, 'GET', `/api/v1/certificates/issuing/${b.serial}/download`)).body;
  const fileA = file(pemA);
  const fileB = file(pemB);

  // A first CRL (fetched before any revocation: published on demand).
  const first = await http.inject({ method: 'GET', url: '/crl/issuing.crl' });
  t.equal(first.statusCode, 200);
  t.equal(first.headers['content-type'], 'application/pkix-crl');
  const firstPem = file(toPem(first.rawPayload, 'X509 CRL'));
  t.equal(run('openssl', ['verify', '-crl_check', '-CAfile', rootPem, '-untrusted', issuingPem, '-CRLfile', firstPem, fileA]).status, 0, 'good before revocation');

  const invalidity = new Date(clock.now().getTime() - 3600_000).toISOString();
  const revoked = await api(bob, 'POST', `/api/v1/certificates/issuing/${a.serial}/revoke`, { reason: 'keyCompromise', invalidityDate: invalidity });
  t.equal(revoked.statusCode, 200, revoked.body);
  t.equal(json(revoked).status, 'revoked');
  t.equal(json(revoked).reason, 'keyCompromise');
  t.equal(json(revoked).reasonCode, 1);
  isProblem(t, await api(bob, 'POST', `/api/v1/certificates/issuing/${a.serial}/revoke`, { reason: 'keyCompromise' }), 409, 'already-revoked', 'revoking twice');
  isProblem(t, await api(bob, 'POST', '/api/v1/certificates/issuing/40aabbccddeeff/revoke', { reason: 1 }), 404, 'not-found', 'unknown serial');
  isProblem(t, await api(bob, 'POST', `/api/v1/certificates/issuing/${b.serial}/revoke`, { reason: 'certificateHold' }), 422, 'validation-failed', 'hold is not a revocation reason');
  isProblem(t, await api(bob, 'POST', `/api/v1/certificates/issuing/${b.serial}/revoke`, { reason: 'tired' }), 422, 'validation-failed', 'unknown reason');
  isProblem(t, await api(bob, 'POST', `/api/v1/certificates/issuing/${b.serial}/revoke`, { reason: 1, invalidityDate: '2999-01-01T00:00:00Z' }), 422, 'validation-failed', 'invalidity date in the future');
  isProblem(t, await api(auditor, 'POST', `/api/v1/certificates/issuing/${b.serial}/revoke`, { reason: 1 }), 403, 'forbidden', 'an auditor revoking');

  // Suspend b, then publish (ca:manage only).
  t.equal(json(await api(bob, 'POST', `/api/v1/certificates/issuing/${b.serial}/suspend`)).status, 'hold');
  isProblem(t, await api(bob, 'POST', '/api/v1/cas/issuing/crls'), 403, 'forbidden', 'an RA officer forcing a CRL');
  clock.advance(1000);
  const published = await api(admin, 'POST', '/api/v1/cas/issuing/crls');
  t.equal(published.statusCode, 200, published.body);
  const { full, delta } = json(published);
  t.equal(full.entries, 2);
  t.equal(BigInt(delta.number), BigInt(full.number) + 1n, 'full and delta share one CRL number sequence');
  t.equal(`"issuing-full-${delta.baseNumber}"`, first.headers.etag, 'the delta is based on the CRL served before');
  t.same(json(await api(auditor, 'GET', '/api/v1/cas/issuing/crls')).full, full, 'current CRL metadata');

  const crl = await http.inject({ method: 'GET', url: '/crl/issuing.crl' });
  t.equal(crl.statusCode, 200);
  t.equal(crl.headers['content-type'], 'application/pkix-crl');
  t.equal(crl.headers.etag, `"issuing-full-${full.number}"`);
  const maxAge = Number(/max-age=(\d+)/.exec(crl.headers['cache-control'] as string)![1]);
  t.ok(maxAge > 24 * 3600 - 60 && maxAge <= 24 * 3600, `max-age ${maxAge} runs until nextUpdate`);
  t.equal(new Date(crl.headers.expires as string).toISOString(), full.nextUpdate);
  t.equal(new Date(crl.headers['last-modified'] as string).toISOString(), full.thisUpdate);
  t.equal((await http.inject({ method: 'GET', url: '/crl/issuing.crl', headers: { 'if-none-match': crl.headers.etag as string } })).statusCode, 304);
  t.equal((await http.inject({ method: 'GET', url: '/crl/issuing.crl', headers: { 'if-none-match': `W/${crl.headers.etag}, "x"` } })).statusCode, 304, 'weak comparison, list');
  t.equal((await http.inject({ method: 'GET', url: '/crl/issuing.crl', headers: { 'if-none-match': first.headers.etag as string } })).statusCode, 200, 'a stale ETag gets the new CRL');

  const crlPem = file(toPem(crl.rawPayload, 'X509 CRL'));
  const text = run('openssl', ['crl', '-in', crlPem, '-noout', '-text']);
  t.match(text.out, new RegExp(`Serial Number: ${a.serial.toUpperCase()}[\\s\\S]*?Key Compromise[\\s\\S]*?Invalidity Date`, 'i'));
  t.match(text.out, /Certificate Hold/);
  const checkA = run('openssl', ['verify', '-crl_check', '-CAfile', rootPem, '-untrusted', issuingPem, '-CRLfile', crlPem, fileA]);
  t.not(checkA.status, 0);
  t.match(checkA.out, /certificate revoked/);
  const checkB = run('openssl', ['verify', '-crl_check', '-CAfile', rootPem, '-untrusted', issuingPem, '-CRLfile', crlPem, fileB]);
  t.match(checkB.out, /certificate revoked/, 'a suspended certificate fails too');

  const deltaRes = await http.inject({ method: 'GET', url: '/crl/issuing-delta.crl' });
  t.equal(deltaRes.statusCode, 200);
  t.equal(deltaRes.headers['content-type'], 'application/pkix-crl');
  t.equal(deltaRes.headers.etag, `"issuing-delta-${delta.number}"`);
  const deltaPem = file(toPem(deltaRes.rawPayload, 'X509 CRL'));
  const verifiedDelta = run('openssl', ['crl', '-in', deltaPem, '-CAfile', issuingPem, '-verify', '-noout', '-text']);
  t.equal(verifiedDelta.status, 0, verifiedDelta.out);
  t.match(verifiedDelta.out, /verify OK/);
  t.match(verifiedDelta.out, /Delta CRL Indicator: critical/);
  t.match(verifiedDelta.out, new RegExp(b.serial.toUpperCase(), 'i'), 'the suspension since the base CRL is in the delta');

  // Release b: the next delta says removeFromCRL, the next full CRL no longer lists it.
  t.equal(json(await api(bob, 'POST', `/api/v1/certificates/issuing/${b.serial}/release`)).status, 'good');
  isProblem(t, await api(bob, 'POST', `/api/v1/certificates/issuing/${b.serial}/release`), 409, 'conflict', 'releasing a good certificate');
  clock.advance(1000);
  await api(admin, 'POST', '/api/v1/cas/issuing/crls');
  const afterRelease = run('openssl', ['crl', '-in', file(toPem((await http.inject({ method: 'GET', url: '/crl/issuing-delta.crl' })).rawPayload, 'X509 CRL')), '-noout', '-text']);
  t.match(afterRelease.out, /Remove From CRL/);
  const fullAfter = file(toPem((await http.inject({ method: 'GET', url: '/crl/issuing.crl' })).rawPayload, 'X509 CRL'));
  const released = run('openssl', ['verify', '-crl_check', '-CAfile', rootPem, '-untrusted', issuingPem, '-CRLfile', fullAfter, fileB]);
  t.equal(released.status, 0, `released: verifies again (${released.out.trim()})`);
});

t.test('renew and re-key go through approval like a new request', async (t) => {
  const issued = await issueThroughApi(CIVIL);
  const renewed = await api(alice, 'POST', `/api/v1/certificates/issuing/${issued.serial}/renew`);
  t.equal(renewed.statusCode, 201, renewed.body);
  t.equal(json(renewed).kind, 'renew');
  t.same(json(renewed).renewalOf, { ca: 'issuing', serial: issued.serial });
  const r = json(await api(bob, 'POST', `/api/v1/requests/${json(renewed).id}/approve`));
  t.not(r.certificates[0].serial, issued.serial);
  t.equal(r.certificates[0].keyIdentifier, json(await api(alice, 'GET', `/api/v1/certificates/issuing/${issued.serial}`)).keyIdentifier, 'same key');

  const rekeyed = await api(alice, 'POST', `/api/v1/certificates/issuing/${issued.serial}/rekey`, { csr: opensslCsr(CIVIL).pem });
  t.equal(rekeyed.statusCode, 201, rekeyed.body);
  t.equal(json(rekeyed).kind, 'rekey');
  const k = json(await api(carol, 'POST', `/api/v1/requests/${json(rekeyed).id}/approve`));
  t.not(k.certificates[0].keyIdentifier, r.certificates[0].keyIdentifier, 'a new key');
  isProblem(t, await api(alice, 'POST', `/api/v1/certificates/issuing/${issued.serial}/rekey`, { csr: opensslCsr('/C=CN/O=别的单位/CN=张三/serialNumber=11010519491231002X').pem }), 422, 'policy-violation', 're-key with another subject');
  isProblem(t, await api(alice, 'POST', '/api/v1/certificates/issuing/40ffee/renew'), 404, 'not-found', 'renewing an unknown certificate');
});

t.test('searches are paged with an opaque cursor', async (t) => {
  for (let i = 0; i < 7; i++) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await authority.issue({
      ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: `pager-${i}` }, { type: 'O', value: '分页测试局' }],
      publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    }, { actor: 'test' });
  }
  async function all(query: string, limit: number): Promise<{ pages: number; items: Array<{ serial: string; subject: string }> }> {
    let cursor: string | null = null;
    const items: Array<{ serial: string; subject: string }> = [];
    let pages = 0;
    do {
      const res = await api(auditor, 'GET', `/api/v1/certificates?${query}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      t.equal(res.statusCode, 200, res.body);
      const body = json(res);
      t.ok(body.items.length <= limit);
      items.push(...body.items);
      cursor = body.next;
      pages++;
    } while (cursor && pages < 20);
    return { pages, items };
  }
  const bySubject = await all('subject=PAGER', 3);
  t.equal(bySubject.items.length, 7, 'subject prefix, case-insensitive');
  t.equal(bySubject.pages, 3, '3 + 3 + 1');
  t.equal(new Set(bySubject.items.map((i) => i.serial)).size, 7, 'no certificate twice');
  t.same(bySubject.items.map((i) => i.subject), [...bySubject.items.map((i) => i.subject)].sort(), 'in index order');
  const byOrg = await all(`organization=${encodeURIComponent('分页测试局')}`, 5);
  t.equal(byOrg.items.length, 7);
  t.equal(byOrg.pages, 2);
  const byProfile = await all('ca=issuing&profile=device', 2);
  t.equal(byProfile.items.length, 7, 'a filter with no index of its own walks the CA');
  const byId = await all(`identifier=${CITIZEN_ID}&status=good`, 100);
  t.ok(byId.items.length >= 3 && byId.items.every((i) => (i as unknown as { identifier: string }).identifier === CITIZEN_ID), 'by citizen ID');
  const soon = await all(`expiresBefore=${encodeURIComponent(new Date(clock.now().getTime() + 10 * 365 * 86400_000).toISOString())}&profile=device`, 4);
  t.equal(soon.items.length, 7, 'by expiry');
  t.equal((await all('subject=nobody-has-this', 10)).items.length, 0);

  const first = json(await api(auditor, 'GET', '/api/v1/certificates?subject=pager&limit=3'));
  isProblem(t, await api(auditor, 'GET', `/api/v1/certificates?organization=x&cursor=${first.next}`), 400, 'bad-request', 'a cursor from another query');
  isProblem(t, await api(auditor, 'GET', '/api/v1/certificates?cursor=!!!'), 400, 'bad-request', 'a cursor that is not one of ours');
  isProblem(t, await api(auditor, 'GET', '/api/v1/certificates?limit=5000'), 400, 'bad-request', 'limit over 1000');
  isProblem(t, await api(auditor, 'GET', '/api/v1/certificates?expiresBefore=tomorrow'), 422, 'validation-failed', 'a date that is not one');

  const requests: string[] = [];
  let cursor: string | null = null;
  do {
    const body: { items: Array<{ status: string }>; next: string | null } = json(await api(auditor, 'GET', `/api/v1/requests?status=issued&limit=2${cursor ? `&cursor=${cursor}` : ''}`));
    requests.push(...body.items.map((r) => r.status));
    cursor = body.next;
  } while (cursor);
  t.ok(requests.length >= 5 && requests.every((s) => s === 'issued'), `${requests.length} issued requests over pages`);
  const mine = json(await api(auditor, 'GET', '/api/v1/requests?requester=alice&limit=1000'));
  t.ok(mine.items.length >= 5 && mine.next === null);
});

t.test('CAs: list, get, create an issuing CA (ca-admin only), its certificate served and verified', async (t) => {
  const list = json(await api(auditor, 'GET', '/api/v1/cas'));
  t.same(list.items.map((c: { name: string }) => c.name).sort(), ['issuing', 'root']);
  const root = json(await api(alice, 'GET', '/api/v1/cas/root'));
  t.equal(root.parent, null);
  t.match(root.certificatePem, /BEGIN CERTIFICATE/);

  isProblem(t, await api(alice, 'POST', '/api/v1/cas', { name: 'device' }), 403, 'forbidden', 'an RA officer creating a CA');
  const created = await api(admin, 'POST', '/api/v1/cas', { name: 'device', key: 'ec-p384', subject: 'C=CN,O=yinxin,CN=yinxin 设备 CA', validityDays: 3650 });
  t.equal(created.statusCode, 201, created.body);
  t.equal(json(created).parent, 'root');
  t.equal(json(created).key, 'ECDSA P-384');
  isProblem(t, await api(admin, 'POST', '/api/v1/cas', { name: 'device' }), 409, 'conflict', 'the same name twice');
  isProblem(t, await api(admin, 'POST', '/api/v1/cas', { name: 'Bad Name' }), 422, 'validation-failed', 'a name that is not lower-case');
  isProblem(t, await api(admin, 'POST', '/api/v1/cas', { name: 'x2', parent: 'nope' }), 404, 'unknown-issuer', 'an unknown parent');

  const crt = await http.inject({ method: 'GET', url: '/ca/device.crt' });
  t.equal(crt.statusCode, 200);
  const verified = run('openssl', ['verify', '-CAfile', rootPem, file(toPem(crt.rawPayload, 'CERTIFICATE'))]);
  t.equal(verified.status, 0, verified.out);
  const crl = await http.inject({ method: 'GET', url: '/crl/device.crl' });
  t.equal(crl.statusCode, 200, 'the new CA\'s CRL is published on first fetch');
  t.equal(run('openssl', ['crl', '-inform', 'DER', '-in', file(crl.rawPayload, 'crl'), '-CAfile', file(toPem(crt.rawPayload, 'CERTIFICATE')), '-verify', '-noout']).status, 0);
  t.ok(audit.list().some((r) => r.action === 'ca.create' && r.actor === 'operator:admin'), 'creation audited with the operator');
});

t.test('reject: a rejected request cannot be approved', async (t) => {
  const submitted = json(await api(alice, 'POST', '/api/v1/requests', { ca: 'issuing', profile: 'civil-servant-signing', csr: opensslCsr(CIVIL).pem }));
  isProblem(t, await api(bob, 'POST', `/api/v1/requests/${submitted.id}/reject`, {}), 400, 'bad-request', 'a rejection needs a reason');
  const rejected = json(await api(bob, 'POST', `/api/v1/requests/${submitted.id}/reject`, { reason: '身份证复印件不清楚' }));
  t.equal(rejected.status, 'rejected');
  t.equal(rejected.rejection.reason, '身份证复印件不清楚');
  isProblem(t, await api(carol, 'POST', `/api/v1/requests/${submitted.id}/approve`), 409, 'conflict', 'approving a rejected request');
  isProblem(t, await api(carol, 'GET', '/api/v1/requests/req-nope'), 404, 'not-found', 'unknown request');
});

t.test('the OpenAPI document lists the CA routes with their tags', async (t) => {
  const doc = json(await https.inject({ method: 'GET', url: '/api/docs' }));
  for (const path of ['/api/v1/requests', '/api/v1/certificates/{ca}/{serial}/download', '/api/v1/cas/{name}/crls', '/api/v1/key-recoveries/{id}/approve']) {
    t.ok(doc.paths[path], `${path} documented`);
  }
  t.ok(https.apiRoutes.filter((r) => r.url.startsWith('/api/v1/')).length >= 20);
});
