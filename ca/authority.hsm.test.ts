/**
 * The CA core on the real backends: LMDB (store/lmdb.ts) and a SoftHSM2 token through PKCS#11
 * (hsm/softhsm.ts + hsm/pkcs11.ts), opened as appliance/context.ts opens them. Hierarchy,
 * issuance, revocation with a CRL checked by openssl, and a restart that finds everything again.
 * Skipped (and says why) until those modules exist in the tree.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FixedClock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import type { KeyStore } from '../hsm/signer.ts';
import type { Store } from '../store/store.ts';
import { CertificateAuthority } from './authority.ts';
import { CrlPublisher } from './crl-publisher.ts';
import { TableAuditLog } from './test-support.ts';

const root = new URL('..', import.meta.url).pathname;
const modules = ['store/lmdb.ts', 'hsm/softhsm.ts', 'hsm/pkcs11.ts'].map((m) => join(root, m));
const missing = modules.filter((m) => !existsSync(m));

t.test('hierarchy, issuance, revocation and restart on LMDB + SoftHSM2', { skip: missing.length ? `not in the tree yet: ${missing.join(', ')}` : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-ca-hsm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { openLmdbStore } = await import(modules[0]) as { openLmdbStore(path: string): Store };
  const { prepareSoftHsmToken } = await import(modules[1]) as { prepareSoftHsmToken(o: { dir: string; pin: string; soPin: string; label: string }): Promise<unknown> };
  const { openPkcs11KeyStore } = await import(modules[2]) as { openPkcs11KeyStore(o: { module: string; tokenLabel: string; pin: string }): Promise<KeyStore> };
  await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin: '1234', soPin: '5678', label: 'ca-test' });
  const open = async () => {
    const keys = await openPkcs11KeyStore({ module: process.env.YINXIN_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'ca-test', pin: '1234' });
    const store = openLmdbStore(join(dir, 'data'));
    const clock = new FixedClock(Math.floor(Date.now() / 1000) * 1000);
    const audit = new TableAuditLog(store, clock);
    const ca = await CertificateAuthority.open({ store, keys, audit, clock, options: { baseUrl: 'http://127.0.0.1:8080' } });
    return { keys, store, audit, ca, clock };
  };
  const file = (der: Uint8Array, label = 'CERTIFICATE') => {
    const p = join(dir, `${Math.random().toString(36).slice(2)}.pem`);
    writeFileSync(p, toPem(der, label));
    return p;
  };

  const first = await open();
  await first.ca.initialize();
  t.ok(await first.keys.hasKey('ca/root') && await first.keys.hasKey('ca/issuing'), 'CA keys are in the token');
  const subject = [{ type: 'C' as const, value: 'CN' }, { type: 'O' as const, value: '北京市人民政府' }, { type: 'CN' as const, value: '张三' }, { type: 'serialNumber' as const, value: '11010519491231002X' }];
  const { generateKeyPairSync } = await import('node:crypto');
  const spki = () => new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }));
  const cert = await first.ca.issue({ ca: 'issuing', profile: 'civil-servant-signing', subject, publicKeyInfo: spki() }, { actor: 'test' });
  const rootPem = file(first.ca.caCertificate('root'));
  const issuingPem = file(first.ca.caCertificate('issuing'));
  t.equal(spawnSync('openssl', ['verify', '-CAfile', rootPem, '-untrusted', issuingPem, file(cert.der)]).status, 0, 'HSM-signed certificate verifies');
  await first.ca.revoke({ ca: 'issuing', serial: cert.serial, reason: 1 }, { actor: 'test' });
  const crl = new CrlPublisher({ store: first.store, audit: first.audit, clock: first.clock, authority: first.ca });
  const { full } = await crl.publish('issuing');
  await crl.stop();
  const v = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', rootPem, '-untrusted', issuingPem, '-CRLfile', file(full.der, 'X509 CRL'), file(cert.der)], { encoding: 'utf8' });
  t.not(v.status, 0, 'revoked per the HSM-signed CRL');
  t.match(v.stdout + v.stderr, /certificate revoked/);
  await first.keys.close();
  await first.store.close();

  const second = await open();
  t.same(second.ca.listAuthorities().map((a) => a.name).sort(), ['issuing', 'root'], 'CAs loaded after a restart');
  t.equal(second.ca.get('issuing', cert.serial)?.status, 'revoked', 'revocation state survived');
  const again = await second.ca.issue({ ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: 'after-restart' }], publicKeyInfo: spki() }, { actor: 'test' });
  t.equal(spawnSync('openssl', ['verify', '-CAfile', rootPem, '-untrusted', issuingPem, file(again.der)]).status, 0, 'issues with the reloaded HSM key');
  await second.keys.close();
  await second.store.close();
});
