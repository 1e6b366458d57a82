/**
 * The audit contract. Every state change appends one record in the same store transaction as
 * the change itself (so neither can exist without the other):
 *
 *   await store.transaction((tx) => {
 *     tx.put(certificates, serial, cert);
 *     audit.append(tx, { actor, action: 'certificate.issue', object: `cert:${serial}`, outcome: 'success', requestId });
 *   });
 *
 * Records form a hash chain (each carries the hash of the one before); the chain head is
 * periodically signed with an HSM key, so `yinxin audit verify` finds any altered, removed or
 * reordered record and says where.
 */
import type { Tx } from '../store/store.ts';

export interface AuditInput {
  /** Who: 'operator:alice', 'token:ci-script', 'system', 'user:<sub>', 'client:<id>'. */
  actor: string;
  /** What, as service.verb: 'certificate.issue', 'operator.login', 'tsa.stamp', ... */
  action: string;
  /** On what: 'cert:<ca>/<serial-hex>', 'operator:bob', ... */
  object: string;
  outcome: 'success' | 'failure';
  /** The HTTP request id (or CLI invocation id) that caused it. */
  requestId?: string;
  /** Small, non-secret facts (reason codes, profile names). Never passwords or keys. */
  details?: Record<string, unknown>;
}

export interface AuditRecord extends AuditInput {
  /** 1, 2, 3 ... without gaps. */
  seq: number;
  /** ISO 8601 with milliseconds, from the injected clock. */
  time: string;
  /** Hex SHA-256 of the previous record's canonical form ('' for the first record). */
  prev: string;
  /** Hex SHA-256 of this record's canonical form (all fields above, hash excluded). */
  hash: string;
}

export interface AuditLog {
  /** Appends a record inside the caller's transaction and returns it. */
  append(tx: Tx, input: AuditInput): AuditRecord;
  /** Records in seq order, paged; for auditors only (the API checks the role). */
  list(options?: { fromSeq?: number; limit?: number; actor?: string; action?: string }): AuditRecord[];
}

/** A signed statement of the chain head (seq, hash) at a time: what makes truncation and rewriting detectable. */
export interface AuditCheckpoint {
  seq: number;
  /** The hash of record `seq`. */
  hash: string;
  /** ISO 8601, when the head was signed. */
  time: string;
  signerLabel: string;
  /** The scheme of `signature` (hsm/signer.ts SignatureScheme). */
  scheme: string;
  /** DER SubjectPublicKeyInfo of the key that signed. */
  publicKeyInfo: Uint8Array;
  /** Over the canonical form of { type: 'yinxin-audit-checkpoint/1', seq, hash, time } (audit/audit.ts). */
  signature: Uint8Array;
}

export type AuditProblemKind = 'altered' | 'missing' | 'reordered' | 'bad-checkpoint-signature' | 'truncated';

export interface AuditProblem {
  /** The sequence number where the problem is (the first one of a missing range). */
  seq: number;
  kind: AuditProblemKind;
  message: string;
}

export interface AuditVerification {
  ok: boolean;
  /** Records found in the trail. */
  records: number;
  problems: AuditProblem[];
  /** Signed checkpoints found, and the highest seq one of them covers (0 when none). */
  checkpoints: number;
  lastCheckpointSeq: number;
}
