/**
 * The time-stamping authority core (RFC 3161, RFC 5816): TimeStampReq DER in, TimeStampResp DER
 * out, given a signer, the TSA certificate, a store and a time guard. Knows nothing of HTTP.
 * respond() never throws: every refusal is a TimeStampResp with status rejection and the failInfo
 * failure.ts maps the error to.
 */
import { randomFillSync } from 'node:crypto';
import type { AuditLog } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import type { Signer } from '../hsm/signer.ts';
import type { Committer } from '../store/committer.ts';
import type { Store } from '../store/store.ts';
import { hex } from './asn1.ts';
import { encodeRejection, refusalOf, type FailInfoName } from './failure.ts';
import { TokenLedger, type Ledger, type LedgerStats, type TokenRecord } from './ledger.ts';
import { DEFAULT_TSA_HASHES, parseTimeStampQuery, type TsaHashName } from './request.ts';
import type { TimeGuard, TimeGuardState } from './timeguard.ts';
import { TokenWriter, type Accuracy } from './token.ts';

export interface TimeStampAuthorityOptions {
  signer: Signer;
  /** TSA certificate DER: critical EKU timeStamping only, certifying signer's key. */
  certificate: Uint8Array;
  /** The issuing CA up to the root (DER), for clients that want the chain. */
  chain: Uint8Array[];
  store: Store;
  audit?: AuditLog;
  clock: Clock;
  timeGuard: TimeGuard;
  /** TSA policy OIDs: `default` when the request names none; a requested one must be in `accepted`. */
  policy: { default: string; accepted: string[] };
  /** Accuracy of genTime (default 1 s). */
  accuracy?: Accuracy;
  /** genTime is truncated to this many milliseconds: 1000 (default) gives whole seconds, 1, 10 or 100 sub-second precision. */
  precisionMs?: number;
  /** Accepted imprint algorithms (default SHA-256, SHA-384, SHA-512, SHA3-256). */
  hashes?: TsaHashName[];
  /** SHA-1 imprints are refused (badAlg) unless this is true. */
  acceptSha1?: boolean;
  /** Put the TSA's name in TSTInfo.tsa (default true). */
  includeTsaName?: boolean;
  /** Told about every failure that is the TSA's own (systemFailure: HSM, store), for the log. */
  onSystemFailure?: (error: unknown) => void;
  /** Queries longer than this are refused with badDataFormat (default 8 KiB; the HTTP layer has its own limit). */
  maxQueryBytes?: number;
  /**
   * Where the token records are committed: default in this thread on `store` and `audit`; the
   * appliance passes its ThreadedCommitter (store/commit-thread.ts) over the same ones, shared
   * with the seal registry's usage records.
   */
  committer?: Committer;
  /** The token ledger itself (tests); default a TokenLedger on `store`, `audit` and `committer`. */
  ledger?: Ledger;
}

export interface TimeStampAuthorityStats {
  issued: number;
  rejected: Partial<Record<FailInfoName, number>>;
  ledger: LedgerStats;
  clock: TimeGuardState;
}

export interface TimeStampAuthority {
  respond(queryDer: Uint8Array): Promise<Uint8Array>;
  stats(): TimeStampAuthorityStats;
  /** The record of a token, by serial number as hex (as in tsa.tokens). */
  record(serialHex: string): TokenRecord | undefined;
  readonly certificate: Uint8Array;
  readonly chain: Uint8Array[];
  readonly timeGuard: TimeGuard;
  /** Waits for the records being committed and stops the ledger's thread, if it has one. */
  close(): Promise<void>;
}

/**
 * Serial numbers (RFC 3161 s2.4.2: unique for each token from a given TSA, up to 160 bits).
 * 0x01, then genTime in milliseconds since 1970 (48 bits), then 80 bits from the CSPRNG: positive,
 * always 17 octets, minimally encoded. There is no counter to lose in a crash or to share between
 * processes; uniqueness is enforced, not just probable: the ledger refuses a serial already in
 * tsa.tokens inside the serialized write transaction, and the token is re-issued under a fresh
 * serial. A serial is only ever sent once its record is durable, so a crash cannot make it
 * reusable.
 *
 * Why the time in front: tsa.tokens is keyed by serial, and wholly random keys scatter each
 * commit's inserts over the whole B-tree, so every commit writes (and fsyncs) a page per token.
 * Time-ordered keys land together at the tree's right edge: measured on a 150,000-token ledger,
 * a commit of 34 records took 1.78 ms with random serials and 0.77 ms with time-ordered ones.
 * 80 random bits still make the next serial unguessable; genTime is in the token anyway.
 */
const SERIALS_PER_FILL = 256;
const RANDOM_OCTETS = 10;

/** One CSPRNG call per 256 serials (randomBytes per token was 2% of a token's CPU). */
function serialSource(): (genTimeMs: number) => Uint8Array {
  let pool = new Uint8Array(0);
  let at = 0;
  return (genTimeMs) => {
    if (at === pool.length) {
      pool = randomFillSync(new Uint8Array(RANDOM_OCTETS * SERIALS_PER_FILL));
      at = 0;
    }
    const serial = new Uint8Array(17);
    serial[0] = 0x01;
    // 48 bits of milliseconds last until the year 10889.
    const high = Math.floor(genTimeMs / 2 ** 32);
    serial[1] = high >>> 8;
    serial[2] = high & 0xff;
    new DataView(serial.buffer).setUint32(3, genTimeMs >>> 0);
    serial.set(pool.subarray(at, at + RANDOM_OCTETS), 7);
    at += RANDOM_OCTETS;
    return serial;
  };
}

const MAX_SERIAL_ATTEMPTS = 4;

export function createTimeStampAuthority(options: TimeStampAuthorityOptions): TimeStampAuthority {
  const { store, timeGuard } = options;
  const writer = new TokenWriter({
    signer: options.signer,
    certificate: options.certificate,
    includeTsaName: options.includeTsaName ?? true,
    accuracy: options.accuracy ?? { seconds: 1 },
  });
  const ledger: Ledger = options.ledger ?? new TokenLedger(store, options.audit, options.committer);
  const newSerial = serialSource();
  // The latest genTime of earlier runs: stamping waits if the clock is now behind it.
  const latest = ledger.latestGenTime();
  if (latest) timeGuard.issued(latest);

  const hashes = new Set<TsaHashName>(options.hashes ?? DEFAULT_TSA_HASHES);
  if (options.acceptSha1) hashes.add('SHA-1');
  else hashes.delete('SHA-1');
  const acceptedPolicies = new Set([options.policy.default, ...options.policy.accepted]);
  const precision = options.precisionMs ?? 1000;
  if (!Number.isInteger(precision) || precision < 1 || precision > 1000 || 1000 % precision !== 0) {
    throw new YinxinError('config-invalid', `tsa precisionMs must divide 1000 (1, 10, 100, 1000), not ${precision}`);
  }
  const maxQueryBytes = options.maxQueryBytes ?? 8192;
  let issued = 0;
  const rejected: Partial<Record<FailInfoName, number>> = {};

  async function issue(queryDer: Uint8Array): Promise<Uint8Array> {
    if (queryDer.length > maxQueryBytes) throw new YinxinError('payload-too-large', `the query is longer than ${maxQueryBytes} octets`);
    const query = parseTimeStampQuery(queryDer, hashes);
    if (query.policy !== undefined && !acceptedPolicies.has(query.policy)) {
      throw new YinxinError('unaccepted-policy', `policy ${query.policy} is not accepted by this TSA`, { accepted: [...acceptedPolicies] });
    }
    const policy = query.policy ?? options.policy.default;
    for (let attempt = 0; attempt < MAX_SERIAL_ATTEMPTS; attempt++) {
      const now = timeGuard.now().getTime();
      const genTime = new Date(now - (now % precision));
      const serial = newSerial(genTime.getTime());
      const serialHex = hex(serial);
      const record: TokenRecord = { time: genTime.toISOString(), imprint: hex(query.hashedMessage), hashAlg: query.hash.name, policy };
      if (query.nonce) record.nonce = hex(query.nonce);
      // Everything the record holds is known before the signature, so the record is committed
      // while the HSM signs: a token waits for the longer of the two, not their sum. The token is
      // still sent only once its record is durable.
      const recorded = ledger.record(serialHex, record, genTime);
      const signed = writer.response({ ...query, policy, serial, genTime });
      // Handled below once the record is settled (a signature may fail first), or not at all
      // when the token is not sent.
      signed.catch(() => {});
      if (!(await recorded)) continue;
      let response: Uint8Array;
      try {
        response = await signed;
      } catch (e) {
        // The record stands for a token that was never sent: mark it so, with an audit record
        // (best effort: if the store fails too, the record stays unmarked and the log says why).
        ledger.void(serialHex, (e as Error)?.message ?? String(e)).catch((ve: unknown) => options.onSystemFailure?.(ve));
        throw e;
      }
      timeGuard.issued(genTime);
      return response;
    }
    throw new YinxinError('internal', 'no unused serial number found');
  }

  return {
    certificate: options.certificate,
    chain: options.chain,
    timeGuard,
    async respond(queryDer) {
      try {
        const response = await issue(queryDer);
        issued++;
        return response;
      } catch (e) {
        const refusal = refusalOf(e);
        if (refusal.failInfo === 'systemFailure') options.onSystemFailure?.(e);
        rejected[refusal.failInfo] = (rejected[refusal.failInfo] ?? 0) + 1;
        return encodeRejection(refusal);
      }
    },
    stats() {
      return { issued, rejected: { ...rejected }, ledger: ledger.stats(), clock: timeGuard.state() };
    },
    record(serialHex) {
      return ledger.get(serialHex.toLowerCase());
    },
    async close() {
      await ledger.close?.();
    },
  };
}
