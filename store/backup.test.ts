import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FixedClock } from '../common/clock.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { createAuditLog, verifyAuditTrail } from '../audit/audit.ts';
import { createBackup, readBackupManifest, restoreBackup } from './backup.ts';
import { openLmdbStore } from './lmdb.ts';
import { tempDir } from './testing.ts';

/** A data directory as the appliance lays it out (docs/data-directory.md), with a store holding an audited table. */
async function dataDirectory(t: Test, base: string) {
  const dataDir = join(base, 'data');
  mkdirSync(join(dataDir, 'hsm', 'tokens', 'c0ffee'), { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o750);
  writeFileSync(join(dataDir, 'hsm', 'pin'), '123456\n', { mode: 0o600 });
  writeFileSync(join(dataDir, 'hsm', 'softhsm2.conf'), `directories.tokendir = ${join(dataDir, 'hsm', 'tokens')}\n`, { mode: 0o600 });
  writeFileSync(join(dataDir, 'hsm', 'tokens', 'c0ffee', 'token.object'), Buffer.from(Array.from({ length: 5000 }, (_, i) => i & 0xff)), { mode: 0o600 });
  writeFileSync(join(dataDir, 'yinxin.json'), '{"publicUrl":"http://127.0.0.1:8080"}\n', { mode: 0o644 });
  mkdirSync(join(dataDir, 'tls'), { mode: 0o755 });
  writeFileSync(join(dataDir, 'tls', 'key.pem'), 'not really a key\n', { mode: 0o400 });
  writeFileSync(join(dataDir, 'appliance.lock'), `${process.pid}\n`);
  const store = openLmdbStore(join(dataDir, 'store'));
  t.teardown(() => store.close());
  const keys = new SoftwareKeyStore();
  const signer = await keys.generateKeyPair('audit/checkpoint', { type: 'ec', curve: 'P-256' });
  const audit = createAuditLog({ store, clock: new FixedClock('2025-05-01T00:00:00Z'), signer });
  t.teardown(() => audit.close());
  return { dataDir, store, audit, signer };
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

t.test('a backup taken while a writer is busy restores into a consistent store whose audit trail verifies', async (t) => {
  const base = tempDir(t);
  const { dataDir, store, audit, signer } = await dataDirectory(t, base);
  const pairs = store.table<number>('pairs');
  let n = 0;
  let stop = false;
  const writing = (async () => {
    while (!stop) {
      const i = ++n;
      await store.transaction((tx) => {
        tx.put(pairs, 'left', i);
        tx.put(pairs, 'right', i);
        audit.append(tx, { actor: 'system', action: 'pair.set', object: `pair:${i}`, outcome: 'success' });
      });
      if (i % 10 === 0) await audit.checkpoint();
    }
  })();
  await new Promise((r) => setTimeout(r, 100));
  const progress: Array<[number, number]> = [];
  const file = join(base, 'backup.tar');
  const { manifest, bytes } = await createBackup({ dataDir, store, file, onProgress: (d, total) => progress.push([d, total]) });
  const atBackup = n;
  await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await writing;
  t.ok(n > atBackup, 'the writer went on during the backup');
  t.equal(statSync(file).size, bytes);

  const total = progress[0][1];
  t.ok(progress.every(([d, tot], i) => tot === total && d <= tot && (i === 0 || d >= progress[i - 1][0])), 'progress is monotonic and bounded');
  t.same(progress.at(-1), [total, total], 'and ends at the total');

  t.same(manifest.members.map((m) => m.path), [
    'store', 'store/data.mdb', 'hsm', 'hsm/pin', 'hsm/softhsm2.conf', 'hsm/tokens', 'hsm/tokens/c0ffee', 'hsm/tokens/c0ffee/token.object',
    'tls', 'tls/key.pem', 'yinxin.json',
  ], 'everything but the lock files, in order');
  t.match(manifest, { format: 'yinxin-backup', formatVersion: 1, dataDirMode: 0o750 });

  const target = join(base, 'restored');
  const result = await restoreBackup({ file, dataDir: target });
  t.equal(result.previousDataDir, undefined);
  for (const m of manifest.members) {
    const restored = join(target, m.path);
    t.equal(statSync(restored).mode & 0o7777, m.mode, `${m.path} keeps mode ${m.mode.toString(8)}`);
    if (m.type === 'file' && m.path !== 'store/data.mdb') t.equal(sha256(restored), sha256(join(dataDir, m.path)), `${m.path} content`);
  }
  t.equal(statSync(join(target, 'hsm', 'pin')).mode & 0o777, 0o600, 'the PIN file stays 0600');
  t.equal(statSync(target).mode & 0o777, 0o750);
  t.notOk(existsSync(join(target, 'appliance.lock')));

  const restored = openLmdbStore(join(target, 'store'));
  t.teardown(() => restored.close());
  const r = restored.table<number>('pairs');
  const left = r.get('left')!;
  t.ok(left > 0 && left <= atBackup, `the snapshot holds ${left} of the ${atBackup} writes done when the backup finished`);
  t.equal(r.get('right'), left, 'no torn transaction');
  const verification = await verifyAuditTrail(restored, { publicKeyInfo: signer.publicKeyInfo });
  t.same(verification.problems, []);
  t.equal(verification.records, left, 'one audit record per write, no more, no less');
  t.ok(verification.checkpoints > 0);
});

t.test('the archive is a plain ustar that the system tar lists and extracts, matching the manifest', async (t) => {
  const base = tempDir(t);
  const { dataDir, store, audit } = await dataDirectory(t, base);
  await store.transaction((tx) => audit.append(tx, { actor: 'system', action: 'x.y', object: 'z', outcome: 'success' }));
  const file = join(base, 'b.tar');
  const { manifest } = await createBackup({ dataDir, store, file });
  const listing = execFileSync('tar', ['tvf', file], { encoding: 'utf8' });
  t.match(listing, /^-rw------- .* MANIFEST\.json$/m);
  t.match(listing, /^-rw------- .* hsm\/pin$/m);
  t.match(listing, /^-r-------- .* tls\/key\.pem$/m);
  t.match(listing, /^drwx------ .* hsm\/tokens\/c0ffee\/$/m);
  const out = join(base, 'x');
  mkdirSync(out);
  execFileSync('tar', ['xf', file, '-C', out]);
  t.same(JSON.parse(readFileSync(join(out, 'MANIFEST.json'), 'utf8')), manifest);
  for (const m of manifest.members.filter((x) => x.type === 'file')) t.equal(sha256(join(out, m.path)), m.sha256, m.path);
  t.same(await readBackupManifest(file), manifest);
});

t.test('restore refuses a non-empty data directory unless forced, and then moves it aside', async (t) => {
  const base = tempDir(t);
  const { dataDir, store } = await dataDirectory(t, base);
  const file = join(base, 'b.tar');
  await createBackup({ dataDir, store, file });
  const target = join(base, 'occupied');
  mkdirSync(target);
  writeFileSync(join(target, 'precious'), 'keep me');
  await t.rejects(restoreBackup({ file, dataDir: target }), { code: 'conflict', message: /not empty.*--force/ });
  t.same(readdirSync(target), ['precious'], 'untouched');
  t.same(readdirSync(base).filter((n) => n.includes('restoring')), [], 'no staging left behind');

  const { previousDataDir } = await restoreBackup({ file, dataDir: target, force: true });
  t.ok(previousDataDir);
  t.equal(readFileSync(join(previousDataDir!, 'precious'), 'utf8'), 'keep me', 'the old directory is kept aside');
  t.ok(existsSync(join(target, 'store', 'data.mdb')));

  const empty = join(base, 'empty');
  mkdirSync(empty);
  await restoreBackup({ file, dataDir: empty });
  t.ok(existsSync(join(empty, 'hsm', 'pin')), 'an empty directory is fine without force');
});

async function backupFile(t: Test) {
  const base = tempDir(t);
  const { dataDir, store } = await dataDirectory(t, base);
  const file = join(base, 'b.tar');
  const { manifest } = await createBackup({ dataDir, store, file });
  return { base, file, manifest };
}

function flipByteAt(file: string, offset: number) {
  const bytes = readFileSync(file);
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from([bytes[offset] ^ 0x40]), 0, 1, offset);
  closeSync(fd);
}

t.test('a damaged archive is refused before anything is touched, and says what is wrong', async (t) => {
  const { base, file } = await backupFile(t);
  const bytes = readFileSync(file);
  const pinOffset = bytes.indexOf('123456\n');
  const snapshotData = bytes.indexOf('store/data.mdb\0') + 512;
  const cases: Array<[string, (f: string) => void, RegExp]> = [
    ['a flipped byte in the PIN file', (f) => flipByteAt(f, pinOffset), /hsm\/pin does not match its SHA-256/],
    ['a flipped byte in the store snapshot', (f) => flipByteAt(f, snapshotData + 4096 + 50), /store\/data\.mdb does not match its SHA-256/],
    ['a flipped byte in a header', (f) => flipByteAt(f, 0), /checksum/],
    ['cut in the middle', (f) => writeFileSync(f, bytes.subarray(0, Math.floor(bytes.length / 2))), /ends in the middle|does not match|end-of-archive/],
    ['cut before the end marker', (f) => writeFileSync(f, bytes.subarray(0, bytes.length - 1024)), /end-of-archive/],
    ['not a tar at all', (f) => writeFileSync(f, 'hello'), /end-of-archive|damaged/],
  ];
  for (const [name, damage, message] of cases) {
    const copy = join(base, `${name.replace(/\W+/g, '-')}.tar`);
    writeFileSync(copy, bytes);
    damage(copy);
    const target = join(base, `target-${name.replace(/\W+/g, '-')}`);
    await t.rejects(restoreBackup({ file: copy, dataDir: target }), { code: 'validation-failed', message }, name);
    t.notOk(existsSync(target), `${name}: the data directory was not created`);
  }
  t.same(readdirSync(base).filter((n) => n.includes('restoring')), [], 'no staging left behind');
  await t.rejects(restoreBackup({ file: join(base, 'nope.tar'), dataDir: join(base, 't') }), { code: 'not-found' });
});

t.test('hostile manifests made with the system tar are refused: paths outside, wrong version, extra members', async (t) => {
  const { base, manifest } = await backupFile(t);
  const build = (name: string, m: unknown, files: Record<string, string>) => {
    const dir = join(base, `src-${name}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'MANIFEST.json'), JSON.stringify(m));
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    const tarFile = join(base, `${name}.tar`);
    const r = spawnSync('tar', ['--format=ustar', '-cf', tarFile, '-C', dir, 'MANIFEST.json', ...Object.keys(files)]);
    t.equal(r.status, 0, r.stderr?.toString());
    return tarFile;
  };
  const digest = (s: string) => createHash('sha256').update(s).digest('hex');
  const evil = build('escape', { ...manifest, members: [{ path: '../escaped', type: 'file', mode: 0o644, size: 4, sha256: digest('evil') }] }, {});
  await t.rejects(restoreBackup({ file: evil, dataDir: join(base, 't1') }), { code: 'validation-failed', message: /unsafe path "\.\.\/escaped"/ });
  t.notOk(existsSync(join(base, 'escaped')));
  const absolute = build('absolute', { ...manifest, members: [{ path: '/etc/passwd', type: 'file', mode: 0o644, size: 1, sha256: digest('x') }] }, {});
  await t.rejects(restoreBackup({ file: absolute, dataDir: join(base, 't2') }), { message: /unsafe path/ });
  const future = build('future', { ...manifest, formatVersion: 2 }, {});
  await t.rejects(restoreBackup({ file: future, dataDir: join(base, 't3') }), { message: /format version 2/ });
  const noStore = build('nostore', { ...manifest, members: [{ path: 'yinxin.json', type: 'file', mode: 0o644, size: 2, sha256: digest('{}') }] }, { 'yinxin.json': '{}' });
  await t.rejects(restoreBackup({ file: noStore, dataDir: join(base, 't4') }), { message: /no store snapshot/ });
  const notJson = build('notjson', 'x', {});
  writeFileSync(join(base, 'src-notjson', 'MANIFEST.json'), '{not json');
  spawnSync('tar', ['--format=ustar', '-cf', notJson, '-C', join(base, 'src-notjson'), 'MANIFEST.json']);
  await t.rejects(restoreBackup({ file: notJson, dataDir: join(base, 't5') }), { message: /not JSON/ });
  for (const n of ['t1', 't2', 't3', 't4', 't5']) t.notOk(existsSync(join(base, n)), `${n} not created`);
});
