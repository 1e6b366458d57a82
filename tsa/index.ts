/** The time-stamping authority (RFC 3161 / RFC 5816): what the rest of yinxin may use. */
export { createTimeStampAuthority, type TimeStampAuthority, type TimeStampAuthorityOptions, type TimeStampAuthorityStats } from './authority.ts';
export { TimeGuard, chronySyncCheck, timedatectlSyncCheck, fileSyncCheck, parseSyncReport, type SyncCheck, type SyncReport, type TimeGuardOptions, type TimeGuardState } from './timeguard.ts';
export { tsaRoutes, TIMESTAMP_QUERY, TIMESTAMP_REPLY, type TsaRoutesOptions } from './routes.ts';
export { buildTimeStampQuery, parseTimeStampResponse, verifyTimeStampToken, requestTimeStamp, digestOf, type TimeStampQuery, type TimeStampQueryOptions, type VerifiedTimeStamp, type VerifyOptions, type ParsedTimeStampResponse } from './client.ts';
export { FailInfo, PKIStatus, refusalOf, type FailInfoName } from './failure.ts';
export { TOKENS_TABLE, META_TABLE, type TokenRecord } from './ledger.ts';
export { DEFAULT_TSA_HASHES, TSA_HASHES, type TsaHashName } from './request.ts';
export { tsaMetrics } from './metrics.ts';
export type { Accuracy } from './token.ts';
