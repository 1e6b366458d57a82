/**
 * The record of every issued token (tsa.tokens: serial -> time, imprint, policy), so an auditor can
 * prove which tokens exist. A token is returned only after its record is durable.
 *
 * The record is committed while the HSM signs its token (tsa/authority.ts); when the signature
 * fails, void() marks the record so the ledger never claims a token nobody received.
 *
 * Group commit (store/committer.ts): the records of one event-loop task (a worker's batch of
 * signatures resolves many at once), with whatever other services handed over in the same task
 * (a seal's usage record), go into one store transaction, submitted at once even while earlier
 * ones are still being committed: the store queues them behind the commit in flight and writes everything
 * queued meanwhile in its next LMDB transaction, so a burst of N concurrent requests costs a few
 * fsyncs, not N, and no record waits for a commit it is not part of. Each transaction checks its
 * serials are new (compare-and-swap in the serialized write transaction) and moves the genTime
 * high-water mark the time guard reads at start-up.
 *
 * The audit trail gets one record per commit, not per token: it lists the batch's serials and a
 * SHA-256 over their records (recordsDigest), so the hash chain vouches for every row of
 * tsa.tokens without costing the TSA an audit record per token.
 */
import { createHash } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import { InlineCommitter, recordWriter, type Committer } from '../store/committer.ts';
import type { Store, Table } from '../store/store.ts';

export interface TokenRecord {
  /** genTime, ISO 8601 with milliseconds. */
  time: string;
  /** Hex of the hashedMessage. */
  imprint: string;
  hashAlg: string;
  policy: string;
  /** Hex of the nonce's two's-complement octets, when the request had one. */
  nonce?: string;
  /**
   * Set when the token of this record was never sent: the record is committed while the HSM
   * signs, and the signature failed. Why, as the signer said.
   */
  voided?: string;
}

export interface TsaMeta {
  /** The latest genTime ever issued (ISO); a clock earlier than this is not trusted. */
  latestGenTime?: string;
}

export const TOKENS_TABLE = 'tsa.tokens';
export const META_TABLE = 'tsa.meta';

export interface LedgerStats {
  recorded: number;
  /** Store transactions that recorded tokens (records of other services may share them). */
  commits: number;
  /** Records asked for and not yet committed. */
  waiting: number;
}

/** What the TSA needs of its ledger (TokenLedger; a test may give another). */
export interface Ledger {
  latestGenTime(): Date | undefined;
  get(serialHex: string): TokenRecord | undefined;
  record(serialHex: string, record: TokenRecord, genTime: Date): Promise<boolean>;
  void(serialHex: string, reason: string): Promise<void>;
  stats(): LedgerStats;
  close?(): Promise<void>;
}

interface TokenEntry {
  serial: string;
  record: TokenRecord;
  genTime: number;
}

/**
 * Writes a transaction's token records (store/committer.ts): each serial must be new (a taken one
 * is `false`, nothing written), the genTime high-water mark moves, and one audit record lists the
 * serials with a digest over their rows.
 */
export const tokenRecords = recordWriter<TokenEntry, boolean>(import.meta.url, 'tokenRecords', ({ store, audit }) => {
  const tokens = store.table<TokenRecord>(TOKENS_TABLE);
  const meta = store.table<string>(META_TABLE);
  return (tx, batch) => {
    const written: boolean[] = [];
    const recorded: TokenEntry[] = [];
    let latest = tx.get(meta, 'latestGenTime');
    let latestMs = latest ? Date.parse(latest) : -Infinity;
    for (const p of batch) {
      if (tx.get(tokens, p.serial) !== undefined) {
        written.push(false);
        continue;
      }
      tx.put(tokens, p.serial, p.record);
      recorded.push(p);
      if (p.genTime > latestMs) {
        latestMs = p.genTime;
        latest = p.record.time;
      }
      written.push(true);
    }
    if (latest !== undefined) tx.put(meta, 'latestGenTime', latest);
    if (recorded.length && audit) {
      const serials = recorded.map((p) => p.serial);
      audit.append(tx, {
        actor: 'system',
        action: 'tsa.stamp',
        object: `tsa-tokens:${serials[0]}`,
        outcome: 'success',
        details: { count: serials.length, serials, recordsDigest: recordsDigest(recorded) },
      });
    }
    return written;
  };
});

export class TokenLedger implements Ledger {
  readonly #store: Store;
  readonly #tokens: Table<TokenRecord>;
  readonly #meta: Table<string>;
  readonly #audit: AuditLog | undefined;
  readonly #committer: Committer;
  /** Closed with the ledger when the ledger made it (a shared one is closed by its owner). */
  readonly #ownsCommitter: boolean;
  /** Records asked for and not settled: close() waits for them. */
  readonly #waiting = new Set<Promise<boolean>>();
  #lastTransaction = 0;
  #commits = 0;
  #recorded = 0;

  /**
   * `committer`: where the records are committed, default in this thread on `store` and `audit`;
   * the appliance passes its shared ThreadedCommitter (store/commit-thread.ts) over the same ones.
   */
  constructor(store: Store, audit?: AuditLog, committer?: Committer) {
    this.#store = store;
    this.#tokens = store.table<TokenRecord>(TOKENS_TABLE);
    this.#meta = store.table<string>(META_TABLE);
    this.#audit = audit;
    this.#committer = committer ?? new InlineCommitter(store, audit);
    this.#ownsCommitter = committer === undefined;
  }

  /** The high-water mark persisted by earlier runs (undefined on a fresh store). */
  latestGenTime(): Date | undefined {
    const iso = this.#meta.get('latestGenTime');
    return iso ? new Date(iso) : undefined;
  }

  get(serialHex: string): TokenRecord | undefined {
    return this.#tokens.get(serialHex);
  }

  /**
   * Resolves true once the record is durable, false if the serial was already taken (the caller
   * picks a new serial and re-signs). Rejects if the store fails: the token must then not be sent.
   */
  record(serialHex: string, record: TokenRecord, genTime: Date): Promise<boolean> {
    // Out of the set before the caller hears of it, so that stats() it reads then is current.
    const committed: Promise<boolean> = this.#committer.commit(tokenRecords, { serial: serialHex, record, genTime: genTime.getTime() }).then(({ result, transaction }) => {
      this.#waiting.delete(committed);
      // Records of one transaction settle one after the other: a new number is a new commit.
      if (transaction !== this.#lastTransaction) {
        this.#lastTransaction = transaction;
        this.#commits++;
      }
      if (result) this.#recorded++;
      return result;
    }, (e: unknown) => {
      this.#waiting.delete(committed);
      throw e;
    });
    this.#waiting.add(committed);
    return committed;
  }

  /**
   * Marks a record whose token was never sent (its signature failed after the record was
   * committed), with an audit record saying why.
   */
  async void(serialHex: string, reason: string): Promise<void> {
    await this.#store.transaction((tx) => {
      const record = tx.get(this.#tokens, serialHex);
      if (!record) return;
      tx.put(this.#tokens, serialHex, { ...record, voided: reason });
      this.#audit?.append(tx, {
        actor: 'system',
        action: 'tsa.void',
        object: `tsa-tokens:${serialHex}`,
        outcome: 'failure',
        details: { reason },
      });
    });
  }

  stats(): LedgerStats {
    return { recorded: this.#recorded, commits: this.#commits, waiting: this.#waiting.size };
  }

  /** Waits for the records asked for so far; closes the committer if the ledger made it. */
  async close(): Promise<void> {
    if (this.#ownsCommitter) await this.#committer.close();
    await Promise.allSettled([...this.#waiting]);
  }
}

/**
 * SHA-256 over the batch's rows as they are stored, in order: serial, then each field of the
 * record, NUL-separated. An auditor reads the rows of the serials the audit record lists from
 * tsa.tokens, recomputes it and compares.
 */
export function recordsDigest(rows: Array<{ serial: string; record: TokenRecord }>): string {
  const h = createHash('sha256');
  for (const { serial, record } of rows) {
    h.update(`${serial}\0${record.time}\0${record.imprint}\0${record.hashAlg}\0${record.policy}\0${record.nonce ?? ''}\n`);
  }
  return h.digest('hex');
}
