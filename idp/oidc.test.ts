/**
 * openid-client (a relying party we did not write) against the IdP over a real HTTPS socket:
 * authorization code + PKCE with the login form posted as a browser would, refresh, introspection,
 * userinfo, JWT access token for an application's API, RP-initiated logout, SSO for a second app,
 * back-channel logout reaching both apps, and the bad cases.
 */
import type { Server } from 'node:http';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import t, { type Test } from 'tap';
import * as client from 'openid-client';
import { backchannelListener, Browser, formOf, startTestIdp, type TestIdp } from './test-support.ts';

const CITIZEN = '11010519491231002X';
const PASSWORD = 'Sunny-Day-2024!';

interface Rp {
  clientId: string;
  secret: string;
  redirect: string;
  logouts: string[];
  server: Server;
  config: client.Configuration;
}

async function refused(t: Test, p: Promise<unknown>, error: string, message = `refused with ${error}`): Promise<void> {
  try {
    await p;
    t.fail(`${message}: it succeeded`);
  } catch (e) {
    t.equal((e as { error?: string }).error, error, message);
  }
}

async function api(idp: TestIdp, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await idp.app.inject({ method: method as 'GET', url: path, headers: { authorization: `Bearer ${idp.adminToken}` }, ...(body ? { payload: body as object } : {}) });
  return { status: res.statusCode, json: res.body ? JSON.parse(res.body) : undefined };
}

t.test('OIDC with openid-client over HTTPS', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const customFetch = idp.fetch as unknown as client.CustomFetch;

  // The directory through the admin API (and its guard): department, user, app, permissions, role.
  const dept = await api(idp, 'POST', '/api/v1/idp/departments', { name: '市财政局' });
  t.equal(dept.status, 201);
  const user = await api(idp, 'POST', '/api/v1/idp/users', { identityCode: CITIZEN, name: '张三', username: 'zhangsan', departmentId: dept.json.id, position: '科员', password: PASSWORD });
  t.equal(user.status, 201, JSON.stringify(user.json));
  t.notOk('passwordHash' in user.json, 'no hash leaves the API');
  t.equal((await api(idp, 'POST', '/api/v1/idp/users', { identityCode: '110105194912310021', name: 'x' })).status, 422, 'bad citizen ID check digit refused');
  const noAuth = await idp.app.inject({ method: 'GET', url: '/api/v1/idp/users' });
  t.equal(noAuth.statusCode, 401, 'admin API needs a token');

  const rps: Rp[] = [];
  for (const name of ['app-a', 'app-b']) {
    const bc = await backchannelListener();
    t.teardown(() => new Promise<void>((r) => bc.server.close(() => r())));
    const redirect = `https://${name}.example/callback`;
    const created = await api(idp, 'POST', '/api/v1/idp/applications', {
      clientId: name, name: `Application ${name}`, redirectUris: [redirect], postLogoutRedirectUris: [`https://${name}.example/bye`],
      backchannelLogoutUri: bc.url, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
      resource: `https://${name}.example/api`, identityCodeAllowed: name === 'app-a',
    });
    t.equal(created.status, 201, JSON.stringify(created.json));
    const config = await client.discovery(new URL(idp.issuer), name, created.json.clientSecret, undefined, { [client.customFetch]: customFetch });
    rps.push({ clientId: name, secret: created.json.clientSecret, redirect, logouts: bc.logouts, server: bc.server, config });
  }
  const [a, b] = rps;
  for (const p of ['doc:read', 'doc:approve']) t.equal((await api(idp, 'POST', '/api/v1/idp/applications/app-a/permissions', { name: p })).status, 201);
  t.equal((await api(idp, 'POST', '/api/v1/idp/applications/app-b/permissions', { name: 'b:thing' })).status, 201);
  const role = await api(idp, 'POST', '/api/v1/idp/roles', { name: 'reader', clientId: 'app-a', permissions: ['doc:read'] });
  const roleB = await api(idp, 'POST', '/api/v1/idp/roles', { name: 'b-user', clientId: 'app-b', permissions: ['b:thing'] });
  t.equal((await api(idp, 'POST', '/api/v1/idp/assignments', { roleId: role.json.id, subject: { kind: 'department', id: dept.json.id } })).status, 201);
  t.equal((await api(idp, 'POST', '/api/v1/idp/assignments', { roleId: roleB.json.id, subject: { kind: 'user', id: user.json.id } })).status, 201);

  const metadata = a.config.serverMetadata();
  t.equal(metadata.issuer, idp.issuer);
  t.same(metadata.id_token_signing_alg_values_supported, ['ES256']);

  const browser = new Browser(idp.fetch);
  const authorize = async (rp: Rp, extra: Record<string, string> = {}) => {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(rp.config, {
      redirect_uri: rp.redirect, scope: 'openid profile identity permissions', state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
    });
    return { verifier, state, url: url.href };
  };

  await t.test('bad password and unknown user get the same message', async (t) => {
    const { url } = await authorize(a);
    const first = await browser.follow(url, idp.issuer);
    t.match(first.page, /<form method="post" action="\/idp\/interaction\/[^"]+\/login/);
    t.match(first.page, /<html lang="en">/);
    const action = new URL(formOf(first.page!).action, idp.issuer).href;
    const wrong = await browser.follow(action, idp.issuer, { form: { login: 'zhangsan', password: 'nope-nope-nope' } });
    const unknown = await browser.follow(action, idp.issuer, { form: { login: 'nobody', password: 'nope-nope-nope' } });
    t.match(wrong.page, /role="alert"[^]*Wrong user name or password/);
    t.equal(wrong.page!.replace(/value="[^"]*"/g, ''), unknown.page!.replace(/value="[^"]*"/g, ''), 'identical pages apart from the echoed login');
    t.ok(idp.audit.list({ action: 'idp.login' }).some((r) => r.outcome === 'failure' && r.details?.reason === 'unknown-user'), 'failure audited');
  });

  let tokens!: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
  await t.test('authorization code + PKCE, the form posted as a browser would', async (t) => {
    const { verifier, state, url } = await authorize(a, { resource: 'https://app-a.example/api' });
    const page = await browser.follow(url, idp.issuer);
    const action = new URL(formOf(page.page!).action, idp.issuer).href;
    const done = await browser.follow(action, idp.issuer, { form: { login: CITIZEN, password: PASSWORD } });
    t.ok(done.redirect?.startsWith(a.redirect), `redirected to the RP: ${done.redirect ?? done.page?.slice(0, 500)}`);
    tokens = await client.authorizationCodeGrant(a.config, new URL(done.redirect!), { pkceCodeVerifier: verifier, expectedState: state }, { resource: 'https://app-a.example/api' });
    const claims = tokens.claims()!;
    t.equal(claims.sub, user.json.id);
    t.equal(claims.name, '张三');
    t.equal(claims.department, dept.json.id);
    t.equal(claims.identity_code, CITIZEN, 'app-a may see identity codes');
    t.same(claims.permissions, ['doc:read'], 'permissions of app-a only');
    t.same(claims.amr, ['pwd']);
    t.equal(claims.acr, 'urn:yinxin:loa:password');
    t.ok(tokens.refresh_token, 'refresh token issued');

    // The access token for app-a's API is a JWT signed by the (HSM) key published in the JWKS.
    const [h, p, s] = tokens.access_token.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    t.equal(header.alg, 'ES256');
    t.equal(payload.aud, 'https://app-a.example/api');
    t.same(payload.permissions, ['doc:read']);
    const jwks = await (await idp.fetch(`${idp.issuer}/jwks`)).json() as { keys: Array<{ kid: string }> };
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    t.ok(jwk, 'signing key published');
    t.ok(nodeVerify('sha256', Buffer.from(`${h}.${p}`), { key: createPublicKey({ key: jwk as never, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url')), 'JOSE R||S signature verifies');
  });

  await t.test('refresh (rotated), introspection, userinfo, client credentials', async (t) => {
    const refreshed = await client.refreshTokenGrant(a.config, tokens.refresh_token!);
    t.ok(refreshed.access_token);
    t.not(refreshed.refresh_token, tokens.refresh_token, 'refresh token rotated');
    const introspection = await client.tokenIntrospection(a.config, refreshed.access_token);
    t.equal(introspection.active, true);
    t.equal(introspection.sub, user.json.id);
    const info = await client.fetchUserInfo(a.config, refreshed.access_token, user.json.id);
    t.equal(info.name, '张三');
    t.same(info.permissions, ['doc:read']);
    t.equal(info.identity_code, CITIZEN);
    await client.tokenRevocation(a.config, refreshed.access_token);
    t.equal((await client.tokenIntrospection(a.config, refreshed.access_token)).active, false, 'revoked');
    // Reuse of a rotated refresh token is refused (and revokes the grant: RFC 9700 s4.14.2).
    await refused(t, client.refreshTokenGrant(a.config, tokens.refresh_token!), 'invalid_grant', 'the old refresh token is spent');
    await refused(t, client.refreshTokenGrant(a.config, refreshed.refresh_token!), 'invalid_grant', 'the whole grant is revoked after reuse');
    const cc = await client.clientCredentialsGrant(a.config, {});
    t.ok(cc.access_token, 'client credentials grant');
    const check = await idp.fetch(`${idp.issuer}/idp/check`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`app-a:${a.secret}`).toString('base64')}` }, body: JSON.stringify({ user: user.json.id, permission: 'doc:read' }) });
    t.same(await check.json(), { allowed: true, application: 'app-a' });
    const check2 = await idp.fetch(`${idp.issuer}/idp/check`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`app-a:${a.secret}`).toString('base64')}` }, body: JSON.stringify({ user: user.json.id, permission: 'doc:approve' }) });
    t.same(await check2.json(), { allowed: false, application: 'app-a' });
    const check3 = await idp.fetch(`${idp.issuer}/idp/check`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('app-a:wrong').toString('base64')}` }, body: JSON.stringify({ user: user.json.id, permission: 'doc:read' }) });
    t.equal(check3.status, 401);
  });

  await t.test('replayed authorization code and PKCE mismatch are refused', async (t) => {
    const { verifier, state, url } = await authorize(a);
    const done = await browser.follow(url, idp.issuer);
    t.ok(done.redirect, 'SSO: no login page the second time');
    const wrongVerifier = client.randomPKCECodeVerifier();
    await refused(t, client.authorizationCodeGrant(a.config, new URL(done.redirect!), { pkceCodeVerifier: wrongVerifier, expectedState: state }), 'invalid_grant', 'PKCE mismatch');
    const again = await authorize(a);
    const done2 = await browser.follow(again.url, idp.issuer);
    await client.authorizationCodeGrant(a.config, new URL(done2.redirect!), { pkceCodeVerifier: again.verifier, expectedState: again.state });
    await refused(t, client.authorizationCodeGrant(a.config, new URL(done2.redirect!), { pkceCodeVerifier: again.verifier, expectedState: again.state }), 'invalid_grant', 'replayed code');
    void verifier;
  });

  await t.test('redirect_uri not registered', async (t) => {
    const { url } = await authorize(a);
    const bad = url.replace(encodeURIComponent(a.redirect), encodeURIComponent('https://evil.example/cb'));
    const res = await browser.follow(bad, idp.issuer);
    t.notOk(res.redirect, 'no redirect to an unregistered URI');
    t.match(res.page, /invalid_redirect_uri/);
  });

  await t.test('SSO: app B gets a code without credentials; its claims are its own', async (t) => {
    const { verifier, state, url } = await authorize(b);
    const done = await browser.follow(url, idp.issuer);
    t.ok(done.redirect?.startsWith(b.redirect), 'straight back to app B');
    const tb = await client.authorizationCodeGrant(b.config, new URL(done.redirect!), { pkceCodeVerifier: verifier, expectedState: state });
    const claims = tb.claims()!;
    t.equal(claims.sub, user.json.id);
    t.same(claims.permissions, ['b:thing']);
    t.notOk('identity_code' in claims, 'app-b may not see identity codes');
  });

  await t.test('RP-initiated logout ends the session and back-channel logout reaches both apps', async (t) => {
    const sessions = await api(idp, 'GET', `/api/v1/idp/users/${user.json.id}/sessions`);
    t.equal(sessions.json.items.length, 1);
    t.same(sessions.json.items[0].applications.sort(), ['app-a', 'app-b']);
    const end = client.buildEndSessionUrl(a.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://app-a.example/bye' });
    const confirm = await browser.follow(end.href, idp.issuer);
    const form = formOf(confirm.page!, 'op.logoutForm');
    const done = await browser.follow(new URL(form.action, idp.issuer).href, idp.issuer, { form: { ...form.fields, logout: 'yes' } });
    t.equal(done.redirect, 'https://app-a.example/bye');
    for (let i = 0; i < 50 && (a.logouts.length < 1 || b.logouts.length < 1); i++) await new Promise((r) => setTimeout(r, 20));
    t.equal(a.logouts.length, 1, 'app A notified');
    t.equal(b.logouts.length, 1, 'app B notified');
    const logoutToken = JSON.parse(Buffer.from(b.logouts[0].split('.')[1], 'base64url').toString());
    t.equal(logoutToken.sub, user.json.id);
    t.ok(logoutToken.events['http://schemas.openid.net/event/backchannel-logout']);
    const after = await authorize(a);
    const page = await browser.follow(after.url, idp.issuer);
    t.match(page.page, /name="password"/, 'signed out: the login page again');
  });

  await t.test('suspended user refused with the same message', async (t) => {
    t.equal((await api(idp, 'PATCH', `/api/v1/idp/users/${user.json.id}`, { status: 'suspended' })).status, 200);
    const { url } = await authorize(a);
    const fresh = new Browser(idp.fetch);
    const page = await fresh.follow(url, idp.issuer);
    const res = await fresh.submit(page.page!, idp.issuer, { login: 'zhangsan', password: PASSWORD });
    t.notOk(res.redirect);
    t.match(res.page, /Wrong user name or password/);
    t.ok(idp.audit.list({ action: 'idp.login' }).some((r) => r.details?.reason === 'status-suspended'));
    await api(idp, 'PATCH', `/api/v1/idp/users/${user.json.id}`, { status: 'active' });
  });
});

t.test('expired refresh token is refused', async (t) => {
  const idp = await startTestIdp({ ttl: { refreshToken: 1 } });
  t.teardown(() => idp.close());
  const d = await idp.idp.directory.createDepartment({ name: 'test' }, { name: 'd' });
  await idp.idp.directory.createUser({ name: 'test' }, { identityCode: CITIZEN, name: 'Li', username: 'li', departmentId: d.id, password: PASSWORD });
  const { clientSecret } = await idp.idp.directory.createApplication({ name: 'test' }, { clientId: 'rp', name: 'RP', redirectUris: ['https://rp.example/cb'] });
  const config = await client.discovery(new URL(idp.issuer), 'rp', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch });
  const verifier = client.randomPKCECodeVerifier();
  const url = client.buildAuthorizationUrl(config, { redirect_uri: 'https://rp.example/cb', scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
  const browser = new Browser(idp.fetch);
  const page = await browser.follow(url.href, idp.issuer);
  const done = await browser.submit(page.page!, idp.issuer, { login: 'li', password: PASSWORD });
  const tokens = await client.authorizationCodeGrant(config, new URL(done.redirect!), { pkceCodeVerifier: verifier });
  t.ok(tokens.refresh_token);
  await new Promise((r) => setTimeout(r, 1500));
  await refused(t, client.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
});
