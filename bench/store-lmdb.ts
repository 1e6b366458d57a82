/**
 * Store throughput: audited state changes through store.transaction (durable commit, child
 * transaction per callback, audit record appended), beside the peer, bare lmdb-js with its
 * defaults (overlappingSync: the promise resolves before the fsync; a plain transaction()).
 *   node bench/store-lmdb.ts [N]        (default N = 5000 transactions per row)
 * Rows: sequential (one transaction awaited after the other: one fsync each) and concurrent
 * (N queued at once: lmdb-js batches them into few commits), reads, and a backup of the result.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { systemClock } from '../common/clock.ts';
import { createAuditLog } from '../audit/audit.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { createBackup } from '../store/backup.ts';

const N = Number(process.argv[2] ?? 5000);
const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-store-'));
const value = (i: number) => ({ serial: i.toString(16).padStart(32, '0'), status: 'good', der: new Uint8Array(800).fill(i & 0xff) });
const rows: Array<{ row: string; perSecond: number; peer?: number }> = [];
const rate = (n: number, t0: number) => Math.round(n / ((performance.now() - t0) / 1000));

try {
  // ours
  const store = openLmdbStore(join(dir, 'data', 'store'));
  const certs = store.table<ReturnType<typeof value>>('bench.certificates');
  const signer = await new SoftwareKeyStore().generateKeyPair('audit/checkpoint', { type: 'ec', curve: 'P-256' });
  const audit = createAuditLog({ store, clock: systemClock, signer, headSigning: { everyRecords: 1000, everyMs: 60_000 } });
  const change = (i: number) => store.transaction((tx) => {
    tx.put(certs, i, value(i));
    audit.append(tx, { actor: 'system', action: 'certificate.issue', object: `cert:bench/${i}`, outcome: 'success' });
  });
  const seqN = Math.min(N, 1000);
  let t0 = performance.now();
  for (let i = 0; i < seqN; i++) await change(i);
  const oursSeq = rate(seqN, t0);
  t0 = performance.now();
  await Promise.all(Array.from({ length: N }, (_, i) => change(seqN + i)));
  const oursConc = rate(N, t0);
  t0 = performance.now();
  await Promise.all(Array.from({ length: N }, (_, i) => store.transaction((tx) => tx.put(certs, seqN + N + i, value(i)))));
  const oursBare = rate(N, t0);
  t0 = performance.now();
  let found = 0;
  for (let r = 0; r < 5; r++) for (let i = 0; i < N; i++) if (certs.get(i)) found++;
  const oursRead = rate(5 * N, t0);

  // peer: bare lmdb-js defaults
  const root = open({ path: join(dir, 'peer'), maxDbs: 16 });
  const peer = root.openDB('bench.certificates', {});
  const peerChange = (i: number) => root.transaction(() => { peer.putSync(i, value(i)); });
  t0 = performance.now();
  for (let i = 0; i < seqN; i++) await peerChange(i);
  const peerSeq = rate(seqN, t0);
  t0 = performance.now();
  await Promise.all(Array.from({ length: N }, (_, i) => peerChange(seqN + i)));
  const peerConc = rate(N, t0);
  t0 = performance.now();
  for (let r = 0; r < 5; r++) for (let i = 0; i < N; i++) if (peer.get(i)) found++;
  const peerRead = rate(5 * N, t0);
  await root.close();

  rows.push({ row: `audited change, sequential (${seqN})`, perSecond: oursSeq, peer: peerSeq });
  rows.push({ row: `audited change, ${N} concurrent`, perSecond: oursConc, peer: peerConc });
  rows.push({ row: `change without audit record, ${N} concurrent`, perSecond: oursBare, peer: peerConc });
  rows.push({ row: 'read by key', perSecond: oursRead, peer: peerRead });

  t0 = performance.now();
  const { bytes } = await createBackup({ dataDir: join(dir, 'data'), store, file: join(dir, 'backup.tar') });
  const backupSeconds = (performance.now() - t0) / 1000;
  rows.push({ row: `backup (${(bytes / 1e6).toFixed(1)} MB archive), MB/s`, perSecond: Math.round(bytes / 1e6 / backupSeconds) });
  await audit.close();
  const size = statSync(join(dir, 'data', 'store', 'data.mdb')).size;
  await store.close();

  console.log(`store bench: N=${N}, data.mdb ${(size / 1e6).toFixed(1)} MB, ${found} reads hit`);
  console.log('| operation | yinxin store /s | bare lmdb-js (peer) /s | ratio |');
  console.log('|---|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.row} | ${r.perSecond} | ${r.peer ?? '-'} | ${r.peer ? (r.perSecond / r.peer).toFixed(2) : '-'} |`);
  }
  console.log('yinxin waits for fsync before acknowledging; the peer acknowledges at commit and flushes after.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
