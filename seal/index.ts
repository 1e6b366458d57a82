/** The seal service's public surface. */
export { addArchiveTimeStamp, type ArchiveTimeStampInput, type ArchiveTimeStampResult } from './archive.ts';
export { sealFileCades, type CadesInput } from './cades.ts';
export { buildSignedData, CMS_OID, type SealCredential, type TimeStamper } from './cms.ts';
export { PADES_LEVELS, sealPdf, type PadesInput, type PadesLevel, type PadesResult, type SealImage, type SealPlacement } from './pades.ts';
export { applianceValidationData, type ValidationDataSource } from './ltv.ts';
export { PdfDocument } from './pdf.ts';
export { SEAL_KINDS, SealRegistry, type SealKind, type SealRecord, type SealRegistryOptions, type SealState, type SealUser, type SealView } from './registry.ts';
export { sealApiRoutes, sealPublicRoutes, type SealRoutesOptions } from './routes.ts';
export { caStatusLookup, verifyDetached, verifyPdf, type DocumentTimestampReport, type SealVerifyOptions, type SignatureReport, type VerificationReport } from './verify.ts';
