/**
 * Typed errors with stable codes. Every failure a user can see is a YinxinError whose `code`
 * is one of the catalog below; the wire mappings live in one place per protocol:
 *   HTTP problem JSON  -> common/problem.ts (uses `status` and `title` here)
 *   OCSPResponseStatus -> ocsp/ (maps codes to malformedRequest, unauthorized, ...)
 *   PKIStatus/failInfo -> tsa/ (maps codes to badAlg, badRequest, ...)
 * Codes never change meaning once released; docs/errors.md documents each (a test checks it).
 */
export const errorCatalog = {
  // generic request problems
  'bad-request': { status: 400, title: 'The request is invalid' },
  'malformed-der': { status: 400, title: 'The DER/PEM structure could not be parsed' },
  'unsupported-media-type': { status: 415, title: 'Wrong Content-Type for this endpoint' },
  'payload-too-large': { status: 413, title: 'The request body is larger than allowed' },
  'not-found': { status: 404, title: 'No such object' },
  'conflict': { status: 409, title: 'The object is not in a state that allows this' },
  'validation-failed': { status: 422, title: 'A field failed validation' },
  // authentication and authorization
  'unauthenticated': { status: 401, title: 'Authentication is required' },
  'invalid-credentials': { status: 401, title: 'Wrong user name or password' },
  'password-change-required': { status: 403, title: 'The password must be changed before any other use' },
  'forbidden': { status: 403, title: 'Your role does not allow this operation' },
  'separation-of-duties': { status: 403, title: 'The same person may not both request and approve' },
  // crypto and PKI
  'unsupported-algorithm': { status: 400, title: 'The algorithm or key type is not supported' },
  'bad-signature': { status: 400, title: 'A signature did not verify' },
  'unknown-issuer': { status: 404, title: 'The issuer is not a CA of this appliance' },
  'ca-expired': { status: 409, title: 'The issuing CA certificate has expired' },
  'policy-violation': { status: 422, title: 'The request violates the certificate profile' },
  'already-revoked': { status: 409, title: 'The certificate is already revoked' },
  // time stamping
  'unaccepted-policy': { status: 400, title: 'The requested TSA policy is not accepted' },
  'unaccepted-extension': { status: 400, title: 'The request carries an extension the TSA does not understand' },
  'time-not-available': { status: 503, title: 'The time source is not trustworthy right now' },
  // electronic seals
  'validation-data-unavailable': { status: 503, title: 'OCSP or CRL data for a long-term (B-LT) seal could not be obtained' },
  // HSM, store and configuration
  'hsm-unavailable': { status: 503, title: 'The HSM cannot be reached' },
  'hsm-login-failed': { status: 503, title: 'The HSM refused the PIN' },
  'key-not-found': { status: 500, title: 'A key the appliance needs is missing from the HSM' },
  'sealed-secret-invalid': { status: 500, title: 'A secret sealed under an HSM key failed its integrity check' },
  'store-unavailable': { status: 503, title: 'The data store cannot be opened' },
  'config-invalid': { status: 500, title: 'The configuration is invalid' },
  'internal': { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalog;

export class YinxinError extends Error {
  readonly code: ErrorCode;
  /** Machine-readable facts about the failure (field names, the bad character's position, ...). Shown to the client. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'YinxinError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorCatalog[this.code].status;
  }
}

export function isYinxinError(e: unknown, code?: ErrorCode): e is YinxinError {
  return e instanceof YinxinError && (code === undefined || e.code === code);
}
