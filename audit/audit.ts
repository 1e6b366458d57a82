/**
 * The audit trail: a hash chain of records in the store, written in the caller's transaction, with
 * the chain head signed now and then by an HSM key.
 *
 * Tables (docs/data-directory.md):
 *   audit.records      seq -> AuditRecord
 *   audit.head         'head' -> { seq, hash } of the last record (read and written in append's transaction)
 *   audit.checkpoints  seq -> AuditCheckpoint
 *
 * Canonical form (what is hashed and signed): the UTF-8 bytes of the JSON text of the value with
 *   - object members sorted by key (JavaScript string order, i.e. UTF-16 code units), members whose
 *     value is undefined left out, at every depth;
 *   - no whitespace; strings and numbers as JSON.stringify writes them (numbers must be finite);
 *   - only JSON types: `details` is passed through JSON (JSON.parse(JSON.stringify(details))) before
 *     it is hashed or stored, so the stored value is exactly what was hashed.
 * A record's hash is the hex SHA-256 of the canonical form of every stored field but `hash`; its
 * `prev` is the previous record's hash ('' for seq 1). A checkpoint's signature covers the canonical
 * form of { type: 'yinxin-audit-checkpoint/1', seq, hash, time }.
 */
import { constants, createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { hashOfScheme } from '../hsm/algorithms.ts';
import type { SignatureScheme, Signer } from '../hsm/signer.ts';
import type { Store, Table, Tx } from '../store/store.ts';
import type { AuditCheckpoint, AuditInput, AuditLog, AuditProblem, AuditRecord, AuditVerification } from './types.ts';

export const AUDIT_TABLES = { records: 'audit.records', head: 'audit.head', checkpoints: 'audit.checkpoints' } as const;
const CHECKPOINT_TYPE = 'yinxin-audit-checkpoint/1';

interface Head {
  seq: number;
  hash: string;
}

export interface AuditLogOptions {
  store: Store;
  clock: Clock;
  /** Signs checkpoints. Without one, checkpoint() returns null and the chain is only hash-linked. */
  signer?: Signer;
  /** Sign the head after this many records or this many milliseconds with new records, whichever first. */
  headSigning?: { everyRecords: number; everyMs: number };
  /** A background checkpoint failed (HSM gone, say). Default: a process warning. The next one retries. */
  onError?: (error: unknown) => void;
}

export interface AuditTrail extends AuditLog {
  /** The last committed record's seq and hash ({ seq: 0, hash: '' } when empty). */
  head(): Head;
  /** Signs the current head now and stores the checkpoint; returns the newest one (null without a signer or records). */
  checkpoint(): Promise<AuditCheckpoint | null>;
  /** Checkpoints in seq order. */
  checkpoints(): AuditCheckpoint[];
  /** Stops background signing after signing what is unsigned (when a signer is set). */
  close(): Promise<void>;
}

// ---- canonical form -------------------------------------------------------------------------------

export function canonicalJson(value: unknown): string {
  return canonical(value, false, 0)!;
}

/** Deeper than this, plainOnly gives up (a cycle, most likely) and jsonOnly says what is wrong. */
const MAX_PLAIN_DEPTH = 64;

/**
 * The canonical form of `value`. With `plainOnly`, undefined instead when `value` is not plain JSON
 * data already, i.e. when JSON would change it: a toJSON, an object that is not a plain one (a Date,
 * a Map, a typed array), an undefined member, a hole, a number JSON cannot write, a cycle. For plain
 * data that is what jsonOnly would keep, so append can skip the JSON round trip.
 */
function canonical(value: unknown, plainOnly: boolean, depth: number): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) {
        if (plainOnly) return undefined;
        throw new YinxinError('validation-failed', 'audit data may not hold NaN or Infinity');
      }
      return JSON.stringify(value);
    case 'object': {
      if (plainOnly && (depth > MAX_PLAIN_DEPTH || typeof (value as { toJSON?: unknown }).toJSON === 'function')) return undefined;
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          let text: string | undefined;
          if (item === undefined) {
            if (plainOnly) return undefined;
            text = 'null';
          } else {
            text = canonical(item, plainOnly, depth + 1);
            if (text === undefined) return undefined;
          }
          out += i === 0 ? text : `,${text}`;
        }
        return `${out}]`;
      }
      const object = value as Record<string, unknown>;
      if (plainOnly) {
        const proto: unknown = Object.getPrototypeOf(object);
        if (proto !== Object.prototype && proto !== null) return undefined;
      }
      let out = '{';
      for (const key of Object.keys(object).sort()) {
        const member = object[key];
        if (member === undefined) {
          if (plainOnly) return undefined;
          continue;
        }
        const text = canonical(member, plainOnly, depth + 1);
        if (text === undefined) return undefined;
        out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${text}`;
      }
      return `${out}}`;
    }
    default:
      if (plainOnly) return undefined;
      throw new YinxinError('validation-failed', `audit data may not hold a ${typeof value}`);
  }
}

export function recordHash(record: Omit<AuditRecord, 'hash'> | AuditRecord): string {
  const { hash: _ignored, ...fields } = record as AuditRecord;
  return hashOfCanonical(canonicalJson(fields));
}

function hashOfCanonical(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function checkpointPayload(c: { seq: number; hash: string; time: string }): Buffer {
  return Buffer.from(canonicalJson({ type: CHECKPOINT_TYPE, seq: c.seq, hash: c.hash, time: c.time }), 'utf8');
}

// ---- the log ----------------------------------------------------------------------------------------

class StoreAuditLog implements AuditTrail {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #signer: Signer | undefined;
  readonly #records: Table<AuditRecord>;
  readonly #head: Table<Head>;
  readonly #checkpoints: Table<AuditCheckpoint>;
  readonly #everyRecords: number;
  readonly #onError: (error: unknown) => void;
  readonly #timer: NodeJS.Timeout | undefined;
  /** Highest seq known committed, and highest seq covered by a stored checkpoint. */
  #committedSeq = 0;
  #signedSeq = 0;
  #signing: Promise<AuditCheckpoint | null> | undefined;
  #closed = false;

  constructor(options: AuditLogOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#signer = options.signer;
    this.#records = options.store.table<AuditRecord>(AUDIT_TABLES.records);
    this.#head = options.store.table<Head>(AUDIT_TABLES.head);
    this.#checkpoints = options.store.table<AuditCheckpoint>(AUDIT_TABLES.checkpoints);
    this.#onError = options.onError ?? ((e) => process.emitWarning(`audit checkpoint failed: ${(e as Error)?.message ?? e}`));
    const signing = options.headSigning;
    this.#everyRecords = signing && this.#signer ? Math.max(1, signing.everyRecords) : Infinity;
    this.#committedSeq = this.head().seq;
    this.#signedSeq = this.#lastCheckpoint()?.seq ?? 0;
    if (signing && this.#signer && signing.everyMs > 0) {
      this.#timer = setInterval(() => {
        // The head as stored: other threads and processes append to the same chain.
        if (this.head().seq > this.#signedSeq) this.#background();
      }, signing.everyMs);
      this.#timer.unref();
    }
  }

  append(tx: Tx, input: AuditInput): AuditRecord {
    if (this.#closed) throw new YinxinError('internal', 'the audit log is closed');
    checkInput(input);
    const head = tx.get(this.#head, 'head') ?? { seq: 0, hash: '' };
    const fields: Omit<AuditRecord, 'hash'> = {
      seq: head.seq + 1,
      time: this.#clock.now().toISOString(),
      prev: head.hash,
      actor: input.actor,
      action: input.action,
      object: input.object,
      outcome: input.outcome,
      ...(input.requestId !== undefined ? { requestId: input.requestId } : {}),
      ...(input.details !== undefined ? { details: input.details } : {}),
    };
    // Details that are plain JSON data already (what services pass) are hashed and stored as they
    // are; anything else goes through JSON first, so that what is stored is what was hashed.
    let canonicalText = canonical(fields, true, 0);
    if (canonicalText === undefined) {
      if (fields.details !== undefined) fields.details = jsonOnly(fields.details);
      canonicalText = canonicalJson(fields);
    } else if (fields.details !== undefined) {
      detailsMustBeAnObject(fields.details);
    }
    const record: AuditRecord = { ...fields, hash: hashOfCanonical(canonicalText) };
    tx.put(this.#records, record.seq, record);
    tx.put(this.#head, 'head', { seq: record.seq, hash: record.hash });
    tx.afterCommit(() => {
      this.#committedSeq = Math.max(this.#committedSeq, record.seq);
      this.#signIfDue();
    });
    return record;
  }

  list(options: { fromSeq?: number; limit?: number; actor?: string; action?: string } = {}): AuditRecord[] {
    const limit = Math.min(Math.max(options.limit ?? 100, 0), 10_000);
    const out: AuditRecord[] = [];
    if (limit === 0) return out;
    for (const { value } of this.#records.range({ start: Math.max(1, options.fromSeq ?? 1) })) {
      if (options.actor !== undefined && value.actor !== options.actor) continue;
      if (options.action !== undefined && value.action !== options.action) continue;
      out.push(value);
      if (out.length >= limit) break;
    }
    return out;
  }

  head(): Head {
    return this.#head.get('head') ?? { seq: 0, hash: '' };
  }

  checkpoints(): AuditCheckpoint[] {
    return [...this.#checkpoints.range()].map((e) => e.value);
  }

  #lastCheckpoint(): AuditCheckpoint | undefined {
    for (const { value } of this.#checkpoints.range({ reverse: true, limit: 1 })) return value;
    return undefined;
  }

  checkpoint(): Promise<AuditCheckpoint | null> {
    // One signing at a time: a second caller waits for the first and then signs what is new.
    const previous = this.#signing ?? Promise.resolve(null);
    const next = previous.catch(() => null).then(() => this.#signHead());
    this.#signing = next;
    void next.finally(() => { if (this.#signing === next) this.#signing = undefined; }).catch(() => {});
    return next;
  }

  async #signHead(): Promise<AuditCheckpoint | null> {
    const signer = this.#signer;
    if (!signer) return null;
    const head = this.head();
    if (head.seq === 0) return null;
    const last = this.#lastCheckpoint();
    if (last && last.seq >= head.seq) return last;
    const time = this.#clock.now().toISOString();
    const signature = await signer.sign(checkpointPayload({ seq: head.seq, hash: head.hash, time }));
    const checkpoint: AuditCheckpoint = {
      seq: head.seq,
      hash: head.hash,
      time,
      signerLabel: signer.label,
      scheme: signer.scheme,
      publicKeyInfo: signer.publicKeyInfo,
      signature,
    };
    await this.#store.transaction((tx) => {
      if (!tx.get(this.#checkpoints, head.seq)) tx.put(this.#checkpoints, head.seq, checkpoint);
    });
    this.#signedSeq = Math.max(this.#signedSeq, head.seq);
    return checkpoint;
  }

  #signIfDue(): void {
    if (this.#committedSeq - this.#signedSeq >= this.#everyRecords) this.#background();
  }

  #background(): void {
    if (this.#signing || this.#closed) return;
    this.checkpoint().then(
      // Records committed while the HSM was signing may already make the next checkpoint due.
      () => setImmediate(() => this.#signIfDue()),
      (e) => this.#onError(e),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    try {
      if (this.#signer && !this.#store.readOnly) await this.checkpoint();
    } catch (e) {
      this.#onError(e);
    } finally {
      this.#closed = true;
    }
  }
}

function checkInput(input: AuditInput): void {
  for (const field of ['actor', 'action', 'object'] as const) {
    if (typeof input[field] !== 'string' || input[field].length === 0) {
      throw new YinxinError('validation-failed', `an audit record needs a non-empty ${field}`, { field });
    }
  }
  if (input.outcome !== 'success' && input.outcome !== 'failure') {
    throw new YinxinError('validation-failed', `an audit outcome is 'success' or 'failure', not ${JSON.stringify(input.outcome)}`, { field: 'outcome' });
  }
  if (input.requestId !== undefined && typeof input.requestId !== 'string') {
    throw new YinxinError('validation-failed', 'an audit requestId is a string', { field: 'requestId' });
  }
}

function jsonOnly(details: Record<string, unknown>): Record<string, unknown> {
  let copy: unknown;
  try {
    copy = JSON.parse(JSON.stringify(details, (_key, value) => {
      // JSON would quietly write these as null; an audit record should not change what it was told.
      if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`${value} is not a JSON number`);
      return value;
    }));
  } catch (e) {
    throw new YinxinError('validation-failed', `audit details must be plain JSON data: ${(e as Error).message}`, { field: 'details' });
  }
  detailsMustBeAnObject(copy);
  return copy;
}

function detailsMustBeAnObject(details: unknown): asserts details is Record<string, unknown> {
  if (details === null || typeof details !== 'object' || Array.isArray(details)) {
    throw new YinxinError('validation-failed', 'audit details must be an object', { field: 'details' });
  }
}

export function createAuditLog(options: AuditLogOptions): AuditTrail {
  return new StoreAuditLog(options);
}

// ---- verification -------------------------------------------------------------------------------------

/** Whether `signature` over the checkpoint's payload verifies under its stored SubjectPublicKeyInfo. */
function checkpointSignatureValid(c: AuditCheckpoint): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(c.publicKeyInfo), format: 'der', type: 'spki' });
    const scheme = c.scheme as SignatureScheme;
    const hash = hashOfScheme(scheme);
    const algorithm = hash === null ? null : hash.replace('-', '').toLowerCase();
    const pss = scheme.startsWith('rsa-pss-');
    return nodeVerify(algorithm, checkpointPayload(c), {
      key,
      dsaEncoding: 'der',
      ...(pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : {}),
    }, Buffer.from(c.signature));
  } catch {
    return false;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/**
 * Walks the whole trail and says where it was tampered with:
 *   altered   a record's content no longer matches its hash, or its hash no longer matches the next
 *             record's `prev`, the head or a signed checkpoint (it was rewritten and re-hashed)
 *   missing   seq numbers absent from the middle of the trail
 *   reordered a record sits under another record's seq
 *   truncated the trail ends before the head or a signed checkpoint says it does
 *   bad-checkpoint-signature  a checkpoint's signature fails, or it was signed by another key than expected
 * Records removed from the end after the last checkpoint can be found only through the (unsigned) head.
 */
export async function verifyAuditTrail(store: Store, options: { publicKeyInfo?: Uint8Array } = {}): Promise<AuditVerification> {
  const records = store.table<AuditRecord>(AUDIT_TABLES.records);
  const headTable = store.table<Head>(AUDIT_TABLES.head);
  const checkpointTable = store.table<AuditCheckpoint>(AUDIT_TABLES.checkpoints);
  const problems: AuditProblem[] = [];
  const checkpoints = [...checkpointTable.range()].map((e) => e.value);
  const checkpointSeqs = new Set(checkpoints.map((c) => c.seq));
  const hashAt = new Map<number, string>();

  let count = 0;
  let expected = 1;
  let previous: { seq: number; hash: string; selfConsistent: boolean } | undefined;
  for (const { key, value: record } of records.range()) {
    count++;
    if (typeof key !== 'number' || !Number.isInteger(key) || key < 1) {
      problems.push({ seq: expected, kind: 'altered', message: `an entry under the key ${JSON.stringify(key)} is not part of the trail` });
      continue;
    }
    if (key > expected) {
      problems.push({
        seq: expected,
        kind: 'missing',
        message: key - expected === 1 ? `record ${expected} is missing` : `records ${expected} to ${key - 1} are missing`,
      });
      previous = undefined;
    }
    expected = key + 1;
    if (record === null || typeof record !== 'object') {
      problems.push({ seq: key, kind: 'altered', message: `record ${key} is not a record` });
      previous = undefined;
      continue;
    }
    if (record.seq !== key) {
      problems.push({ seq: key, kind: 'reordered', message: `position ${key} holds record ${record.seq}` });
      previous = undefined;
      continue;
    }
    let computed: string | undefined;
    try {
      computed = recordHash(record);
    } catch {
      computed = undefined;
    }
    const selfConsistent = computed === record.hash;
    if (!selfConsistent) {
      problems.push({ seq: key, kind: 'altered', message: `record ${key} was changed: its content no longer matches its hash` });
    }
    if (key === 1 && record.prev !== '') {
      problems.push({ seq: key, kind: 'altered', message: 'record 1 claims a predecessor' });
    }
    // A record whose own hash checks out but does not match its successor's `prev` was rewritten
    // and re-hashed (its successor, if rewritten, would fail its own hash check instead).
    if (previous && selfConsistent && previous.seq === key - 1 && record.prev !== previous.hash && previous.selfConsistent) {
      problems.push({ seq: previous.seq, kind: 'altered', message: `record ${previous.seq} was rewritten: record ${key} was chained to a different version of it` });
    }
    if (checkpointSeqs.has(key)) hashAt.set(key, record.hash);
    previous = { seq: key, hash: record.hash, selfConsistent };
  }
  const lastSeq = expected - 1;

  const head = headTable.get('head');
  if (head) {
    if (head.seq > lastSeq) {
      problems.push({ seq: lastSeq + 1, kind: 'truncated', message: `the trail ends at record ${lastSeq} but its head says ${head.seq}: records ${lastSeq + 1} to ${head.seq} were removed` });
    } else if (head.seq < lastSeq) {
      problems.push({ seq: head.seq + 1, kind: 'altered', message: `records ${head.seq + 1} to ${lastSeq} were added behind the audit log's back (the head says ${head.seq})` });
    } else if (previous && previous.seq === lastSeq && head.hash !== previous.hash && previous.selfConsistent) {
      problems.push({ seq: lastSeq, kind: 'altered', message: `record ${lastSeq} was rewritten: the head holds a different hash` });
    }
  } else if (lastSeq > 0) {
    problems.push({ seq: lastSeq, kind: 'altered', message: 'the chain head is missing' });
  }

  let truncationReported = problems.some((p) => p.kind === 'truncated');
  let lastCheckpointSeq = 0;
  for (const c of checkpoints) {
    const signedBy = c.signerLabel ? ` (key "${c.signerLabel}")` : '';
    if (!checkpointSignatureValid(c)) {
      problems.push({ seq: c.seq, kind: 'bad-checkpoint-signature', message: `the checkpoint of ${c.time} at record ${c.seq} has a signature that does not verify${signedBy}` });
      continue;
    }
    if (options.publicKeyInfo && !sameBytes(options.publicKeyInfo, c.publicKeyInfo)) {
      problems.push({ seq: c.seq, kind: 'bad-checkpoint-signature', message: `the checkpoint of ${c.time} at record ${c.seq} was signed by a key that is not the appliance's audit key${signedBy}` });
      continue;
    }
    lastCheckpointSeq = Math.max(lastCheckpointSeq, c.seq);
    if (c.seq > lastSeq) {
      if (!truncationReported) {
        problems.push({ seq: lastSeq + 1, kind: 'truncated', message: `the trail ends at record ${lastSeq} but a checkpoint signed ${c.time} covers record ${c.seq}` });
        truncationReported = true;
      }
    } else if (hashAt.has(c.seq) && hashAt.get(c.seq) !== c.hash) {
      problems.push({ seq: c.seq, kind: 'altered', message: `record ${c.seq} differs from the version signed in the checkpoint of ${c.time}` });
    }
  }

  problems.sort((a, b) => a.seq - b.seq);
  return { ok: problems.length === 0, records: count, problems, checkpoints: checkpoints.length, lastCheckpointSeq };
}
