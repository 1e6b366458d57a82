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
 *   /cas/logout              Ends the SSO session: back-channel logout to OIDC apps and CAS single
 *                            logout (a SAML LogoutRequest POSTed to each portal, spec s2.3.3).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import type { Store, Table } from '../store/store.ts';
import type { Directory } from './directory.ts';
import { messagePage, pickLang, t } from './pages.ts';
import { CAS_CLIENT_ID, type OidcProvider } from './provider.ts';

const TICKET_TTL_MS = 60_000;

interface TicketRecord {
  service: string;
  clientId: string;
  userId: string;
  expiresAt: number;
}

interface CasSessionRecord {
  service: string;
  clientId: string;
}

export type CasErrorCode = 'INVALID_REQUEST' | 'INVALID_TICKET' | 'INVALID_SERVICE' | 'INTERNAL_ERROR';

export type CasValidation =
  | { ok: true; user: string; attributes: Record<string, string | string[]> }
  | { ok: false; code: CasErrorCode; description: string };

export class CasService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #directory: Directory;
  readonly #audit: AuditLog;
  readonly #tickets: Table<TicketRecord>;
  readonly #sessions: Table<CasSessionRecord>;
  readonly #fetch: (url: string, init: RequestInit) => Promise<Response>;
  /** Browser logins in flight through the OIDC authorization endpoint: state -> service, verifier. */
  readonly #pending = new Map<string, { service: string; verifier: string; expires: number }>();
  readonly issuer: string;

  constructor(o: { store: Store; clock: Clock; directory: Directory; audit: AuditLog; issuer: string; fetch?: (url: string, init: RequestInit) => Promise<Response> }) {
    this.#store = o.store;
    this.#clock = o.clock;
    this.#directory = o.directory;
    this.#audit = o.audit;
    this.issuer = o.issuer;
    this.#fetch = o.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.#tickets = o.store.table('idp.cas.tickets');
    this.#sessions = o.store.table('idp.cas.sessions');
  }

  serviceAllowed(service: string): boolean {
    return this.#directory.applicationForCasService(service) !== undefined;
  }

  async issueTicket(userId: string, service: string): Promise<string> {
    const app = this.#directory.applicationForCasService(service);
    if (!app) throw new Error('unregistered service');
    const ticket = `ST-${randomBytes(24).toString('base64url')}`;
    await this.#store.transaction((tx) => {
      tx.put(this.#tickets, ticket, { service, clientId: app.clientId, userId, expiresAt: this.#clock.now().getTime() + TICKET_TTL_MS });
      tx.put(this.#sessions, [userId, app.clientId], { service, clientId: app.clientId });
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

  beginLogin(service: string): { state: string; challenge: string } {
    const state = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    this.#pending.set(state, { service, verifier, expires: Date.now() + 600_000 });
    return { state, challenge: createHash('sha256').update(verifier).digest('base64url') };
  }

  takePending(state: string): { service: string } | undefined {
    const p = this.#pending.get(state);
    this.#pending.delete(state);
    return p && p.expires > Date.now() ? { service: p.service } : undefined;
  }

  /** CAS single logout: a SAML LogoutRequest to each portal the user signed in to (spec s2.3.3, Appendix C). */
  async singleLogout(userId: string): Promise<void> {
    const entries = [...this.#sessions.range({ start: [userId], end: [userId, '\uffff'] })];
    if (!entries.length) return;
    await this.#store.transaction((tx) => { for (const e of entries) tx.remove(this.#sessions, e.key); });
    await Promise.allSettled(entries.map(async ({ value }) => {
      const app = this.#directory.getApplication(value.clientId);
      if (!app?.casLogoutUrl) return;
      const request = `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${randomBytes(16).toString('hex')}" Version="2.0" IssueInstant="${this.#clock.now().toISOString()}"><saml:NameID>${escapeXml(userId)}</saml:NameID><samlp:SessionIndex>${escapeXml(userId)}</samlp:SessionIndex></samlp:LogoutRequest>`;
      await this.#fetch(app.casLogoutUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logoutRequest: request }).toString(), signal: AbortSignal.timeout(2500) });
    }));
  }

  sweep(): void {
    const now = Date.now();
    for (const [k, v] of this.#pending) if (v.expires <= now) this.#pending.delete(k);
    const stale = [...this.#tickets.range()].filter((e) => e.value.expiresAt <= this.#clock.now().getTime()).map((e) => e.key);
    if (stale.length) void this.#store.transaction((tx) => { for (const k of stale) tx.remove(this.#tickets, k); });
  }
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

export async function casRoutes(app: FastifyInstance, o: { cas: CasService; provider: OidcProvider; directory: Directory }): Promise<void> {
  const { cas, provider } = o;
  const sessionOf = async (req: FastifyRequest, reply: FastifyReply): Promise<{ accountId?: string; id?: string } | undefined> => {
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
      return reply.redirect(withTicket(service, await cas.issueTicket(session.accountId, service)), 303);
    }
    if (req.query.gateway) return reply.redirect(service, 303);
    const { state, challenge } = cas.beginLogin(service);
    const auth = new URL('/auth', cas.issuer);
    auth.search = new URLSearchParams({
      client_id: CAS_CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: new URL('/cas/callback', cas.issuer).href,
      state, code_challenge: challenge, code_challenge_method: 'S256', ...(req.query.renew ? { prompt: 'login' } : {}),
    }).toString();
    return reply.redirect(auth.href, 303);
  });

  app.get<{ Querystring: { code?: string; state?: string } }>('/cas/callback', { schema: { hide: true } }, async (req, reply) => {
    const pending = req.query.state ? cas.takePending(req.query.state) : undefined;
    const code = req.query.code ? await provider.AuthorizationCode.find(req.query.code) : undefined;
    if (!pending || !code || code.clientId !== CAS_CLIENT_ID || code.consumed) return refuse(req, reply, 'CAS: this sign-in is not valid any more; start again from the portal');
    await code.consume();
    return reply.redirect(withTicket(pending.service, await cas.issueTicket(code.accountId, pending.service)), 303);
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
    if (session?.accountId) {
      await endSessionById(o, session);
      await cas.singleLogout(session.accountId);
    }
    const service = req.query.service;
    if (service && URL.canParse(service) && cas.serviceAllowed(service)) return reply.redirect(service, 303);
    const lang = pickLang((req.query as { lang?: string }).lang, req.headers['accept-language']);
    return reply.type('text/html; charset=utf-8').send(messagePage(lang, t(lang, 'logoutTitle'), t(lang, 'loggedOut')));
  });
}

async function endSessionById(o: { provider: OidcProvider }, session: { accountId?: string; authorizations?: Record<string, { sid?: string; grantId?: string }>; destroy?: () => Promise<void> }): Promise<void> {
  for (const [clientId, a] of Object.entries(session.authorizations ?? {})) {
    if (a.grantId) {
      const grant = await o.provider.Grant.find(a.grantId).catch(() => undefined);
      await grant?.destroy?.();
      await Promise.all(['AccessToken', 'RefreshToken', 'AuthorizationCode'].map((m) => o.provider[m].adapter.revokeByGrantId(a.grantId)));
    }
    const client = await o.provider.Client.find(clientId).catch(() => undefined);
    if (client?.backchannelLogoutUri) await client.backchannelLogout(session.accountId, a.sid).catch(() => undefined);
  }
  await session.destroy?.();
}
