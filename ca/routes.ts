/**
 * The CA's HTTP surface, as two fastify plugins the composition root registers:
 *
 *   caPublicRoutes (public HTTP port, what relying parties fetch; no authentication)
 *     GET /ca/{ca}.crt          the CA certificate, DER, application/pkix-cert (RFC 5280 s4.2.2.1
 *                               caIssuers target; RFC 2585 s4.1 media type)
 *     GET /crl/{ca}.crl         the current full CRL, DER, application/pkix-crl (RFC 2585 s4.2;
 *                               the URL ca/profiles.ts distributionUrls puts in every certificate)
 *     GET /crl/{ca}-delta.crl   the current delta CRL (RFC 5280 s5.2.4)
 *   Both answer with Cache-Control max-age until nextUpdate, ETag, Last-Modified, Expires, and
 *   304 Not Modified on a matching If-None-Match (or If-Modified-Since when no ETag is sent).
 *
 *   caApiRoutes (HTTPS /api/v1, see ca/api-routes.ts)
 */
import type { AttributeAuthority, PublishedAcrl } from './attribute-authority.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { YinxinError } from '../common/errors.ts';
import type { CertificateAuthority } from './authority.ts';
import type { CrlPublisher, PublishedCrl } from './crl-publisher.ts';

export { caApiRoutes, type CaApiRoutesOptions } from './api-routes.ts';

export const PKIX_CERT = 'application/pkix-cert';
export const PKIX_CRL = 'application/pkix-crl';

/** The path of a CA's delta CRL (beside distributionUrls(...).crl, which names the full one). */
export function deltaCrlPath(ca: string): string {
  return `/crl/${encodeURIComponent(ca)}-delta.crl`;
}

export interface CaPublicRoutesOptions {
  authority: CertificateAuthority;
  crls: CrlPublisher;
  /** Serves each attribute authority's ACRL at /crl/{aa}.crl too (RFC 5755 s6). */
  attributes?: AttributeAuthority;
}

/** CA certificates change only when a CA is created: a day of caching is harmless. */
const CA_CERT_MAX_AGE = 86_400;

function isKnownCa(authority: CertificateAuthority, name: string): boolean {
  return authority.listAuthorities().some((a) => a.name === name);
}

/**
 * RFC 9110 s13.1.2 (weak comparison for If-None-Match) and s13.1.3 (If-Modified-Since only when
 * If-None-Match is absent).
 */
export function notModified(request: FastifyRequest, etag: string, lastModified: Date): boolean {
  const inm = request.headers['if-none-match'];
  if (typeof inm === 'string' && inm.trim() !== '') {
    if (inm.trim() === '*') return true;
    const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
    return inm.split(',').some((tag) => opaque(tag) === opaque(etag));
  }
  const ims = request.headers['if-modified-since'];
  if (typeof ims === 'string') {
    const since = Date.parse(ims);
    if (!Number.isNaN(since)) return Math.floor(lastModified.getTime() / 1000) * 1000 <= since;
  }
  return false;
}

function cacheHeaders(reply: FastifyReply, o: { etag: string; lastModified: Date; maxAge: number; expires?: Date }): void {
  reply.header('cache-control', `public, max-age=${Math.max(0, Math.floor(o.maxAge))}, no-transform, must-revalidate`);
  reply.header('etag', o.etag);
  reply.header('last-modified', o.lastModified.toUTCString());
  if (o.expires) reply.header('expires', o.expires.toUTCString());
}

function body(der: Uint8Array): Buffer {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength);
}

const nameParam = {
  type: 'object', required: ['name'], additionalProperties: false,
  properties: { name: { type: 'string', minLength: 1, maxLength: 80 } },
} as const;

export async function caPublicRoutes(app: FastifyInstance, opts: CaPublicRoutesOptions): Promise<void> {
  const { authority, crls } = opts;
  // One on-demand publication per CA at a time (a CRL never published yet, or one past nextUpdate
  // because the schedule is not running): concurrent fetches wait for the same one.
  const publishing = new Map<string, Promise<{ full: PublishedCrl; delta: PublishedCrl }>>();

  async function currentAcrl(aa: string): Promise<PublishedAcrl> {
    const acrl = opts.attributes!.currentCrl(aa);
    if (acrl && authority.clock.now() < new Date(acrl.nextUpdate)) return acrl;
    return opts.attributes!.publishCrl(aa);
  }

  async function currentCrl(ca: string, kind: 'full' | 'delta'): Promise<PublishedCrl> {
    const crl = crls.current(ca, kind);
    if (crl && authority.clock.now() < new Date(crl.nextUpdate)) return crl;
    let run = publishing.get(ca);
    if (!run) {
      run = crls.publish(ca).finally(() => publishing.delete(ca));
      publishing.set(ca, run);
    }
    return (await run)[kind];
  }

  app.get<{ Params: { name: string } }>('/ca/:name.crt', {
    schema: { params: nameParam },
  }, async (request, reply) => {
    const record = authority.getAuthority(request.params.name);
    const etag = `"${record.serial}"`;
    const lastModified = new Date(record.createdAt);
    cacheHeaders(reply, { etag, lastModified, maxAge: CA_CERT_MAX_AGE });
    if (notModified(request, etag, lastModified)) return reply.code(304).send();
    return reply.type(PKIX_CERT).header('content-disposition', `inline; filename="${record.name}.crt"`).send(body(record.certificate));
  });

  app.get<{ Params: { name: string } }>('/crl/:name.crl', {
    schema: { params: nameParam },
  }, async (request, reply) => {
    let ca = request.params.name;
    let kind: 'full' | 'delta' = 'full';
    // "{ca}-delta" is the delta CRL of {ca}, unless a CA is itself named so (CA names may contain '-').
    if (ca.endsWith('-delta') && !isKnownCa(authority, ca) && isKnownCa(authority, ca.slice(0, -'-delta'.length))) {
      ca = ca.slice(0, -'-delta'.length);
      kind = 'delta';
    }
    const aa = kind === 'full' && !isKnownCa(authority, ca) ? opts.attributes?.listAuthorities().find((a) => a.name === ca) : undefined;
    if (!isKnownCa(authority, ca) && !aa) throw new YinxinError('unknown-issuer', `no CA named "${ca}" on this appliance`, { ca });
    const crl = aa ? await currentAcrl(aa.name) : await currentCrl(ca, kind);
    const etag = `"${ca}-${kind}-${crl.number}"`;
    const lastModified = new Date(crl.thisUpdate);
    const nextUpdate = new Date(crl.nextUpdate);
    cacheHeaders(reply, { etag, lastModified, expires: nextUpdate, maxAge: (nextUpdate.getTime() - authority.clock.now().getTime()) / 1000 });
    if (notModified(request, etag, lastModified)) return reply.code(304).send();
    return reply.type(PKIX_CRL).send(body(crl.der));
  });
}
