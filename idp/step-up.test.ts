/**
 * TOTP step-up on an existing SSO session, with openid-client as the relying party: signed in to
 * app A with a password only, app B (requireTotp) asks for the one-time code and nothing else; a
 * wrong code is refused and audited; the right one completes the code flow with amr pwd+otp and
 * updates the same session. acr_values asking for the mfa level does the same. A user without an
 * enrolled second factor is refused with access_denied and a description, not a crash.
 */
import t, { type Test } from 'tap';
import * as client from 'openid-client';
import { beginSignIn, Browser, startTestIdp, registerPasswordAndTotpApps, totpCodesNow } from './test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';
const MFA = 'urn:yinxin:loa:mfa';

t.test('TOTP step-up', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const rps = await registerPasswordAndTotpApps(idp);
  const exchange = async (rp: { config: client.Configuration }, s: { redirect?: string; page?: string; verifier: string; state: string }) => {
    if (!s.redirect) throw new Error(`no redirect: ${s.page?.slice(0, 400)}`);
    return client.authorizationCodeGrant(rp.config, new URL(s.redirect), { pkceCodeVerifier: s.verifier, expectedState: s.state });
  };
  const sessionsOf = async (userId: string) => (await idp.app.inject({ method: 'GET', url: `/api/v1/idp/users/${userId}/sessions`, headers: { authorization: `Bearer ${idp.adminToken}` } })).json().items;

  /** A user signed in to app A with a password only, then given a TOTP secret by the administrator. */
  const passwordSession = async (identityCode: string, username: string, enroll: boolean) => {
    const user = await dir.createUser(actor, { identityCode, name: username, username, password: PASSWORD });
    const browser = new Browser(idp.fetch);
    const tokens = await exchange(rps.a, await beginSignIn(browser, idp.issuer, rps.a, { login: username, password: PASSWORD }));
    t.same(tokens.claims()!.amr, ['pwd'], `${username}: password only at app A`);
    const secret = enroll ? (await dir.enrollTotp(actor, user.id)).secret : undefined;
    return { user, browser, secret };
  };

  await t.test('app B requiring TOTP asks for the code only; wrong code refused, right code adds otp', async (t) => {
    const { user, browser, secret } = await passwordSession('11010519491231002X', 'wang', true);
    const begun = await beginSignIn(browser, idp.issuer, rps.b);
    t.notOk(begun.redirect, 'no code for app B yet');
    t.match(begun.page, /name="code"/, 'the TOTP form');
    t.notMatch(begun.page, /name="password"/, 'no password asked again');
    t.match(begun.page, /requires a second factor/);

    const valid = totpCodesNow(secret!);
    const wrong = ['000000', '111111', '222222'].find((c) => !valid.includes(c))!;
    const refused = await browser.submit(begun.page!, idp.issuer, { code: wrong });
    t.notOk(refused.redirect);
    t.match(refused.page, /role="alert"[^]*Wrong one-time code/);
    t.ok(idp.audit.list({ action: 'idp.login' }).some((r) => r.outcome === 'failure' && r.details?.reason === 'wrong-totp' && r.actor === `user:${user.id}`), 'wrong code audited');

    const done = await browser.submit(refused.page!, idp.issuer, { code: valid[1] });
    t.ok(done.redirect?.startsWith(rps.b.redirect), `back to app B: ${done.redirect ?? done.page?.slice(0, 300)}`);
    const claims = (await exchange(rps.b, { ...begun, redirect: done.redirect })).claims()!;
    t.ok((claims.amr as string[]).includes('otp') && (claims.amr as string[]).includes('pwd'), `amr ${JSON.stringify(claims.amr)}`);
    t.equal(claims.acr, MFA);
    t.equal(claims.sub, user.id);

    const sessions = await sessionsOf(user.id);
    t.equal(sessions.length, 1, 'the same session, stepped up');
    t.same(sessions[0].applications.sort(), ['app-a', 'app-b']);
    t.same(sessions[0].amr, ['pwd', 'otp', 'mfa']);
    const againB = await beginSignIn(browser, idp.issuer, rps.b);
    t.ok(againB.redirect?.startsWith(rps.b.redirect), 'app B again: no prompt');
  });

  await t.test('acr_values asking for the mfa level steps up too', async (t) => {
    const { browser, secret } = await passwordSession('110101199003077774', 'qian', true);
    const begun = await beginSignIn(browser, idp.issuer, rps.a, undefined, { acr_values: MFA });
    t.match(begun.page, /name="code"/);
    t.notMatch(begun.page, /name="password"/);
    const done = await browser.submit(begun.page!, idp.issuer, { code: totpCodesNow(secret!)[1] });
    const claims = (await exchange(rps.a, { ...begun, redirect: done.redirect })).claims()!;
    t.equal(claims.acr, MFA);
    t.ok((claims.amr as string[]).includes('otp'));
  });

  await t.test('no TOTP enrolled: access_denied with a description, audited', async (t) => {
    const { user, browser } = await passwordSession('110101199003073714', 'zhao', false);
    const expectDenied = async (t: Test, begun: Awaited<ReturnType<typeof beginSignIn>>) => {
      t.ok(begun.redirect, `redirected to the application: ${begun.page?.slice(0, 300)}`);
      const error = await exchange(rps.b, begun).then(() => undefined, (e: { error?: string; error_description?: string }) => e);
      t.equal(error?.error, 'access_denied');
      t.match(error?.error_description, /requires a second factor/);
    };
    await expectDenied(t, await beginSignIn(browser, idp.issuer, rps.b));
    t.ok(idp.audit.list({ action: 'idp.login' }).some((r) => r.details?.reason === 'totp-not-enrolled' && r.actor === `user:${user.id}`));
    t.equal((await sessionsOf(user.id)).length, 1, 'the session itself survives');
    // A fresh sign-in to app B: the right password, then the same refusal.
    await expectDenied(t, await beginSignIn(new Browser(idp.fetch), idp.issuer, rps.b, { login: 'zhao', password: PASSWORD }));
  });
});
