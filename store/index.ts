export type { Key, RangeOptions, Store, StoreStats, Table, Tx } from './store.ts';
export { openLmdbStore, type LmdbStoreOptions } from './lmdb.ts';
export {
  createBackup, readBackupManifest, restoreBackup, BACKUP_FORMAT, BACKUP_FORMAT_VERSION,
  type BackupManifest, type BackupMember, type CreateBackupOptions, type ProgressCallback, type RestoreBackupOptions, type RestoreResult,
} from './backup.ts';
