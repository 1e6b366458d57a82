/**
 * Self-service sessions (/idp/account/sessions): a user signed in from two browsers sees both
 * sessions, ends the other one (that browser is signed out, its refresh token dead, the application
 * got a back-channel logout token for that session), cannot end someone else's session by guessing
 * its id, and the forms refuse a wrong CSRF token or another origin. openid-client is the relying
 * party; the browsers are cookie jars posting forms.
 */
import t from 'tap';
import * as client from 'openid-client';
import { backchannelListener, beginSignIn, Browser, startTestIdp, type TestIdp } from './test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';
const SESSIONS = '/idp/account/sessions';

interface SessionItem { uid: string; current: boolean; applications: string[]; amr?: string[]; acr?: string }

/** A request carrying `browser`'s cookies, for the JSON side. */
async function asJson(idp: TestIdp, browser: Browser, method: string, path: string, headers: Record<string, string> = {}) {
  const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await idp.fetch(`${idp.issuer}${path}`, { method, redirect: 'manual', headers: { accept: 'application/json', ...(cookie ? { cookie } : {}), ...headers } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** The session forms of the account page: uid (or 'all') -> the form's fields. */
function sessionForms(page: string): Map<string, { action: string; fields: Record<string, string> }> {
  const out = new Map<string, { action: string; fields: Record<string, string> }>();
  for (const m of page.matchAll(/<form method="post" action="([^"]*)">([\s\S]*?)<\/form>/g)) {
    const fields = Object.fromEntries([...m[2].matchAll(/name="([^"]*)" value="([^"]*)"/g)].map((f) => [f[1], f[2]]));
    out.set(fields.all ? 'all' : fields.uid, { action: m[1].replace(/&amp;/g, '&'), fields });
  }
  return out;
}

t.test('self-service sessions', async (t) => {
  const idp = await startTestIdp();
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const zhang = await dir.createUser(actor, { identityCode: '11010519491231002X', name: '张三', username: 'zhangsan', password: PASSWORD });
  const li = await dir.createUser(actor, { identityCode: '110101199003077774', name: '李四', username: 'lisi', password: PASSWORD });
  const bc = await backchannelListener();
  t.teardown(() => new Promise<void>((r) => bc.server.close(() => r())));
  const { clientSecret } = await dir.createApplication(actor, {
    clientId: 'rp', name: '公文系统', redirectUris: ['https://rp.example/cb'], backchannelLogoutUri: bc.url, grantTypes: ['authorization_code', 'refresh_token'],
  });
  const rp = { config: await client.discovery(new URL(idp.issuer), 'rp', clientSecret, undefined, { [client.customFetch]: idp.fetch as unknown as client.CustomFetch }), redirect: 'https://rp.example/cb' };

  const signIn = async (browser: Browser, login: string) => {
    const s = await beginSignIn(browser, idp.issuer, rp, { login, password: PASSWORD }, { scope: 'openid offline_access', prompt: 'consent' });
    if (!s.redirect) throw new Error(`no redirect: ${s.page?.slice(0, 300)}`);
    return client.authorizationCodeGrant(rp.config, new URL(s.redirect), { pkceCodeVerifier: s.verifier, expectedState: s.state });
  };
  const laptop = new Browser(idp.fetch);
  const phone = new Browser(idp.fetch);
  const other = new Browser(idp.fetch);
  await signIn(laptop, 'zhangsan');
  const phoneTokens = await signIn(phone, 'zhangsan');
  await signIn(other, 'lisi');

  let phoneUid = '';
  await t.test('the user sees both sessions, as JSON and on the page', async (t) => {
    const mine = await asJson(idp, laptop, 'GET', SESSIONS);
    t.equal(mine.status, 200);
    const items = mine.json.items as SessionItem[];
    t.equal(items.length, 2, 'two sessions');
    t.equal(items.filter((s) => s.current).length, 1, 'one is this browser');
    for (const s of items) {
      t.same(s.applications, ['rp']);
      t.same(s.amr, ['pwd']);
      t.equal(s.acr, 'urn:yinxin:loa:password');
    }
    phoneUid = items.find((s) => !s.current)!.uid;
    t.equal(mine.headers.get('cache-control'), 'no-store');

    const page = await laptop.follow(`${idp.issuer}${SESSIONS}`, idp.issuer);
    t.equal(page.status, 200);
    t.match(page.page, /<html lang="en">/);
    t.match(page.page, /<h1>Your sessions<\/h1>/);
    t.match(page.page, /公文系统/, 'the application by name');
    t.match(page.page, /password/);
    t.match(page.page, /\(this browser\)/);
    t.notMatch(page.page, /<script/i, 'no scripts');
    t.notMatch(page.page, /(src|href)="https?:/, 'no external assets');
    const forms = sessionForms(page.page!);
    t.equal(forms.size, 3, 'one form per session and one for all');
    for (const f of forms.values()) t.ok(f.fields.csrf, 'each form carries a CSRF token');
    const zh = await laptop.follow(`${idp.issuer}${SESSIONS}?lang=zh`, idp.issuer);
    t.match(zh.page, /<html lang="zh-CN">[^]*我的登录会话[^]*退出此会话/);
  });

  await t.test('a wrong CSRF token or another origin is refused and changes nothing', async (t) => {
    const forms = sessionForms((await laptop.follow(`${idp.issuer}${SESSIONS}`, idp.issuer)).page!);
    const form = forms.get(phoneUid)!;
    const forged = await laptop.request(new URL(form.action, idp.issuer).href, { form: { ...form.fields, csrf: 'x'.repeat(43) } });
    t.equal(forged.status, 403);
    t.match(await forged.text(), /form has expired/);
    const missing = await laptop.request(new URL(form.action, idp.issuer).href, { form: { uid: phoneUid } });
    t.equal(missing.status, 403);
    const crossOrigin = await asJson(idp, laptop, 'DELETE', `${SESSIONS}/${phoneUid}`, { origin: 'https://evil.example' });
    t.equal(crossOrigin.status, 403);
    t.equal((await asJson(idp, laptop, 'GET', SESSIONS)).json.items.length, 2, 'both sessions still there');
  });

  await t.test("guessing someone else's session id is refused and changes nothing", async (t) => {
    const theirs = (await asJson(idp, other, 'GET', SESSIONS)).json.items as SessionItem[];
    t.equal(theirs.length, 1);
    const uid = theirs[0].uid;
    const viaJson = await asJson(idp, laptop, 'DELETE', `${SESSIONS}/${encodeURIComponent(uid)}`);
    t.equal(viaJson.status, 404);
    t.equal(viaJson.json.code, 'not-found');
    const form = sessionForms((await laptop.follow(`${idp.issuer}${SESSIONS}`, idp.issuer)).page!).get(phoneUid)!;
    const viaForm = await laptop.request(new URL(form.action, idp.issuer).href, { form: { ...form.fields, uid } });
    t.equal(viaForm.status, 404);
    t.equal((await asJson(idp, other, 'GET', SESSIONS)).json.items.length, 1, "李四's session is untouched");
    t.equal((await asJson(idp, laptop, 'GET', SESSIONS)).json.items.length, 2);
    t.ok(idp.audit.list({ action: 'idp.session.revoke' }).some((r) => r.outcome === 'failure' && r.details?.reason === 'not-own-session' && r.actor === `user:${zhang.id}`), 'the attempt is audited');
    t.equal(bc.logouts.length, 0, 'no application was told anything');
  });

  await t.test('ending the other session: that browser is signed out, its tokens dead, the application told', async (t) => {
    const form = sessionForms((await laptop.follow(`${idp.issuer}${SESSIONS}`, idp.issuer)).page!).get(phoneUid)!;
    const done = await laptop.follow(new URL(form.action, idp.issuer).href, idp.issuer, { form: form.fields });
    t.equal(done.status, 200);
    t.match(done.url, /ended=1/, 'redirected back to the list (POST-redirect-GET)');
    t.match(done.page, /role="status"><p>The session was signed out/);
    const left = (await asJson(idp, laptop, 'GET', SESSIONS)).json.items as SessionItem[];
    t.equal(left.length, 1);
    t.ok(left[0].current, 'this browser is still signed in');

    t.equal((await asJson(idp, phone, 'GET', SESSIONS)).status, 401, 'the phone is signed out');
    const again = await beginSignIn(phone, idp.issuer, rp);
    t.match(again.page, /name="password"/, 'the phone gets the login page again');
    const refresh = await client.refreshTokenGrant(rp.config, phoneTokens.refresh_token!).then(() => undefined, (e: { error?: string }) => e);
    t.equal(refresh?.error, 'invalid_grant', "the phone session's refresh token is revoked");

    for (let i = 0; i < 50 && bc.logouts.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    t.equal(bc.logouts.length, 1, 'one back-channel logout');
    const token = JSON.parse(Buffer.from(bc.logouts[0].split('.')[1], 'base64url').toString());
    t.equal(token.sub, zhang.id);
    t.equal(token.sid, phoneTokens.claims()!.sid, "for the phone's session");
    t.ok(token.events['http://schemas.openid.net/event/backchannel-logout']);
    t.ok(idp.audit.list({ action: 'idp.session.revoke' }).some((r) => r.outcome === 'success' && r.details?.by === 'self' && (r.details?.sessions as string[]).includes(phoneUid)));
  });

  await t.test('without a session: JSON gets 401, a browser is sent to sign in and comes back to the page', async (t) => {
    const anonymous = new Browser(idp.fetch);
    const json = await asJson(idp, anonymous, 'GET', SESSIONS);
    t.equal(json.status, 401);
    t.equal(json.json.code, 'unauthenticated');
    t.equal((await asJson(idp, anonymous, 'DELETE', SESSIONS)).status, 401);
    const form = await anonymous.request(`${idp.issuer}${SESSIONS}/end`, { form: { all: '1', csrf: 'x' } });
    t.equal(form.status, 303, 'the form without a session goes to sign-in');
    const first = await anonymous.request(`${idp.issuer}${SESSIONS}`);
    t.equal(first.status, 303);
    t.match(first.headers.get('location'), /^\/idp\/account\/login/);
    const login = await anonymous.follow(`${idp.issuer}${SESSIONS}`, idp.issuer);
    t.match(login.page, /name="password"/, 'the login page');
    const action = /action="([^"]*)"/.exec(login.page!)![1].replace(/&amp;/g, '&');
    const back = await anonymous.follow(new URL(action, idp.issuer).href, idp.issuer, { form: { login: 'lisi', password: PASSWORD } });
    t.equal(back.status, 200);
    t.match(back.url, new RegExp(`${SESSIONS}`));
    t.match(back.page, /Your sessions/);
    t.equal((await asJson(idp, anonymous, 'GET', SESSIONS)).json.items.length, 2, "李四 now has two sessions");
  });

  await t.test('ending all sessions signs this browser out too', async (t) => {
    const res = await asJson(idp, other, 'DELETE', SESSIONS);
    t.equal(res.status, 204);
    t.equal((await asJson(idp, other, 'GET', SESSIONS)).status, 401);
    t.equal(idp.idp.storage && [...idp.idp.storage.entries('Session')].filter((s) => s.payload.accountId === li.id).length, 0, "none of 李四's sessions is left");
    const form = sessionForms((await laptop.follow(`${idp.issuer}${SESSIONS}`, idp.issuer)).page!).get('all')!;
    const done = await laptop.follow(new URL(form.action, idp.issuer).href, idp.issuer, { form: form.fields });
    t.match(done.page, /You are signed out/);
    t.equal((await asJson(idp, laptop, 'GET', SESSIONS)).status, 401);
  });
});
