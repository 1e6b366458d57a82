/**
 * Items added within one event-loop turn, handed over together on the next (setImmediate):
 * requests arrive one per socket callback, and work that is cheaper per item in bulk (a store
 * transaction, a batch posted to a thread) sees them as one batch.
 */
export class TurnBatch<T> {
  readonly #handle: (items: T[]) => void;
  #items: T[] = [];

  constructor(handle: (items: T[]) => void) {
    this.#handle = handle;
  }

  add(item: T): void {
    if (this.#items.push(item) === 1) setImmediate(() => this.flush());
  }

  /** Hands over what has been added so far now, instead of on the next turn (nothing if empty). */
  flush(): void {
    if (this.#items.length === 0) return;
    const items = this.#items;
    this.#items = [];
    this.#handle(items);
  }

  get size(): number {
    return this.#items.length;
  }
}
