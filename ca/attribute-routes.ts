/**
 * /api/v1/attribute-certificates: the attribute authority's RA workflow over HTTP (RFC 5755 ACs
 * binding roles, clearance, position and department to a civil servant's signing certificate).
 * A request by one officer, approval by a different one (issues), rejection, list, download,
 * revocation. Status is answered by OCSP; the ACRL is served at /crl/{aa}.crl.
 */
import '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { YinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { actorOf, revocationReason, sendFile } from './api-routes.ts';
import type { AttributeAuthority, AttributeCertificateRecord, AttributeRequestRecord } from './attribute-authority.ts';
import { clearanceLevels } from './attribute-certificate.ts';
import { normalizeSerial } from './authority.ts';

const P = '/api/v1/attribute-certificates';
const id = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 100 } } } as const;
const acParams = { type: 'object', required: ['aa', 'serial'], properties: { aa: { type: 'string', maxLength: 63 }, serial: { type: 'string', maxLength: 64 } } } as const;
const requestBody = {
  type: 'object', additionalProperties: false, required: ['holder', 'roles'],
  properties: {
    aa: { type: 'string', maxLength: 63 },
    holder: { type: 'object', additionalProperties: false, required: ['ca', 'serial'], properties: { ca: { type: 'string', maxLength: 63 }, serial: { type: 'string', maxLength: 64 } } },
    roles: { type: 'array', minItems: 1, maxItems: 50, items: { type: 'string', minLength: 1, maxLength: 200 } },
    clearance: { type: 'string', enum: Object.keys(clearanceLevels) },
    position: { type: 'string', maxLength: 200 },
    department: { type: 'string', maxLength: 200 },
    validityDays: { type: 'integer', minimum: 1, maximum: 3650 },
    noRevAvail: { type: 'boolean' },
  },
} as const;

function view(r: AttributeCertificateRecord) {
  const { der: _der, ...rest } = r;
  return rest;
}

export async function attributeCertificateRoutes(app: FastifyInstance, o: { attributes: AttributeAuthority }): Promise<void> {
  const aa = o.attributes;

  app.post<{ Body: Parameters<AttributeAuthority['submit']>[0] }>(`${P}/requests`, {
    config: { permission: 'certificates:request' },
    schema: { tags: ['attribute certificates'], summary: 'Request an attribute certificate for the holder of a signing certificate (a different officer approves)', body: requestBody },
  }, async (req, reply) => reply.code(201).send(await aa.submit({ ...req.body, holder: { ca: req.body.holder.ca, serial: normalizeSerial(req.body.holder.serial) } }, actorOf(req))));

  app.get<{ Querystring: { status?: AttributeRequestRecord['status']; limit?: number } }>(`${P}/requests`, {
    config: { permission: 'certificates:read' },
    schema: { tags: ['attribute certificates'], querystring: { type: 'object', additionalProperties: false, properties: { status: { type: 'string', enum: ['pending', 'issued', 'rejected'] }, limit: { type: 'integer', minimum: 1, maximum: 1000 } } } },
  }, async (req) => ({ items: aa.listRequests(req.query) }));

  app.get<{ Params: { id: string } }>(`${P}/requests/:id`, { config: { permission: 'certificates:read' }, schema: { tags: ['attribute certificates'], params: id } },
    async (req) => aa.getRequest(req.params.id));

  app.post<{ Params: { id: string } }>(`${P}/requests/:id/approve`, {
    config: { permission: 'certificates:approve' }, schema: { tags: ['attribute certificates'], summary: 'Approve (issues the AC); never by the requester', params: id },
  }, async (req) => {
    const { request, certificate } = await aa.approve(req.params.id, actorOf(req));
    return { request, certificate: view(certificate) };
  });

  app.post<{ Params: { id: string }; Body: { reason: string } }>(`${P}/requests/:id/reject`, {
    config: { permission: 'certificates:approve' },
    schema: { tags: ['attribute certificates'], params: id, body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 } } } },
  }, async (req) => aa.reject(req.params.id, req.body.reason, actorOf(req)));

  app.get<{ Querystring: { aa?: string; holderCa?: string; holderSerial?: string; status?: 'good' | 'revoked'; limit?: number } }>(P, {
    config: { permission: 'certificates:read' },
    schema: {
      tags: ['attribute certificates'], summary: 'List attribute certificates (by holder, status)',
      querystring: { type: 'object', additionalProperties: false, properties: { aa: { type: 'string', maxLength: 63 }, holderCa: { type: 'string', maxLength: 63 }, holderSerial: { type: 'string', maxLength: 64 }, status: { type: 'string', enum: ['good', 'revoked'] }, limit: { type: 'integer', minimum: 1, maximum: 1000 } } },
    },
  }, async (req) => {
    const { holderCa, holderSerial, ...rest } = req.query;
    if ((holderCa === undefined) !== (holderSerial === undefined)) throw new YinxinError('bad-request', 'give holderCa and holderSerial together');
    const holder = holderCa && holderSerial ? { ca: holderCa, serial: normalizeSerial(holderSerial) } : undefined;
    return { items: aa.list({ ...rest, ...(holder ? { holder } : {}) }).map(view) };
  });

  app.get<{ Params: { aa: string; serial: string }; Querystring: { format?: 'json' | 'der' | 'pem' } }>(`${P}/:aa/:serial`, {
    config: { permission: 'certificates:read' },
    schema: { tags: ['attribute certificates'], summary: 'One AC: JSON, or the certificate as DER or PEM', params: acParams, querystring: { type: 'object', additionalProperties: false, properties: { format: { type: 'string', enum: ['json', 'der', 'pem'] } } } },
  }, async (req, reply) => {
    const r = aa.get(req.params.aa, normalizeSerial(req.params.serial));
    if (!r) throw new YinxinError('not-found', `attribute authority "${req.params.aa}" issued no certificate with serial ${req.params.serial}`);
    if (req.query.format === 'der') return sendFile(reply, 'application/pkix-attr-cert', `${r.serial}.ac`, r.der);
    if (req.query.format === 'pem') return sendFile(reply, 'application/x-pem-file', `${r.serial}.pem`, toPem(r.der, 'ATTRIBUTE CERTIFICATE'));
    return view(r);
  });

  app.post<{ Params: { aa: string; serial: string }; Body: { reason: string | number } }>(`${P}/:aa/:serial/revoke`, {
    config: { permission: 'certificates:revoke' },
    schema: { tags: ['attribute certificates'], params: acParams, body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { anyOf: [{ type: 'string' }, { type: 'integer' }] } } } },
  }, async (req) => view(await aa.revoke({ aa: req.params.aa, serial: normalizeSerial(req.params.serial), reason: revocationReason(req.body.reason) }, actorOf(req))));
}
