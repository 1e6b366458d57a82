/**
 * A seal's uses: one row per use in seal.usage (who, which document digest, when), the seal's
 * counts in seal.stats, and an audit record per use, written by the store's committer
 * (store/committer.ts) in the transaction that also records the use's time-stamp token when both
 * are asked for in the same turn (seal/registry.ts). Kept apart from the registry so the commit
 * thread loads only this.
 */
import { recordWriter } from '../store/committer.ts';

export const USAGE_TABLE = 'seal.usage';
export const STATS_TABLE = 'seal.stats';

export interface UsageRecord {
  actor: string;
  kind: 'pdf' | 'file';
  /** Hex digest of what was signed (the PDF byte ranges, or the file) and its algorithm. */
  documentDigest: string;
  hash: string;
  time: string;
  /** Set when the seal failed after its use was recorded: the error code (e.g. time-not-available). */
  failed?: string;
}

/** seal.usage key: seal id, ISO time, row number. */
export type UsageKey = [string, string, number];

export interface SealStats {
  /** Seals made (failed ones not counted). */
  uses: number;
  pdf: number;
  file: number;
  /** Uses recorded whose seal then failed (HSM, TSA, B-LT validation data). */
  failed?: number;
  firstUse?: string;
  lastUse?: string;
}

/** A use to record: its row, plus the seal and the request it belongs to. */
export interface SealUse extends UsageRecord {
  seal: string;
  requestId?: string;
}

export interface RecordedUse {
  key: UsageKey;
  record: UsageRecord;
}

/** The use's row in seal.usage, from the row number its transaction gave it. */
export function recordedUse({ seal, requestId: _requestId, ...record }: SealUse, row: number): RecordedUse {
  return { key: [seal, record.time, row], record };
}

/** What a `seal.use` audit record lists of each use (details.uses). */
export interface AuditedUse {
  kind: 'pdf' | 'file';
  documentDigest: string;
  hash: string;
  time: string;
  requestId?: string;
}

/** A use as its audit record lists it (the request id only when there is one). */
export function auditedUse({ kind, documentDigest, hash, time }: UsageRecord, requestId?: string): AuditedUse {
  return requestId === undefined ? { kind, documentDigest, hash, time } : { kind, documentDigest, hash, time, requestId };
}

/**
 * Writes a transaction's uses: each seal's counts are read and written once for all its uses, and
 * one `seal.use` audit record per seal and actor lists the uses (details.uses: kind, document
 * digest, hash, time, request id), as the TSA audits a commit's tokens in one record. Every use is
 * still audited (who, which document, when, and its row in seal.usage) without an audit record
 * of its own: at load, those cost as much as the rest of a use's record put together. The result
 * is the use's row number (UsageKey[2]): the caller has the rest of the row (recordedUse), and
 * the commit thread sends back a number instead of a copy of the row.
 */
export const sealUses = recordWriter<SealUse, number>(import.meta.url, 'sealUses', ({ store, audit }) => {
  const usage = store.table<UsageRecord>(USAGE_TABLE);
  const stats = store.table<SealStats>(STATS_TABLE);
  return (tx, uses) => {
    const counts = new Map<string, SealStats>();
    const audited = new Map<string, { seal: string; actor: string; uses: AuditedUse[] }>();
    const rows = uses.map((use): number => {
      const { seal, kind, time, actor } = use;
      const before = counts.get(seal) ?? tx.get(stats, seal) ?? { uses: 0, pdf: 0, file: 0 };
      const next: SealStats = { ...before, uses: before.uses + 1, [kind]: before[kind] + 1, lastUse: time, firstUse: before.firstUse ?? time };
      counts.set(seal, next);
      // Row numbers count failed uses too, so that taking one out of `uses` never frees its number.
      const row = next.uses + (next.failed ?? 0);
      const { key, record } = recordedUse(use, row);
      tx.put(usage, key, record);
      const group = `${seal}\0${actor}`;
      const entry = audited.get(group) ?? audited.set(group, { seal, actor, uses: [] }).get(group)!;
      entry.uses.push(auditedUse(record, use.requestId));
      return row;
    });
    for (const [seal, next] of counts) tx.put(stats, seal, next);
    for (const { seal, actor, uses: list } of audited.values()) {
      audit?.append(tx, { actor, action: 'seal.use', object: `seal:${seal}`, outcome: 'success', requestId: list.length === 1 ? list[0].requestId : undefined,
        details: { count: list.length, uses: list } });
    }
    return rows;
  };
});
