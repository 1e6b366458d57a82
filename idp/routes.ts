/**
 * The IdP on the wire (HTTPS app):
 *  - the OIDC provider, mounted with @fastify/middie on its own paths (discovery at
 *    /.well-known/openid-configuration, /auth, /token, /me, /jwks, /session/end, ...): a scope
 *    declares those routes so middie hands exactly them to oidc-provider (which answers before any
 *    body parsing), and nothing else of the app goes through koa;
 *  - the sign-in pages (/idp/interaction/:uid...);
 *  - POST /idp/check: "may user U do P in app A?" for applications (client credentials);
 *  - the admin REST API under /api/v1/idp (permissions idp:read / idp:manage).
 */
import middie from '@fastify/middie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalOf } from '../auth/guard.ts';
import type { AuditLog } from '../audit/types.ts';
import { YinxinError } from '../common/errors.ts';
import type { OidcStorage } from './adapter.ts';
import type { Actor, Directory, UserRecord } from './directory.ts';
import { loginPage, pickLang, t, totpPage, type Lang } from './pages.ts';
import { ACR, type OidcProvider } from './provider.ts';
import type { AddressThrottle } from './address-throttle.ts';
import { SecondFactorSteps } from './second-factor.ts';
import { endSessions, endSessionsIn, notifyEnded, sessionsOf, type EndedSession } from './sessions.ts';

export interface IdpRouteOptions {
  provider: OidcProvider;
  directory: Directory;
  storage: OidcStorage;
  /** Present when certificate login is configured (see certificate-login.ts). */
  certificateLogin?: (request: FastifyRequest) => Promise<UserRecord>;
  /** Per-address slowdown on top of the per-account throttle, kept in the store (address-throttle.ts). */
  addressThrottle: AddressThrottle;
  audit: AuditLog;
}

const PROVIDER_PATHS = ['/.well-known/openid-configuration', '/auth', '/auth/*', '/token', '/token/*', '/me', '/jwks', '/session/end', '/session/end/*'];

export async function oidcProviderRoutes(app: FastifyInstance, o: { provider: OidcProvider }): Promise<void> {
  await app.register(async (scope) => {
    await scope.register(middie);
    const callback = o.provider.callback();
    // No path argument: middie would strip a path prefix from req.url, and oidc-provider needs the
    // full path. The hook only runs for the routes declared in this scope, i.e. the provider's.
    scope.use(callback);
    // These routes exist so that middie's hook runs for the provider's paths; oidc-provider answers
    // them in the hook, so the handler below is never reached.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    for (const url of PROVIDER_PATHS) {
      scope.route({ method: ['GET', 'POST', 'OPTIONS', 'DELETE'], url, schema: { hide: true }, handler: async (_req, reply) => reply.hijack() });
    }
  });
}

/** HTML forms (application/x-www-form-urlencoded) as a flat object, in the given scope. */
export function acceptForms(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16_384 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
}

export const langOf = (req: FastifyRequest): Lang => pickLang((req.query as { lang?: string }).lang, req.headers['accept-language']);

/** An IdP page: never cached, never framed, no scripts, forms only to ourselves. */
export function sendPage(reply: FastifyReply, body: string, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').header('x-frame-options', 'DENY')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'").send(body);
}

export async function interactionRoutes(app: FastifyInstance, o: IdpRouteOptions): Promise<void> {
  const { provider, directory } = o;
  const steps = new SecondFactorSteps({ storage: o.storage, directory, audit: o.audit });

  acceptForms(app);
  const html = sendPage;

  const details = async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      return await provider.interactionDetails(req.raw, reply.raw);
    } catch {
      throw new YinxinError('bad-request', 'this sign-in has expired or was opened in another browser: start again from the application');
    }
  };

  const finish = async (req: FastifyRequest, reply: FastifyReply, result: unknown) => {
    const to = await provider.interactionResult(req.raw, reply.raw, result, { mergeWithLastSubmission: false });
    return reply.code(303).header('cache-control', 'no-store').redirect(to, 303);
  };

  // amr values are RFC 8176's: a second factor adds otp (and mfa) to what the sign-in had, so a
  // certificate sign-in stepped up is pop + otp, a password one pwd + otp.
  const login = async (req: FastifyRequest, reply: FastifyReply, user: UserRecord, method: 'password' | 'mfa' | 'certificate', clientId: string | undefined, firstFactors: string[] = ['pwd']) => {
    await directory.recordLogin(user, { method, clientId, requestId: req.id });
    const amr = method === 'password' ? ['pwd'] : method === 'mfa' ? [...new Set([...firstFactors, 'otp', 'mfa'])] : ['pop'];
    return finish(req, reply, { login: { accountId: user.id, acr: ACR[method], amr, remember: true } });
  };

  // The application demands a second factor the user has not enrolled: the sign-in ends with
  // access_denied at the application (said only after the password was right), audited.
  const refuseWithoutTotp = async (req: FastifyRequest, reply: FastifyReply, user: UserRecord, clientId: string) => {
    await directory.auditEvent({ actor: `user:${user.id}`, action: 'idp.login', object: `user:${user.id}`, outcome: 'failure', requestId: req.id, details: { reason: 'totp-not-enrolled', clientId } });
    return finish(req, reply, { error: 'access_denied', error_description: 'this application requires a second factor (TOTP) and none is enrolled for this user: ask the administrator to enroll one' });
  };

  // A guesser waits longer and longer; a victim is never locked out for long (the per-account throttle is capped).
  const slowDown = (address: string) => o.addressThrottle.wait(address);
  const noteFailure = (address: string) => o.addressThrottle.noteFailure(address);

  const showLogin = (reply: FastifyReply, d: { uid: string; params: { client_id: string } }, lang: Lang, more: { error?: string; login?: string } = {}) => html(reply, loginPage({
    lang, action: `/idp/interaction/${d.uid}/login?lang=${lang}`, appName: directory.getApplication(d.params.client_id)?.name, switchHref: `/idp/interaction/${d.uid}?lang=${t(lang, 'switchCode')}`,
    ...(o.certificateLogin ? { certificateAction: `/idp/interaction/${d.uid}/certificate?lang=${lang}` } : {}), ...more,
  }));
  const showTotp = (reply: FastifyReply, uid: string, lang: Lang, more: { error?: string; note?: string } = {}) =>
    html(reply, totpPage({ lang, action: `/idp/interaction/${uid}/totp?lang=${lang}`, ...more }));

  app.get<{ Params: { uid: string } }>('/idp/interaction/:uid', { schema: { hide: true } }, async (req, reply) => {
    const d = await details(req, reply);
    const lang = langOf(req);
    if (d.prompt.name === 'login' && d.session?.accountId && d.prompt.reasons.every((r: string) => r === 'totp_required')) {
      // Step-up: signed in already, without the second factor this application asks for.
      const user = directory.getUser(d.session.accountId);
      if (user?.status === 'active') {
        if (!user.totpSecret) return refuseWithoutTotp(req, reply, user, d.params.client_id);
        const step = await steps.beginUnlessPending(d.uid, { userId: user.id, amr: d.session.amr ?? [] });
        // Too many wrong codes in this sign-in: only the password starts a new step.
        if (!step || SecondFactorSteps.exhausted(step)) return showLogin(reply, d, lang, { error: t(lang, 'totpRestart') });
        return showTotp(reply, d.uid, lang, { note: t(lang, 'stepUp') });
      }
    }
    if (d.prompt.name === 'login') return showLogin(reply, d, lang);
    // Every application is registered by an administrator (first party): consent is implied, and
    // recorded as a Grant covering what was asked (OIDC scopes, claims, resource scopes).
    const { prompt: { details: missing }, params, session } = d;
    const grant = d.grantId ? await provider.Grant.find(d.grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) for (const [resource, scopes] of Object.entries(missing.missingResourceScopes as Record<string, string[]>)) grant.addResourceScope(resource, scopes.join(' '));
    const grantId = await grant.save();
    return finish(req, reply, { consent: d.grantId ? {} : { grantId } });
  });

  app.post<{ Params: { uid: string }; Body: { login?: string; password?: string } }>('/idp/interaction/:uid/login', { schema: { hide: true } }, async (req, reply) => {
    const d = await details(req, reply);
    const lang = langOf(req);
    if (d.prompt.name !== 'login') throw new YinxinError('bad-request', 'this sign-in step is already done');
    const clientId: string = d.params.client_id;
    const app = directory.getApplication(clientId);
    const loginName = String(req.body?.login ?? '');
    await slowDown(req.ip);
    let user: UserRecord;
    try {
      user = await directory.authenticate(loginName, String(req.body?.password ?? ''), { requestId: req.id, clientId });
    } catch (e) {
      await noteFailure(req.ip);
      if (e instanceof YinxinError && e.code === 'invalid-credentials') return showLogin(reply, d, lang, { login: loginName, error: t(lang, 'badCredentials') });
      throw e;
    }
    if (user.totpSecret || app?.requireTotp) {
      if (!user.totpSecret) return refuseWithoutTotp(req, reply, user, clientId);
      await steps.begin(d.uid, { userId: user.id, amr: ['pwd'] });
      return showTotp(reply, d.uid, lang);
    }
    return login(req, reply, user, 'password', clientId);
  });

  app.post<{ Params: { uid: string }; Body: { code?: string } }>('/idp/interaction/:uid/totp', { schema: { hide: true } }, async (req, reply) => {
    const d = await details(req, reply);
    const lang = langOf(req);
    if (d.prompt.name !== 'login') throw new YinxinError('bad-request', 'this sign-in step is already done');
    const pending = steps.pending(d.uid);
    const user = pending ? directory.getUser(pending.userId) : undefined;
    if (!pending || user?.status !== 'active') return showLogin(reply, d, lang);
    const outcome = await steps.submit(d.uid, user, String(req.body?.code ?? ''), req.id);
    if (outcome.kind === 'accepted') return login(req, reply, user, 'mfa', d.params.client_id, outcome.step.amr);
    if (outcome.kind === 'wrong') await noteFailure(req.ip);
    if (outcome.kind === 'restart' || outcome.attemptsLeft === 0) return showLogin(reply, d, lang, { error: t(lang, 'totpRestart') });
    return showTotp(reply, d.uid, lang, { error: t(lang, 'badTotp') });
  });

  if (o.certificateLogin) {
    const certificateLogin = o.certificateLogin;
    app.post<{ Params: { uid: string } }>('/idp/interaction/:uid/certificate', { schema: { hide: true } }, async (req, reply) => {
      const d = await details(req, reply);
      const lang = langOf(req);
      let user: UserRecord;
      try {
        user = await certificateLogin(req);
      } catch (e) {
        if (!(e instanceof YinxinError)) throw e;
        return showLogin(reply, d, lang, { error: t(lang, 'badCertificate') });
      }
      return login(req, reply, user, 'certificate', d.params.client_id);
    });
  }

  // A permission check for applications at run time: authenticated by the application's own client
  // credentials (HTTP Basic, RFC 6749 s2.3.1), answering only about that application's permissions.
  app.post<{ Body: { user?: string; permission?: string; department?: string } }>('/idp/check', {
    schema: { hide: true, body: { type: 'object', required: ['user', 'permission'], properties: { user: { type: 'string', maxLength: 64 }, permission: { type: 'string', maxLength: 128 }, department: { type: 'string', maxLength: 64 } } } },
  }, async (req, reply) => {
    const client = basicClient(req.headers.authorization);
    const app = client ? await directory.authenticateClient(client.id, client.secret) : undefined;
    if (!app) return reply.code(401).header('www-authenticate', 'Basic realm="yinxin"').send({ error: 'invalid_client' });
    const { user, permission, department } = req.body;
    return { allowed: directory.may(user!, app.clientId, permission!, department), application: app.clientId };
  });
}

function basicClient(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header || !/^Basic\s+/i.test(header)) return undefined;
  const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  // RFC 6749 s2.3.1: both parts are form-urlencoded before base64.
  return { id: decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(i + 1).replace(/\+/g, ' ')) };
}

const page = { type: 'object', properties: { after: { type: 'string', maxLength: 200 }, limit: { type: 'integer', minimum: 1, maximum: 500 } } } as const;
const urls = { type: 'array', items: { type: 'string', maxLength: 2000 }, maxItems: 50 } as const;

export async function idpAdminRoutes(app: FastifyInstance, o: { directory: Directory; storage: OidcStorage; provider: OidcProvider; audit: AuditLog }): Promise<void> {
  const { directory: dir } = o;
  const actor = (req: FastifyRequest): Actor => ({ name: `operator:${principalOf(req).username}`, requestId: req.id });
  const read = { permission: 'idp:read' } as const;
  const manage = { permission: 'idp:manage' } as const;
  const tags = ['idp'];

  // departments
  app.get<{ Querystring: { parent?: string; after?: string; limit?: number } }>('/api/v1/idp/departments', {
    config: read, schema: { tags, summary: 'Children of a department (roots without ?parent), paged', querystring: { ...page, properties: { ...page.properties, parent: { type: 'string' } } } },
  }, async (req) => dir.listDepartments(req.query.parent ?? null, req.query));
  app.get<{ Params: { id: string } }>('/api/v1/idp/departments/:id', { config: read, schema: { tags } }, async (req) => found(dir.getDepartment(req.params.id), 'department'));
  app.post<{ Body: { name: string; parentId?: string } }>('/api/v1/idp/departments', {
    config: manage, schema: { tags, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', maxLength: 200 }, parentId: { type: 'string' } } } },
  }, async (req, reply) => reply.code(201).send(await dir.createDepartment(actor(req), req.body)));
  app.patch<{ Params: { id: string }; Body: { name: string } }>('/api/v1/idp/departments/:id', {
    config: manage, schema: { tags, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', maxLength: 200 } } } },
  }, async (req) => dir.renameDepartment(actor(req), req.params.id, req.body.name));
  app.delete<{ Params: { id: string } }>('/api/v1/idp/departments/:id', { config: manage, schema: { tags } }, async (req, reply) => {
    await dir.deleteDepartment(actor(req), req.params.id);
    return reply.code(204).send();
  });

  // users
  app.get<{ Querystring: { department?: string; after?: string; limit?: number } }>('/api/v1/idp/users', {
    config: read, schema: { tags, querystring: { ...page, properties: { ...page.properties, department: { type: 'string' } } } },
  }, async (req) => dir.listUsers({ departmentId: req.query.department, after: req.query.after, limit: req.query.limit }));
  app.get<{ Params: { id: string } }>('/api/v1/idp/users/:id', { config: read, schema: { tags } }, async (req) => found(dir.userView(req.params.id), 'user'));
  app.post<{ Body: { identityCode: string; name: string; username?: string; departmentId?: string; position?: string; password?: string } }>('/api/v1/idp/users', {
    config: manage,
    schema: { tags, body: { type: 'object', required: ['identityCode', 'name'], additionalProperties: false, properties: {
      identityCode: { type: 'string', maxLength: 32 }, name: { type: 'string', maxLength: 200 }, username: { type: 'string', maxLength: 64 },
      departmentId: { type: 'string' }, position: { type: 'string', maxLength: 200 }, password: { type: 'string', maxLength: 1024 } } } },
  }, async (req, reply) => reply.code(201).send(await dir.createUser(actor(req), req.body)));
  app.patch<{ Params: { id: string }; Body: { name?: string; departmentId?: string | null; position?: string; status?: 'active' | 'suspended' | 'left' } }>('/api/v1/idp/users/:id', {
    config: manage,
    schema: { tags, body: { type: 'object', minProperties: 1, additionalProperties: false, properties: {
      name: { type: 'string', maxLength: 200 }, departmentId: { type: ['string', 'null'] }, position: { type: 'string', maxLength: 200 }, status: { type: 'string', enum: ['active', 'suspended', 'left'] } } } },
  }, async (req) => {
    // A user who is no longer active loses every session, in the transaction of the change.
    let ended: EndedSession[] = [];
    const user = await dir.updateUser(actor(req), req.params.id, req.body, (tx, next) => {
      if (next.status === 'active') return undefined;
      ended = endSessionsIn(o.storage.within(tx), o.storage, next.id);
      return { sessionsEnded: ended.map((e) => e.uid) };
    });
    await notifyEnded(o.provider, req.params.id, ended);
    return user;
  });
  app.post<{ Params: { id: string }; Body: { password: string } }>('/api/v1/idp/users/:id/password', {
    config: manage, schema: { tags, body: { type: 'object', required: ['password'], additionalProperties: false, properties: { password: { type: 'string', maxLength: 1024 } } } },
  }, async (req, reply) => {
    await dir.setPassword(actor(req), req.params.id, req.body.password);
    return reply.code(204).send();
  });
  app.post<{ Params: { id: string } }>('/api/v1/idp/users/:id/totp', { config: manage, schema: { tags, summary: 'Enroll a TOTP second factor (secret shown once)' } }, async (req) => dir.enrollTotp(actor(req), req.params.id));
  app.delete<{ Params: { id: string } }>('/api/v1/idp/users/:id/totp', { config: manage, schema: { tags } }, async (req, reply) => {
    await dir.removeTotp(actor(req), req.params.id);
    return reply.code(204).send();
  });
  app.get<{ Params: { id: string } }>('/api/v1/idp/users/:id/sessions', { config: read, schema: { tags, summary: "A user's SSO sessions" } }, async (req) => ({ items: sessionsOf(o.storage, req.params.id) }));
  app.delete<{ Params: { id: string } }>('/api/v1/idp/users/:id/sessions', { config: manage, schema: { tags, summary: "End all of a user's SSO sessions and their tokens" } }, async (req, reply) => {
    await endSessions(o, req.params.id, undefined, (ended) => ({
      actor: actor(req).name, action: 'idp.session.revoke', object: `user:${req.params.id}`, outcome: 'success', requestId: req.id, details: { sessions: ended },
    }));
    return reply.code(204).send();
  });
  app.delete<{ Params: { uid: string } }>('/api/v1/idp/sessions/:uid', {
    config: manage, schema: { tags, summary: 'End one SSO session (its uid, from a user\'s session list) and its tokens', params: { type: 'object', properties: { uid: { type: 'string', maxLength: 100 } } } },
  }, async (req, reply) => {
    const accountId = o.storage.sessionByUid(req.params.uid)?.payload.accountId;
    if (typeof accountId !== 'string') throw new YinxinError('not-found', 'no such session');
    await endSessions(o, accountId, { uid: req.params.uid }, (ended) => ({
      actor: actor(req).name, action: 'idp.session.revoke', object: `user:${accountId}`, outcome: 'success', requestId: req.id, details: { sessions: ended },
    }));
    return reply.code(204).send();
  });
  app.get<{ Params: { id: string }; Querystring: { application: string } }>('/api/v1/idp/users/:id/authorization', {
    config: read, schema: { tags, summary: "A user's roles and permissions in one application", querystring: { type: 'object', required: ['application'], properties: { application: { type: 'string' } } } },
  }, async (req) => dir.authorizationFor(req.params.id, req.query.application));

  // applications, permissions
  app.get<{ Querystring: { after?: string; limit?: number } }>('/api/v1/idp/applications', { config: read, schema: { tags, querystring: page } }, async (req) => dir.listApplications(req.query));
  app.get<{ Params: { id: string } }>('/api/v1/idp/applications/:id', { config: read, schema: { tags } }, async (req) => {
    const a = found(dir.getApplication(req.params.id), 'application');
    const { clientSecret: _s, ...view } = a;
    return view;
  });
  const appProps = {
    name: { type: 'string', maxLength: 200 }, redirectUris: urls, postLogoutRedirectUris: urls, backchannelLogoutUri: { type: 'string', maxLength: 2000 },
    identityCodeAllowed: { type: 'boolean' }, requireTotp: { type: 'boolean' }, casServices: urls, casLogoutUrl: { type: 'string', maxLength: 2000 },
  } as const;
  app.post<{ Body: Parameters<Directory['createApplication']>[1] }>('/api/v1/idp/applications', {
    config: manage,
    schema: { tags, summary: 'Register an application (client secret shown once)', body: { type: 'object', required: ['clientId', 'name'], additionalProperties: false, properties: {
      ...appProps, clientId: { type: 'string', maxLength: 64 }, resource: { type: 'string', maxLength: 2000 },
      grantTypes: { type: 'array', items: { type: 'string', enum: ['authorization_code', 'refresh_token', 'client_credentials'] }, uniqueItems: true } } } },
  }, async (req, reply) => reply.code(201).send(await dir.createApplication(actor(req), req.body)));
  app.patch<{ Params: { id: string }; Body: Parameters<Directory['updateApplication']>[2] }>('/api/v1/idp/applications/:id', {
    config: manage, schema: { tags, body: { type: 'object', minProperties: 1, additionalProperties: false, properties: { ...appProps, status: { type: 'string', enum: ['active', 'disabled'] } } } },
  }, async (req) => dir.updateApplication(actor(req), req.params.id, req.body));
  app.post<{ Params: { id: string } }>('/api/v1/idp/applications/:id/secret', { config: manage, schema: { tags, summary: 'Rotate the client secret (shown once)' } }, async (req) => dir.rotateClientSecret(actor(req), req.params.id));
  app.get<{ Params: { id: string } }>('/api/v1/idp/applications/:id/permissions', { config: read, schema: { tags } }, async (req) => ({ items: dir.listPermissions(req.params.id) }));
  app.post<{ Params: { id: string }; Body: { name: string; description?: string } }>('/api/v1/idp/applications/:id/permissions', {
    config: manage, schema: { tags, body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', maxLength: 128 }, description: { type: 'string', maxLength: 500 } } } },
  }, async (req, reply) => reply.code(201).send(await dir.declarePermission(actor(req), req.params.id, req.body)));

  // roles, assignments
  app.get<{ Querystring: { application?: string } }>('/api/v1/idp/roles', { config: read, schema: { tags, querystring: { type: 'object', properties: { application: { type: 'string' } } } } },
    async (req) => ({ items: dir.listRoles({ clientId: req.query.application }) }));
  app.post<{ Body: { name: string; clientId: string; permissions: string[]; description?: string } }>('/api/v1/idp/roles', {
    config: manage, schema: { tags, body: { type: 'object', required: ['name', 'clientId', 'permissions'], additionalProperties: false, properties: {
      name: { type: 'string', maxLength: 200 }, clientId: { type: 'string' }, permissions: { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 500 }, description: { type: 'string', maxLength: 500 } } } },
  }, async (req, reply) => reply.code(201).send(await dir.createRole(actor(req), req.body)));
  app.patch<{ Params: { id: string }; Body: { name?: string; permissions?: string[]; description?: string } }>('/api/v1/idp/roles/:id', {
    config: manage, schema: { tags, body: { type: 'object', minProperties: 1, additionalProperties: false, properties: {
      name: { type: 'string', maxLength: 200 }, permissions: { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 500 }, description: { type: 'string', maxLength: 500 } } } },
  }, async (req) => dir.updateRole(actor(req), req.params.id, req.body));
  app.delete<{ Params: { id: string } }>('/api/v1/idp/roles/:id', { config: manage, schema: { tags } }, async (req, reply) => {
    await dir.deleteRole(actor(req), req.params.id);
    return reply.code(204).send();
  });
  app.get<{ Querystring: { user?: string; department?: string } }>('/api/v1/idp/assignments', {
    config: read, schema: { tags, querystring: { type: 'object', properties: { user: { type: 'string' }, department: { type: 'string' } } } },
  }, async (req) => {
    if (!req.query.user && !req.query.department) throw new YinxinError('bad-request', 'give ?user= or ?department=');
    return { items: dir.listAssignments(req.query.user ? { kind: 'user', id: req.query.user } : { kind: 'department', id: req.query.department! }) };
  });
  app.post<{ Body: { roleId: string; subject: { kind: 'user' | 'department'; id: string }; scopeDepartmentId?: string } }>('/api/v1/idp/assignments', {
    config: manage, schema: { tags, body: { type: 'object', required: ['roleId', 'subject'], additionalProperties: false, properties: {
      roleId: { type: 'string' }, scopeDepartmentId: { type: 'string' },
      subject: { type: 'object', required: ['kind', 'id'], additionalProperties: false, properties: { kind: { type: 'string', enum: ['user', 'department'] }, id: { type: 'string' } } } } } },
  }, async (req, reply) => reply.code(201).send(await dir.assignRole(actor(req), req.body)));
  app.delete<{ Params: { id: string } }>('/api/v1/idp/assignments/:id', { config: manage, schema: { tags } }, async (req, reply) => {
    await dir.unassignRole(actor(req), req.params.id);
    return reply.code(204).send();
  });
}

function found<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new YinxinError('not-found', `no such ${what}`);
  return v;
}
