/**
 * CAS 3.0 on the OIDC session: a portal's /cas/login round trip through the same login page,
 * serviceValidate (XML and JSON) with attributes, ticket replay and wrong service refused, SSO from
 * an OIDC sign-in to a CAS portal, and /cas/logout.
 */
import t from 'tap';
import { Browser, startTestIdp } from './test-support.ts';

const CITIZEN = '11010519491231002X';
const PASSWORD = 'Sunny-Day-2024!';
const SERVICE = 'https://portal.example/cas-return';

t.test('CAS serviceValidate round trip, replay refused', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const dept = await dir.createDepartment(actor, { name: '办公厅' });
  const user = await dir.createUser(actor, { identityCode: CITIZEN, name: '王五', username: 'wangwu', departmentId: dept.id, password: PASSWORD });
  await dir.createApplication(actor, { clientId: 'portal', name: 'Legacy portal', grantTypes: ['authorization_code'], casServices: ['https://portal.example/'], identityCodeAllowed: true });
  await dir.declarePermission(actor, 'portal', { name: 'portal:use' });
  const role = await dir.createRole(actor, { name: 'portal-user', clientId: 'portal', permissions: ['portal:use'] });
  await dir.assignRole(actor, { roleId: role.id, subject: { kind: 'user', id: user.id } });

  const browser = new Browser(idp.fetch);
  const loginUrl = `${idp.issuer}/cas/login?service=${encodeURIComponent(SERVICE)}`;
  const page = await browser.follow(loginUrl, idp.issuer);
  t.match(page.page, /name="password"/, 'the shared login page');
  const back = await browser.submit(page.page!, idp.issuer, { login: 'wangwu', password: PASSWORD });
  t.ok(back.redirect?.startsWith(`${SERVICE}?ticket=ST-`), `back to the portal with a ticket: ${back.redirect ?? back.page?.slice(0, 300)}`);
  const ticket = new URL(back.redirect!).searchParams.get('ticket')!;

  const validate = (path: string, tk: string, service = SERVICE, format = '') =>
    idp.fetch(`${idp.issuer}${path}?ticket=${encodeURIComponent(tk)}&service=${encodeURIComponent(service)}${format}`).then(async (r) => ({ status: r.status, type: r.headers.get('content-type'), body: await r.text() }));
  const ok = await validate('/cas/p3/serviceValidate', ticket);
  t.match(ok.type, /xml/);
  t.match(ok.body, new RegExp(`<cas:authenticationSuccess><cas:user>${user.id}</cas:user>`));
  t.match(ok.body, /<cas:name>王五<\/cas:name>/);
  t.match(ok.body, /<cas:identityCode>11010519491231002X<\/cas:identityCode>/);
  t.match(ok.body, /<cas:permissions>portal:use<\/cas:permissions>/);
  const replay = await validate('/cas/p3/serviceValidate', ticket);
  t.match(replay.body, /<cas:authenticationFailure code="INVALID_TICKET">/, 'ticket replay refused');

  // SSO: a second visit gets a ticket without the login page; a wrong service invalidates it; JSON form.
  const again = await browser.follow(loginUrl, idp.issuer);
  t.ok(again.redirect?.includes('ticket=ST-'), 'SSO: no login page');
  const t2 = new URL(again.redirect!).searchParams.get('ticket')!;
  const wrong = await validate('/cas/serviceValidate', t2, 'https://other.example/', '&format=JSON');
  t.same(JSON.parse(wrong.body).serviceResponse.authenticationFailure.code, 'INVALID_SERVICE');
  t.match((await validate('/cas/serviceValidate', t2)).body, /INVALID_TICKET/, 'a ticket tried with a wrong service is spent');
  const t3 = new URL((await browser.follow(loginUrl, idp.issuer)).redirect!).searchParams.get('ticket')!;
  const json = JSON.parse((await validate('/cas/serviceValidate', t3, SERVICE, '&format=JSON')).body);
  t.equal(json.serviceResponse.authenticationSuccess.user, user.id);
  t.same(json.serviceResponse.authenticationSuccess.attributes.roles, ['portal-user']);

  t.match((await validate('/cas/serviceValidate', '', SERVICE)).body, /INVALID_REQUEST/);
  const unregistered = await browser.follow(`${idp.issuer}/cas/login?service=${encodeURIComponent('https://evil.example/')}`, idp.issuer);
  t.equal(unregistered.status, 400, 'unregistered service refused');
  t.notOk(unregistered.redirect);
  t.ok(idp.audit.list({ action: 'idp.cas.validate' }).some((r) => r.outcome === 'failure' && r.details?.code === 'INVALID_TICKET'), 'failures audited');

  const out = await browser.follow(`${idp.issuer}/cas/logout`, idp.issuer);
  t.equal(out.status, 200);
  const after = await browser.follow(loginUrl, idp.issuer);
  t.match(after.page, /name="password"/, 'after /cas/logout the login page again');
});
