/**
 * CAS protocol 3.0 for legacy portals (https://apereo.github.io/cas/7.0.x/protocol/CAS-Protocol-Specification.html),
 * on the same sign-in as OIDC:
 *
 *   /cas/login?service=S     With an SSO session (oidc-provider's session cookie, read through
 *                            provider.Session.get on a koa context made from the raw request), a
 *                            service ticket is issued at once and the browser sent to S?ticket=ST-.
 *                            Without one, the browser goes through the provider's own authorization
 *                            endpoint as the internal client `yinxin-cas` (PKCE, redirect to
 *                            /cas/callback): the same login page, and the session it creates is the
 *                            OIDC session. /cas/callback takes the authorization code, consumes it
 *                            (provider.AuthorizationCode), and issues the service ticket.
 *   /cas/serviceValidate     (CAS 2/3) and /cas/p3/serviceValidate (attributes): XML, or JSON with
 *                            format=JSON. A ticket validates once, for the service it was issued to
 *                            (spec s3.1.1: a wrong service invalidates it too), within 60 s.
 *   /cas/logout              Ends the SSO session (sessions.ts): back-channel logout to OIDC apps, and
 *                            CAS single logout: each portal that got a ticket in that session is
 *                            POSTed a SAML LogoutRequest whose SessionIndex is its ticket (spec s2.3.3).
 *                            The same happens however the session ends (OIDC RP-initiated logout,
 *                            admin or self-service revocation): index.ts wires singleLogout to those.
 *
 * Tickets, logins in flight and the single-logout list live in the store, not in memory.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Store, Table } from '../store/store.ts';
import type { Directory } from './directory.ts';
import { messagePage, pickLang, t } from './pages.ts';
import type { OidcStorage } from './adapter.ts';
import { CAS_CLIENT_ID, type OidcProvider } from './provider.ts';
import { endSessions } from './sessions.ts';

const TICKET_TTL_MS = 60_000;
const LOGIN_TTL_MS = 600_000;

/** idp.cas.tickets: ticket -> what it was issued for. One use, 60 s. */
interface TicketRecord {
  service: string;
  clientId: string;
  userId: string;
  /** The SSO session (oidc-provider Session uid) the ticket was issued in. */
  sessionUid: string;
  expiresAt: number;
}

/** idp.cas.slo: [session uid, ticket] -> a portal to tell when that session ends (single logout). */
interface SloRecord {
  service: string;
  clientId: string;
  userId: string;
}

/** idp.cas.logins: state -> a /cas/login waiting for the browser to come back through /auth. */
interface PendingLogin {
  service: string;
  expiresAt: number;
}

export type CasErrorCode = 'INVALID_REQUEST' | 'INVALID_TICKET' | 'INVALID_SERVICE' | 'INTERNAL_ERROR';

export type CasValidation =
  | { ok: true; user: string; attributes: Record<string, string | string[]> }
  | { ok: false; code: CasErrorCode; description: string };

/**
 * Everything CAS remembers is in the store (tickets, logins in flight, which portals to tell at
 * logout), so a restart or a second process on the same store sees the same state: a ticket
 * validates once whichever process answers, and a replay is refused after a restart too.
 */
export class CasService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #directory: Directory;
  readonly #audit: AuditLog;
  readonly #tickets: Table<TicketRecord>;
  readonly #slo: Table<SloRecord>;
  readonly #logins: Table<PendingLogin>;
  readonly #sessionAlive: (sessionUid: string) => boolean;
  readonly #fetch: (url: string, init: RequestInit) => Promise<Response>;
  readonly issuer: string;

  constructor(o: {
    store: Store; clock: Clock; directory: Directory; audit: AuditLog; issuer: string;
    /** Is the SSO session with this uid still there? (sweep() forgets portals of sessions that expired.) */
    sessionAlive: (sessionUid: string) => boolean;
    fetch?: (url: string, init: RequestInit) => Promise<Response>;
  }) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#directory = o.directory;
    this.#audit = o.audit;
    this.issuer = o.issuer;
    this.#sessionAlive = o.sessionAlive;
    this.#fetch = o.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.#tickets = o.store.table('idp.cas.tickets');
    this.#slo = o.store.table('idp.cas.slo');
    this.#logins = o.store.table('idp.cas.logins');
  }

  serviceAllowed(service: string): boolean {
    return this.#directory.applicationForCasService(service) !== undefined;
  }

  /** A service ticket for `service`, issued in the SSO session `sessionUid`. */
  async issueTicket(userId: string, service: string, sessionUid: string): Promise<string> {
    const app = this.#directory.applicationForCasService(service);
    if (!app) throw new YinxinError('bad-request', 'CAS: the service is not registered with this identity provider');
    const ticket = `ST-${randomBytes(24).toString('base64url')}`;
    await this.#store.transaction((tx) => {
      tx.put(this.#tickets, ticket, { service, clientId: app.clientId, userId, sessionUid, expiresAt: this.#clock.now().getTime() + TICKET_TTL_MS });
      tx.put(this.#slo, [sessionUid, ticket], { service, clientId: app.clientId, userId });
      this.#audit.append(tx, { actor: `user:${userId}`, action: 'idp.cas.ticket', object: `application:${app.clientId}`, outcome: 'success', details: { ticket: ticketId(ticket) } });
    });
    return ticket;
  }

  async validate(ticket: string | undefined, service: string | undefined, withAttributes: boolean): Promise<CasValidation> {
    if (!ticket || !service) return { ok: false, code: 'INVALID_REQUEST', description: "'ticket' and 'service' are required" };
    const now = this.#clock.now().getTime();
    const outcome = await this.#store.transaction((tx): CasValidation | TicketRecord => {
      const record = tx.get(this.#tickets, ticket);
      // One use only, whatever the outcome (spec s3.1.1 and s3.7).
      if (record) tx.remove(this.#tickets, ticket);
      let failure: CasValidation | undefined;
      if (!record || record.expiresAt <= now) failure = { ok: false, code: 'INVALID_TICKET', description: `ticket ${ticket.slice(0, 40)} not recognized` };
      else if (record.service !== service) failure = { ok: false, code: 'INVALID_SERVICE', description: 'ticket was not issued for this service' };
      this.#audit.append(tx, {
        actor: record ? `user:${record.userId}` : 'anonymous', action: 'idp.cas.validate', object: record ? `application:${record.clientId}` : 'application:unknown',
        outcome: failure ? 'failure' : 'success', details: { ticket: ticketId(ticket), ...(failure && !failure.ok ? { code: failure.code } : {}) },
      });
      return failure ?? record!;
    });
    if ('ok' in outcome) return outcome;
    const user = this.#directory.getUser(outcome.userId);
    if (!user || user.status !== 'active') return { ok: false, code: 'INVALID_TICKET', description: 'the user may no longer sign in' };
    const attributes: Record<string, string | string[]> = {};
    if (withAttributes) {
      const app = this.#directory.getApplication(outcome.clientId);
      const dept = user.departmentId ? this.#directory.getDepartment(user.departmentId) : undefined;
      const auth = this.#directory.authorizationFor(user.id, outcome.clientId);
      attributes.name = user.name;
      if (dept) {
        attributes.department = dept.id;
        attributes.departmentName = dept.name;
      }
      if (user.position) attributes.position = user.position;
      if (app?.identityCodeAllowed) attributes.identityCode = user.identityCode;
      attributes.roles = auth.roles;
      attributes.permissions = auth.permissions;
    }
    return { ok: true, user: user.id, attributes };
  }

  /** Starts a browser login through /auth: the state to send, and the PKCE challenge oidc-provider requires. */
  async beginLogin(service: string): Promise<{ state: string; challenge: string }> {
    const state = randomBytes(16).toString('base64url');
    // /cas/callback takes the code straight from the AuthorizationCode model, so the verifier is never needed.
    const challenge = createHash('sha256').update(randomBytes(32)).digest('base64url');
    await this.#store.transaction((tx) => tx.put(this.#logins, state, { service, expiresAt: this.#clock.now().getTime() + LOGIN_TTL_MS }));
    return { state, challenge };
  }

  /** The login begun with `state`, once. */
  async takePending(state: string): Promise<{ service: string } | undefined> {
    const now = this.#clock.now().getTime();
    return this.#store.transaction((tx) => {
      const p = tx.get(this.#logins, state);
      if (p) tx.remove(this.#logins, state);
      return p && p.expiresAt > now ? { service: p.service } : undefined;
    });
  }

  /**
   * CAS single logout (spec s2.3.3 and Appendix C): when the SSO session `sessionUid` ends, every
   * portal that got a service ticket in it is POSTed a SAML LogoutRequest whose SessionIndex is that
   * ticket (the portal's handle on its own session), as form field `logoutRequest`, at the
   * application's casLogoutUrl or else at the service URL itself. Best effort, in parallel, 2.5 s each
   * (a portal that is down must not hold up the logout); forgetting the session's portals and the
   * audit record are one transaction. Returns the number of portals the request reached.
   */
  async singleLogout(sessionUid: string): Promise<number> {
    const taken = await this.#store.transaction((tx) => {
      const entries = [...this.#slo.range({ start: [sessionUid], end: [sessionUid, '\uffff'] })]
        .map(({ key, value }) => ({ ticket: (key as string[])[1], ...value }))
        .filter((e) => tx.get(this.#slo, [sessionUid, e.ticket]) !== undefined);
      for (const e of entries) tx.remove(this.#slo, [sessionUid, e.ticket]);
      if (entries.length) {
        this.#audit.append(tx, {
          actor: `user:${entries[0].userId}`, action: 'idp.cas.logout', object: `session:${sessionUid}`, outcome: 'success',
          details: { applications: [...new Set(entries.map((e) => e.clientId))], tickets: entries.map((e) => ticketId(e.ticket)) },
        });
      }
      return entries;
    });
    const results = await Promise.allSettled(taken.map(async (e) => {
      const target = this.#directory.getApplication(e.clientId)?.casLogoutUrl ?? e.service;
      const res = await this.#fetch(target, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logoutRequest: logoutRequestXml(e.ticket, e.userId, this.#clock.now()) }).toString(),
        signal: AbortSignal.timeout(2500), redirect: 'manual',
      });
      await res.body?.cancel();
    }));
    return results.filter((r) => r.status === 'fulfilled').length;
  }

  /** Forgets expired tickets and logins, and the portals of sessions that ended without a logout (expiry). */
  async sweep(): Promise<void> {
    const now = this.#clock.now().getTime();
    const tickets = [...this.#tickets.range()].filter((e) => e.value.expiresAt <= now).map((e) => e.key);
    const logins = [...this.#logins.range()].filter((e) => e.value.expiresAt <= now).map((e) => e.key);
    const alive = new Map<string, boolean>();
    const orphans = [...this.#slo.range()].map((e) => e.key as [string, string]).filter(([uid]) => {
      if (!alive.has(uid)) alive.set(uid, this.#sessionAlive(uid));
      return !alive.get(uid);
    });
    if (!tickets.length && !logins.length && !orphans.length) return;
    await this.#store.transaction((tx) => {
      for (const k of tickets) tx.remove(this.#tickets, k);
      for (const k of logins) tx.remove(this.#logins, k);
      for (const k of orphans) tx.remove(this.#slo, k);
    });
  }
}

/** The LogoutRequest of CAS protocol 3.0 Appendix C (SAML 2.0 core s3.7.1). */
export function logoutRequestXml(ticket: string, userId: string, now: Date): string {
  return '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"'
    + ` ID="LR-${randomBytes(16).toString('hex')}" Version="2.0" IssueInstant="${now.toISOString()}">`
    + `<saml:NameID>${escapeXml(userId)}</saml:NameID><samlp:SessionIndex>${escapeXml(ticket)}</samlp:SessionIndex></samlp:LogoutRequest>`;
}

function ticketId(ticket: string): string {
  // Audit the ticket's hash, not the bearer secret itself.
  return createHash('sha256').update(ticket).digest('hex').slice(0, 16);
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

export function casXml(v: CasValidation): string {
  if (!v.ok) return `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="${v.code}">${escapeXml(v.description)}</cas:authenticationFailure></cas:serviceResponse>`;
  const attrs = Object.entries(v.attributes).flatMap(([k, val]) => [val].flat().map((x) => `<cas:${k}>${escapeXml(x)}</cas:${k}>`)).join('');
  return `<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>${escapeXml(v.user)}</cas:user>${attrs ? `<cas:attributes>${attrs}</cas:attributes>` : ''}</cas:authenticationSuccess></cas:serviceResponse>`;
}

export function casJson(v: CasValidation): unknown {
  if (!v.ok) return { serviceResponse: { authenticationFailure: { code: v.code, description: v.description } } };
  return { serviceResponse: { authenticationSuccess: { user: v.user, attributes: Object.fromEntries(Object.entries(v.attributes).map(([k, x]) => [k, [x].flat()])) } } };
}

function withTicket(service: string, ticket: string): string {
  const u = new URL(service);
  u.searchParams.set('ticket', ticket);
  return u.href;
}

export async function casRoutes(app: FastifyInstance, o: { cas: CasService; provider: OidcProvider; directory: Directory; storage: OidcStorage; audit: AuditLog }): Promise<void> {
  const { cas, provider } = o;
  const sessionOf = async (req: FastifyRequest, reply: FastifyReply): Promise<{ accountId?: string; uid: string } | undefined> => {
    const session = await provider.Session.get(provider.createContext(req.raw, reply.raw));
    return session?.accountId ? session : undefined;
  };
  const refuse = (req: FastifyRequest, reply: FastifyReply, message: string) => {
    const lang = pickLang((req.query as { lang?: string }).lang, req.headers['accept-language']);
    return reply.code(400).type('text/html; charset=utf-8').send(messagePage(lang, t(lang, 'error'), message));
  };

  app.get<{ Querystring: { service?: string; renew?: string; gateway?: string } }>('/cas/login', { schema: { hide: true } }, async (req, reply) => {
    const service = req.query.service;
    if (!service || !URL.canParse(service) || !cas.serviceAllowed(service)) return refuse(req, reply, 'CAS: the service is not registered with this identity provider');
    const session = req.query.renew ? undefined : await sessionOf(req, reply);
    if (session?.accountId && o.directory.getUser(session.accountId)?.status === 'active') {
      return reply.redirect(withTicket(service, await cas.issueTicket(session.accountId, service, session.uid)), 303);
    }
    if (req.query.gateway) return reply.redirect(service, 303);
    const { state, challenge } = await cas.beginLogin(service);
    const auth = new URL('/auth', cas.issuer);
    auth.search = new URLSearchParams({
      client_id: CAS_CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: new URL('/cas/callback', cas.issuer).href,
      state, code_challenge: challenge, code_challenge_method: 'S256', ...(req.query.renew ? { prompt: 'login' } : {}),
    }).toString();
    return reply.redirect(auth.href, 303);
  });

  app.get<{ Querystring: { code?: string; state?: string } }>('/cas/callback', { schema: { hide: true } }, async (req, reply) => {
    const pending = req.query.state ? await cas.takePending(req.query.state) : undefined;
    const code = req.query.code ? await provider.AuthorizationCode.find(req.query.code) : undefined;
    if (!pending || !code || code.clientId !== CAS_CLIENT_ID || code.consumed || !code.sessionUid) return refuse(req, reply, 'CAS: this sign-in is not valid any more; start again from the portal');
    await code.consume();
    return reply.redirect(withTicket(pending.service, await cas.issueTicket(code.accountId, pending.service, code.sessionUid)), 303);
  });

  const validate = (withAttributes: boolean) => async (req: FastifyRequest<{ Querystring: { ticket?: string; service?: string; format?: string } }>, reply: FastifyReply) => {
    const result = await cas.validate(req.query.ticket, req.query.service, withAttributes);
    reply.header('cache-control', 'no-store');
    if (req.query.format?.toUpperCase() === 'JSON') return reply.type('application/json').send(casJson(result));
    return reply.type('application/xml; charset=utf-8').send(casXml(result));
  };
  // CAS 3.0 returns attributes on /serviceValidate too (spec s2.5); /p3/ is the explicit form.
  app.get('/cas/serviceValidate', { schema: { hide: true } }, validate(true));
  app.get('/cas/p3/serviceValidate', { schema: { hide: true } }, validate(true));

  app.get<{ Querystring: { service?: string } }>('/cas/logout', { schema: { hide: true } }, async (req, reply) => {
    const session = await sessionOf(req, reply);
    // Ending it through storage.destroy makes the IdP send CAS single logout (index.ts) besides the
    // back-channel logout endSessions sends to OIDC applications.
    if (session?.accountId) {
      const userId = session.accountId;
      await endSessions(o, userId, { uid: session.uid }, (ended) => ({
        actor: `user:${userId}`, action: 'idp.logout', object: `user:${userId}`, outcome: 'success', requestId: req.id, details: { via: 'cas', sessions: ended },
      }));
    }
    const service = req.query.service;
    if (service && URL.canParse(service) && cas.serviceAllowed(service)) return reply.redirect(service, 303);
    const lang = pickLang((req.query as { lang?: string }).lang, req.headers['accept-language']);
    return reply.type('text/html; charset=utf-8').send(messagePage(lang, t(lang, 'logoutTitle'), t(lang, 'loggedOut')));
  });
}
