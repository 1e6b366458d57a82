import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { openLmdbStore } from './lmdb.ts';
import { openTempStore as openTemp, tempDir } from './testing.ts';

const here = import.meta.dirname;

/** Runs a small script in a child node; returns its stdout (rejects on a non-zero exit). */
function runNode(script: string, args: string[], options: { uid?: number; gid?: number } = {}) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script, '--', ...args], {
    cwd: join(here, '..'),
    encoding: 'utf8',
    timeout: 30_000,
    ...options,
  });
}

// Opens a store in a child process and prints how that went as JSON, so that a crash in the native
// module (a segfault on a bad file) would show as a failed test rather than kill the runner.
const openAndReport = `
import { openLmdbStore } from './store/lmdb.ts';
try {
  const s = openLmdbStore(process.argv[1], { readOnly: process.argv[2] === 'ro' });
  const table = s.table('t');
  if (!s.readOnly) await s.transaction((tx) => tx.put(table, 'k', 1));
  console.log(JSON.stringify({ ok: true, value: table.get('k') }));
  await s.close();
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message, stack: e.stack }));
}
`;

t.test('a transaction commits all its writes and returns the callback result', async (t) => {
  const store = openTemp(t);
  const things = store.table<{ n: number }>('things');
  const result = await store.transaction((tx) => {
    tx.put(things, 'a', { n: 1 });
    tx.put(things, ['b', 2], { n: 2 });
    return 'done';
  });
  t.equal(result, 'done');
  t.same(things.get('a'), { n: 1 });
  t.same(things.get(['b', 2]), { n: 2 });
  t.ok(things.has('a'));
  t.notOk(things.has('zzz'));
  t.equal(things.get('zzz'), undefined);
});

t.test('Tx.get sees the transaction\'s own writes and removes', async (t) => {
  const store = openTemp(t);
  const things = store.table<number>('things');
  await store.transaction((tx) => tx.put(things, 'gone', 1));
  const seen = await store.transaction((tx) => {
    tx.put(things, 'x', 41);
    const first = tx.get(things, 'x');
    tx.put(things, 'x', (first ?? 0) + 1);
    tx.remove(things, 'gone');
    return [first, tx.get(things, 'x'), tx.get(things, 'gone')];
  });
  t.same(seen, [41, 42, undefined]);
  t.equal(things.get('x'), 42);
  t.notOk(things.has('gone'));
});

t.test('a throwing callback leaves nothing behind, and does not undo its neighbours in the same batch', async (t) => {
  const store = openTemp(t);
  const things = store.table<number>('things');
  const other = store.table<number>('other');
  let hookRan = false;
  await t.rejects(store.transaction((tx) => {
    tx.put(things, 'half', 1);
    tx.put(other, 'half', 1);
    tx.afterCommit(() => { hookRan = true; });
    throw new Error('refused half-way');
  }), { message: 'refused half-way' });
  t.notOk(things.has('half'));
  t.notOk(other.has('half'));
  t.equal(things.count(), 0);
  t.notOk(hookRan, 'afterCommit hooks of an aborted transaction do not run');

  // Queued in the same event turn, these share one LMDB write transaction.
  const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => store.transaction((tx) => {
    tx.put(things, i, i);
    if (i % 5 === 3) throw new Error(`no ${i}`);
    return i;
  })));
  t.same(outcomes.map((o) => o.status), Array.from({ length: 20 }, (_, i) => (i % 5 === 3 ? 'rejected' : 'fulfilled')));
  t.same([...things.range()].map((e) => e.key), Array.from({ length: 20 }, (_, i) => i).filter((i) => i % 5 !== 3));
});

t.test('a callback that returns a promise is refused and rolled back', async (t) => {
  const store = openTemp(t);
  const things = store.table<number>('things');
  await t.rejects(store.transaction(async (tx) => { tx.put(things, 'a', 1); }), { code: 'internal', message: /synchronous/ });
  t.notOk(things.has('a'));
});

t.test('a transaction inside a transaction callback is refused', async (t) => {
  const store = openTemp(t);
  const things = store.table<number>('things');
  await t.rejects(store.transaction((tx) => {
    tx.put(things, 'outer', 1);
    store.transaction(() => 1).catch(() => {});
  }), { code: 'internal', message: /inside a transaction callback/ });
  t.notOk(things.has('outer'));
});

t.test('a Tx kept past its callback cannot be used', async (t) => {
  const store = openTemp(t);
  const things = store.table<number>('things');
  let kept: import('./store.ts').Tx | undefined;
  await store.transaction((tx) => { kept = tx; });
  t.throws(() => kept!.put(things, 'late', 1), { code: 'internal' });
  t.notOk(things.has('late'));
});

t.test('afterCommit hooks run after the commit, in order, and a failing hook does not undo it', async (t) => {
  const store = openLmdbStore(join(tempDir(t), 'store'), { onHookError: (e) => hookErrors.push(e) });
  t.teardown(() => store.close());
  const hookErrors: unknown[] = [];
  const things = store.table<number>('things');
  const calls: string[] = [];
  await store.transaction((tx) => {
    tx.put(things, 'a', 1);
    tx.afterCommit(() => calls.push(`first sees ${things.get('a')}`));
    tx.afterCommit(() => { throw new Error('hook failed'); });
    tx.afterCommit(() => calls.push('third'));
    t.same(calls, [], 'not run inside the callback');
  });
  t.same(calls, ['first sees 1', 'third']);
  t.equal(hookErrors.length, 1);
  t.equal(things.get('a'), 1);
});

t.test('500 concurrent read-check-write increments give exactly 500', async (t) => {
  const store = openTemp(t);
  const counters = store.table<number>('counters');
  await Promise.all(Array.from({ length: 500 }, () => store.transaction((tx) => {
    const n = tx.get(counters, 'hits') ?? 0;
    tx.put(counters, 'hits', n + 1);
  })));
  t.equal(counters.get('hits'), 500);
});

t.test('keys order as documented; range and count honour start, end (exclusive), reverse, limit, offset', async (t) => {
  const store = openTemp(t);
  const table = store.table<string>('ordered');
  const keys: Array<import('./store.ts').Key> = [['ca', 2], ['ca', 10], ['ca', 1], ['cb', 0], 'b', 'a', 3, -1, 20];
  await store.transaction((tx) => { for (const k of keys) tx.put(table, k, JSON.stringify(k)); });
  const all = [...table.range()].map((e) => e.key);
  t.same(all, [-1, 3, 20, 'a', 'b', ['ca', 1], ['ca', 2], ['ca', 10], ['cb', 0]]);
  t.same([...table.range({ start: ['ca'], end: ['ca', 10] })].map((e) => e.key), [['ca', 1], ['ca', 2]]);
  t.same([...table.range({ start: ['ca'], end: ['ca', 10], reverse: true })].map((e) => e.key), [['ca', 2], ['ca', 1]]);
  t.same([...table.range({ start: ['ca', 2], end: ['cb'], reverse: true })].map((e) => e.key), [['ca', 10], ['ca', 2]]);
  t.same([...table.range({ reverse: true, limit: 2 })].map((e) => e.key), [['cb', 0], ['ca', 10]]);
  t.same([...table.range({ offset: 1, limit: 2 })].map((e) => e.value), ['3', '20']);
  t.equal(table.count(), 9);
  t.equal(table.count({ start: ['ca'], end: ['cb'] }), 3);
  t.same(store.stats().entries.ordered, 9);
  t.ok(store.stats().sizeBytes > 0);
});

t.test('values round-trip through msgpack: bytes, nested objects, dates, big numbers', async (t) => {
  const store = openTemp(t);
  const table = store.table<unknown>('values');
  const value = { der: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05]), list: [1, 'two', { three: 3 }], at: new Date('2025-01-02T03:04:05.678Z'), big: 2 ** 53 - 1, nothing: null };
  await store.transaction((tx) => tx.put(table, 'v', value));
  const back = table.get('v') as typeof value;
  t.same([...back.der], [...value.der]);
  t.same(back.list, value.list);
  t.equal((back.at as Date).toISOString(), value.at.toISOString());
  t.equal(back.big, value.big);
  t.equal(back.nothing, null);
});

t.test('getShared() returns one shared object while the stored value is unchanged, and a new one after any change', async (t) => {
  const store = openTemp(t);
  const table = store.table<{ name: string; roles: string[] }>('shared');
  t.equal(table.getShared('x'), undefined, 'absent');
  await store.transaction((tx) => {
    tx.put(table, 'x', { name: 'a', roles: ['r1'] });
    tx.put(table, ['x', 2], { name: 'array key', roles: [] });
  });
  const first = table.getShared('x');
  t.same(first, { name: 'a', roles: ['r1'] });
  t.equal(table.getShared('x'), first, 'the same object on the next read');
  t.not(table.get('x'), first, 'get() still decodes a fresh copy');
  t.same(table.getShared(['x', 2]), { name: 'array key', roles: [] }, 'array keys are kept apart from string keys');
  // Same length, one byte different: the comparison is of the bytes, not their size.
  await store.transaction((tx) => tx.put(table, 'x', { name: 'b', roles: ['r1'] }));
  const second = table.getShared('x');
  t.same(second, { name: 'b', roles: ['r1'] }, 'a change is seen at once');
  t.not(second, first);
  // A transaction that throws changes nothing, and what it read inside is not what is shared after.
  await t.rejects(store.transaction((tx) => {
    tx.put(table, 'x', { name: 'c', roles: [] });
    t.same(table.getShared('x'), { name: 'c', roles: [] }, 'inside the transaction, its own write');
    throw new Error('abort');
  }));
  t.same(table.getShared('x'), { name: 'b', roles: ['r1'] }, 'after the abort, the committed value again');
  await store.transaction((tx) => tx.remove(table, 'x'));
  t.equal(table.getShared('x'), undefined, 'removed');
});

t.test('stats() counts the entries of every table, even ones not opened by this handle', async (t) => {
  const dir = join(tempDir(t), 'store');
  const first = openLmdbStore(dir);
  const a = first.table<number>('a');
  const b = first.table<number>('b');
  await first.transaction((tx) => { tx.put(a, 1, 1); tx.put(a, 2, 2); tx.put(b, 1, 1); });
  await first.close();
  const second = openLmdbStore(dir, { readOnly: true });
  t.teardown(() => second.close());
  const stats = second.stats();
  t.same(stats.entries, { a: 2, b: 1 });
  t.equal(stats.sizeBytes, statSync(join(dir, 'data.mdb')).size);
});

t.test('a read-only store refuses writes with store-unavailable, and a missing store is reported clearly', async (t) => {
  const dir = join(tempDir(t), 'store');
  const writer = openLmdbStore(dir);
  writer.table('t');
  const reader = openLmdbStore(dir, { readOnly: true });
  t.teardown(async () => { await reader.close(); await writer.close(); });
  t.equal(reader.readOnly, true);
  await t.rejects(reader.transaction(() => 1), { code: 'store-unavailable', message: /read-only/ });
  t.throws(() => openLmdbStore(join(dir, 'nope'), { readOnly: true }), { code: 'store-unavailable', message: /no store at .*yinxin init/ });
  t.equal(reader.table('not-yet').get('x'), undefined, 'a table the writer has not created reads as empty');
  t.equal(reader.table('not-yet').count(), 0);
});

t.test('a read-only store in this process sees commits made by a writer in another process', async (t) => {
  const dir = join(tempDir(t), 'store');
  const setup = openLmdbStore(dir);
  setup.table('t');
  await setup.close();
  const reader = openLmdbStore(dir, { readOnly: true });
  t.teardown(() => reader.close());
  const table = reader.table<number>('t');
  const laterTable = reader.table<number>('created-later');

  const writer = spawn(process.execPath, ['--input-type=module', '-e', `
    import { openLmdbStore } from './store/lmdb.ts';
    import { createInterface } from 'node:readline';
    const s = openLmdbStore(process.argv[1]);
    const t = s.table('t');
    for await (const line of createInterface({ input: process.stdin })) {
      if (line === 'quit') break;
      const n = Number(line);
      await s.transaction((tx) => tx.put(t, 'n', n));
      if (n === 3) { const later = s.table('created-later'); await s.transaction((tx) => tx.put(later, 'x', 7)); }
      console.log('committed ' + n);
    }
    await s.close();
  `, '--', dir], { cwd: join(here, '..'), stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createLineReader(writer.stdout!);
  for (const n of [1, 2, 3]) {
    writer.stdin!.write(`${n}\n`);
    t.equal(await lines.next(), `committed ${n}`);
    // lmdb-js renews a reader's snapshot from a zero-delay timer after its last read.
    await new Promise((r) => setTimeout(r, 2));
    t.equal(table.get('n'), n, `reader sees commit ${n}`);
    t.equal(table.getShared('n'), n, `and getShared() sees it too (${n})`);
  }
  t.equal(laterTable.get('x'), 7, 'and a table the writer created after the reader opened');
  const exited = new Promise((r) => writer.on('exit', r));
  writer.stdin!.end('quit\n');
  await exited;
});

function createLineReader(stream: NodeJS.ReadableStream) {
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line); else queue.push(line);
    }
  });
  return {
    next(): Promise<string> {
      const line = queue.shift();
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve) => waiting.push(resolve));
    },
  };
}

t.test('a damaged data file gives store-unavailable with advice, never a crash or a stack trace', async (t) => {
  const base = tempDir(t);
  const good = join(base, 'good');
  const s = openLmdbStore(good);
  const table = s.table<string>('t');
  await s.transaction((tx) => { for (let i = 0; i < 2000; i++) tx.put(table, i, 'x'.repeat(100)); });
  await s.close();
  const pageSize = 4096;
  const size = statSync(join(good, 'data.mdb')).size;

  const damages: Record<string, (file: string) => void> = {
    'random bytes': (file) => overwrite(file, 0, Buffer.from(Array.from({ length: 3 * pageSize }, (_, i) => (i * 7919 + 13) & 0xff))),
    'first meta page zeroed': (file) => overwrite(file, 0, Buffer.alloc(pageSize)),
    'second meta page zeroed': (file) => overwrite(file, pageSize, Buffer.alloc(pageSize)),
    'truncated to half': (file) => truncateSync(file, Math.floor(size / 2 / pageSize) * pageSize),
    'truncated to one page': (file) => truncateSync(file, pageSize),
    'emptied': (file) => truncateSync(file, 0),
    'not an LMDB file': (file) => { truncateSync(file, 0); overwrite(file, 0, Buffer.from('{"this is": "json"}\n')); },
  };
  for (const [name, damage] of Object.entries(damages)) {
    const dir = join(base, name.replace(/\W+/g, '-'));
    mkdirSync(dir);
    spawnSync('cp', [join(good, 'data.mdb'), join(dir, 'data.mdb')]);
    damage(join(dir, 'data.mdb'));
    for (const mode of ['rw', 'ro']) {
      const r = runNode(openAndReport, [dir, mode]);
      t.equal(r.status, 0, `${name} (${mode}): the child did not crash (signal ${r.signal})`);
      const report = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
      t.equal(report.ok, false, `${name} (${mode}): refused`);
      t.equal(report.code, 'store-unavailable', `${name} (${mode}): code`);
      t.match(report.message, /damaged .*restore the last backup/, `${name} (${mode}): says what to do`);
      t.notMatch(report.message, /\n\s+at /, `${name} (${mode}): no stack trace in the message`);
    }
  }
  const r = runNode(openAndReport, [good, 'rw']);
  t.same(JSON.parse(r.stdout.trim()), { ok: true, value: 1 }, 'the undamaged original still opens');
});

function overwrite(file: string, offset: number, bytes: Buffer) {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

t.test('permission denied gives store-unavailable naming the fix', { skip: process.getuid?.() !== 0 && 'needs root to run a child as another user' }, async (t) => {
  const base = tempDir(t);
  chmodSync(base, 0o755);
  const dir = join(base, 'store');
  const s = openLmdbStore(dir);
  s.table('t');
  await s.close();
  chmodSync(dir, 0o700);
  chownSync(dir, 0, 0);
  for (const mode of ['rw', 'ro']) {
    const r = runNode(openAndReport, [dir, mode], { uid: 65534, gid: 65534 });
    t.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout.trim());
    t.equal(report.code, 'store-unavailable', mode);
    t.match(report.message, /permission denied.*chown/, mode);
  }
  const created = runNode(openAndReport, [join(dir, 'sub'), 'rw'], { uid: 65534, gid: 65534 });
  t.match(JSON.parse(created.stdout.trim()), { code: 'store-unavailable', message: /permission denied/ }, 'creating a store where one may not');
});

t.test('backup() writes a consistent snapshot while writers go on', async (t) => {
  const base = tempDir(t);
  const store = openLmdbStore(join(base, 'store'));
  t.teardown(() => store.close());
  const pairs = store.table<number>('pairs');
  // Each transaction writes the same number under two keys; a torn snapshot would show a mismatch.
  let n = 0;
  let stop = false;
  const writing = (async () => {
    while (!stop) {
      n++;
      await store.transaction((tx) => { tx.put(pairs, 'left', n); tx.put(pairs, 'right', n); tx.put(pairs, ['log', n], n); });
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  const file = join(base, 'snapshot.mdb');
  await store.backup(file);
  const atBackup = n;
  await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await writing;
  t.ok(n > atBackup, 'writes went on during and after the backup');

  const restoredDir = join(base, 'restored');
  mkdirSync(restoredDir);
  spawnSync('cp', [file, join(restoredDir, 'data.mdb')]);
  const restored = openLmdbStore(restoredDir, { readOnly: true });
  t.teardown(() => restored.close());
  const r = restored.table<number>('pairs');
  const left = r.get('left')!;
  t.ok(left > 0);
  t.equal(r.get('right'), left, 'both halves of the last transaction in the snapshot');
  t.equal(r.count({ start: ['log'], end: ['log', Infinity] }), left, 'and every earlier one');
});
