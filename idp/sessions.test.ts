/**
 * Ending SSO sessions and the audit record are one transaction (design.md): when the audit record
 * cannot be written, the session is not ended either (an administrator's revocation, the user's
 * own, a suspension, an RP-initiated logout); when it can, the record names the sessions ended.
 * Logouts (RP-initiated, /cas/logout) are audited as idp.logout; a session id renewed at sign-in is
 * no logout. openid-client is the relying party.
 */
import t from 'tap';
import * as client from 'openid-client';
import type { AuditInput } from '../audit/types.ts';
import type { Tx } from '../store/store.ts';
import { beginSignIn, Browser, formOf, startTestIdp, type TestIdp } from './test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';

/** Makes the audit trail refuse records of `action` while `fn` runs (a full disk, say). */
async function auditFailing<R>(idp: TestIdp, action: string, fn: () => Promise<R>): Promise<R> {
  const append = idp.audit.append;
  idp.audit.append = (tx: Tx, input: AuditInput) => {
    if (input.action === action) throw new Error('the audit trail cannot be written');
    return append.call(idp.audit, tx, input);
  };
  try {
    return await fn();
  } finally {
    idp.audit.append = append;
  }
}

t.test('ending sessions with their audit record', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const { clientSecret } = await dir.createApplication(actor, { clientId: 'rp', name: 'RP', redirectUris: ['https://rp.example/cb'], casServices: ['https://portal.example/'] });
  const rp = { config: await client.discovery(new URL(idp.issuer), 'rp', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch }), redirect: 'https://rp.example/cb' };
  const admin = { authorization: `Bearer ${idp.adminToken}` };
  const sessionUids = async (userId: string): Promise<string[]> =>
    (await idp.app.inject({ method: 'GET', url: `/api/v1/idp/users/${userId}/sessions`, headers: admin })).json().items.map((s: { uid: string }) => s.uid);
  const signedIn = async (identityCode: string, username: string) => {
    const user = await dir.createUser(actor, { identityCode, name: username, username, password: PASSWORD });
    const browser = new Browser(idp.fetch);
    const s = await beginSignIn(browser, idp.issuer, rp, { login: username, password: PASSWORD });
    if (!s.redirect) throw new Error(`no redirect: ${s.page?.slice(0, 300)}`);
    const tokens = await client.authorizationCodeGrant(rp.config, new URL(s.redirect), { pkceCodeVerifier: s.verifier, expectedState: s.state });
    const [uid] = await sessionUids(user.id);
    return { user, browser, uid, tokens };
  };
  const cookieOf = (browser: Browser) => [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

  await t.test("an administrator's revocation", async (t) => {
    const { user, uid } = await signedIn('11010519491231002X', 'wang');
    const failed = await auditFailing(idp, 'idp.session.revoke', () => idp.app.inject({ method: 'DELETE', url: `/api/v1/idp/users/${user.id}/sessions`, headers: admin }));
    t.equal(failed.statusCode, 500);
    t.same(await sessionUids(user.id), [uid], 'no audit record, no revocation');
    const res = await idp.app.inject({ method: 'DELETE', url: `/api/v1/idp/users/${user.id}/sessions`, headers: admin });
    t.equal(res.statusCode, 204);
    t.same(await sessionUids(user.id), []);
    const record = idp.audit.list({ action: 'idp.session.revoke' }).find((r) => r.object === `user:${user.id}`);
    t.same(record?.details?.sessions, [uid], 'the record names the session ended');
    t.equal(record?.actor, 'operator:idpadmin');
  });

  await t.test("the user's own revocation", async (t) => {
    const { user, browser, uid } = await signedIn('110101199003077774', 'qian');
    const end = () => idp.fetch(`${idp.issuer}/idp/account/sessions/${uid}`, { method: 'DELETE', headers: { accept: 'application/json', cookie: cookieOf(browser) } });
    const failed = await auditFailing(idp, 'idp.session.revoke', end);
    t.equal(failed.status, 500);
    t.same(await sessionUids(user.id), [uid], 'no audit record, no revocation');
    t.equal((await end()).status, 204);
    t.same(await sessionUids(user.id), []);
    t.ok(idp.audit.list({ action: 'idp.session.revoke' }).some((r) => r.actor === `user:${user.id}` && (r.details?.sessions as string[]).includes(uid)));
  });

  await t.test('a suspension ends the sessions in its own transaction', async (t) => {
    const { user, uid } = await signedIn('110101199003073714', 'zhao');
    const suspend = () => idp.app.inject({ method: 'PATCH', url: `/api/v1/idp/users/${user.id}`, headers: admin, payload: { status: 'suspended' } });
    t.equal((await auditFailing(idp, 'idp.user.update', suspend)).statusCode, 500);
    t.equal(dir.getUser(user.id)?.status, 'active', 'not suspended');
    t.same(await sessionUids(user.id), [uid], 'sessions kept');
    t.equal((await suspend()).statusCode, 200);
    t.same(await sessionUids(user.id), []);
    const record = idp.audit.list({ action: 'idp.user.update' }).findLast((r) => r.object === `user:${user.id}`);
    t.equal(record?.details?.status, 'suspended');
    t.same(record?.details?.sessionsEnded, [uid], 'the suspension record names the sessions ended');
  });

  await t.test('/cas/logout is audited with the session it ends', async (t) => {
    const { user, browser, uid } = await signedIn('110101198001010053', 'zhou');
    const failed = await auditFailing(idp, 'idp.logout', () => idp.fetch(`${idp.issuer}/cas/logout`, { headers: { cookie: cookieOf(browser) } }));
    t.equal(failed.status, 500);
    t.same(await sessionUids(user.id), [uid], 'no audit record, no logout');
    const res = await idp.fetch(`${idp.issuer}/cas/logout`, { headers: { cookie: cookieOf(browser), 'accept-language': 'en' } });
    t.equal(res.status, 200);
    t.same(await sessionUids(user.id), []);
    const record = idp.audit.list({ action: 'idp.logout' }).find((r) => r.actor === `user:${user.id}`);
    t.same(record?.details, { via: 'cas', sessions: [uid] });
  });

  await t.test('RP-initiated logout is audited in the transaction that ends the session', async (t) => {
    const { user, browser, uid, tokens } = await signedIn('110101198001010096', 'chen');
    const logout = async () => {
      const confirm = await browser.follow(client.buildEndSessionUrl(rp.config, { id_token_hint: tokens.id_token! }).href, idp.issuer);
      const form = formOf(confirm.page!, 'op.logoutForm');
      return browser.follow(new URL(form.action, idp.issuer).href, idp.issuer, { form: { ...form.fields, logout: 'yes' } });
    };
    const failed = await auditFailing(idp, 'idp.logout', logout);
    t.notOk(failed.redirect);
    t.same(await sessionUids(user.id), [uid], 'no audit record, the session is not ended');
    const done = await logout();
    t.match(done.page, /You are signed out/);
    t.same(await sessionUids(user.id), []);
    const records = idp.audit.list({ action: 'idp.logout' }).filter((r) => r.actor === `user:${user.id}`);
    t.equal(records.length, 1);
    t.same(records[0].details, { via: 'oidc', sessions: [uid], clientId: 'rp' });
  });

  await t.test('signing in again (the session id renewed) is no logout', async (t) => {
    const before = idp.audit.list({ action: 'idp.logout' }).length;
    const { browser } = await signedIn('110101199001010031', 'lin');
    const again = await beginSignIn(browser, idp.issuer, rp, { login: 'lin', password: PASSWORD }, { prompt: 'login' });
    t.ok(again.redirect, 'signed in again');
    t.equal(idp.audit.list({ action: 'idp.logout' }).length, before);
  });
});
