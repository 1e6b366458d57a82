/**
 * CAS state in the store and CAS single logout.
 *  - A service ticket issued before the store is closed validates once after it is reopened, and a
 *    replay is refused after the restart too; two CasService instances on one store (two processes)
 *    agree on tickets and on logins in flight.
 *  - Single logout (CAS 3.0 s2.3.3): portals (local HTTP servers) that got tickets in an SSO session
 *    receive a back-channel POST `logoutRequest` whose SessionIndex is their ticket when the session
 *    ends by OIDC RP-initiated logout, by an administrator ending the user's sessions, or by
 *    /cas/logout; portals of other sessions hear nothing.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { TableAuditLog } from '../ca/test-support.ts';
import { FixedClock } from '../common/clock.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import type { Store } from '../store/store.ts';
import { CasService } from './cas.ts';
import { Directory } from './directory.ts';
import { SecretBox } from './secret-box.ts';
import { Browser, formOf, startTestIdp, type TestIdp } from './test-support.ts';

const PASSWORD = 'Sunny-Day-2024!';

t.test('tickets and logins in flight live in the store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-cas-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FixedClock('2025-06-01T10:00:00Z');
  const keys = new SoftwareKeyStore();
  const open = (store: Store) => {
    const audit = new TableAuditLog(store, clock);
    const directory = new Directory({ store, secrets: new SecretBox(keys), audit, clock, argon2: { memoryKiB: 256, passes: 1, parallelism: 1 } });
    return { directory, cas: new CasService({ store, clock, directory, audit, issuer: 'https://idp.example', sessionAlive: () => true }) };
  };
  const service = 'https://portal.example/home';
  let store = openLmdbStore(join(dir, 'store'));
  const first = open(store);
  const user = await first.directory.createUser({ name: 'test' }, { identityCode: '11010519491231002X', name: '李四' });
  await first.directory.createApplication({ name: 'test' }, { clientId: 'portal', name: 'Portal', grantTypes: ['authorization_code'], casServices: ['https://portal.example/'] });
  const ticket = await first.cas.issueTicket(user.id, service, 'session-1');
  const login = await first.cas.beginLogin(service);
  await store.close();

  store = openLmdbStore(join(dir, 'store'));
  t.teardown(() => store.close());
  const a = open(store);
  const b = open(store);
  const ok = await a.cas.validate(ticket, service, true);
  t.ok(ok.ok, 'a ticket issued before the restart validates after it');
  t.equal(ok.ok && ok.user, user.id);
  t.same(await a.cas.validate(ticket, service, true), { ok: false, code: 'INVALID_TICKET', description: `ticket ${ticket.slice(0, 40)} not recognized` }, 'a replay after the restart is refused');
  t.same(await b.cas.takePending(login.state), { service }, 'a login begun before the restart comes back');
  t.equal(await a.cas.takePending(login.state), undefined, 'once');

  const t2 = await a.cas.issueTicket(user.id, service, 'session-1');
  t.ok((await b.cas.validate(t2, service, false)).ok, 'issued by one process, validated by another');
  t.notOk((await a.cas.validate(t2, service, false)).ok, 'and spent for both');
  clock.advance(61_000);
  const late = await a.cas.issueTicket(user.id, service, 'session-1');
  clock.advance(61_000);
  t.match(await b.cas.validate(late, service, false), { ok: false, code: 'INVALID_TICKET' }, 'expired after 60 s');
  await a.cas.sweep();
  t.equal(store.table('idp.cas.tickets').count(), 0, 'expired tickets swept');
});

interface Portal {
  server: Server;
  base: string;
  received: Array<{ path: string; logoutRequest: string }>;
}

async function portal(t: Test): Promise<Portal> {
  const received: Portal['received'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.method === 'POST') received.push({ path: req.url ?? '', logoutRequest: new URLSearchParams(body).get('logoutRequest') ?? '' });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { server, base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, received };
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function sessionIndex(xml: string): string | undefined {
  return /<samlp:SessionIndex>([^<]*)<\/samlp:SessionIndex>/.exec(xml)?.[1];
}

t.test('CAS single logout', async (t) => {
  const idp: TestIdp = await startTestIdp();
  t.teardown(() => idp.close());
  const dir = idp.idp.directory;
  const actor = { name: 'test' };
  const a = await portal(t);
  const b = await portal(t);
  // Portal A takes the LogoutRequest at its service URL (the CAS default), portal B at a registered URL.
  await dir.createApplication(actor, { clientId: 'portal-a', name: 'Portal A', grantTypes: ['authorization_code'], casServices: [`${a.base}/a/`] });
  await dir.createApplication(actor, { clientId: 'portal-b', name: 'Portal B', grantTypes: ['authorization_code'], casServices: [`${b.base}/b/`], casLogoutUrl: `${b.base}/cas-slo` });
  const alice = await dir.createUser(actor, { identityCode: '11010519491231002X', name: 'Alice', username: 'alice', password: PASSWORD });
  await dir.createUser(actor, { identityCode: '110101199003073714', name: 'Bob', username: 'bob', password: PASSWORD });

  /** Signs in at /cas/login for `service` (password form when there is no session) and validates the ticket as the portal would. */
  const casSignIn = async (browser: Browser, service: string, login?: string) => {
    let stop = await browser.follow(`${idp.issuer}/cas/login?service=${encodeURIComponent(service)}`, idp.issuer);
    if (login) stop = await browser.submit(stop.page!, idp.issuer, { login, password: PASSWORD });
    if (!stop.redirect) throw new Error(`no ticket: ${stop.page?.slice(0, 300)}`);
    const ticket = new URL(stop.redirect).searchParams.get('ticket')!;
    const res = await idp.fetch(`${idp.issuer}/cas/serviceValidate?ticket=${encodeURIComponent(ticket)}&service=${encodeURIComponent(service)}`);
    t.match(await res.text(), /<cas:authenticationSuccess>/, `ticket for ${service} validates`);
    return ticket;
  };

  await t.test('OIDC RP-initiated logout reaches every portal of the session with its ticket', async (t) => {
    const browser = new Browser(idp.fetch);
    const ticketA = await casSignIn(browser, `${a.base}/a/home`, 'alice');
    const ticketB = await casSignIn(browser, `${b.base}/b/start`);
    const bob = new Browser(idp.fetch);
    const bobTicket = await casSignIn(bob, `${a.base}/a/home`, 'bob');

    const confirm = await browser.follow(`${idp.issuer}/session/end`, idp.issuer);
    const form = formOf(confirm.page!, 'op.logoutForm');
    const done = await browser.follow(new URL(form.action, idp.issuer).href, idp.issuer, { form: { ...form.fields, logout: 'yes' } });
    t.equal(done.status, 200, 'signed out');
    await until('both portals told', () => a.received.length >= 1 && b.received.length >= 1);
    t.equal(a.received.length, 1, 'portal A told once');
    t.equal(a.received[0].path, '/a/home', 'at the service URL the ticket was issued for');
    t.equal(sessionIndex(a.received[0].logoutRequest), ticketA, 'SessionIndex is the service ticket');
    t.match(a.received[0].logoutRequest, /^<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"[^>]* ID="LR-[0-9a-f]{32}" Version="2.0" IssueInstant="[^"]+Z">/);
    t.match(a.received[0].logoutRequest, new RegExp(`<saml:NameID>${alice.id}</saml:NameID>`));
    t.equal(b.received[0].path, '/cas-slo', "portal B at its registered logout URL");
    t.equal(sessionIndex(b.received[0].logoutRequest), ticketB);
    t.notOk(a.received.some((r) => sessionIndex(r.logoutRequest) === bobTicket), "Bob's session is not ended");
    t.ok(idp.audit.list({ action: 'idp.cas.logout' }).some((r) => r.actor === `user:${alice.id}` && (r.details?.applications as string[]).length === 2), 'audited');
    const again = await browser.follow(`${idp.issuer}/cas/login?service=${encodeURIComponent(`${a.base}/a/home`)}`, idp.issuer);
    t.match(again.page, /name="password"/, 'the SSO session is gone');
    await new Promise((r) => setTimeout(r, 100));
    t.equal(a.received.length + b.received.length, 2, 'nothing sent twice');
  });

  await t.test("an administrator ending the user's sessions reaches the portals", async (t) => {
    a.received.length = 0;
    const browser = new Browser(idp.fetch);
    const ticket = await casSignIn(browser, `${a.base}/a/other`, 'alice');
    const res = await idp.app.inject({ method: 'DELETE', url: `/api/v1/idp/users/${alice.id}/sessions`, headers: { authorization: `Bearer ${idp.adminToken}` } });
    t.equal(res.statusCode, 204);
    await until('portal A told', () => a.received.length >= 1);
    t.equal(sessionIndex(a.received[0].logoutRequest), ticket);
    t.equal(a.received[0].path, '/a/other');
    t.notOk(a.received.some((r) => r.logoutRequest.includes('bob')), 'only her sessions');
  });

  await t.test('/cas/logout reaches the portals too', async (t) => {
    a.received.length = 0;
    const browser = new Browser(idp.fetch);
    const ticket = await casSignIn(browser, `${a.base}/a/home`, 'alice');
    const out = await browser.follow(`${idp.issuer}/cas/logout`, idp.issuer);
    t.equal(out.status, 200);
    await until('portal A told', () => a.received.length >= 1);
    t.equal(sessionIndex(a.received[0].logoutRequest), ticket);
  });
});
