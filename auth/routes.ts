/** /api/v1/auth/* and /api/v1/operators/*: sign-in, password, API tokens, operator accounts. */
import type { FastifyInstance } from 'fastify';
import '@fastify/swagger';
import { YinxinError } from '../common/errors.ts';
import { principalOf } from './guard.ts';
import type { OperatorService } from './operators.ts';
import { ROLES } from './roles.ts';

const username = { type: 'string', minLength: 1, maxLength: 64 } as const;
const roles = { type: 'array', items: { type: 'string', enum: [...ROLES] }, minItems: 1, uniqueItems: true } as const;
const operatorView = {
  type: 'object',
  properties: {
    username: { type: 'string' }, displayName: { type: 'string' }, roles: { type: 'array', items: { type: 'string' } },
    mustChangePassword: { type: 'boolean' }, status: { type: 'string' }, createdAt: { type: 'string' }, createdBy: { type: 'string' },
    failedLogins: { type: 'integer' }, lockedUntil: { type: 'string' },
  },
} as const;

export async function authRoutes(app: FastifyInstance, opts: { operators: OperatorService }): Promise<void> {
  const ops = opts.operators;

  app.post<{ Body: { username: string; password: string } }>('/api/v1/auth/login', {
    config: { permission: 'public' },
    schema: {
      tags: ['auth'], summary: 'Sign in with user name and password; returns a bearer token',
      body: { type: 'object', required: ['username', 'password'], additionalProperties: false, properties: { username, password: { type: 'string', minLength: 1, maxLength: 1024 } } },
      response: { 200: { type: 'object', properties: { token: { type: 'string' }, expiresAt: { type: 'string' }, mustChangePassword: { type: 'boolean' }, roles: { type: 'array', items: { type: 'string' } } } } },
    },
  }, async (req) => {
    const { token, expiresAt, principal } = await ops.login(req.body.username, req.body.password, req.id);
    return { token, expiresAt, mustChangePassword: principal.mustChangePassword, roles: principal.roles };
  });

  app.post('/api/v1/auth/logout', { config: { permission: 'authenticated' }, schema: { tags: ['auth'], summary: 'End this session' } }, async (req, reply) => {
    await ops.logout(principalOf(req), req.id);
    return reply.code(204).send();
  });

  app.get('/api/v1/auth/me', { config: { permission: 'authenticated' }, schema: { tags: ['auth'], summary: 'Who am I' } }, async (req) => {
    const p = principalOf(req);
    return { username: p.username, kind: p.kind, roles: p.roles, mustChangePassword: p.mustChangePassword };
  });

  app.post<{ Body: { currentPassword: string; newPassword: string } }>('/api/v1/auth/password', {
    config: { permission: 'authenticated' },
    schema: {
      tags: ['auth'], summary: 'Change your own password (required after a one-time password)',
      body: { type: 'object', required: ['currentPassword', 'newPassword'], additionalProperties: false, properties: { currentPassword: { type: 'string', maxLength: 1024 }, newPassword: { type: 'string', maxLength: 1024 } } },
    },
  }, async (req, reply) => {
    await ops.changePassword(principalOf(req), req.body.currentPassword, req.body.newPassword, req.id);
    return reply.code(204).send();
  });

  app.get('/api/v1/auth/tokens', { config: { permission: 'authenticated' }, schema: { tags: ['auth'], summary: 'Your API tokens' } }, async (req) => ({
    items: ops.listApiTokens(principalOf(req).username),
  }));

  app.post<{ Body: { name: string; roles?: string[]; expiresInDays?: number } }>('/api/v1/auth/tokens', {
    config: { permission: 'authenticated' },
    schema: {
      tags: ['auth'], summary: 'Create an API token for scripts (shown once)',
      body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, roles, expiresInDays: { type: 'integer', minimum: 1, maximum: 730 } } },
    },
  }, async (req, reply) => reply.code(201).send(await ops.createApiToken(principalOf(req), req.body, req.id)));

  app.delete<{ Params: { id: string } }>('/api/v1/auth/tokens/:id', { config: { permission: 'authenticated' }, schema: { tags: ['auth'], summary: 'Revoke an API token' } }, async (req, reply) => {
    await ops.revokeApiToken(principalOf(req), req.params.id, req.id);
    return reply.code(204).send();
  });

  app.get('/api/v1/operators', { config: { permission: 'operators:read' }, schema: { tags: ['operators'], summary: 'List operator accounts', response: { 200: { type: 'object', properties: { items: { type: 'array', items: operatorView } } } } } }, async () => ({
    items: ops.listOperators(),
  }));

  app.get<{ Params: { username: string } }>('/api/v1/operators/:username', { config: { permission: 'operators:read' }, schema: { tags: ['operators'], response: { 200: operatorView } } }, async (req) => {
    const op = ops.getOperator(req.params.username);
    if (!op) throw new YinxinError('not-found', `no operator '${req.params.username}'`);
    return op;
  });

  app.post<{ Body: { username: string; displayName?: string; roles: string[] } }>('/api/v1/operators', {
    config: { permission: 'operators:write' },
    schema: {
      tags: ['operators'], summary: 'Create an operator; returns a one-time password',
      body: { type: 'object', required: ['username', 'roles'], additionalProperties: false, properties: { username, displayName: { type: 'string', maxLength: 200 }, roles } },
    },
  }, async (req, reply) => reply.code(201).send(await ops.createOperator(principalOf(req), req.body, req.id)));

  app.patch<{ Params: { username: string }; Body: { roles?: string[]; status?: 'active' | 'disabled'; displayName?: string } }>('/api/v1/operators/:username', {
    config: { permission: 'operators:write' },
    schema: {
      tags: ['operators'], summary: 'Change roles, status or display name',
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { roles, status: { type: 'string', enum: ['active', 'disabled'] }, displayName: { type: 'string', maxLength: 200 } } },
      response: { 200: operatorView },
    },
  }, async (req) => ops.updateOperator(principalOf(req), req.params.username, req.body, req.id));

  app.post<{ Params: { username: string } }>('/api/v1/operators/:username/reset-password', {
    config: { permission: 'operators:write' }, schema: { tags: ['operators'], summary: 'Issue a new one-time password' },
  }, async (req) => ops.resetPassword(principalOf(req), req.params.username, req.id));
}
