/**
 * The pending TOTP step of a sign-in (second-factor.ts), with openid-client as the relying party:
 *  - five wrong codes end the step: the fifth answer is the password form, a right code is then
 *    refused, and only the password starts a new step; each wrong code is audited with its count;
 *  - parallel guesses cannot get past the limit (the count and the check are one transaction);
 *  - the step lives in the store with the interaction: another IdP instance on the same store
 *    (as after a restart) accepts the code, and the step expires with the interaction;
 *  - a step-up's count survives reloading the page.
 */
import t from 'tap';
import * as client from 'openid-client';
import { MAX_TOTP_ATTEMPTS } from './second-factor.ts';
import { beginSignIn, Browser, formOf, secondInstance, startTestIdp, registerPasswordAndTotpApps, totpCodesNow } from './test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';

t.test('pending TOTP step', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const rps = await registerPasswordAndTotpApps(idp);
  const wrongCode = (secret: string, n = 0) => {
    const valid = totpCodesNow(secret);
    return [...Array(100).keys()].map((i) => String(100000 + 7919 * (i + n) % 900000)).find((c) => !valid.includes(c))!;
  };
  const exchange = (rp: { config: client.Configuration }, s: { verifier: string; state: string }, redirect: string | undefined) => {
    if (!redirect) throw new Error('no redirect');
    return client.authorizationCodeGrant(rp.config, new URL(redirect), { pkceCodeVerifier: s.verifier, expectedState: s.state });
  };
  const wrongTotpRecords = (userId: string) => idp.audit.list({ action: 'idp.login' }).filter((r) => r.actor === `user:${userId}` && r.details?.reason === 'wrong-totp');
  const uidOf = (page: string) => /\/idp\/interaction\/([^/?]+)\//.exec(formOf(page).action)![1];

  const enrolledUser = async (identityCode: string, username: string) => {
    const user = await dir.createUser(actor, { identityCode, name: username, username, password: PASSWORD });
    const { secret } = await dir.enrollTotp(actor, user.id);
    return { user, secret };
  };

  await t.test(`${MAX_TOTP_ATTEMPTS} wrong codes send the sign-in back to the password`, async (t) => {
    const { user, secret } = await enrolledUser('11010519491231002X', 'wang');
    const browser = new Browser(idp.fetch);
    const begun = await beginSignIn(browser, idp.issuer, rps.a, { login: 'wang', password: PASSWORD });
    t.match(begun.page, /name="code"/, 'the TOTP form after the password');
    let page = begun.page!;
    const totpPage = page;
    for (let i = 1; i < MAX_TOTP_ATTEMPTS; i++) {
      const res = await browser.submit(page, idp.issuer, { code: wrongCode(secret, i) });
      t.match(res.page, /Wrong one-time code/, `wrong code ${i}: asked again`);
      t.match(res.page, /name="code"/);
      page = res.page!;
    }
    const last = await browser.submit(page, idp.issuer, { code: wrongCode(secret, MAX_TOTP_ATTEMPTS) });
    t.notOk(last.redirect);
    t.match(last.page, /name="password"/, 'the last wrong code: the password form');
    t.match(last.page, /Too many wrong one-time codes/);
    const records = wrongTotpRecords(user.id);
    t.same(records.map((r) => r.details?.attempt), [1, 2, 3, 4, 5], 'each wrong code audited with its count');
    t.equal(records.at(-1)!.details?.restart, 'password');
    t.equal(records[0].details?.attemptsLeft, 4);

    const right = await browser.submit(totpPage, idp.issuer, { code: totpCodesNow(secret)[1] });
    t.notOk(right.redirect, 'a right code no longer signs in');
    t.match(right.page, /name="password"/);
    t.equal(wrongTotpRecords(user.id).length, MAX_TOTP_ATTEMPTS, 'and is not counted');

    const again = await browser.submit(last.page!, idp.issuer, { login: 'wang', password: PASSWORD });
    t.match(again.page, /name="code"/, 'the password begins a new step');
    const done = await browser.submit(again.page!, idp.issuer, { code: totpCodesNow(secret)[1] });
    t.ok(done.redirect?.startsWith(rps.a.redirect), `signed in: ${done.redirect ?? done.page?.slice(0, 300)}`);
    const claims = (await exchange(rps.a, begun, done.redirect)).claims()!;
    t.same(claims.amr, ['pwd', 'otp', 'mfa']);
  });

  await t.test('parallel guesses get no more than the limit', async (t) => {
    const { user, secret } = await enrolledUser('110101199003077774', 'qian');
    const browser = new Browser(idp.fetch);
    const begun = await beginSignIn(browser, idp.issuer, rps.a, { login: 'qian', password: PASSWORD });
    const results = await Promise.all([...Array(12).keys()].map((i) => browser.submit(begun.page!, idp.issuer, { code: wrongCode(secret, 20 + i) })));
    t.equal(wrongTotpRecords(user.id).length, MAX_TOTP_ATTEMPTS, `${MAX_TOTP_ATTEMPTS} codes checked of 12`);
    t.equal(results.filter((r) => /Wrong one-time code/.test(r.page ?? '')).length, MAX_TOTP_ATTEMPTS - 1);
    t.equal(results.filter((r) => /name="password"/.test(r.page ?? '')).length, 12 - MAX_TOTP_ATTEMPTS + 1);
  });

  await t.test('the step is kept in the store with the interaction: another instance (a restart) takes the code', async (t) => {
    const { user, secret } = await enrolledUser('110101199003073714', 'zhao');
    const browser = new Browser(idp.fetch);
    const begun = await beginSignIn(browser, idp.issuer, rps.a, { login: 'zhao', password: PASSWORD });
    const uid = uidOf(begun.page!);
    const step = [...idp.idp.storage.entries('SecondFactorStep')].find((e) => e.id === uid);
    const interaction = [...idp.idp.storage.entries('Interaction')].find((e) => e.id === uid);
    t.equal(step?.payload.userId, user.id, 'the pending step is in the store');
    t.equal(step?.expiresAt, interaction?.expiresAt, 'and expires with the interaction (the same sweep removes it)');

    const other = await secondInstance(idp);
    t.teardown(() => other.close());
    const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await other.app.inject({
      method: 'POST', url: formOf(begun.page!).action, headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'accept-language': 'en' },
      payload: new URLSearchParams({ code: totpCodesNow(secret)[1] }).toString(),
    });
    t.equal(res.statusCode, 303, `the other instance accepts the code: ${res.body.slice(0, 300)}`);
    const done = await browser.follow(new URL(res.headers.location as string, idp.issuer).href, idp.issuer);
    const claims = (await exchange(rps.a, begun, done.redirect)).claims()!;
    t.equal(claims.sub, user.id);
    t.same(claims.amr, ['pwd', 'otp', 'mfa']);
    t.notOk([...idp.idp.storage.entries('SecondFactorStep')].some((e) => e.id === uid), 'the step is gone once used');
  });

  await t.test("reloading a step-up's page neither resets the count nor revives the step", async (t) => {
    const user = await dir.createUser(actor, { identityCode: '110101198001010053', name: 'zhou', username: 'zhou', password: PASSWORD });
    const browser = new Browser(idp.fetch);
    const first = await beginSignIn(browser, idp.issuer, rps.a, { login: 'zhou', password: PASSWORD });
    t.ok(first.redirect, 'password only at app A');
    const { secret } = await dir.enrollTotp(actor, user.id);
    const begun = await beginSignIn(browser, idp.issuer, rps.b);
    t.match(begun.page, /name="code"/, 'step-up: the TOTP form');
    const interactionUrl = `${idp.issuer}/idp/interaction/${uidOf(begun.page!)}?lang=en`;
    await browser.submit(begun.page!, idp.issuer, { code: wrongCode(secret, 40) });
    await browser.submit(begun.page!, idp.issuer, { code: wrongCode(secret, 41) });
    const reloaded = await browser.follow(interactionUrl, idp.issuer);
    t.match(reloaded.page, /name="code"/, 'reloaded: still the TOTP form');
    for (let i = 3; i <= MAX_TOTP_ATTEMPTS; i++) await browser.submit(reloaded.page!, idp.issuer, { code: wrongCode(secret, 40 + i) });
    t.same(wrongTotpRecords(user.id).map((r) => r.details?.attempt), [1, 2, 3, 4, 5], 'one count across the reload');
    const after = await browser.follow(interactionUrl, idp.issuer);
    t.match(after.page, /name="password"/, 'reloaded after the limit: the password form');
    t.notMatch(after.page, /name="code"/);
    const again = await browser.submit(after.page!, idp.issuer, { login: 'zhou', password: PASSWORD });
    const done = await browser.submit(again.page!, idp.issuer, { code: totpCodesNow(secret)[1] });
    const claims = (await exchange(rps.b, begun, done.redirect)).claims()!;
    t.same(claims.amr, ['pwd', 'otp', 'mfa']);
  });
});
