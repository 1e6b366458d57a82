/**
 * Certificate login over real TLS: the server asks for a client certificate; certificates issued by
 * the CA core (ca/authority.ts) are presented by undici as a browser would; the login page's
 * certificate button signs in (acr/amr say so). Refused: revoked, without clientAuth EKU, foreign
 * (openssl self-signed with the same subject), unknown identity code, no certificate. A certificate
 * session stepped up with TOTP (acr_values mfa) says amr pop + otp.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as client from 'openid-client';
import { CertificateAuthority } from '../ca/authority.ts';
import { systemClock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import { ACR } from './provider.ts';
import { Browser, startTestIdp, totpCodesNow, trustingFetch, type TestIdp } from './test-support.ts';

const CITIZEN = '11010519491231002X';
const OTHER_CITIZEN = '110101199003077774';

t.test('certificate login over TLS', async (t) => {
  let authority!: CertificateAuthority;
  const idp = await startTestIdp({
    authorities: async (store, keys, audit) => {
      authority = await CertificateAuthority.open({ store, keys, audit, clock: systemClock, options: { baseUrl: 'http://127.0.0.1:8080' } });
      await authority.initialize();
      return authority;
    },
  });
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const user = await dir.createUser(actor, { identityCode: CITIZEN, name: '张三', username: 'zhangsan' });
  const { clientSecret } = await dir.createApplication(actor, { clientId: 'rp', name: 'RP', redirectUris: ['https://rp.example/cb'] });
  const config = await client.discovery(new URL(idp.issuer), 'rp', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch });

  const issue = async (profile: string, citizen: string, subject?: Array<{ type: string; value: string }>) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const record = await authority.issue({
      ca: 'issuing', profile,
      subject: (subject ?? [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: '张三' }, { type: 'serialNumber', value: citizen }]) as never,
      publicKeyInfo: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    }, { actor: 'operator:test' });
    return { record, key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: toPem(record.der, 'CERTIFICATE') };
  };

  const signIn = async (credential?: { key: string; cert: string }, browser = new Browser(credential ? trustingFetch(idp.tls.cert, credential) : idp.fetch)) => {
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: 'https://rp.example/cb', scope: 'openid profile', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    const page = await browser.follow(url.href, idp.issuer);
    const forms = [...page.page!.matchAll(/action="([^"]*\/certificate[^"]*)"/g)];
    t.equal(forms.length, 1, 'the login page offers certificate login');
    const done = await browser.follow(new URL(forms[0][1].replace(/&amp;/g, '&'), idp.issuer).href, idp.issuer, { method: 'POST', form: {} });
    return { done, verifier, browser };
  };

  await t.test('a valid civil-servant certificate signs in', async (t) => {
    const good = await issue('civil-servant-signing', CITIZEN);
    const { done, verifier } = await signIn(good);
    t.ok(done.redirect?.startsWith('https://rp.example/cb?code='), `redirected with a code: ${done.redirect ?? done.page?.slice(0, 300)}`);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.redirect!), { pkceCodeVerifier: verifier });
    const claims = tokens.claims()!;
    t.equal(claims.sub, user.id);
    t.equal(claims.acr, 'urn:yinxin:loa:certificate');
    t.same(claims.amr, ['pop']);

    await t.test('the same certificate once revoked is refused', async (t) => {
      await authority.revoke({ ca: 'issuing', serial: good.record.serial, reason: 1 }, { actor: 'operator:test' });
      const { done } = await signIn(good);
      t.notOk(done.redirect);
      t.match(done.page, /This certificate cannot be used to sign in/);
      t.ok(idp.audit.list({ action: 'idp.login' }).some((r) => r.details?.reason === 'status-revoked'), 'audited with the reason');
    });
  });

  await t.test('refusals', async (t) => {
    const noEku = await issue('civil-servant-encryption', CITIZEN);
    t.notOk((await signIn(noEku)).done.redirect, 'encryption certificate (keyEncipherment only, no clientAuth) refused');
    const seal = await issue('seal', '', [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市人民政府' }, { type: 'CN', value: '北京市人民政府' }, { type: 'organizationIdentifier', value: '91350100M000100Y43' }]);
    t.notOk((await signIn(seal)).done.redirect, 'seal certificate (digitalSignature, documentSigning EKU only) refused');
    const stranger = await issue('civil-servant-signing', OTHER_CITIZEN);
    t.notOk((await signIn(stranger)).done.redirect, 'no user with that identity code');
    const none = await signIn();
    t.notOk(none.done.redirect, 'no certificate presented');

    // A foreign certificate with the right subject and EKU, self-signed by openssl.
    const dir2 = mkdtempSync(join(tmpdir(), 'yinxin-foreign-'));
    t.teardown(() => rmSync(dir2, { recursive: true, force: true }));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/C=CN/CN=Zhang San/serialNumber=${CITIZEN}`,
      '-addext', 'extendedKeyUsage=clientAuth', '-addext', 'keyUsage=digitalSignature', '-keyout', join(dir2, 'k.pem'), '-out', join(dir2, 'c.pem')], { stdio: 'ignore' });
    const foreign = { key: readFileSync(join(dir2, 'k.pem'), 'utf8'), cert: readFileSync(join(dir2, 'c.pem'), 'utf8') };
    t.notOk((await signIn(foreign)).done.redirect, 'foreign certificate refused');
    const reasons = idp.audit.list({ action: 'idp.login' }).map((r) => r.details?.reason);
    for (const reason of ['no-user', 'no-certificate', 'foreign-issuer', 'key-usage', 'extended-key-usage']) t.ok(reasons.includes(reason), `audited: ${reason}`);
  });

  await t.test('a certificate session stepped up with TOTP has amr pop + otp and the mfa acr', async (t) => {
    const { secret } = await dir.enrollTotp(actor, user.id);
    const { done, browser } = await signIn(await issue('civil-servant-signing', CITIZEN));
    t.ok(done.redirect, 'signed in by certificate');
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: 'https://rp.example/cb', scope: 'openid profile', acr_values: ACR.mfa, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const stepUp = await browser.follow(url.href, idp.issuer);
    t.match(stepUp.page, /name="code"/, 'asked for the one-time code');
    t.notMatch(stepUp.page, /name="password"/, 'and nothing else');
    const finished = await browser.submit(stepUp.page!, idp.issuer, { code: totpCodesNow(secret)[1] });
    t.ok(finished.redirect?.startsWith('https://rp.example/cb?code='), `redirected with a code: ${finished.redirect ?? finished.page?.slice(0, 300)}`);
    const claims = (await client.authorizationCodeGrant(config, new URL(finished.redirect!), { pkceCodeVerifier: verifier })).claims()!;
    t.equal(claims.acr, ACR.mfa);
    t.same(claims.amr, ['pop', 'otp', 'mfa'], 'the certificate and the code, no password');
    const sessions = (await idp.app.inject({ method: 'GET', url: `/api/v1/idp/users/${user.id}/sessions`, headers: { authorization: `Bearer ${idp.adminToken}` } })).json().items;
    t.ok(sessions.some((s: { amr?: string[]; acr?: string }) => s.acr === ACR.mfa && s.amr?.join() === 'pop,otp,mfa'), 'the session says so too');
  });
});

export type { TestIdp };
