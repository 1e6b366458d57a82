/**
 * POST /tsa (RFC 3161 s3.4: application/timestamp-query in, application/timestamp-reply out).
 * An encapsulated fastify plugin: its content-type parsers and error handler stay inside it.
 * Failures RFC 3161 has an answer for (bad DER, algorithm, policy, extension, clock) come back as a
 * TimeStampResp with status rejection and HTTP 200; the ones it has none for (wrong media type,
 * oversize body) are HTTP errors with a problem document.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { YinxinError } from '../common/errors.ts';
import { sendProblem } from '../common/problem.ts';
import type { TimeStampAuthority } from './authority.ts';

export const TIMESTAMP_QUERY = 'application/timestamp-query';
export const TIMESTAMP_REPLY = 'application/timestamp-reply';

export interface TsaRoutesOptions {
  authority: TimeStampAuthority;
  /** Largest accepted body (default 16 KiB; a TimeStampReq is ~60 octets plus any extensions). */
  bodyLimit?: number;
}

const WRONG_TYPE = Symbol('wrong media type');

export const tsaRoutes: FastifyPluginAsync<TsaRoutesOptions> = async (app: FastifyInstance, options) => {
  const bodyLimit = options.bodyLimit ?? 16 * 1024;
  const { authority } = options;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(TIMESTAMP_QUERY, { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));
  // Any other type: read nothing, let the handler answer 415 with a problem document.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, WRONG_TYPE));

  app.setErrorHandler((error, request, reply) => sendProblem(reply, error, request));

  app.post('/tsa', { bodyLimit }, async (request, reply) => {
    const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== TIMESTAMP_QUERY || !Buffer.isBuffer(request.body)) {
      throw new YinxinError('unsupported-media-type', `POST /tsa takes ${TIMESTAMP_QUERY}, not ${type || 'a body without Content-Type'}`);
    }
    const response = await authority.respond(new Uint8Array(request.body.buffer, request.body.byteOffset, request.body.byteLength));
    return reply.type(TIMESTAMP_REPLY).send(Buffer.from(response.buffer, response.byteOffset, response.byteLength));
  });
};
