/**
 * OCSPResponseStatus (RFC 6960 s4.2.1) and the one place where yinxin's error codes become one.
 * Every failure the responder can meet is a YinxinError with a code from common/errors.ts; this
 * table decides what the relying party sees. Anything unforeseen is internalError, never a crash.
 */
import * as asn1js from 'asn1js';
import { isYinxinError, type ErrorCode } from '../common/errors.ts';

export const OcspResponseStatus = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  // 4 is not used
  sigRequired: 5,
  unauthorized: 6,
} as const;

export type OcspResponseStatusName = keyof typeof OcspResponseStatus;
export type OcspResponseStatusCode = (typeof OcspResponseStatus)[OcspResponseStatusName];

/**
 * Error code -> OCSPResponseStatus.
 *  - anything wrong with the request's bytes or content (bad DER, too many CertIDs, a hash
 *    algorithm we do not take, a nonce of the wrong length, an unknown critical extension):
 *    malformedRequest;
 *  - an issuer that is not one of ours (RFC 5019 s2.2.3), a request signature that does not
 *    verify: unauthorized;
 *  - no signature where one is required: sigRequired;
 *  - HSM or store momentarily gone: tryLater;
 *  - the rest: internalError.
 */
const statusByCode: Partial<Record<ErrorCode, OcspResponseStatusName>> = {
  'bad-request': 'malformedRequest',
  'malformed-der': 'malformedRequest',
  'validation-failed': 'malformedRequest',
  'payload-too-large': 'malformedRequest',
  'unsupported-algorithm': 'malformedRequest',
  'unknown-issuer': 'unauthorized',
  'forbidden': 'unauthorized',
  'bad-signature': 'unauthorized',
  'already-revoked': 'unauthorized',
  'unauthenticated': 'sigRequired',
  'hsm-unavailable': 'tryLater',
  'hsm-login-failed': 'tryLater',
  'store-unavailable': 'tryLater',
  'time-not-available': 'tryLater',
};

export function responseStatusFor(error: unknown): OcspResponseStatusName {
  if (isYinxinError(error)) return statusByCode[error.code] ?? 'internalError';
  return 'internalError';
}

const errorResponses = new Map<OcspResponseStatusName, Uint8Array>();

/** OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED } — no responseBytes for an error (s4.2.1). */
export function errorResponse(status: Exclude<OcspResponseStatusName, 'successful'>): Uint8Array {
  let der = errorResponses.get(status);
  if (!der) {
    der = new Uint8Array(new asn1js.Sequence({ value: [new asn1js.Enumerated({ value: OcspResponseStatus[status] })] }).toBER(false));
    errorResponses.set(status, der);
  }
  return der;
}
