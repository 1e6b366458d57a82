/**
 * The one place errors become HTTP problem documents (RFC 9457, application/problem+json).
 * YinxinError codes map through common/errors.ts; fastify's own errors (schema validation,
 * media type, body size) are translated to our codes; anything else is an 'internal' error whose
 * details stay in the log, never in the response.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { errorCatalog, isYinxinError, YinxinError, type ErrorCode } from './errors.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  details?: Record<string, unknown>;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** JSON Schema of a Problem, for OpenAPI documents (routes' `response` entries). */
export const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'code'],
  properties: {
    type: { type: 'string', description: 'urn:yinxin:error:<code>' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string', description: 'stable error code (docs/errors.md)' },
    instance: { type: 'string', description: 'urn:yinxin:request:<request id>' },
    details: { type: 'object', additionalProperties: true },
  },
} as const;

export function problemType(code: ErrorCode): string {
  return `urn:yinxin:error:${code}`;
}

export function toProblem(error: unknown, requestId?: string): Problem {
  const e = asYinxinError(error);
  const entry = errorCatalog[e.code];
  return {
    type: problemType(e.code),
    title: entry.title,
    status: entry.status,
    detail: e.code === 'internal' ? 'An internal error occurred; the request id identifies it in the log.' : e.message,
    code: e.code,
    ...(requestId ? { instance: `urn:yinxin:request:${requestId}` } : {}),
    ...(e.details && e.code !== 'internal' ? { details: e.details } : {}),
  };
}

/** Translates fastify's framework errors into our codes. */
export function asYinxinError(error: unknown): YinxinError {
  if (isYinxinError(error)) return error;
  const fe = error as Partial<FastifyError> & { validation?: unknown[] };
  if (fe && typeof fe === 'object') {
    if (fe.validation) {
      return new YinxinError('bad-request', fe.message ?? 'request validation failed', { validation: fe.validation });
    }
    switch (fe.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return new YinxinError('unsupported-media-type', fe.message ?? 'unsupported media type');
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new YinxinError('payload-too-large', fe.message ?? 'request body too large');
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return new YinxinError('bad-request', fe.message ?? 'bad request body');
    }
    if (fe.statusCode === 400 && fe.message) return new YinxinError('bad-request', fe.message);
    if (fe.statusCode === 404) return new YinxinError('not-found', fe.message ?? 'not found');
    if (fe.statusCode === 415) return new YinxinError('unsupported-media-type', fe.message ?? 'unsupported media type');
    if (fe.statusCode === 413) return new YinxinError('payload-too-large', fe.message ?? 'request body too large');
  }
  return new YinxinError('internal', 'internal error', undefined, { cause: error });
}

export function sendProblem(reply: FastifyReply, error: unknown, request?: FastifyRequest): FastifyReply {
  const problem = toProblem(error, request?.id);
  if (problem.status === 401) reply.header('www-authenticate', 'Bearer realm="yinxin"');
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem);
}
