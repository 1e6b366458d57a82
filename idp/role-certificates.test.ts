/**
 * Roles exported as RFC 5755 attribute certificates: an idp-admin asks (POST
 * /api/v1/idp/users/:id/attribute-certificate-requests), an RA officer approves through the attribute
 * authority's workflow, and the AC, parsed by pkijs, carries exactly the directory's roles for the
 * application (or all), with the holder bound to the user's signing certificate; `openssl ocsp`
 * asks yinxin's responder about it (CertID built by openssl from the AA certificate and the serial)
 * and gets "good". A user without a signing certificate gets a 409 problem and nothing is stored.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as pkijs from 'pkijs';
import { AttributeAuthority } from '../ca/attribute-authority.ts';
import { roleUri } from '../ca/attribute-certificate.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { systemClock } from '../common/clock.ts';
import { toArrayBuffer, toPem } from '../common/pem.ts';
import { ensureOcspSigners, loadOcspSigners } from '../ocsp/signers.ts';
import { runAsync, startResponder } from '../ocsp/testing.ts';
import { startTestIdp, type TestIdp } from './test-support.ts';

const CITIZEN = '11010519491231002X';
const NO_CERTIFICATE = '110101199003077774';
const ROUTE = (id: string) => `/api/v1/idp/users/${id}/attribute-certificate-requests`;

async function api(idp: TestIdp, method: string, url: string, payload?: object) {
  const res = await idp.app.inject({ method: method as 'POST', url, headers: { authorization: `Bearer ${idp.adminToken}` }, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, json: res.body ? res.json() : undefined };
}

/** The role names an AC carries (roleName URIs, RFC 5755 s4.4.5), read by pkijs. */
function rolesIn(der: Uint8Array): string[] {
  const ac = pkijs.AttributeCertificateV2.fromBER(toArrayBuffer(der));
  const role = ac.acinfo.attributes.find((a) => a.type === '2.5.4.72');
  return (role?.values ?? []).map((v) => {
    // RoleSyntax ::= SEQUENCE { roleAuthority [0] OPTIONAL, roleName [1] GeneralName }; [1] holds [6] IA5String.
    const roleName = (v as { valueBlock: { value: Array<{ valueBlock: { value: Array<{ valueBlock: { valueHexView: Uint8Array } }> } }> } }).valueBlock.value.at(-1)!;
    return Buffer.from(roleName.valueBlock.value[0].valueBlock.valueHexView).toString('ascii');
  }).sort();
}

t.test('roles as attribute certificates', async (t) => {
  let authority!: CertificateAuthority;
  let aa!: AttributeAuthority;
  const idp = await startTestIdp({
    authorities: async (store, keys, audit) => {
      authority = await CertificateAuthority.open({ store, keys, audit, clock: systemClock, options: { baseUrl: 'http://127.0.0.1:8080' } });
      await authority.initialize();
      return authority;
    },
    roleCertificates: async (store, keys, audit) => {
      aa = await AttributeAuthority.open({ store, keys, audit, clock: systemClock, authority, baseUrl: 'http://127.0.0.1:8080' });
      await aa.initialize();
      return { attributes: aa, certificates: authority };
    },
  });
  t.teardown(() => idp.close());
  const files = mkdtempSync(join(tmpdir(), 'yinxin-idp-ac-'));
  t.teardown(() => rmSync(files, { recursive: true, force: true }));

  // The directory: roles in two applications, one through the department, two to the user directly.
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const dept = await dir.createDepartment(actor, { name: '办公厅' });
  const zhang = await dir.createUser(actor, { identityCode: CITIZEN, name: '张三', username: 'zhangsan', departmentId: dept.id });
  const li = await dir.createUser(actor, { identityCode: NO_CERTIFICATE, name: '李四', username: 'lisi', departmentId: dept.id });
  for (const [clientId, permissions] of [['app-a', ['doc:read', 'doc:approve']], ['app-b', ['b:use']]] as const) {
    await dir.createApplication(actor, { clientId, name: clientId, redirectUris: [`https://${clientId}.example/cb`] });
    for (const p of permissions) await dir.declarePermission(actor, clientId, { name: p });
  }
  const reader = await dir.createRole(actor, { name: 'reader', clientId: 'app-a', permissions: ['doc:read'] });
  const approver = await dir.createRole(actor, { name: '审批人', clientId: 'app-a', permissions: ['doc:approve'] });
  const bUser = await dir.createRole(actor, { name: 'b-user', clientId: 'app-b', permissions: ['b:use'] });
  await dir.assignRole(actor, { roleId: reader.id, subject: { kind: 'department', id: dept.id } });
  await dir.assignRole(actor, { roleId: approver.id, subject: { kind: 'user', id: zhang.id } });
  await dir.assignRole(actor, { roleId: bUser.id, subject: { kind: 'user', id: zhang.id } });

  // 张三's signing certificate from the CA (subject serialNumber = identity code).
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signing = await authority.issue({
    ca: 'issuing', profile: 'civil-servant-signing',
    subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: '张三' }, { type: 'serialNumber', value: CITIZEN }],
    publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
  }, { actor: 'operator:ra' });
  const raOfficer = { actor: 'operator:ra', person: 'ra' };

  await ensureOcspSigners({ authority, keys: idp.keys, store: idp.store as never });
  const responder = await startResponder({ store: idp.store as never, signers: await loadOcspSigners(idp.store, idp.keys) });
  t.teardown(() => responder.close());
  const rootFile = join(files, 'root.pem');
  writeFileSync(rootFile, toPem(authority.caCertificate('root'), 'CERTIFICATE'));
  const aaFile = join(files, 'aa.pem');
  writeFileSync(aaFile, toPem(aa.getAuthority().certificate, 'CERTIFICATE'));

  await t.test("one application: the AC carries the directory's roles there, bound to the signing certificate; OCSP says good", async (t) => {
    const asked = await api(idp, 'POST', ROUTE(zhang.id), { application: 'app-a', validityDays: 30 });
    t.equal(asked.status, 201, JSON.stringify(asked.json));
    t.equal(asked.json.status, 'pending', 'waits for an RA officer');
    t.equal(asked.json.requester, 'idpadmin');
    t.same(asked.json.input.holder, { ca: 'issuing', serial: signing.serial });
    const expected = dir.authorizationFor(zhang.id, 'app-a').roles.map((r) => `app-a:${r}`).sort();
    t.same(expected, ['app-a:reader', 'app-a:审批人'], 'the directory: one role inherited, one direct');
    t.same([...asked.json.input.roles].sort(), expected);

    await t.rejects(aa.approve(asked.json.id, { actor: 'operator:idpadmin', person: 'idpadmin' }), { code: 'separation-of-duties' }, 'the requester cannot approve');
    const { certificate } = await aa.approve(asked.json.id, raOfficer);
    t.same(rolesIn(certificate.der), expected.map(roleUri).sort(), 'pkijs reads the same roles in the AC');
    const ac = pkijs.AttributeCertificateV2.fromBER(toArrayBuffer(certificate.der));
    t.equal(Buffer.from(ac.acinfo.holder.baseCertificateID!.serialNumber.valueBlock.valueHexView).toString('hex'), signing.serial, "holder: 张三's signing certificate");

    const ocsp = await runAsync('openssl', ['ocsp', '-issuer', aaFile, '-serial', `0x${certificate.serial}`, '-url', responder.url, '-CAfile', rootFile, '-resp_text']);
    t.match(ocsp.out, 'Response verify OK');
    t.match(ocsp.out, /Cert Status: good/);
    t.match(ocsp.out, new RegExp(`Serial Number: ${certificate.serial.toUpperCase()}`));
  });

  await t.test('all applications', async (t) => {
    const asked = await api(idp, 'POST', ROUTE(zhang.id), {});
    t.equal(asked.status, 201, JSON.stringify(asked.json));
    t.same([...asked.json.input.roles].sort(), ['app-a:reader', 'app-a:审批人', 'app-b:b-user']);
    const { certificate } = await aa.approve(asked.json.id, raOfficer);
    t.same(rolesIn(certificate.der), ['app-a:reader', 'app-a:审批人', 'app-b:b-user'].map(roleUri).sort());
  });

  await t.test('refusals change nothing', async (t) => {
    const before = aa.listRequests().length;
    const auditBefore = idp.audit.list({ action: 'attribute-certificate.request' }).length;
    const noCertificate = await api(idp, 'POST', ROUTE(li.id), { application: 'app-a' });
    t.equal(noCertificate.status, 409);
    t.equal(noCertificate.json.code, 'conflict');
    t.match(noCertificate.json.detail, /no valid civil-servant-signing certificate/);
    t.equal((await api(idp, 'POST', ROUTE('no-such-user'), {})).status, 404);
    t.equal((await api(idp, 'POST', ROUTE(zhang.id), { application: 'no-such-app' })).status, 404);
    const noRoles = await dir.createApplication(actor, { clientId: 'app-c', name: 'C', redirectUris: ['https://c.example/cb'] });
    const none = await api(idp, 'POST', ROUTE(zhang.id), { application: noRoles.application.clientId });
    t.equal(none.status, 409);
    t.match(none.json.detail, /no role/);
    t.equal((await api(idp, 'POST', ROUTE(zhang.id), { application: 'app-a', extra: 1 })).status, 400, 'unknown fields refused');
    t.equal((await idp.app.inject({ method: 'POST', url: ROUTE(zhang.id), payload: {} })).statusCode, 401, 'an operator token is needed');
    t.equal(aa.listRequests().length, before, 'no request stored');
    t.equal(idp.audit.list({ action: 'attribute-certificate.request' }).length, auditBefore);
  });
});
