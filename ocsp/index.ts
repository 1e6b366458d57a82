/** The OCSP responder (RFC 6960 / RFC 5019) for public-key and attribute certificates: what the rest of yinxin may use. */
export { OcspResponder, prewarmInBackground, RESPONDER_TABLES, type OcspAnswer, type OcspResponderDeps, type OcspResponderOptions, type OcspResponderStats, type StatusRecord } from './responder.ts';
export { ocspRoutes, decodeGetRequest, OCSP_REQUEST, OCSP_RESPONSE, type OcspRoutesOptions } from './routes.ts';
export { ensureOcspSigners, loadOcspSigners, reloadOcspSignersEvery, ocspKeyLabel, OCSP_SIGNERS_TABLE, type EnsureOcspSignersInput, type OcspSignerRecord } from './signers.ts';
export { startStandaloneResponder, type StandaloneResponder, type StandaloneResponderOptions } from './standalone.ts';
export { ResponseWriter, type OcspSigner, type SingleStatus } from './response.ts';
export { parseOcspRequest, OCSP_OID, CERT_ID_HASHES, type ParsedOcspRequest, type RequestedCertId } from './request.ts';
export { OcspResponseStatus, responseStatusFor, errorResponse, type OcspResponseStatusName } from './status.ts';
