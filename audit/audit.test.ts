import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FixedClock } from '../common/clock.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import type { KeySpec } from '../hsm/signer.ts';
import { AUDIT_TABLES, canonicalJson, checkpointPayload, createAuditLog, recordHash, verifyAuditTrail } from './audit.ts';
import type { AuditCheckpoint, AuditInput, AuditRecord } from './types.ts';
import { openTempStore as openTemp, tempDir } from '../store/testing.ts';

/** Waits (up to 10 s, for a loaded machine) until `condition` holds. */
async function eventually(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in 10 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const input = (i: number, extra: Partial<AuditInput> = {}): AuditInput => ({
  actor: `operator:${i % 2 ? 'alice' : 'bob'}`,
  action: i % 3 ? 'certificate.issue' : 'certificate.revoke',
  object: `cert:issuing/${i.toString(16).padStart(16, '0')}`,
  outcome: 'success',
  requestId: `req-${i}`,
  ...extra,
});

async function filledTrail(t: Test, n: number, spec: KeySpec = { type: 'ec', curve: 'P-256' }) {
  const store = openTemp(t);
  const clock = new FixedClock('2025-03-01T08:00:00.000Z');
  const keys = new SoftwareKeyStore();
  const signer = await keys.generateKeyPair('audit/checkpoint', spec);
  const audit = createAuditLog({ store, clock, signer });
  t.teardown(() => audit.close());
  const things = store.table<number>('things');
  for (let i = 1; i <= n; i++) {
    clock.advance(1000);
    await store.transaction((tx) => {
      tx.put(things, i, i);
      audit.append(tx, input(i, { details: { n: i, reason: 'keyCompromise' } }));
    });
  }
  return { store, clock, keys, signer, audit, records: store.table<AuditRecord>(AUDIT_TABLES.records), checkpoints: store.table<AuditCheckpoint>(AUDIT_TABLES.checkpoints) };
}

t.test('the canonical form is sorted, compact JSON; the hash is its SHA-256 as sha256sum computes it', async (t) => {
  const store = openTemp(t);
  const audit = createAuditLog({ store, clock: new FixedClock('2025-01-02T03:04:05.678Z') });
  const record = await store.transaction((tx) => audit.append(tx, {
    actor: 'operator:alice', action: 'certificate.issue', object: 'cert:issuing/0a', outcome: 'success',
    details: { profile: 'server', z: [1, { b: 2, a: '印信' }], skipped: undefined },
  }));
  const expected = '{"action":"certificate.issue","actor":"operator:alice","details":{"profile":"server","z":[1,{"a":"印信","b":2}]},'
    + '"object":"cert:issuing/0a","outcome":"success","prev":"","seq":1,"time":"2025-01-02T03:04:05.678Z"}';
  const { hash: _h, ...fields } = record;
  t.equal(canonicalJson(fields), expected);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'canonical'), expected, 'utf8');
  const sha256sum = execFileSync('sha256sum', [join(dir, 'canonical')], { encoding: 'utf8' }).split(' ')[0];
  t.equal(record.hash, sha256sum);
  t.equal(recordHash(record), sha256sum);
  t.equal(record.seq, 1);
  t.equal(record.prev, '');
  t.notOk('skipped' in record.details!, 'undefined members are left out, as the hash leaves them out');
});

t.test('details JSON would change are stored as JSON writes them, plain ones as they are; both hash what is stored', async (t) => {
  const store = openTemp(t);
  const audit = createAuditLog({ store, clock: new FixedClock('2025-01-02T03:04:05.678Z') });
  class Serial { toJSON() { return '0a'; } }
  const changed = {
    at: new Date('2025-01-02T00:00:00Z'), serial: new Serial(), list: [1, undefined, 'x'], nested: { skipped: undefined, kept: -0 }, bytes: new Uint8Array([7]),
  };
  const plain = { count: 2, uses: [{ kind: 'file', documentDigest: 'ab'.repeat(32), hash: 'SHA-256', time: '2025-01-02T03:04:05.678Z' }], note: '印信 "quoted"\n\u0000' };
  const [a, b] = await store.transaction((tx) => [
    audit.append(tx, { ...input(1), details: changed }),
    audit.append(tx, { ...input(2), details: plain }),
  ]);
  const stored = [...store.table<AuditRecord>(AUDIT_TABLES.records).range()].map((e) => e.value);
  t.same(stored[0].details, { at: '2025-01-02T00:00:00.000Z', serial: '0a', list: [1, null, 'x'], nested: { kept: 0 }, bytes: { 0: 7 } });
  t.same(stored[0].details, a.details);
  t.same(stored[1].details, plain);
  t.equal(stored[0].hash, recordHash(stored[0]));
  t.equal(stored[1].hash, recordHash(stored[1]));
  t.equal(b.hash, recordHash({ ...b, details: JSON.parse(JSON.stringify(plain)) }), 'the same hash as after a JSON round trip');
  t.same((await verifyAuditTrail(store)).problems, []);
});

t.test('records chain: seq 1, 2, 3 without gaps, each prev the hash before; the head follows', async (t) => {
  const { audit, records } = await filledTrail(t, 5);
  const all = [...records.range()].map((e) => e.value);
  t.same(all.map((r) => r.seq), [1, 2, 3, 4, 5]);
  for (let i = 1; i < all.length; i++) t.equal(all[i].prev, all[i - 1].hash);
  t.same(audit.head(), { seq: 5, hash: all[4].hash });
  t.equal(all[0].time, '2025-03-01T08:00:01.000Z');
  t.same(all[2].details, { n: 3, reason: 'keyCompromise' });
});

t.test('several appends in one transaction, and an aborted transaction leaves no record and no gap', async (t) => {
  const store = openTemp(t);
  const audit = createAuditLog({ store, clock: new FixedClock(0) });
  const pair = await store.transaction((tx) => [audit.append(tx, input(1)), audit.append(tx, input(2))]);
  t.same(pair.map((r) => r.seq), [1, 2]);
  t.equal(pair[1].prev, pair[0].hash);
  await t.rejects(store.transaction((tx) => {
    audit.append(tx, input(3));
    throw new Error('the change failed after its record was written');
  }));
  t.same(audit.head().seq, 2, 'the head did not move');
  const third = await store.transaction((tx) => audit.append(tx, input(4)));
  t.equal(third.seq, 3, 'no gap');
  t.equal(third.prev, pair[1].hash);
  t.same(audit.list().map((r) => r.requestId), ['req-1', 'req-2', 'req-4']);
  t.same((await verifyAuditTrail(store)).ok, true);
});

t.test('concurrent appends from 300 transactions serialize into one unbroken chain', async (t) => {
  const store = openTemp(t);
  const audit = createAuditLog({ store, clock: new FixedClock(0) });
  await Promise.all(Array.from({ length: 300 }, (_, i) => store.transaction((tx) => audit.append(tx, input(i)))));
  const result = await verifyAuditTrail(store);
  t.same(result, { ok: true, records: 300, problems: [], checkpoints: 0, lastCheckpointSeq: 0 });
});

t.test('list() pages and filters by actor and action', async (t) => {
  const { audit } = await filledTrail(t, 12);
  t.same(audit.list({ limit: 3 }).map((r) => r.seq), [1, 2, 3]);
  t.same(audit.list({ fromSeq: 10 }).map((r) => r.seq), [10, 11, 12]);
  t.same(audit.list({ actor: 'operator:alice', action: 'certificate.revoke' }).map((r) => r.seq), [3, 9]);
  t.same(audit.list({ action: 'certificate.revoke', limit: 2, fromSeq: 4 }).map((r) => r.seq), [6, 9]);
  t.same(audit.list({ limit: 0 }), []);
});

t.test('bad input is refused and nothing is written', async (t) => {
  const store = openTemp(t);
  const audit = createAuditLog({ store, clock: new FixedClock(0) });
  const bad: Array<[string, unknown]> = [
    ['empty actor', { ...input(1), actor: '' }],
    ['no action', { ...input(1), action: undefined }],
    ['odd outcome', { ...input(1), outcome: 'maybe' }],
    ['numeric requestId', { ...input(1), requestId: 5 }],
    ['NaN in details', { ...input(1), details: { x: NaN } }],
    ['bigint in details', { ...input(1), details: { x: 1n } }],
    ['cyclic details', { ...input(1), details: (() => { const o: Record<string, unknown> = {}; o.self = o; return o; })() }],
    ['details an array', { ...input(1), details: [1, 2] }],
    ['details null', { ...input(1), details: null }],
    ['details a Date', { ...input(1), details: new Date(0) }],
    ['Infinity deep in details', { ...input(1), details: { a: [{ b: Infinity }] } }],
  ];
  for (const [name, value] of bad) {
    await t.rejects(store.transaction((tx) => audit.append(tx, value as AuditInput)), { code: 'validation-failed' }, name);
  }
  t.equal(audit.head().seq, 0);
  t.equal(store.table(AUDIT_TABLES.records).count(), 0);
});

t.test('checkpoint() signs the head; openssl verifies the signature with the stored SPKI', async (t) => {
  for (const spec of [{ type: 'ec', curve: 'P-256' }, { type: 'rsa', bits: 2048 }, { type: 'ed25519' }] as KeySpec[]) {
    const { audit, store, signer } = await filledTrail(t, 3, spec);
    const cp = (await audit.checkpoint())!;
    t.match(cp, { seq: 3, hash: audit.head().hash, signerLabel: 'audit/checkpoint', scheme: signer.scheme });
    t.same([...cp.publicKeyInfo], [...signer.publicKeyInfo]);
    t.match(await audit.checkpoint(), { seq: cp.seq, time: cp.time, hash: cp.hash }, 'no new records: the same checkpoint');
    t.equal(audit.checkpoints().length, 1);

    const dir = tempDir(t);
    writeFileSync(join(dir, 'pub.der'), cp.publicKeyInfo);
    writeFileSync(join(dir, 'payload'), checkpointPayload(cp));
    writeFileSync(join(dir, 'sig'), cp.signature);
    const args = spec.type === 'ed25519'
      ? ['pkeyutl', '-verify', '-pubin', '-inkey', join(dir, 'pub.der'), '-keyform', 'DER', '-rawin', '-in', join(dir, 'payload'), '-sigfile', join(dir, 'sig')]
      : ['dgst', '-sha256', '-verify', join(dir, 'pub.der'), '-keyform', 'DER', '-signature', join(dir, 'sig'), join(dir, 'payload')];
    const out = execFileSync('openssl', args, { encoding: 'utf8' });
    t.match(out, /Verified OK|Signature Verified Successfully/, `openssl verifies the ${spec.type} checkpoint`);
    t.equal(checkpointPayload(cp).toString(), `{"hash":"${cp.hash}","seq":3,"time":"${cp.time}","type":"yinxin-audit-checkpoint/1"}`);
    const result = await verifyAuditTrail(store, { publicKeyInfo: signer.publicKeyInfo });
    t.same(result, { ok: true, records: 3, problems: [], checkpoints: 1, lastCheckpointSeq: 3 });
  }
});

t.test('without a signer, checkpoint() returns null and nothing is stored', async (t) => {
  const store = openTemp(t);
  const audit = createAuditLog({ store, clock: new FixedClock(0) });
  await store.transaction((tx) => audit.append(tx, input(1)));
  t.equal(await audit.checkpoint(), null);
  t.equal(store.table(AUDIT_TABLES.checkpoints).count(), 0);
});

t.test('the background task signs every N records and every T ms when there is something new', async (t) => {
  const store = openTemp(t);
  const keys = new SoftwareKeyStore();
  const signer = await keys.generateKeyPair('audit', { type: 'ec', curve: 'P-256' });
  const byCount = createAuditLog({ store, clock: new FixedClock(0), signer, headSigning: { everyRecords: 10, everyMs: 0 } });
  for (let i = 0; i < 25; i++) await store.transaction((tx) => byCount.append(tx, input(i)));
  await eventually(() => byCount.checkpoints().length === 2);
  t.same(byCount.checkpoints().map((c) => c.seq), [10, 20], 'after the 10th and the 20th record');
  await byCount.close();
  t.same(byCount.checkpoints().map((c) => c.seq), [10, 20, 25], 'close() signs the unsigned tail');

  const byTime = createAuditLog({ store, clock: new FixedClock(0), signer, headSigning: { everyRecords: 1000, everyMs: 40 } });
  t.teardown(() => byTime.close());
  await new Promise((r) => setTimeout(r, 120));
  t.equal(byTime.checkpoints().length, 3, 'nothing new: no new checkpoint');
  await store.transaction((tx) => byTime.append(tx, input(99)));
  await eventually(() => byTime.checkpoints().length === 4);
  t.same(byTime.checkpoints().map((c) => c.seq), [10, 20, 25, 26]);
  t.ok((await verifyAuditTrail(store, { publicKeyInfo: signer.publicKeyInfo })).ok);
});

t.test('a failing HSM does not break appends; the error is reported and the next checkpoint retries', async (t) => {
  const store = openTemp(t);
  const keys = new SoftwareKeyStore();
  const real = await keys.generateKeyPair('audit', { type: 'ec', curve: 'P-256' });
  let down = true;
  const flaky = Object.assign(Object.create(real), {
    sign: (data: Uint8Array) => (down ? Promise.reject(new Error('token removed')) : real.sign(data)),
  });
  const errors: unknown[] = [];
  const audit = createAuditLog({ store, clock: new FixedClock(0), signer: flaky, headSigning: { everyRecords: 2, everyMs: 0 }, onError: (e) => errors.push(e) });
  for (let i = 0; i < 3; i++) await store.transaction((tx) => audit.append(tx, input(i)));
  await eventually(() => errors.length >= 1);
  t.match(errors[0], { message: 'token removed' });
  t.equal(audit.checkpoints().length, 0);
  down = false;
  await store.transaction((tx) => audit.append(tx, input(4)));
  await eventually(() => audit.checkpoints().length > 0);
  t.same(audit.checkpoints().map((c) => c.seq), [4]);
  await audit.close();
});

// ---- tampering: each detected and located -----------------------------------------------------------

t.test('an altered field is found at its record', async (t) => {
  const { store, records } = await filledTrail(t, 8);
  const victim = records.get(5)!;
  await store.transaction((tx) => tx.put(records, 5, { ...victim, actor: 'operator:mallory' }));
  const result = await verifyAuditTrail(store);
  t.equal(result.ok, false);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[5, 'altered']]);
  t.match(result.problems[0].message, /record 5 was changed/);
});

t.test('an altered and re-hashed record is found by its successor\'s link', async (t) => {
  const { store, records } = await filledTrail(t, 8);
  const { hash: _h, ...fields } = records.get(4)!;
  const forged = { ...fields, outcome: 'failure' as const };
  await store.transaction((tx) => tx.put(records, 4, { ...forged, hash: recordHash(forged) }));
  const result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[4, 'altered']]);
  t.match(result.problems[0].message, /record 4 was rewritten/);
});

t.test('an added field, a changed detail and a re-typed value are all found', async (t) => {
  const { store, records } = await filledTrail(t, 6);
  await store.transaction((tx) => {
    tx.put(records, 2, { ...records.get(2)!, extra: 'injected' } as AuditRecord);
    tx.put(records, 3, { ...records.get(3)!, details: { n: 3, reason: 'superseded' } });
    tx.put(records, 4, { ...records.get(4)!, seq: 4, details: { n: '4', reason: 'keyCompromise' } });
  });
  const result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[2, 'altered'], [3, 'altered'], [4, 'altered']]);
});

t.test('a deleted record is reported missing where it was', async (t) => {
  const { store, records } = await filledTrail(t, 8);
  await store.transaction((tx) => tx.remove(records, 3));
  const result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[3, 'missing']]);
  t.equal(result.records, 7);
  await store.transaction((tx) => { tx.remove(records, 5); tx.remove(records, 6); });
  t.same((await verifyAuditTrail(store)).problems.map((p) => [p.seq, p.kind, p.message]),
    [[3, 'missing', 'record 3 is missing'], [5, 'missing', 'records 5 to 6 are missing']]);
});

t.test('two swapped records are reported reordered at both places', async (t) => {
  const { store, records } = await filledTrail(t, 8);
  const [a, b] = [records.get(3)!, records.get(6)!];
  await store.transaction((tx) => { tx.put(records, 3, b); tx.put(records, 6, a); });
  const result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[3, 'reordered'], [6, 'reordered']]);
  t.match(result.problems[0].message, /position 3 holds record 6/);

  // Swapped and renumbered to hide it: the hashes give it away.
  await store.transaction((tx) => { tx.put(records, 3, { ...b, seq: 3 }); tx.put(records, 6, { ...a, seq: 6 }); });
  t.same((await verifyAuditTrail(store)).problems.map((p) => [p.seq, p.kind]), [[3, 'altered'], [6, 'altered']]);
});

t.test('records cut from the end are found through the head, and through a signed checkpoint when the head is rewritten too', async (t) => {
  const { store, records, audit } = await filledTrail(t, 8);
  await audit.checkpoint();
  await store.transaction((tx) => { tx.remove(records, 7); tx.remove(records, 8); });
  let result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[7, 'truncated']]);
  t.match(result.problems[0].message, /ends at record 6 but its head says 8/);

  const head = store.table<{ seq: number; hash: string }>(AUDIT_TABLES.head);
  await store.transaction((tx) => tx.put(head, 'head', { seq: 6, hash: records.get(6)!.hash }));
  result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[7, 'truncated']]);
  t.match(result.problems[0].message, /checkpoint signed .* covers record 8/);
});

t.test('a forged checkpoint signature, or one by another key, is reported at its seq', async (t) => {
  const { store, checkpoints, audit, signer, clock } = await filledTrail(t, 5);
  const cp = (await audit.checkpoint())!;
  const sig = Buffer.from(cp.signature);
  sig[sig.length - 3] ^= 0x01;
  await store.transaction((tx) => tx.put(checkpoints, cp.seq, { ...cp, signature: new Uint8Array(sig) }));
  let result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[5, 'bad-checkpoint-signature']]);

  // A checkpoint re-signed after rewriting a record: valid signature, wrong key.
  const { hash: _h, ...fields } = (store.table<AuditRecord>(AUDIT_TABLES.records)).get(5)!;
  const forged = { ...fields, actor: 'operator:mallory' };
  const forgedHash = recordHash(forged);
  const intruder = await new SoftwareKeyStore().generateKeyPair('audit/checkpoint', { type: 'ec', curve: 'P-256' });
  clock.advance(1);
  const time = clock.now().toISOString();
  const forgedCheckpoint: AuditCheckpoint = {
    seq: 5, hash: forgedHash, time, signerLabel: 'audit/checkpoint', scheme: intruder.scheme, publicKeyInfo: intruder.publicKeyInfo,
    signature: await intruder.sign(checkpointPayload({ seq: 5, hash: forgedHash, time })),
  };
  const records = store.table<AuditRecord>(AUDIT_TABLES.records);
  const head = store.table<{ seq: number; hash: string }>(AUDIT_TABLES.head);
  await store.transaction((tx) => {
    tx.put(records, 5, { ...forged, hash: forgedHash });
    tx.put(head, 'head', { seq: 5, hash: forgedHash });
    tx.put(checkpoints, 5, forgedCheckpoint);
  });
  t.ok((await verifyAuditTrail(store)).ok, 'without the expected key, a consistent forgery cannot be told apart');
  result = await verifyAuditTrail(store, { publicKeyInfo: signer.publicKeyInfo });
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[5, 'bad-checkpoint-signature']]);
  t.match(result.problems[0].message, /not the appliance's audit key/);
});

t.test('a record that differs from its signed checkpoint is altered, even when head and links were rewritten', async (t) => {
  const { store, records, audit } = await filledTrail(t, 4);
  await audit.checkpoint();
  const { hash: _h, ...fields } = records.get(4)!;
  const forged = { ...fields, object: 'cert:issuing/ffff' };
  const forgedHash = recordHash(forged);
  const head = store.table<{ seq: number; hash: string }>(AUDIT_TABLES.head);
  await store.transaction((tx) => { tx.put(records, 4, { ...forged, hash: forgedHash }); tx.put(head, 'head', { seq: 4, hash: forgedHash }); });
  const result = await verifyAuditTrail(store);
  t.same(result.problems.map((p) => [p.seq, p.kind]), [[4, 'altered']]);
  t.match(result.problems[0].message, /differs from the version signed/);
});
