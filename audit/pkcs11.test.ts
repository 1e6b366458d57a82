/**
 * End to end with a real token: checkpoints signed by a SoftHSM2 key through the PKCS#11 key
 * store, the data directory backed up and restored elsewhere, then OpenSC's pkcs11-tool reads the
 * restored token (public key, and a fresh signature openssl checks) and the restored trail verifies
 * against the key read back from the token.
 */
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FixedClock } from '../common/clock.ts';
import { openPkcs11KeyStore, prepareSoftHsmToken } from '../hsm/index.ts';
import { createBackup, restoreBackup } from '../store/backup.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { createAuditLog, verifyAuditTrail } from './audit.ts';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TOKEN = 'yinxin-audit-test';
const PIN = '975310';

t.test('checkpoints signed in SoftHSM2 survive backup and restore; pkcs11-tool and openssl agree', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'yinxin-audit-p11-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const dataDir = join(base, 'data');
  await prepareSoftHsmToken({ dir: join(dataDir, 'hsm'), pin: PIN, label: TOKEN, module: MODULE });
  writeFileSync(join(dataDir, 'hsm', 'pin'), PIN, { mode: 0o600 });
  const keys = await openPkcs11KeyStore({ module: MODULE, tokenLabel: TOKEN, pin: PIN, sessionPool: 0 });
  t.teardown(() => keys.close());
  const signer = await keys.generateKeyPair('audit/checkpoint', { type: 'ec', curve: 'P-256' });

  const store = openLmdbStore(join(dataDir, 'store'));
  t.teardown(() => store.close());
  const clock = new FixedClock('2025-06-01T00:00:00Z');
  const audit = createAuditLog({ store, clock, signer });
  for (let i = 0; i < 20; i++) {
    clock.advance(1000);
    await store.transaction((tx) => audit.append(tx, { actor: 'operator:alice', action: 'certificate.issue', object: `cert:issuing/${i}`, outcome: 'success' }));
    if (i % 7 === 6) await audit.checkpoint();
  }
  await audit.close();
  t.same(audit.checkpoints().map((c) => c.seq), [7, 14, 20]);
  t.same((await verifyAuditTrail(store, { publicKeyInfo: signer.publicKeyInfo })).problems, []);

  const file = join(base, 'backup.tar');
  await createBackup({ dataDir, store, file });
  const restoredDir = join(base, 'restored');
  await restoreBackup({ file, dataDir: restoredDir });

  // As the appliance does at each start (hsm/softhsm.ts), point SoftHSM at the restored token directory.
  const conf = join(restoredDir, 'hsm', 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(restoredDir, 'hsm', 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`, { mode: 0o600 });
  const pin = readFileSync(join(restoredDir, 'hsm', 'pin'), 'utf8');
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const p11 = (...args: string[]) => execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', TOKEN, '--login', '--pin', pin, ...args], { env, encoding: 'buffer', stdio: ['ignore', 'pipe', 'pipe'] });

  const pub = join(base, 'pub.der');
  p11('--read-object', '--type', 'pubkey', '--label', 'audit/checkpoint', '--output-file', pub);
  const spki = readFileSync(pub);
  t.same([...spki], [...signer.publicKeyInfo], 'the restored token holds the same audit key');

  const message = join(base, 'msg');
  const signature = join(base, 'sig');
  const digest = join(base, 'digest');
  writeFileSync(message, 'signed after restore');
  // SoftHSM2 offers plain CKM_ECDSA: the token signs the SHA-256 that openssl dgst recomputes.
  writeFileSync(digest, createHash('sha256').update('signed after restore').digest());
  p11('--sign', '--mechanism', 'ECDSA', '--signature-format', 'openssl', '--label', 'audit/checkpoint', '--input-file', digest, '--output-file', signature);
  const check = spawnSync('openssl', ['dgst', '-sha256', '-verify', pub, '-keyform', 'DER', '-signature', signature, message], { encoding: 'utf8' });
  t.match(check.stdout, /Verified OK/, 'and its private half still signs');

  const restored = openLmdbStore(join(restoredDir, 'store'), { readOnly: true });
  t.teardown(() => restored.close());
  const result = await verifyAuditTrail(restored, { publicKeyInfo: new Uint8Array(spki) });
  t.same(result, { ok: true, records: 20, problems: [], checkpoints: 3, lastCheckpointSeq: 20 });
});
