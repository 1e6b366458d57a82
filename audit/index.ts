export type { AuditCheckpoint, AuditInput, AuditLog, AuditProblem, AuditProblemKind, AuditRecord, AuditVerification } from './types.ts';
export {
  AUDIT_TABLES, canonicalJson, checkpointPayload, createAuditLog, recordHash, verifyAuditTrail,
  type AuditLogOptions, type AuditTrail,
} from './audit.ts';
