/**
 * The API guard: every route under /api/v1 must declare `config: { permission }` (a route that
 * forgets fails at start-up); before its handler runs, the bearer token is resolved to a
 * principal and the principal's roles are checked against auth/roles.ts.
 * An operator still holding a one-time password may only reach 'authenticated' routes
 * (change password, sign out, who am I).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { YinxinError } from '../common/errors.ts';
import { isPermission, PUBLIC, rolesGrant, type Permission } from './roles.ts';
import type { Principal } from './operators.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Every /api/v1 route with the permission it demands (for the authorization test and docs). */
    apiRoutes: ApiRoute[];
  }
  interface FastifyContextConfig {
    permission?: Permission | typeof PUBLIC;
  }
}

export const API_PREFIX = '/api/v1';

export interface ApiRoute {
  method: string;
  url: string;
  permission: Permission | typeof PUBLIC;
}

export interface Authenticator {
  authenticate(bearer: string): Principal;
}

/** Call on the root instance before any API route is registered. */
export function installApiGuard(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('principal', null);
  const routes: ApiRoute[] = [];
  app.decorate('apiRoutes', routes);
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith(API_PREFIX)) return;
    const permission = (route.config as { permission?: unknown } | undefined)?.permission;
    if (permission !== PUBLIC && !isPermission(permission)) {
      throw new Error(`route ${route.method} ${route.url} declares no permission (config.permission): add one from auth/roles.ts`);
    }
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url, permission });
  });
  // onRequest: before the body is read or validated, so anonymous and unauthorized callers learn nothing about a route's input.
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const permission = request.routeOptions.config?.permission;
    if (permission === undefined || permission === PUBLIC) return;
    const header = request.headers.authorization;
    const bearer = typeof header === 'string' && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : undefined;
    if (!bearer) throw new YinxinError('unauthenticated', 'send Authorization: Bearer <token> (POST /api/v1/auth/login gives one)');
    const principal = authenticator.authenticate(bearer);
    request.principal = principal;
    if (principal.mustChangePassword && permission !== 'authenticated') {
      throw new YinxinError('password-change-required', 'change your one-time password first: POST /api/v1/auth/password');
    }
    if (!rolesGrant(principal.roles, permission)) {
      throw new YinxinError('forbidden', `your roles (${principal.roles.join(', ') || 'none'}) do not allow '${permission}'`, { permission });
    }
  });
}

/** The principal of a guarded route (the guard guarantees it is there). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new YinxinError('unauthenticated', 'not signed in');
  return request.principal;
}
