/**
 * POST /api/v1/idp/users/:id/attribute-certificate-requests: a user's current roles (one application
 * or all) as a request to the attribute authority (role-certificates.ts); an RA officer approves it
 * at /api/v1/attribute-certificates/requests/:id/approve, which issues the attribute certificate.
 */
import type { FastifyInstance } from 'fastify';
import { principalOf } from '../auth/guard.ts';
import { actorName } from '../auth/operators.ts';
import type { RoleCertificates } from './role-certificates.ts';

export async function roleCertificateRoutes(app: FastifyInstance, o: { roleCertificates: RoleCertificates<unknown> }): Promise<void> {
  app.post<{ Params: { id: string }; Body: { application?: string; validityDays?: number } }>('/api/v1/idp/users/:id/attribute-certificate-requests', {
    config: { permission: 'idp:attribute-certificates' },
    schema: {
      tags: ['idp'],
      summary: "Request an RFC 5755 attribute certificate of the user's current roles, bound to their signing certificate (an RA officer approves it)",
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } },
      body: { type: 'object', additionalProperties: false, properties: {
        application: { type: 'string', maxLength: 64, description: 'client id; all applications when absent' },
        validityDays: { type: 'integer', minimum: 1, maximum: 3650 },
      } },
    },
  }, async (req, reply) => {
    const principal = principalOf(req);
    const actor = { actor: actorName(principal), person: principal.username, requestId: req.id };
    return reply.code(201).send(await o.roleCertificates.request(actor, req.params.id, req.body));
  });
}
