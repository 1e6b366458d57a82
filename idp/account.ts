/**
 * The signed-in user's own account: their SSO sessions (issue 6 item 6, "list and revoke a user's
 * sessions ... self"), as an HTML page and as JSON, authenticated by the SSO session cookie itself.
 *
 *   GET    /idp/account/sessions        page (or JSON with Accept: application/json); without a
 *                                       session the browser is sent to sign in (JSON: 401)
 *   POST   /idp/account/sessions/end    form: csrf + uid, or csrf + all=1
 *   DELETE /idp/account/sessions/:uid   JSON: end one of your sessions (204; 404 if not yours)
 *   DELETE /idp/account/sessions        JSON: end all of them
 *   GET    /idp/account/login, /idp/account/callback   sign-in through the provider as the internal
 *                                       client `yinxin-account` (as CAS does), then back to the page
 *
 * CSRF: the form carries HMAC(cookie key, session uid) and a cross-origin Origin header is refused;
 * the session cookie is SameSite=Lax, so other sites cannot send it on a POST or DELETE, and a
 * cross-origin DELETE needs a CORS preflight that is never granted.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit/types.ts';
import { YinxinError } from '../common/errors.ts';
import type { OidcStorage } from './adapter.ts';
import type { Directory } from './directory.ts';
import { messagePage, sessionsPage, t, type Lang, type SessionRow } from './pages.ts';
import { ACCOUNT_CLIENT_ID, ACR, CAS_CLIENT_ID, type OidcProvider } from './provider.ts';
import { acceptForms, langOf, sendPage } from './routes.ts';
import { endSessions, sessionsOf, type SessionSummary } from './sessions.ts';

export interface AccountRouteOptions {
  provider: OidcProvider;
  storage: OidcStorage;
  directory: Directory;
  audit: AuditLog;
  issuer: string;
  /** Secret for the forms' CSRF tokens (one of the provider's cookie keys). */
  csrfKey: string;
}

const BASE = '/idp/account/sessions';

export async function accountRoutes(app: FastifyInstance, o: AccountRouteOptions): Promise<void> {
  const { provider, directory } = o;
  acceptForms(app);
  const issuerOrigin = new URL(o.issuer).origin;

  /** The SSO session of this request's cookie, when it belongs to an active user. */
  const sessionOf = async (req: FastifyRequest, reply: FastifyReply): Promise<{ uid: string; accountId: string } | undefined> => {
    const session = await provider.Session.get(provider.createContext(req.raw, reply.raw));
    if (!session?.accountId || directory.getUser(session.accountId)?.status !== 'active') return undefined;
    return { uid: session.uid, accountId: session.accountId };
  };
  const csrfOf = (uid: string) => createHmac('sha256', o.csrfKey).update(`account-sessions:${uid}`).digest('base64url');
  const wantsJson = (req: FastifyRequest) => /application\/json/.test(req.headers.accept ?? '') && !/text\/html/.test(req.headers.accept ?? '');
  const sameOrigin = (req: FastifyRequest) => req.headers.origin === undefined || req.headers.origin === issuerOrigin;

  const rows = (lang: Lang, sessions: SessionSummary[], current: string): SessionRow[] => sessions
    .sort((a, b) => (b.loginTs ?? 0) - (a.loginTs ?? 0))
    .map((s) => ({
      uid: s.uid, current: s.uid === current, expiresAt: new Date(s.expiresAt), method: methodOf(lang, s),
      ...(s.loginTs ? { signedInAt: new Date(s.loginTs * 1000) } : {}),
      applications: s.applications.filter((c) => c !== ACCOUNT_CLIENT_ID).map((c) => (c === CAS_CLIENT_ID ? 'CAS' : directory.getApplication(c)?.name ?? c)),
    }));

  // The sessions ended and the audit record (a failure when `uid` is not one of the user's sessions) are one transaction.
  const end = (req: FastifyRequest, accountId: string, uid?: string): Promise<string[]> => endSessions(o, accountId, uid === undefined ? undefined : { uid }, (ended) => ({
    actor: `user:${accountId}`, action: 'idp.session.revoke', object: `user:${accountId}`, outcome: ended.length || uid === undefined ? 'success' : 'failure', requestId: req.id,
    details: { by: 'self', sessions: ended, ...(uid !== undefined && !ended.length ? { reason: 'not-own-session', uid } : {}) },
  }));

  app.get<{ Querystring: { lang?: string; ended?: string } }>(BASE, { schema: { hide: true } }, async (req, reply) => {
    const session = await sessionOf(req, reply);
    const lang = langOf(req);
    if (!session) {
      if (wantsJson(req)) throw new YinxinError('unauthenticated', 'sign in first: this uses the single sign-on session cookie');
      return reply.code(303).header('cache-control', 'no-store').redirect(`/idp/account/login?lang=${lang}`, 303);
    }
    const sessions = sessionsOf(o.storage, session.accountId);
    if (wantsJson(req)) {
      reply.header('cache-control', 'no-store');
      return { items: sessions.map((s) => ({ ...s, current: s.uid === session.uid })) };
    }
    return sendPage(reply, sessionsPage({
      lang, sessions: rows(lang, sessions, session.uid), action: `${BASE}/end?lang=${lang}`, csrf: csrfOf(session.uid),
      switchHref: `${BASE}?lang=${t(lang, 'switchCode')}`, ...(req.query.ended ? { notice: t(lang, 'sessionEnded') } : {}),
    }));
  });

  app.post<{ Body: { csrf?: string; uid?: string; all?: string } }>(`${BASE}/end`, { schema: { hide: true } }, async (req, reply) => {
    const lang = langOf(req);
    const session = await sessionOf(req, reply);
    if (!session) return reply.code(303).redirect(`/idp/account/login?lang=${lang}`, 303);
    const given = Buffer.from(String(req.body?.csrf ?? ''));
    const expected = Buffer.from(csrfOf(session.uid));
    if (!sameOrigin(req) || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return sendPage(reply, messagePage(lang, t(lang, 'error'), t(lang, 'formExpired')), 403);
    }
    const uid = req.body?.all === '1' ? undefined : String(req.body?.uid ?? '');
    const ended = await end(req, session.accountId, uid);
    if (uid !== undefined && !ended.length) return sendPage(reply, messagePage(lang, t(lang, 'error'), t(lang, 'noSuchSession')), 404);
    if (ended.includes(session.uid)) return sendPage(reply, messagePage(lang, t(lang, 'logoutTitle'), t(lang, 'loggedOut')));
    return reply.code(303).header('cache-control', 'no-store').redirect(`${BASE}?lang=${lang}&ended=${ended.length}`, 303);
  });

  const jsonSession = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!sameOrigin(req)) throw new YinxinError('forbidden', 'cross-origin requests are refused');
    const session = await sessionOf(req, reply);
    if (!session) throw new YinxinError('unauthenticated', 'sign in first: this uses the single sign-on session cookie');
    return session;
  };
  app.delete<{ Params: { uid: string } }>(`${BASE}/:uid`, { schema: { hide: true, params: { type: 'object', properties: { uid: { type: 'string', maxLength: 100 } } } } }, async (req, reply) => {
    const session = await jsonSession(req, reply);
    const ended = await end(req, session.accountId, req.params.uid);
    if (!ended.length) throw new YinxinError('not-found', 'you have no session with this id');
    return reply.code(204).send();
  });
  app.delete(BASE, { schema: { hide: true } }, async (req, reply) => {
    const session = await jsonSession(req, reply);
    await end(req, session.accountId);
    return reply.code(204).send();
  });

  // Signing in to the account page: the provider's own sign-in (any method, step-up included) for
  // the internal client, whose code is consumed here; the SSO cookie is what the page then uses.
  app.get<{ Querystring: { lang?: string } }>('/idp/account/login', { schema: { hide: true } }, async (req, reply) => {
    const auth = new URL('/auth', o.issuer);
    auth.search = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: new URL('/idp/account/callback', o.issuer).href,
      // PKCE is required of every client; the code never goes to the token endpoint, so the verifier is not kept.
      code_challenge: randomBytes(32).toString('base64url'), code_challenge_method: 'S256',
    }).toString();
    return reply.code(303).header('cache-control', 'no-store').redirect(auth.href, 303);
  });
  app.get<{ Querystring: { code?: string; lang?: string } }>('/idp/account/callback', { schema: { hide: true } }, async (req, reply) => {
    const code = req.query.code ? await provider.AuthorizationCode.find(req.query.code) : undefined;
    if (code?.clientId === ACCOUNT_CLIENT_ID && !code.consumed) await code.consume();
    return reply.code(303).header('cache-control', 'no-store').redirect(`${BASE}?lang=${langOf(req)}`, 303);
  });
}

function methodOf(lang: Lang, s: SessionSummary): string {
  if (s.amr?.includes('otp') && s.amr.includes('pop')) return t(lang, 'methodCertificateMfa');
  if (s.acr === ACR.mfa || s.amr?.includes('otp')) return t(lang, 'methodMfa');
  if (s.acr === ACR.certificate) return t(lang, 'methodCertificate');
  if (s.acr === ACR.password) return t(lang, 'methodPassword');
  return (s.amr ?? []).join(' ') || '-';
}
