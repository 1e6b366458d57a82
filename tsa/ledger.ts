/**
 * The record of every issued token (tsa.tokens: serial -> time, imprint, policy), so an auditor can
 * prove which tokens exist. A token is returned only after its record is durable.
 *
 * The record is committed while the HSM signs its token (tsa/authority.ts); when the signature
 * fails, void() marks the record so the ledger never claims a token nobody received.
 *
 * Group commit: the records of one event-loop task (a worker's batch of signatures resolves many
 * at once) go into one store transaction, submitted at once even while earlier ones are still
 * being committed: the store queues them behind the commit in flight and writes everything
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
import { TurnBatch } from '../common/turn-batch.ts';
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

interface Pending {
  serial: string;
  record: TokenRecord;
  genTime: number;
  resolve: (written: boolean) => void;
  reject: (e: unknown) => void;
}

export interface LedgerStats {
  recorded: number;
  commits: number;
  /** Records asked for and not yet committed. */
  waiting: number;
}

/** What the TSA needs of its ledger: TokenLedger here, or ThreadedTokenLedger (ledger-thread.ts). */
export interface Ledger {
  latestGenTime(): Date | undefined;
  get(serialHex: string): TokenRecord | undefined;
  record(serialHex: string, record: TokenRecord, genTime: Date): Promise<boolean>;
  void(serialHex: string, reason: string): Promise<void>;
  stats(): LedgerStats;
  close?(): Promise<void>;
}

export class TokenLedger implements Ledger {
  readonly #store: Store;
  readonly #tokens: Table<TokenRecord>;
  readonly #meta: Table<string>;
  readonly #audit: AuditLog | undefined;
  /** The records of one event-loop turn go into one transaction. */
  readonly #pending = new TurnBatch<Pending>((batch) => this.#commit(batch));
  /** Records handed to a transaction that has not committed yet. */
  #inFlight = 0;
  #commits = 0;
  #recorded = 0;

  constructor(store: Store, audit?: AuditLog) {
    this.#store = store;
    this.#tokens = store.table<TokenRecord>(TOKENS_TABLE);
    this.#meta = store.table<string>(META_TABLE);
    this.#audit = audit;
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
    return new Promise((resolve, reject) => {
      this.#pending.add({ serial: serialHex, record, genTime: genTime.getTime(), resolve, reject });
    });
  }

  #commit(batch: Pending[]): void {
    this.#inFlight += batch.length;
    this.#store
      .transaction((tx) => {
        const written: boolean[] = [];
        const recorded: Pending[] = [];
        let latest = tx.get(this.#meta, 'latestGenTime') as string | undefined;
        let latestMs = latest ? Date.parse(latest) : -Infinity;
        for (const p of batch) {
          if (tx.get(this.#tokens, p.serial) !== undefined) {
            written.push(false);
            continue;
          }
          tx.put(this.#tokens, p.serial, p.record);
          recorded.push(p);
          if (p.genTime > latestMs) {
            latestMs = p.genTime;
            latest = p.record.time;
          }
          written.push(true);
        }
        if (latest !== undefined) tx.put(this.#meta, 'latestGenTime', latest);
        if (recorded.length && this.#audit) {
          const serials = recorded.map((p) => p.serial);
          this.#audit.append(tx, {
            actor: 'system',
            action: 'tsa.stamp',
            object: `tsa-tokens:${serials[0]}`,
            outcome: 'success',
            details: { count: serials.length, serials, recordsDigest: recordsDigest(recorded) },
          });
        }
        return written;
      })
      .then(
        (written) => {
          this.#commits++;
          batch.forEach((p, i) => {
            if (written[i]) this.#recorded++;
            p.resolve(written[i]);
          });
        },
        (e: unknown) => batch.forEach((p) => p.reject(e)),
      )
      .finally(() => {
        this.#inFlight -= batch.length;
      });
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
    return { recorded: this.#recorded, commits: this.#commits, waiting: this.#pending.size + this.#inFlight };
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
