/**
 * Group commit for records that several services write on their hot paths (the TSA's token
 * records, the seals' usage records): a service hands each record to a Committer with the
 * RecordWriter that writes it (its rows and audit record), and the records handed over in one
 * event-loop turn, of every writer, go into one store transaction.
 *
 * Why one transaction across services: LMDB serializes write transactions and each ends with its
 * own fsync, so a seal whose use and whose signature's time-stamp token were committed apart
 * waited for two durable commits one after the other; asked for in the same turn (the registry
 * records the use just before it asks the TSA), they now share one.
 *
 * If any writer throws, the whole transaction is rolled back and every record in it rejected,
 * whichever writer it belonged to: writers report expected refusals as results (the TSA's taken
 * serial is `false`), and throw only when nothing can be written.
 *
 * InlineCommitter commits on the caller's thread; ThreadedCommitter (store/commit-thread.ts) on
 * a thread of its own over the same LMDB environment.
 */
import type { AuditLog } from '../audit/types.ts';
import { YinxinError } from '../common/errors.ts';
import { TurnBatch } from '../common/turn-batch.ts';
import type { Store, Tx } from './store.ts';

/** What a writer gets to write with, on whichever thread runs it. */
export interface WriterContext {
  store: Store;
  audit?: AuditLog;
}

/** Writes one transaction's records of one kind; returns one result per record, in order. Synchronous. */
export type BatchWrite<I, O> = (tx: Tx, items: I[]) => O[];

/**
 * A kind of record. The commit thread loads a writer by its export name from its module, so a
 * writer is a module-level export made with recordWriter(import.meta.url, '<its export name>', ...),
 * in a module that imports little, and its records and results survive structured cloning.
 */
export interface RecordWriter<I, O> {
  readonly module: string;
  readonly name: string;
  create(context: WriterContext): BatchWrite<I, O>;
}

export function recordWriter<I, O>(module: string, name: string, create: (context: WriterContext) => BatchWrite<I, O>): RecordWriter<I, O> {
  return { module, name, create };
}

export interface Committed<O> {
  result: O;
  /** The committer's number for the transaction the record went into (counts commits per service). */
  transaction: number;
}

export interface CommitterStats {
  transactions: number;
  records: number;
  /** Records handed over and not yet committed or failed. */
  waiting: number;
}

export interface Committer {
  /**
   * Resolves once the transaction `item` went into is durable, with the writer's result for it;
   * rejects ('store-unavailable', or what the writer threw) when nothing of that transaction was
   * written.
   */
  commit<I, O>(writer: RecordWriter<I, O>, item: I): Promise<Committed<O>>;
  stats(): CommitterStats;
  /** Commits what was handed over, then refuses more ('store-unavailable'). */
  close(): Promise<void>;
}

/** A writer as it is named in a batch crossing threads. */
export interface WriterName {
  module: string;
  name: string;
}

/** One record of a batch: the index of its writer in the batch's writer list, and the record. */
export type BatchEntry = readonly [writer: number, item: unknown];

/** Runs each writer on its records of the batch (in the order they came); results in entry order. */
export function writeBatch(tx: Tx, writers: ReadonlyArray<BatchWrite<unknown, unknown>>, entries: readonly BatchEntry[]): unknown[] {
  const groups = new Map<number, number[]>();
  entries.forEach(([writer], i) => {
    const group = groups.get(writer);
    if (group) group.push(i);
    else groups.set(writer, [i]);
  });
  const results = new Array<unknown>(entries.length);
  for (const [writer, indexes] of groups) {
    const out = writers[writer](tx, indexes.map((i) => entries[i][1]));
    if (out.length !== indexes.length) throw new YinxinError('internal', `a record writer returned ${out.length} results for ${indexes.length} records`);
    indexes.forEach((entry, k) => { results[entry] = out[k]; });
  }
  return results;
}

interface Pending {
  writer: RecordWriter<unknown, unknown>;
  item: unknown;
  resolve: (committed: Committed<unknown>) => void;
  reject: (e: unknown) => void;
}

/**
 * What both committers share: the turn's batch, the writer list of a batch, settling and counting.
 * Subclasses say how a batch is written (`write`).
 */
export abstract class BatchingCommitter implements Committer {
  readonly #pending = new TurnBatch<Pending>((batch) => this.#submit(batch));
  #waiting = 0;
  #transactions = 0;
  #records = 0;
  #closed = false;
  /** Batches submitted and not settled: close() waits for them. */
  readonly #inFlight = new Set<Promise<void>>();

  commit<I, O>(writer: RecordWriter<I, O>, item: I): Promise<Committed<O>> {
    if (this.#closed) return Promise.reject(new YinxinError('store-unavailable', 'the store committer is closed'));
    return new Promise<Committed<O>>((resolve, reject) => {
      this.#waiting++;
      this.#pending.add({ writer: writer as RecordWriter<unknown, unknown>, item, resolve: resolve as (c: Committed<unknown>) => void, reject });
    });
  }

  /** Writes the batch in one transaction; resolves with one result per entry once it is durable. */
  protected abstract write(writers: ReadonlyArray<RecordWriter<unknown, unknown>>, entries: BatchEntry[]): Promise<unknown[]>;

  #submit(batch: Pending[]): void {
    const writers: Array<RecordWriter<unknown, unknown>> = [];
    const entries = batch.map((p): BatchEntry => {
      let index = writers.indexOf(p.writer);
      if (index < 0) index = writers.push(p.writer) - 1;
      return [index, p.item];
    });
    // Counted as settled before the callers hear of it, so that stats() they read then is current.
    const settled = () => {
      this.#waiting -= batch.length;
      this.#inFlight.delete(done);
    };
    const done = this.write(writers, entries).then(
      (results) => {
        settled();
        const transaction = ++this.#transactions;
        this.#records += batch.length;
        batch.forEach((p, i) => p.resolve({ result: results[i], transaction }));
      },
      (e: unknown) => {
        settled();
        batch.forEach((p) => p.reject(e));
      },
    );
    this.#inFlight.add(done);
  }

  stats(): CommitterStats {
    return { transactions: this.#transactions, records: this.#records, waiting: this.#waiting };
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending.flush();
    await Promise.allSettled([...this.#inFlight]);
  }
}

/** Commits on the caller's thread, with `store.transaction`. */
export class InlineCommitter extends BatchingCommitter {
  readonly #context: WriterContext;
  readonly #writers = new Map<RecordWriter<unknown, unknown>, BatchWrite<unknown, unknown>>();

  constructor(store: Store, audit?: AuditLog) {
    super();
    this.#context = { store, audit };
  }

  protected write(writers: ReadonlyArray<RecordWriter<unknown, unknown>>, entries: BatchEntry[]): Promise<unknown[]> {
    const writes = writers.map((w) => {
      let write = this.#writers.get(w);
      if (!write) this.#writers.set(w, write = w.create(this.#context));
      return write;
    });
    return this.#context.store.transaction((tx) => writeBatch(tx, writes, entries));
  }
}
