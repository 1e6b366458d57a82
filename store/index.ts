export type { Key, RangeOptions, Store, StoreStats, Table, Tx } from './store.ts';
export { openLmdbStore, type LmdbStoreOptions } from './lmdb.ts';
