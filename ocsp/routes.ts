/**
 * OCSP over HTTP (RFC 6960 Appendix A, RFC 5019 s5 and s6), as an encapsulated fastify plugin:
 *
 *   POST /ocsp            body application/ocsp-request -> application/ocsp-response
 *   GET  /ocsp/{base64}   the DER request, base64 then URL-encoded (a '/' of the base64 may
 *                         appear as is, RFC 5019 s5) -> application/ocsp-response with
 *                         Cache-Control max-age (until nextUpdate), ETag, Last-Modified (s6.2)
 *
 * Whatever OCSP has a status for (garbage, truncated DER, foreign issuer, unsupported hash,
 * missing or bad request signature) is an OCSPResponse with that status and HTTP 200. What it has
 * none for is an HTTP error with a problem document: a wrong Content-Type is 415 (OCSP defines
 * no answer for it; a client that sent JSON would not understand an OCSPResponse either), a body
 * over the limit 413, a GET path that is not base64 400.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';
import { YinxinError } from '../common/errors.ts';
import { sendProblem } from '../common/problem.ts';
import type { OcspAnswer, OcspResponder } from './responder.ts';

export const OCSP_REQUEST = 'application/ocsp-request';
export const OCSP_RESPONSE = 'application/ocsp-response';

export interface OcspRoutesOptions {
  responder: OcspResponder;
  /** Largest POST body (default 16 KiB: a one-CertID request is ~80 octets, a signed one a few KiB). */
  bodyLimit?: number;
  /** Longest GET path accepted (default 4 KiB). */
  maxGetLength?: number;
}

const WRONG_TYPE = Symbol('wrong media type');

function send(reply: FastifyReply, answer: OcspAnswer, cacheable: boolean): FastifyReply {
  setHeaders(reply, answer, cacheable);
  return reply.send(Buffer.from(answer.der.buffer, answer.der.byteOffset, answer.der.byteLength));
}

function setHeaders(reply: FastifyReply, answer: OcspAnswer, cacheable: boolean): void {
  reply.type(OCSP_RESPONSE);
  if (cacheable && answer.cache) {
    const c = answer.cache;
    const maxAge = Math.max(0, Math.floor((c.nextUpdate.getTime() - Date.now()) / 1000));
    reply.header('cache-control', `max-age=${maxAge}, public, no-transform, must-revalidate`);
    reply.header('etag', `"${c.etag}"`);
    reply.header('last-modified', c.thisUpdate.toUTCString());
    reply.header('expires', c.nextUpdate.toUTCString());
  } else {
    reply.header('cache-control', 'no-store');
  }
}

/** The DER request from a GET path after /ocsp/: percent-decoded, then base64 (standard or URL-safe). */
export function decodeGetRequest(path: string): Uint8Array {
  let text: string;
  try {
    text = decodeURIComponent(path);
  } catch {
    throw new YinxinError('bad-request', 'the OCSP GET path is not valid percent-encoding');
  }
  // Some clients let '+' become a space on the way.
  text = text.replace(/ /g, '+');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) throw new YinxinError('bad-request', 'the OCSP GET path is not base64');
  return new Uint8Array(Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64'));
}

export const ocspRoutes: FastifyPluginAsync<OcspRoutesOptions> = async (app: FastifyInstance, options) => {
  const bodyLimit = options.bodyLimit ?? 16 * 1024;
  const maxGetLength = options.maxGetLength ?? 4096;
  const { responder } = options;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(OCSP_REQUEST, { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));
  // Any other type: read nothing, let the handler answer 415 with a problem document.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, WRONG_TYPE));
  app.setErrorHandler((error, request, reply) => sendProblem(reply, error, request));

  // Not an async handler: a request answered from the pre-signed cache is sent without a promise.
  app.post('/ocsp', { bodyLimit }, (request, reply) => {
    const body = request.body;
    // Only the OCSP_REQUEST parser yields a Buffer; any other media type got WRONG_TYPE.
    if (!Buffer.isBuffer(body)) {
      const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      sendProblem(reply, new YinxinError('unsupported-media-type', `POST /ocsp takes ${OCSP_REQUEST}, not ${type || 'a body without Content-Type'}`), request);
      return undefined;
    }
    const cached = responder.answerFromCache(body);
    if (cached) {
      send(reply, cached, false);
      return undefined;
    }
    return responder.answer(body).then((answer) => send(reply, answer, false));
  });

  // GET /ocsp with no request in the path: an empty, hence malformed, request.
  app.get('/ocsp', async (_request, reply) => send(reply, await responder.answer(new Uint8Array(0)), false));

  app.get('/ocsp/*', async (request, reply) => {
    const raw = request.url;
    const at = raw.indexOf('/ocsp/');
    let path = raw.slice(at + '/ocsp/'.length);
    const query = path.indexOf('?');
    if (query !== -1) path = path.slice(0, query);
    if (path.length > maxGetLength) throw new YinxinError('payload-too-large', `the OCSP GET path is longer than ${maxGetLength} characters; use POST`);
    const der = decodeGetRequest(path);
    const answer = await responder.answer(der);
    if (answer.cache) {
      const etag = `"${answer.cache.etag}"`;
      if (request.headers['if-none-match'] === etag) {
        setHeaders(reply, answer, true);
        return reply.code(304).send();
      }
    }
    return send(reply, answer, true);
  });
};
