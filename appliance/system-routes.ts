/** /api/v1/system/* and /api/v1/audit/*: the appliance's own state, and the audit trail for auditors. */
import '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { verifyAuditTrail } from '../audit/audit.ts';
import type { Appliance } from './context.ts';
import { AUDIT_KEY_LABEL } from './context.ts';

export async function systemRoutes(app: FastifyInstance, o: { appliance: Appliance }): Promise<void> {
  const a = o.appliance;

  app.get('/api/v1/system/status', { config: { permission: 'system:read' }, schema: { tags: ['system'], summary: 'Appliance state: store, HSM, keys' } }, async () => ({
    store: a.store.stats(),
    hsm: { ...(await a.keys.health()), ...a.keys.stats(), keys: (await a.keys.listKeys()).map((k) => ({ label: k.label, spec: k.spec })) },
    configSources: a.config.sources,
  }));

  app.get<{ Querystring: { fromSeq?: number; limit?: number; actor?: string; action?: string } }>('/api/v1/audit', {
    config: { permission: 'audit:read' },
    schema: {
      tags: ['audit'], summary: 'Audit records in sequence order (paged by fromSeq)',
      querystring: { type: 'object', additionalProperties: false, properties: { fromSeq: { type: 'integer', minimum: 1 }, limit: { type: 'integer', minimum: 1, maximum: 1000 }, actor: { type: 'string', maxLength: 200 }, action: { type: 'string', maxLength: 100 } } },
    },
  }, async (req) => {
    const limit = req.query.limit ?? 100;
    const items = a.audit.list({ ...req.query, limit });
    const last = items.at(-1);
    return { items, next: items.length === limit && last ? last.seq + 1 : null };
  });

  app.post('/api/v1/audit/verify', { config: { permission: 'audit:read' }, schema: { tags: ['audit'], summary: 'Verify the hash chain and the signed checkpoints' } }, async () => {
    const signer = await a.keys.getSigner(AUDIT_KEY_LABEL);
    return verifyAuditTrail(a.store, { publicKeyInfo: signer.publicKeyInfo });
  });
}
