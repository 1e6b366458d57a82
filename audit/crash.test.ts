/**
 * kill -9 in the middle of a burst of writes: a child process runs transactions (a state change and
 * its audit record) and prints each id once its transaction is acknowledged; the parent kills it
 * with SIGKILL mid-burst, reopens the store and checks that every acknowledged id is there, that
 * no change exists without its audit record (or the reverse), and that the audit chain verifies.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLmdbStore } from '../store/lmdb.ts';
import { AUDIT_TABLES, verifyAuditTrail } from './audit.ts';
import type { AuditRecord } from './types.ts';

const root = join(import.meta.dirname, '..');

const writer = `
import { openLmdbStore } from './store/lmdb.ts';
import { createAuditLog } from './audit/audit.ts';
import { SoftwareKeyStore } from './hsm/software.ts';
import { systemClock } from './common/clock.ts';
const [dir, round] = process.argv.slice(1);
const store = openLmdbStore(dir);
const items = store.table('items');
const signer = await new SoftwareKeyStore().generateKeyPair('audit/checkpoint', { type: 'ec', curve: 'P-256' });
const audit = createAuditLog({ store, clock: systemClock, signer, headSigning: { everyRecords: 40, everyMs: 20 } });
const payload = 'x'.repeat(3000);
let next = 0;
console.log('ready');
// 16 writers at once, so that several transactions share each LMDB commit.
await Promise.all(Array.from({ length: 16 }, async () => {
  for (;;) {
    const id = round + '-' + next++;
    await store.transaction((tx) => {
      tx.put(items, id, { id, payload });
      audit.append(tx, { actor: 'system', action: 'item.create', object: 'item:' + id, outcome: 'success', details: { round: Number(round) } });
    });
    process.stdout.write('ack ' + id + '\\n');
  }
}));
`;

function burstAndKill(dir: string, round: number, killAfterAcks: number): Promise<{ acked: string[]; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', writer, '--', dir, String(round)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: string[] = [];
    let buffer = '';
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('ack ')) acked.push(line.slice(4));
      }
      if (!killed && acked.length >= killAfterAcks) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      // Lines already in the pipe when the child died were acknowledged too.
      for (const line of buffer.split('\n')) if (line.startsWith('ack ')) acked.push(line.slice(4));
      if (!killed) reject(new Error(`the writer exited by itself (code ${code}): ${stderr}`));
      else resolve({ acked, signal });
    });
  });
}

t.test('kill -9 mid-burst loses no acknowledged write, leaves no half record, and the audit chain verifies', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const storeDir = join(dir, 'store');
  const allAcked: string[] = [];
  for (const [round, killAfter] of [[1, 150], [2, 400], [3, 60]] as const) {
    const { acked, signal } = await burstAndKill(storeDir, round, killAfter);
    t.equal(signal, 'SIGKILL', `round ${round}: killed`);
    t.ok(acked.length >= killAfter, `round ${round}: ${acked.length} writes acknowledged before the kill`);
    allAcked.push(...acked);

    const store = openLmdbStore(storeDir);
    const items = store.table<{ id: string; payload: string }>('items');
    const records = store.table<AuditRecord>(AUDIT_TABLES.records);
    const missing = allAcked.filter((id) => !items.has(id));
    t.same(missing, [], `round ${round}: every acknowledged id is in the store`);

    const audited = new Map<string, number>();
    for (const { value } of records.range()) {
      const id = value.object.slice('item:'.length);
      audited.set(id, (audited.get(id) ?? 0) + 1);
    }
    const itemIds = [...items.range()].map((e) => e.key as string);
    t.same(itemIds.filter((id) => audited.get(id) !== 1), [], `round ${round}: every change has exactly one audit record`);
    t.same([...audited.keys()].filter((id) => !items.has(id)), [], `round ${round}: no audit record without its change`);
    t.ok([...items.range()].every((e) => e.value.payload.length === 3000), `round ${round}: no torn value`);
    t.ok(itemIds.length >= allAcked.length, `round ${round}: ${itemIds.length} stored (committed but not yet printed ones count too)`);

    const result = await verifyAuditTrail(store);
    t.same(result.problems, [], `round ${round}: the audit trail verifies`);
    t.equal(result.records, itemIds.length);
    t.ok(result.checkpoints > 0, `round ${round}: checkpoints were signed during the burst (${result.checkpoints})`);
    await store.close();
  }
});
