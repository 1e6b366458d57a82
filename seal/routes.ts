/**
 * The seal service's HTTP surface, as two fastify plugins for the composition root:
 *
 *   sealApiRoutes (HTTPS /api/v1)
 *     GET  /api/v1/seals                      seals:read     list (?organization, ?state)
 *     POST /api/v1/seals                      seals:manage   request a seal (JSON; imageJpeg or imagePng base64)
 *     GET  /api/v1/seals/{id}                 seals:read
 *     POST /api/v1/seals/{id}/approve         seals:manage   a second officer (another person)
 *     POST /api/v1/seals/{id}/reject          seals:manage
 *     PUT  /api/v1/seals/{id}/access          seals:manage   { users, roles, clients }
 *     POST /api/v1/seals/{id}/suspend|resume|revoke  seals:manage (through the certificate)
 *     GET  /api/v1/seals/{id}/usage           seals:read     statistics and recent uses
 *     POST /api/v1/seals/{id}/pdf             authenticated  raw application/pdf body, ?page&x&y&size&anchor&anchorX&anchorY&level&reason&location
 *                                                            (level B-T | B-LT | B-LTA); the seal's own access list decides -> sealed application/pdf
 *     POST /api/v1/seals/{id}/file            authenticated  raw application/octet-stream, ?level (B-T) -> application/pkcs7-signature (.p7s)
 *     POST /api/v1/seals/verify               authenticated  raw application/pdf, or JSON { file, signature } (base64)
 *
 *   The raw-body routes' OpenAPI entries (request body as a binary string per media type, query
 *   parameters, binary and problem responses) reach @fastify/swagger through config.swaggerTransform:
 *   fastify itself validates only the query and params, since a Buffer body is no JSON string.
 *
 *   sealPublicRoutes (public HTTP, for applications)
 *     POST /seal/verify                       the same verification, no authentication; its OpenAPI entry (tag
 *                                             `public`, no security) joins /api/docs with the public server's URL
 */
import { Readable } from 'node:stream';
import type { SwaggerTransform } from '@fastify/swagger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { principalOf } from '../auth/guard.ts';
import { actorName } from '../auth/operators.ts';
import type { Actor } from '../ca/authority.ts';
import { YinxinError } from '../common/errors.ts';
import { PROBLEM_CONTENT_TYPE, problemSchema } from '../common/problem.ts';
import { PADES_LEVELS, type PadesLevel } from './pades.ts';
import type { SealRegistry, SealRequestInput, SealState, SealUser } from './registry.ts';
import { verifyDetached, verifyPdf, type SealVerifyOptions, type VerificationReport } from './verify.ts';

export interface SealRoutesOptions {
  registry: SealRegistry;
  verifyOptions: SealVerifyOptions;
  /** Largest PDF or file accepted for sealing or verification (default 50 MiB). */
  maxUploadBytes?: number;
}

const PDF = 'application/pdf';
const OCTETS = 'application/octet-stream';
const P7S = 'application/pkcs7-signature';

function rawBodies(app: FastifyInstance, limit: number): void {
  for (const type of [PDF, OCTETS]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) => done(null, body));
  }
}

function actorOf(request: FastifyRequest): Actor {
  const p = principalOf(request);
  return { actor: actorName(p), person: p.username, requestId: request.id };
}

function sealUserOf(request: FastifyRequest): SealUser {
  const p = principalOf(request);
  return { actor: actorName(p), username: p.username, roles: p.roles, ...(p.kind === 'api-token' ? { clientId: p.tokenId } : {}) };
}

function bytes(body: unknown, type: string): Uint8Array {
  if (!Buffer.isBuffer(body) || body.length === 0) throw new YinxinError('unsupported-media-type', `send the document as a non-empty ${type} body`);
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
}

function num(v: unknown, field: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new YinxinError('validation-failed', `${field} must be a number`, { field });
  return n;
}

function base64(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/=\s]+$/.test(v)) throw new YinxinError('validation-failed', `${field} must be base64`, { field });
  return new Uint8Array(Buffer.from(v, 'base64'));
}

async function verifyRequest(request: FastifyRequest, options: SealVerifyOptions): Promise<VerificationReport> {
  const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === PDF) return verifyPdf(bytes(request.body, PDF), options);
  if (type === 'application/json') {
    const b = (request.body ?? {}) as { file?: unknown; signature?: unknown };
    return verifyDetached(base64(b.file, 'file'), base64(b.signature, 'signature'), options);
  }
  throw new YinxinError('unsupported-media-type', 'send application/pdf, or JSON { file, signature } in base64');
}

const binary = { type: 'string', format: 'binary' } as const;
const problems = (...statuses: number[]) => Object.fromEntries(statuses.map((status) => [status, {
  description: 'a problem document (docs/errors.md)', content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } },
}]));
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;
const text200 = { type: 'string', maxLength: 200 } as const;

const sealPdfQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    page: { type: 'integer', minimum: 1, description: '1-based page (default: the last page; with anchor, only this page is searched)' },
    x: { type: 'number', description: 'lower-left corner of the seal, points from the page\'s lower-left corner (default: bottom right)' },
    y: { type: 'number' },
    size: { type: 'number', minimum: 20, maximum: 600, description: 'side of the square seal in points (default 120)' },
    anchor: { type: 'string', minLength: 1, maxLength: 200, description: 'place the seal beside the first occurrence of this text instead of at x, y (422 anchor-not-found when absent)' },
    anchorX: { type: 'number', description: 'offset of the seal from the anchor position, points' },
    anchorY: { type: 'number' },
    level: {
      type: 'string', enum: [...PADES_LEVELS], default: 'B-T',
      description: 'PAdES baseline level; B-LT adds the DSS with OCSP responses and CRLs; B-LTA then a document time-stamp and its validation data',
    },
    reason: text200,
    location: text200,
  },
} as const;

const sealFileQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    level: { type: 'string', enum: ['B-T'], default: 'B-T', description: 'CAdES baseline level (detached CAdES is made at B-T)' },
  },
} as const;

/** The OpenAPI view of a route that takes a raw body (fastify validates only its query and params). */
function rawBodyDocs(summary: string, consumes: Record<string, object>, produces: Record<string, object>, statuses: number[], extra: Record<string, unknown> = {}): SwaggerTransform {
  return ({ schema, url }) => ({
    url,
    schema: {
      ...schema, summary, ...extra,
      body: { content: Object.fromEntries(Object.entries(consumes).map(([type, s]) => [type, { schema: s }])) },
      response: { 200: { description: 'success', content: Object.fromEntries(Object.entries(produces).map(([type, s]) => [type, { schema: s }])) }, ...problems(...statuses) },
    },
  });
}

const verificationReportSchema = {
  type: 'object',
  properties: {
    valid: { type: 'boolean' }, kind: { type: 'string', enum: ['pdf', 'cades'] }, summary: { type: 'string' },
    signatures: { type: 'array', items: { type: 'object', additionalProperties: true, description: 'per seal: integrity, signer, chain, revocation, timestamp, level, ltv, changesAfter, errors' } },
    documentTimestamps: { type: 'array', items: { type: 'object', additionalProperties: true, description: 'PDFs, per document time-stamp (B-LTA): integrity, timestamp, revocation of the TSA certificate, ltv, covers, changesAfter, errors' } },
  },
} as const;
const verifyConsumes = {
  [PDF]: binary,
  'application/json': { type: 'object', required: ['file', 'signature'], properties: { file: { type: 'string', contentEncoding: 'base64' }, signature: { type: 'string', contentEncoding: 'base64', description: 'the .p7s' } } },
};
const verifyProduces = { 'application/json': verificationReportSchema };

export async function sealApiRoutes(app: FastifyInstance, options: SealRoutesOptions): Promise<void> {
  const { registry } = options;
  const limit = options.maxUploadBytes ?? 50 * 1024 * 1024;
  rawBodies(app, limit);
  const P = '/api/v1/seals';

  app.get<{ Querystring: { organization?: string; state?: SealState } }>(P, { config: { permission: 'seals:read' } },
    async (req) => ({ items: registry.list({ organization: req.query.organization, state: req.query.state }) }));
  app.post<{ Body: Record<string, unknown> }>(P, { config: { permission: 'seals:manage' }, bodyLimit: 1024 * 1024 }, async (req, reply) => {
    const b = req.body ?? {};
    const input = {
      ...b,
      imageJpeg: b.imageJpeg === undefined ? undefined : base64(b.imageJpeg, 'imageJpeg'),
      imagePng: b.imagePng === undefined ? undefined : base64(b.imagePng, 'imagePng'),
    } as unknown as SealRequestInput;
    return reply.code(201).send(await registry.request(input, actorOf(req)));
  });
  app.get<{ Params: { id: string } }>(`${P}/:id`, { config: { permission: 'seals:read' } }, async (req) => registry.get(req.params.id));
  app.post<{ Params: { id: string } }>(`${P}/:id/approve`, { config: { permission: 'seals:manage' } }, async (req) => registry.approve(req.params.id, actorOf(req)));
  app.post<{ Params: { id: string }; Body: { reason?: string } }>(`${P}/:id/reject`, { config: { permission: 'seals:manage' } },
    async (req) => registry.reject(req.params.id, req.body?.reason ?? '', actorOf(req)));
  app.put<{ Params: { id: string }; Body: { users?: string[]; roles?: string[]; clients?: string[] } }>(`${P}/:id/access`, { config: { permission: 'seals:manage' } },
    async (req) => registry.setUsers(req.params.id, req.body ?? {}, actorOf(req)));
  app.post<{ Params: { id: string } }>(`${P}/:id/suspend`, { config: { permission: 'seals:manage' } }, async (req) => registry.suspend(req.params.id, actorOf(req)));
  app.post<{ Params: { id: string } }>(`${P}/:id/resume`, { config: { permission: 'seals:manage' } }, async (req) => registry.resume(req.params.id, actorOf(req)));
  app.post<{ Params: { id: string }; Body: { reason?: number } }>(`${P}/:id/revoke`, { config: { permission: 'seals:manage' } },
    async (req) => registry.revoke(req.params.id, req.body?.reason ?? 5, actorOf(req)));
  app.get<{ Params: { id: string } }>(`${P}/:id/usage`, { config: { permission: 'seals:read' } }, async (req) => registry.usageOf(req.params.id));

  app.post<{ Params: { id: string }; Querystring: Record<string, string | number | undefined> }>(`${P}/:id/pdf`, {
    bodyLimit: limit,
    schema: { params: idParams, querystring: sealPdfQuery },
    config: {
      permission: 'authenticated',
      swaggerTransform: rawBodyDocs('Seal a PDF (PAdES B-T, B-LT or B-LTA, visible seal); the seal\'s access list decides who may', { [PDF]: binary }, { [PDF]: binary }, [400, 401, 403, 404, 409, 413, 415, 422, 503],
        { description: 'The sealed PDF is the original bytes plus incremental updates. Header x-document-digest: <hash>:<hex digest of the byte ranges>.' }),
    },
  }, async (req, reply) => {
    const q = req.query;
    const anchor = q.anchor === undefined ? undefined : { text: String(q.anchor), offset: { x: num(q.anchorX, 'anchorX'), y: num(q.anchorY, 'anchorY') } };
    const result = await registry.sealPdf(req.params.id, sealUserOf(req), bytes(req.body, PDF), {
      placement: { page: num(q.page, 'page'), x: num(q.x, 'x'), y: num(q.y, 'y'), size: num(q.size, 'size'), ...(anchor ? { anchor } : {}) },
      level: (q.level ?? 'B-T') as PadesLevel, // one of PADES_LEVELS: the query schema checked it
      reason: q.reason === undefined ? undefined : String(q.reason), location: q.location === undefined ? undefined : String(q.location), requestId: req.id,
    });
    // The original bytes and the update are sent as they are, without joining them into a copy.
    const parts = result.parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    return reply.type(PDF).header('cache-control', 'no-store').header('x-document-digest', `${result.hash}:${result.documentDigest}`)
      .header('content-length', parts.reduce((n, p) => n + p.length, 0)).send(parts.length === 1 ? parts[0] : Readable.from(parts));
  });
  app.post<{ Params: { id: string } }>(`${P}/:id/file`, {
    bodyLimit: limit,
    schema: { params: idParams, querystring: sealFileQuery },
    config: {
      permission: 'authenticated',
      swaggerTransform: rawBodyDocs('Seal any file: detached CAdES B-T signature (.p7s)', { [OCTETS]: binary }, { [P7S]: binary }, [400, 401, 403, 404, 409, 413, 415, 503]),
    },
  }, async (req, reply) => {
    const result = await registry.sealFile(req.params.id, sealUserOf(req), bytes(req.body, OCTETS), { requestId: req.id });
    return reply.type(P7S).header('cache-control', 'no-store').header('content-disposition', 'attachment; filename="seal.p7s"').send(Buffer.from(result.p7s));
  });
  app.post(`${P}/verify`, {
    bodyLimit: limit,
    config: { permission: 'authenticated', swaggerTransform: rawBodyDocs('Verify a sealed PDF, or a file and its .p7s', verifyConsumes, verifyProduces, [400, 401, 413, 415]) },
  }, async (req) => verifyRequest(req, options.verifyOptions));
}

/** The public verification endpoint applications call (no authentication). */
export async function sealPublicRoutes(app: FastifyInstance, options: Pick<SealRoutesOptions, 'verifyOptions' | 'maxUploadBytes'>): Promise<void> {
  const limit = options.maxUploadBytes ?? 50 * 1024 * 1024;
  rawBodies(app, limit);
  app.post('/seal/verify', {
    bodyLimit: limit,
    config: {
      swaggerTransform: rawBodyDocs('Verify a sealed PDF, or a file and its .p7s (public, no authentication)', verifyConsumes, verifyProduces, [400, 413, 415],
        { tags: ['public'], security: [], description: 'On the public HTTP port, for applications: the report of POST /api/v1/seals/verify without a token.' }),
    },
  }, async (req) => verifyRequest(req, options.verifyOptions));
}
