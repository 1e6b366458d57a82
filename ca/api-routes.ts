/**
 * /api/v1 for the CA and RA: CAs, certificate requests, certificates, PKCS#12 pickup, key
 * recovery, CRL publication. A thin map from JSON (and DER/PEM downloads) to the cores in
 * authority.ts, ra.ts and crl-publisher.ts; every failure is the core's YinxinError, turned into
 * a problem document by common/problem.ts.
 *
 * Lists are paged as { items, next }: pass `next` back as `cursor` for the following page
 * (an opaque token naming the index position; null on the last page).
 */
import '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalOf } from '../auth/guard.ts';
import { actorName } from '../auth/operators.ts';
import { YinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { describeKeySpec } from '../hsm/algorithms.ts';
import type { KeySpec } from '../hsm/signer.ts';
import { pageOf } from '../store/paging.ts';
import { normalizeSerial, revocationReasons, type Actor, type AuthorityRecord, type CertificateAuthority, type CertificateRecord, type CertificateStatus, type SearchQuery } from './authority.ts';
import type { CrlPublisher, PublishedCrl } from './crl-publisher.ts';
import { describeKey } from './keys.ts';
import { getProfile, profiles, type Subject, type SubjectAltNames, type SubjectAttributeType } from './profiles.ts';
import type { CertificateRequestRecord, KeyRecoveryRecord, KeyRequest, RegistrationAuthority } from './ra.ts';
import { formatSubject } from './subject.ts';

export interface CaApiRoutesOptions {
  authority: CertificateAuthority;
  ra: RegistrationAuthority;
  crls: CrlPublisher;
}

export const PKCS12_MEDIA_TYPE = 'application/x-pkcs12';
/** RFC 8555 s9.1: the end-entity certificate followed by its issuers, PEM. */
export const PEM_CHAIN_MEDIA_TYPE = 'application/pem-certificate-chain';
export const PEM_MEDIA_TYPE = 'application/x-pem-file';

// ---------------------------------------------------------------- key specifications

export const KEY_SPECS = {
  'ec-p256': { type: 'ec', curve: 'P-256' },
  'ec-p384': { type: 'ec', curve: 'P-384' },
  'rsa-2048': { type: 'rsa', bits: 2048 },
  'rsa-3072': { type: 'rsa', bits: 3072 },
  'rsa-4096': { type: 'rsa', bits: 4096 },
  'ed25519': { type: 'ed25519' },
} as const satisfies Record<string, KeySpec>;
export type KeySpecName = keyof typeof KEY_SPECS;

function keySpecName(spec: KeySpec): string {
  return spec.type === 'ec' ? `ec-${spec.curve.replace('-', '').toLowerCase()}` : spec.type === 'rsa' ? `rsa-${spec.bits}` : 'ed25519';
}

// ---------------------------------------------------------------- subjects

const attributeAliases: Record<string, SubjectAttributeType> = {
  c: 'C', st: 'ST', s: 'ST', l: 'L', o: 'O', ou: 'OU', cn: 'CN',
  serialnumber: 'serialNumber', '2.5.4.5': 'serialNumber',
  organizationidentifier: 'organizationIdentifier', '2.5.4.97': 'organizationIdentifier',
  emailaddress: 'emailAddress', email: 'emailAddress', e: 'emailAddress',
  title: 'title', givenname: 'givenName', gn: 'givenName', surname: 'surname', sn: 'surname',
  street: 'street', postalcode: 'postalCode',
};

/**
 * A distinguished name as text: 'CN=张三,O=北京市人民政府,C=CN' (RFC 4514 style, `\,` escapes a
 * comma) or '/C=CN/O=.../CN=...' (openssl -subj style). The order does not matter: the core puts
 * attributes in canonical order.
 */
export function parseSubject(text: string): Subject {
  const s = text.trim();
  const slashStyle = s.startsWith('/');
  const separator = slashStyle ? '/' : ',';
  const parts: string[] = [];
  let current = '';
  for (let i = slashStyle ? 1 : 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\' && i + 1 < s.length) { current += s[++i]; continue; }
    if (ch === separator || (!slashStyle && ch === '+')) { parts.push(current); current = ''; continue; }
    current += ch;
  }
  parts.push(current);
  const subject: Subject = [];
  for (const part of parts) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new YinxinError('validation-failed', `subject part "${part}" is not TYPE=value`, { field: 'subject', part });
    const name = part.slice(0, eq).trim();
    const type = attributeAliases[name.toLowerCase()];
    if (!type) throw new YinxinError('validation-failed', `subject attribute type "${name}" is not supported (use ${[...new Set(Object.values(attributeAliases))].join(', ')})`, { field: 'subject', attribute: name });
    subject.push({ type, value: part.slice(eq + 1).trim() });
  }
  if (subject.length === 0) throw new YinxinError('validation-failed', 'the subject is empty', { field: 'subject' });
  return subject;
}

function subjectInput(value: string | Subject | undefined): Subject | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? parseSubject(value) : value;
}

// ---------------------------------------------------------------- CSR input

/** A CSR given in JSON: PEM text, or base64 (standard or URL-safe) DER. */
export function csrBytes(text: string, field = 'csr'): Uint8Array {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) return new Uint8Array(Buffer.from(t, 'utf8'));
  const b64 = t.replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return new Uint8Array(Buffer.from(b64, 'base64'));
  if (/^[A-Za-z0-9_-]+$/.test(b64)) return new Uint8Array(Buffer.from(b64, 'base64url'));
  throw new YinxinError('malformed-der', `${field} is neither PEM nor base64-encoded DER`, { field });
}

// ---------------------------------------------------------------- separation of duties

// ---------------------------------------------------------------- views

const reasonNames = Object.fromEntries(Object.entries(revocationReasons).map(([k, v]) => [v, k])) as Record<number, string>;

function certificateView(r: CertificateRecord) {
  return {
    ca: r.ca, serial: r.serial, profile: r.profile, subject: r.subject, subjectAttributes: r.subjectAttributes,
    identifier: r.identifier, organization: r.organization, san: r.san, key: r.key, keyIdentifier: r.keyIdentifier,
    notBefore: r.notBefore, notAfter: r.notAfter, issuedAt: r.issuedAt, status: r.status,
    revokedAt: r.revokedAt, reason: r.reason === undefined ? undefined : reasonNames[r.reason], reasonCode: r.reason,
    invalidityDate: r.invalidityDate, requestId: r.requestId, pairSerial: r.pairSerial,
  };
}

function keyView(k: KeyRequest) {
  if (k.source === 'generate') return { source: 'generate', spec: keySpecName(k.spec), description: describeKeySpec(k.spec) };
  return { source: 'csr', description: k.kind ? describeKey(k.kind) : undefined };
}

function requestView(r: CertificateRequestRecord) {
  return {
    id: r.id, kind: r.kind, ca: r.ca, profile: r.profile, requester: r.requester, createdAt: r.createdAt,
    subject: formatSubject(r.subject), subjectAttributes: r.subject, san: r.san, key: keyView(r.key),
    encryption: r.encryption ? { profile: r.encryption.profile, key: keyView(r.encryption.key) } : undefined,
    status: r.status, approvals: r.approvals, approvalsNeeded: getProfile(r.profile).approvers,
    rejection: r.rejection, issued: r.issued, renewalOf: r.renewalOf,
  };
}

function authorityView(a: AuthorityRecord) {
  return {
    name: a.name, parent: a.parent, subject: formatSubject(a.subject), subjectAttributes: a.subject,
    key: describeKeySpec(a.spec), scheme: a.scheme, serial: a.serial, keyIdentifier: Buffer.from(a.keyIdentifier).toString('hex'),
    notBefore: a.notBefore, notAfter: a.notAfter, createdAt: a.createdAt, certificatePem: toPem(a.certificate, 'CERTIFICATE'),
  };
}

function crlView(c: PublishedCrl | undefined) {
  if (!c) return undefined;
  return { kind: c.kind, number: c.number, baseNumber: c.baseNumber, thisUpdate: c.thisUpdate, nextUpdate: c.nextUpdate, entries: c.entries };
}

// ---------------------------------------------------------------- JSON schemas

const str = (maxLength = 200) => ({ type: 'string', maxLength } as const);
const subjectAttributesSchema = { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, value: { type: 'string' } } } } as const;
const sanSchema = {
  type: 'object', additionalProperties: false,
  properties: {
    dns: { type: 'array', maxItems: 100, items: str(253) },
    email: { type: 'array', maxItems: 100, items: str(320) },
    ip: { type: 'array', maxItems: 100, items: str(45) },
  },
} as const;
const subjectInputSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 2000 },
    {
      type: 'array', minItems: 1, maxItems: 30,
      items: { type: 'object', required: ['type', 'value'], additionalProperties: false, properties: { type: str(40), value: str(400) } },
    },
  ],
  description: "'CN=...,O=...,C=CN', '/C=CN/O=.../CN=...', or [{ type, value }]",
} as const;
const keySpecSchema = { type: 'string', enum: Object.keys(KEY_SPECS) } as const;
const csrSchema = { type: 'string', minLength: 1, maxLength: 100_000, description: 'PKCS#10 request: PEM, or base64 DER' } as const;

const certificateSchema = {
  type: 'object',
  properties: {
    ca: { type: 'string' }, serial: { type: 'string' }, profile: { type: 'string' }, subject: { type: 'string' },
    subjectAttributes: subjectAttributesSchema, identifier: { type: 'string' }, organization: { type: 'string' },
    san: sanSchema, key: { type: 'string' }, keyIdentifier: { type: 'string' },
    notBefore: { type: 'string' }, notAfter: { type: 'string' }, issuedAt: { type: 'string' },
    status: { type: 'string', enum: ['good', 'revoked', 'hold'] }, revokedAt: { type: 'string' },
    reason: { type: 'string' }, reasonCode: { type: 'integer' }, invalidityDate: { type: 'string' },
    requestId: { type: 'string' }, pairSerial: { type: 'string' },
  },
} as const;
const keyViewSchema = { type: 'object', properties: { source: { type: 'string' }, spec: { type: 'string' }, description: { type: 'string' } } } as const;
const officerAt = { type: 'object', properties: { officer: { type: 'string' }, at: { type: 'string' } } } as const;
const requestSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, kind: { type: 'string' }, ca: { type: 'string' }, profile: { type: 'string' },
    requester: { type: 'string' }, createdAt: { type: 'string' }, subject: { type: 'string' }, subjectAttributes: subjectAttributesSchema,
    san: sanSchema, key: keyViewSchema, encryption: { type: 'object', properties: { profile: { type: 'string' }, key: keyViewSchema } },
    status: { type: 'string', enum: ['pending', 'issued', 'rejected'] }, approvals: { type: 'array', items: officerAt },
    approvalsNeeded: { type: 'integer' },
    rejection: { type: 'object', properties: { officer: { type: 'string' }, at: { type: 'string' }, reason: { type: 'string' } } },
    issued: { type: 'object', properties: { serial: { type: 'string' }, encryptionSerial: { type: 'string' } } },
    renewalOf: { type: 'object', properties: { ca: { type: 'string' }, serial: { type: 'string' } } },
  },
} as const;
const authoritySchema = {
  type: 'object',
  properties: {
    name: { type: 'string' }, parent: { type: ['string', 'null'] }, subject: { type: 'string' }, subjectAttributes: subjectAttributesSchema,
    key: { type: 'string' }, scheme: { type: 'string' }, serial: { type: 'string' }, keyIdentifier: { type: 'string' },
    notBefore: { type: 'string' }, notAfter: { type: 'string' }, createdAt: { type: 'string' }, certificatePem: { type: 'string' },
  },
} as const;
const crlSchema = {
  type: 'object',
  properties: { kind: { type: 'string' }, number: { type: 'string' }, baseNumber: { type: 'string' }, thisUpdate: { type: 'string' }, nextUpdate: { type: 'string' }, entries: { type: 'integer' } },
} as const;
const recoverySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, ca: { type: 'string' }, serial: { type: 'string' }, requestedBy: { type: 'string' }, reason: { type: 'string' },
    createdAt: { type: 'string' }, status: { type: 'string' }, approvedBy: { type: 'string' },
  },
} as const;
const page = (items: object) => ({ type: 'object', properties: { items: { type: 'array', items }, next: { type: ['string', 'null'] } } } as const);
const binary = (mediaTypes: string[]) => ({
  200: { description: `the file (${mediaTypes.join(', ')})`, content: Object.fromEntries(mediaTypes.map((m) => [m, { schema: { type: 'string', format: 'binary' } }])) },
});

const caParam = { type: 'object', required: ['name'], additionalProperties: false, properties: { name: str(80) } } as const;
const certParams = { type: 'object', required: ['ca', 'serial'], additionalProperties: false, properties: { ca: str(80), serial: str(120) } } as const;
const idParam = { type: 'object', required: ['id'], additionalProperties: false, properties: { id: str(100) } } as const;
const limitSchema = { type: 'integer', minimum: 1, maximum: 1000, default: 100 } as const;
const cursorSchema = { type: 'string', maxLength: 2000, description: 'the `next` of the previous page' } as const;

interface CertificateQuery {
  ca?: string; subject?: string; identifier?: string; organization?: string; status?: CertificateStatus; profile?: string;
  expiresBefore?: string; expiresAfter?: string; limit: number; cursor?: string;
}

function isoDate(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new YinxinError('validation-failed', `${field} is not a date (ISO 8601, e.g. 2030-01-31T00:00:00Z)`, { field });
  return new Date(t).toISOString();
}

// ---------------------------------------------------------------- routes

export function actorOf(request: FastifyRequest): Actor {
  const principal = principalOf(request);
  return { actor: actorName(principal), person: principal.username, requestId: request.id };
}

export function sendFile(reply: FastifyReply, type: string, filename: string, content: Uint8Array | string): FastifyReply {
  reply.type(type).header('content-disposition', `attachment; filename="${filename}"`).header('cache-control', 'no-store');
  return reply.send(typeof content === 'string' ? content : Buffer.from(content.buffer, content.byteOffset, content.byteLength));
}

export function revocationReason(value: string | number): number {
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  if (!Object.hasOwn(revocationReasons, value)) {
    throw new YinxinError('validation-failed', `"${value}" is not an RFC 5280 revocation reason (${Object.keys(revocationReasons).join(', ')})`, { field: 'reason' });
  }
  return revocationReasons[value as keyof typeof revocationReasons];
}

export async function caApiRoutes(app: FastifyInstance, opts: CaApiRoutesOptions): Promise<void> {
  const { authority, ra, crls } = opts;
  // JSON only: a text/plain body is a wrong media type here (415), not a string to validate.
  app.removeContentTypeParser('text/plain');

  // ------------------------------------------------------------ CAs

  app.get('/api/v1/cas', {
    config: { permission: 'ca:read' },
    schema: { tags: ['ca'], summary: 'The CA hierarchy', response: { 200: { type: 'object', properties: { items: { type: 'array', items: authoritySchema } } } } },
  }, async () => ({ items: authority.listAuthorities().map(authorityView) }));

  app.get<{ Params: { name: string } }>('/api/v1/cas/:name', {
    config: { permission: 'ca:read' },
    schema: { tags: ['ca'], summary: 'One CA, with its certificate (PEM)', params: caParam, response: { 200: authoritySchema } },
  }, async (req) => authorityView(authority.getAuthority(req.params.name)));

  app.post<{ Body: { name: string; parent?: string; subject?: string | Subject; key?: KeySpecName; validityDays?: number } }>('/api/v1/cas', {
    config: { permission: 'ca:manage' },
    schema: {
      tags: ['ca'], summary: 'Create an issuing CA under an existing CA (its key is generated in the HSM)',
      body: {
        type: 'object', required: ['name'], additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 63 }, parent: { type: 'string', maxLength: 63, default: 'root' },
          subject: subjectInputSchema, key: { ...keySpecSchema, default: 'ec-p256' },
          validityDays: { type: 'integer', minimum: 1, maximum: 36_500, default: 5 * 365 },
        },
      },
      response: { 201: authoritySchema },
    },
  }, async (req, reply) => {
    const b = req.body;
    const subject = subjectInput(b.subject) ?? [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: `yinxin ${b.name} CA` }];
    const record = await authority.createIssuingCa({ name: b.name, subject, spec: KEY_SPECS[b.key ?? 'ec-p256'], validityDays: b.validityDays ?? 5 * 365 }, b.parent ?? 'root', actorOf(req));
    return reply.code(201).send(authorityView(record));
  });

  app.get<{ Params: { name: string } }>('/api/v1/cas/:name/crls', {
    config: { permission: 'ca:read' },
    schema: { tags: ['crl'], summary: 'The current full and delta CRL of a CA (numbers, dates, entries)', params: caParam, response: { 200: { type: 'object', properties: { full: crlSchema, delta: crlSchema } } } },
  }, async (req) => {
    authority.getAuthority(req.params.name);
    return { full: crlView(crls.current(req.params.name, 'full')), delta: crlView(crls.current(req.params.name, 'delta')) };
  });

  app.post<{ Params: { name: string } }>('/api/v1/cas/:name/crls', {
    config: { permission: 'ca:manage' },
    schema: { tags: ['crl'], summary: 'Publish a new full and delta CRL now', params: caParam, response: { 200: { type: 'object', properties: { full: crlSchema, delta: crlSchema } } } },
  }, async (req) => {
    authority.getAuthority(req.params.name);
    const { full, delta } = await crls.publish(req.params.name);
    req.log.info({ ca: req.params.name, number: full.number, actor: actorOf(req).actor }, 'CRL published on request');
    return { full: crlView(full), delta: crlView(delta) };
  });

  app.get('/api/v1/profiles', {
    config: { permission: 'ca:read' },
    schema: { tags: ['ca'], summary: 'Certificate profiles (what each kind of certificate says and requires)' },
  }, async () => ({
    items: Object.values(profiles).filter((p) => !p.service).map((p) => ({
      name: p.name, description: p.description, validityDays: p.validityDays, approvers: p.approvers, keySource: p.keySource,
      subject: p.subject, san: p.san, keys: p.keys, pair: p.pair,
    })),
  }));

  // ------------------------------------------------------------ certificate requests

  type SubmitBody = {
    ca: string; profile: string; csr?: string; generateKey?: KeySpecName; subject?: string | Subject; san?: SubjectAltNames;
    encryption?: { csr?: string; generateKey?: KeySpecName };
  };
  app.post<{ Body: SubmitBody }>('/api/v1/requests', {
    config: { permission: 'certificates:request' },
    schema: {
      tags: ['requests'], summary: 'Submit a certificate request: a PKCS#10 CSR, or a key generated here on the subject\'s behalf',
      body: {
        type: 'object', required: ['ca', 'profile'], additionalProperties: false,
        properties: {
          ca: str(80), profile: str(80), csr: csrSchema, generateKey: keySpecSchema, subject: subjectInputSchema, san: sanSchema,
          encryption: { type: 'object', additionalProperties: false, properties: { csr: csrSchema, generateKey: keySpecSchema } },
        },
      },
      response: { 201: requestSchema },
    },
  }, async (req, reply) => {
    const b = req.body;
    const record = await ra.submit({
      ca: b.ca, profile: b.profile,
      ...(b.csr !== undefined ? { csr: csrBytes(b.csr) } : {}),
      ...(b.generateKey !== undefined ? { generateKey: KEY_SPECS[b.generateKey] } : {}),
      ...(b.subject !== undefined ? { subject: subjectInput(b.subject) } : {}),
      ...(b.san !== undefined ? { san: b.san } : {}),
      ...(b.encryption ? {
        encryption: {
          ...(b.encryption.csr !== undefined ? { csr: csrBytes(b.encryption.csr, 'encryption.csr') } : {}),
          ...(b.encryption.generateKey !== undefined ? { generateKey: KEY_SPECS[b.encryption.generateKey] } : {}),
        },
      } : {}),
    }, actorOf(req));
    return reply.code(201).header('location', `/api/v1/requests/${record.id}`).send(requestView(record));
  });

  app.get<{ Querystring: { status?: CertificateRequestRecord['status']; requester?: string; ca?: string; profile?: string; limit: number; cursor?: string } }>('/api/v1/requests', {
    config: { permission: 'certificates:read' },
    schema: {
      tags: ['requests'], summary: 'Certificate requests, filtered and paged',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { status: { type: 'string', enum: ['pending', 'issued', 'rejected'] }, requester: str(200), ca: str(80), profile: str(80), limit: limitSchema, cursor: cursorSchema },
      },
      response: { 200: page(requestSchema) },
    },
  }, async (req) => {
    const q = req.query;
    const { items, next } = pageOf(ra.requests, 'requests', {}, q.cursor, q.limit, (_key, r) =>
      (q.status === undefined || r.status === q.status) && (q.requester === undefined || r.requester === q.requester)
      && (q.ca === undefined || r.ca === q.ca) && (q.profile === undefined || r.profile === q.profile) ? r : undefined);
    return { items: items.map(requestView), next };
  });

  app.get<{ Params: { id: string } }>('/api/v1/requests/:id', {
    config: { permission: 'certificates:read' },
    schema: { tags: ['requests'], summary: 'One certificate request', params: idParam, response: { 200: requestSchema } },
  }, async (req) => requestView(ra.getRequest(req.params.id)));

  app.post<{ Params: { id: string } }>('/api/v1/requests/:id/approve', {
    config: { permission: 'certificates:approve' },
    schema: {
      tags: ['requests'],
      summary: 'Approve (by an officer other than the requester); the last approval the profile needs issues the certificate(s). ' +
        'When keys were generated here the response carries the one-time PKCS#12 password, once.',
      params: idParam,
      response: {
        200: {
          type: 'object',
          properties: {
            request: requestSchema, certificates: { type: 'array', items: certificateSchema },
            oneTimePassword: { type: 'string' }, pkcs12: { type: 'array', items: { type: 'object', properties: { role: { type: 'string' }, href: { type: 'string' } } } },
          },
        },
      },
    },
  }, async (req) => {
    const result = await ra.approve(req.params.id, actorOf(req));
    const roles: string[] = [];
    if (result.oneTimePassword) {
      if (result.request.key.source === 'generate') roles.push('certificate');
      if (result.request.encryption?.key.source === 'generate') roles.push('encryption');
    }
    return {
      request: requestView(result.request),
      certificates: result.certificates?.map(certificateView),
      oneTimePassword: result.oneTimePassword,
      pkcs12: roles.length ? roles.map((role) => ({ role, href: `/api/v1/requests/${result.request.id}/pkcs12${role === 'certificate' ? '' : `?role=${role}`}` })) : undefined,
    };
  });

  app.post<{ Params: { id: string }; Body: { reason: string } }>('/api/v1/requests/:id/reject', {
    config: { permission: 'certificates:approve' },
    schema: {
      tags: ['requests'], summary: 'Reject a pending request', params: idParam,
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } } },
      response: { 200: requestSchema },
    },
  }, async (req) => requestView(await ra.reject(req.params.id, req.body.reason, actorOf(req))));

  app.post<{ Params: { id: string }; Querystring: { role: 'certificate' | 'encryption' } }>('/api/v1/requests/:id/pkcs12', {
    config: { permission: 'certificates:request' },
    schema: {
      tags: ['requests'],
      summary: 'Collect the PKCS#12 of a key generated here (once: it is deleted as it is handed out). Password: the approval\'s oneTimePassword',
      params: idParam,
      querystring: { type: 'object', additionalProperties: false, properties: { role: { type: 'string', enum: ['certificate', 'encryption'], default: 'certificate' } } },
      response: binary([PKCS12_MEDIA_TYPE]),
    },
  }, async (req, reply) => {
    const p12 = await ra.collectPkcs12(req.params.id, req.query.role ?? 'certificate', actorOf(req));
    return sendFile(reply, PKCS12_MEDIA_TYPE, `${req.params.id}${req.query.role === 'encryption' ? '-encryption' : ''}.p12`, p12);
  });

  // ------------------------------------------------------------ certificates

  app.get<{ Querystring: CertificateQuery }>('/api/v1/certificates', {
    config: { permission: 'certificates:read' },
    schema: {
      tags: ['certificates'],
      summary: 'Search certificates by subject (common name prefix), identifier (citizen ID / credit code), organization, status, profile or expiry; paged',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          ca: str(80), subject: { type: 'string', minLength: 1, maxLength: 200 }, identifier: str(64), organization: str(200),
          status: { type: 'string', enum: ['good', 'revoked', 'hold'] }, profile: str(80),
          expiresBefore: str(40), expiresAfter: str(40), limit: limitSchema, cursor: cursorSchema,
        },
      },
      response: { 200: page(certificateSchema) },
    },
  }, async (req) => {
    const { cursor, expiresBefore, expiresAfter, ...rest } = req.query;
    const q: SearchQuery = { ...rest };
    const before = isoDate(expiresBefore, 'expiresBefore');
    const after = isoDate(expiresAfter, 'expiresAfter');
    if (before !== undefined) q.expiresBefore = new Date(before);
    if (after !== undefined) q.expiresAfter = new Date(after);
    if (q.ca !== undefined) authority.getAuthority(q.ca);
    const { items, next } = authority.searchPage(q, cursor);
    return { items: items.map(certificateView), next };
  });

  function mustGet(ca: string, serial: string): CertificateRecord {
    authority.getAuthority(ca);
    const s = normalizeSerial(serial);
    const r = authority.get(ca, s);
    if (!r) throw new YinxinError('not-found', `CA "${ca}" has issued no certificate with serial ${s}`, { ca, serial: s });
    return r;
  }

  app.get<{ Params: { ca: string; serial: string } }>('/api/v1/certificates/:ca/:serial', {
    config: { permission: 'certificates:read' },
    schema: { tags: ['certificates'], summary: 'One certificate (serial in hex, colons allowed)', params: certParams, response: { 200: certificateSchema } },
  }, async (req) => certificateView(mustGet(req.params.ca, req.params.serial)));

  app.get<{ Params: { ca: string; serial: string }; Querystring: { format: 'pem' | 'der' | 'chain' } }>('/api/v1/certificates/:ca/:serial/download', {
    config: { permission: 'certificates:read' },
    schema: {
      tags: ['certificates'], summary: 'Download: pem (application/x-pem-file), der (application/pkix-cert), chain (application/pem-certificate-chain, up to the root)',
      params: certParams,
      querystring: { type: 'object', additionalProperties: false, properties: { format: { type: 'string', enum: ['pem', 'der', 'chain'], default: 'pem' } } },
      response: binary([PEM_MEDIA_TYPE, 'application/pkix-cert', PEM_CHAIN_MEDIA_TYPE]),
    },
  }, async (req, reply) => {
    const format = req.query.format ?? 'pem';
    const serial = normalizeSerial(req.params.serial);
    const { contentType, body } = authority.download(req.params.ca, serial, format);
    const type = format === 'chain' ? PEM_CHAIN_MEDIA_TYPE : contentType;
    return sendFile(reply, type, `${serial}${format === 'der' ? '.cer' : format === 'chain' ? '-chain.pem' : '.pem'}`, body);
  });

  app.post<{ Params: { ca: string; serial: string }; Body: { reason: string | number; invalidityDate?: string } }>('/api/v1/certificates/:ca/:serial/revoke', {
    config: { permission: 'certificates:revoke' },
    schema: {
      tags: ['certificates'], summary: 'Revoke with an RFC 5280 reason (name or code) and an optional invalidity date (RFC 5280 s5.3.2)',
      params: certParams,
      body: {
        type: 'object', required: ['reason'], additionalProperties: false,
        properties: {
          reason: { anyOf: [{ type: 'string', maxLength: 40 }, { type: 'integer' }], description: Object.keys(revocationReasons).filter((r) => r !== 'certificateHold' && r !== 'removeFromCRL').join(', ') },
          invalidityDate: str(40),
        },
      },
      response: { 200: certificateSchema },
    },
  }, async (req) => {
    const invalidityDate = isoDate(req.body.invalidityDate, 'invalidityDate');
    const record = await authority.revoke({
      ca: req.params.ca, serial: req.params.serial, reason: revocationReason(req.body.reason),
      ...(invalidityDate ? { invalidityDate: new Date(invalidityDate) } : {}),
    }, actorOf(req));
    return certificateView(record);
  });

  app.post<{ Params: { ca: string; serial: string } }>('/api/v1/certificates/:ca/:serial/suspend', {
    config: { permission: 'certificates:revoke' },
    schema: { tags: ['certificates'], summary: 'Suspend (certificateHold: listed on the CRL until released)', params: certParams, response: { 200: certificateSchema } },
  }, async (req) => certificateView(await authority.suspend({ ca: req.params.ca, serial: req.params.serial }, actorOf(req))));

  app.post<{ Params: { ca: string; serial: string } }>('/api/v1/certificates/:ca/:serial/release', {
    config: { permission: 'certificates:revoke' },
    schema: { tags: ['certificates'], summary: 'Release a suspended certificate', params: certParams, response: { 200: certificateSchema } },
  }, async (req) => certificateView(await authority.release({ ca: req.params.ca, serial: req.params.serial }, actorOf(req))));

  app.post<{ Params: { ca: string; serial: string } }>('/api/v1/certificates/:ca/:serial/renew', {
    config: { permission: 'certificates:request' },
    schema: { tags: ['certificates'], summary: 'Request a renewal (same subject and key, new validity); approved like a new request', params: certParams, response: { 201: requestSchema } },
  }, async (req, reply) => {
    mustGet(req.params.ca, req.params.serial);
    const record = await ra.renew({ ca: req.params.ca, serial: normalizeSerial(req.params.serial) }, actorOf(req));
    return reply.code(201).header('location', `/api/v1/requests/${record.id}`).send(requestView(record));
  });

  app.post<{ Params: { ca: string; serial: string }; Body: { csr: string } }>('/api/v1/certificates/:ca/:serial/rekey', {
    config: { permission: 'certificates:request' },
    schema: {
      tags: ['certificates'], summary: 'Request a re-key: same subject, the new key of a CSR', params: certParams,
      body: { type: 'object', required: ['csr'], additionalProperties: false, properties: { csr: csrSchema } },
      response: { 201: requestSchema },
    },
  }, async (req, reply) => {
    mustGet(req.params.ca, req.params.serial);
    const record = await ra.rekey({ ca: req.params.ca, serial: normalizeSerial(req.params.serial), csr: csrBytes(req.body.csr) }, actorOf(req));
    return reply.code(201).header('location', `/api/v1/requests/${record.id}`).send(requestView(record));
  });

  // ------------------------------------------------------------ key recovery (two officers)

  app.post<{ Params: { ca: string; serial: string }; Body: { reason: string } }>('/api/v1/certificates/:ca/:serial/key-recovery', {
    config: { permission: 'keys:recover' },
    schema: {
      tags: ['key recovery'], summary: 'Ask to recover an archived encryption key (a second officer approves)', params: certParams,
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } } },
      response: { 201: recoverySchema },
    },
  }, async (req, reply) => {
    mustGet(req.params.ca, req.params.serial);
    const record = await ra.requestKeyRecovery({ ca: req.params.ca, serial: normalizeSerial(req.params.serial), reason: req.body.reason }, actorOf(req));
    return reply.code(201).header('location', `/api/v1/key-recoveries/${record.id}`).send(record);
  });

  app.get<{ Querystring: { status?: KeyRecoveryRecord['status']; limit: number; cursor?: string } }>('/api/v1/key-recoveries', {
    config: { permission: 'certificates:read' },
    schema: {
      tags: ['key recovery'], summary: 'Key recovery requests, paged',
      querystring: { type: 'object', additionalProperties: false, properties: { status: { type: 'string', enum: ['pending', 'completed'] }, limit: limitSchema, cursor: cursorSchema } },
      response: { 200: page(recoverySchema) },
    },
  }, async (req) => pageOf(ra.recoveries, 'recoveries', {}, req.query.cursor, req.query.limit, (_k, r) => (req.query.status === undefined || r.status === req.query.status ? r : undefined)));

  app.get<{ Params: { id: string } }>('/api/v1/key-recoveries/:id', {
    config: { permission: 'certificates:read' },
    schema: { tags: ['key recovery'], summary: 'One key recovery request', params: idParam, response: { 200: recoverySchema } },
  }, async (req) => {
    const r = ra.recoveries.get(req.params.id);
    if (!r) throw new YinxinError('not-found', `no key recovery with id ${req.params.id}`, { recovery: req.params.id });
    return r;
  });

  app.post<{ Params: { id: string } }>('/api/v1/key-recoveries/:id/approve', {
    config: { permission: 'keys:recover' },
    schema: {
      tags: ['key recovery'], summary: 'Second officer approves: the key is handed out once as a PKCS#12 under the one-time password returned here',
      params: idParam,
      response: { 200: { type: 'object', properties: { recovery: recoverySchema, oneTimePassword: { type: 'string' }, pkcs12: { type: 'string' } } } },
    },
  }, async (req) => {
    const { recovery, oneTimePassword } = await ra.approveKeyRecovery(req.params.id, actorOf(req));
    return { recovery, oneTimePassword, pkcs12: `/api/v1/key-recoveries/${recovery.id}/pkcs12` };
  });

  app.post<{ Params: { id: string } }>('/api/v1/key-recoveries/:id/pkcs12', {
    config: { permission: 'keys:recover' },
    schema: { tags: ['key recovery'], summary: 'Collect the recovered key as PKCS#12 (once)', params: idParam, response: binary([PKCS12_MEDIA_TYPE]) },
  }, async (req, reply) => {
    const p12 = await ra.collectPkcs12(req.params.id, 'recovery', actorOf(req));
    return sendFile(reply, PKCS12_MEDIA_TYPE, `${req.params.id}.p12`, p12);
  });
}
