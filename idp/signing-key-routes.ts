/**
 * The IdP's token-signing keys on the admin API:
 *   GET  /api/v1/idp/signing-keys         the published keys (JWKS), current first     idp:read
 *   POST /api/v1/idp/signing-keys/rotate  a new HSM key signs from now on; the old one  idp:keys
 *                                         stays in the JWKS for the overlap, then goes
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { principalOf } from '../auth/guard.ts';
import type { SigningKeys } from './signing-keys.ts';

const keyView = {
  type: 'object',
  required: ['kid', 'label', 'createdAt', 'current'],
  properties: {
    kid: { type: 'string', description: 'JWS kid (RFC 7638 thumbprint)' },
    label: { type: 'string', description: 'HSM key label' },
    createdAt: { type: 'string', format: 'date-time' },
    current: { type: 'boolean', description: 'new tokens are signed with this key' },
    retireAt: { type: 'string', format: 'date-time', description: 'when the key leaves the JWKS and the HSM' },
  },
} as const;

const keyList = { type: 'object', required: ['items', 'overlapSeconds'], properties: { items: { type: 'array', items: keyView }, overlapSeconds: { type: 'integer' } } } as const;

export async function signingKeyRoutes(app: FastifyInstance, o: { signingKeys: SigningKeys }): Promise<void> {
  const { signingKeys } = o;
  const list = async () => ({ items: await signingKeys.view(), overlapSeconds: signingKeys.overlapSeconds });
  app.get('/api/v1/idp/signing-keys', {
    config: { permission: 'idp:read' },
    schema: { tags: ['idp'], summary: 'Token-signing keys published in the JWKS, current first', response: { 200: keyList } },
  }, list);
  app.post('/api/v1/idp/signing-keys/rotate', {
    config: { permission: 'idp:keys' },
    schema: {
      tags: ['idp'], summary: 'Rotate the token-signing key',
      description: 'Generates a new ES256 key in the HSM; it signs every token from now on. The previous key stays in the JWKS for overlapSeconds (the longest lifetime of a token it signed, plus 5 minutes), then leaves the JWKS and the HSM.',
      response: { 200: keyList },
    },
  }, async (req: FastifyRequest) => {
    await signingKeys.rotate(`operator:${principalOf(req).username}`, req.id);
    return list();
  });
}
