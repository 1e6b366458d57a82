/**
 * Live rotation of the token-signing key, checked with openid-client (relying party) and jose (JWS
 * verification against the published JWKS): after POST /api/v1/idp/signing-keys/rotate, without a
 * restart, new ID tokens and JWT access tokens carry the new kid; the JWKS publishes both keys, so a
 * token signed before the rotation still verifies; a second process on the same store publishes and
 * signs with the new key at its next request; when the overlap ends the old key leaves the JWKS and
 * the HSM. Also the DER -> JOSE signature conversion (RFC 7518 s3.4).
 */
import { createServer } from 'node:http';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import * as jose from 'jose';
import * as client from 'openid-client';
import t from 'tap';
import { FixedClock } from '../common/clock.ts';
import { openIdentityProvider } from './index.ts';
import { ecdsaDerToJose } from './signing-keys.ts';
import { beginSignIn, Browser, startTestIdp } from './test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';

t.test('ecdsaDerToJose: node\'s DER signature becomes the R || S that jose verifies', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  for (let i = 0; i < 20; i++) {
    const header = jose.base64url.encode(JSON.stringify({ alg: 'ES256' }));
    const payload = jose.base64url.encode(JSON.stringify({ i }));
    const der = nodeSign('sha256', Buffer.from(`${header}.${payload}`), privateKey);
    const jws = `${header}.${payload}.${jose.base64url.encode(ecdsaDerToJose(der))}`;
    await jose.compactVerify(jws, publicKey);
  }
  t.pass('20 signatures verify');
  t.throws(() => ecdsaDerToJose(new Uint8Array([1, 2, 3])), { code: 'internal' });
});

t.test('rotation without restart', async (t) => {
  const clock = new FixedClock(Date.now());
  const idp = await startTestIdp({ clock });
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const redirect = 'https://rp.example/cb';
  const resource = 'https://rp.example/api';
  const { clientSecret } = await dir.createApplication(actor, {
    clientId: 'rp', name: 'RP', redirectUris: [redirect], resource, grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
  });
  await dir.createUser(actor, { identityCode: '11010519491231002X', name: '赵六', username: 'zhaoliu', password: PASSWORD });
  const config = await client.discovery(new URL(idp.issuer), 'rp', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch });
  const rp = { config, redirect };
  const browser = new Browser(idp.fetch);
  const signIn = async (credentials?: { login: string; password: string }) => {
    const s = await beginSignIn(browser, idp.issuer, rp, credentials);
    if (!s.redirect) throw new Error(`no redirect: ${s.page?.slice(0, 300)}`);
    return client.authorizationCodeGrant(config, new URL(s.redirect), { pkceCodeVerifier: s.verifier, expectedState: s.state });
  };
  const jwks = async (issuer = idp.issuer, fetch = idp.fetch) => (await (await fetch(`${issuer}/jwks`)).json()) as jose.JSONWebKeySet;
  const kidOf = (jwt: string) => jose.decodeProtectedHeader(jwt).kid;
  const api = async (method: 'GET' | 'POST', url: string) => idp.app.inject({ method, url, headers: { authorization: `Bearer ${idp.adminToken}` } });

  const before = await signIn({ login: 'zhaoliu', password: PASSWORD });
  const oldIdToken = before.id_token!;
  const oldAccess = (await client.clientCredentialsGrant(config, { resource })).access_token;
  const oldKid = kidOf(oldIdToken)!;
  t.equal(kidOf(oldAccess), oldKid, 'JWT access tokens and ID tokens share the signing key');
  t.same((await jwks()).keys.map((k) => k.kid), [oldKid], 'one key published');
  const listed = (await api('GET', '/api/v1/idp/signing-keys')).json();
  t.match(listed, { items: [{ kid: oldKid, label: 'idp/signing-1', current: true }], overlapSeconds: 3900 });

  const unauthorized = await idp.app.inject({ method: 'POST', url: '/api/v1/idp/signing-keys/rotate' });
  t.equal(unauthorized.statusCode, 401, 'rotation needs an operator');
  const rotated = await api('POST', '/api/v1/idp/signing-keys/rotate');
  t.equal(rotated.statusCode, 200, rotated.body);
  const [current, previous] = rotated.json().items;
  t.match(current, { label: 'idp/signing-2', current: true });
  t.match(previous, { kid: oldKid, current: false, retireAt: new Date(clock.now().getTime() + 3900_000).toISOString() });
  t.ok(idp.audit.list({ action: 'idp.signing-key.rotate' }).some((r) => r.actor === 'operator:idpadmin'), 'audited with the operator');

  const published = await jwks();
  t.same(published.keys.map((k) => k.kid), [current.kid, oldKid], 'the JWKS publishes both keys, the new one first');
  const set = jose.createLocalJWKSet(published);
  const { payload } = await jose.jwtVerify(oldIdToken, set, { issuer: idp.issuer, audience: 'rp' });
  t.equal(payload.sub, before.claims()!.sub, 'an ID token signed before the rotation verifies with the JWKS after it');
  await jose.jwtVerify(oldAccess, set, { issuer: idp.issuer, audience: resource });
  t.pass('so does a JWT access token');

  const after = await signIn();
  t.equal(kidOf(after.id_token!), current.kid, 'a new ID token has the new kid at once (SSO, no restart)');
  await jose.jwtVerify(after.id_token!, set, { issuer: idp.issuer, audience: 'rp' });
  const refreshed = await client.refreshTokenGrant(config, before.refresh_token!);
  t.equal(kidOf(refreshed.id_token!), current.kid, 'a refreshed ID token too');
  t.equal(kidOf((await client.clientCredentialsGrant(config, { resource })).access_token), current.kid, 'and a JWT access token');

  await t.test('a second process on the same store follows at its next request', async (t) => {
    const second = await openIdentityProvider({ store: idp.store, keys: idp.keys, audit: idp.audit, clock, config: { issuer: idp.issuer } });
    const server = createServer(second.provider.callback());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await second.stop();
    });
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const plain = (url: string | URL) => fetch(url);
    t.same((await jwks(base, plain)).keys.map((k) => k.kid), [current.kid, oldKid], 'same JWKS');
    const third = await api('POST', '/api/v1/idp/signing-keys/rotate');
    const newest = third.json().items[0];
    t.same((await jwks(base, plain)).keys.map((k) => k.kid), [newest.kid, current.kid, oldKid], 'a rotation by the first process is published by the second at once');
  });

  const newestKid = (await jwks()).keys[0].kid;
  clock.advance(3900_000 + 1000);
  const later = await jwks();
  t.notOk(later.keys.some((k) => k.kid === oldKid), 'after the overlap the first key leaves the JWKS');
  t.equal(later.keys[0].kid, newestKid, 'the current key stays');
  t.notOk(await idp.keys.hasKey('idp/signing-1'), 'and the HSM');
  await t.rejects(jose.jwtVerify(oldIdToken, jose.createLocalJWKSet(later), { issuer: idp.issuer, audience: 'rp', currentDate: new Date() }), { code: 'ERR_JWKS_NO_MATCHING_KEY' }, 'a token of the retired key no longer verifies');
  t.ok(idp.audit.list({ action: 'idp.signing-key.retire' }).some((r) => r.object === 'key:idp/signing-1'), 'retirement audited');
});
