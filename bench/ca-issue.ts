/**
 * Issuance throughput: approved request -> certificate durable in the store, ECDSA P-256 issuing
 * key, beside the raw sign rate of the same key measured in the same run.
 *
 *   node bench/ca-issue.ts [count=5000] [concurrency=64]
 *
 * Uses the LMDB store (store/lmdb.ts) and the SoftHSM2 PKCS#11 key store (hsm/pkcs11.ts) when
 * they are present, and says so; otherwise the in-memory store / software keys (and says that too).
 * Requests are submitted (CSR parsed, proof of possession checked, subject checked) before the
 * clock starts; the timed part is what the last approval does: sign, then one transaction with
 * the certificate, its index entries, the request update and the audit records.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../common/clock.ts';
import { SoftwareKeyStore } from '../hsm/software.ts';
import type { KeyStore } from '../hsm/signer.ts';
import type { Store } from '../store/store.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { RegistrationAuthority } from '../ca/ra.ts';
import { MemoryStore, opensslPkcs12, TableAuditLog } from '../ca/test-support.ts';

const count = Number(process.argv[2] ?? 5000);
const concurrency = Number(process.argv[3] ?? 64);
const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-ca-'));
const root = new URL('..', import.meta.url).pathname;

async function openStore(): Promise<{ store: Store; kind: string }> {
  const path = join(root, 'store/lmdb.ts');
  if (existsSync(path)) {
    const mod = await import(path) as { openLmdbStore(path: string, options?: object): Promise<Store> | Store };
    return { store: await mod.openLmdbStore(join(dir, 'data')), kind: 'LMDB (store/lmdb.ts)' };
  }
  return { store: new MemoryStore(), kind: 'in-memory (store/lmdb.ts not present yet)' };
}

/** SoftHSM2 token as the appliance makes it (appliance/context.ts): hsm/softhsm.ts + hsm/pkcs11.ts. */
async function openKeys(): Promise<{ keys: KeyStore; kind: string }> {
  const pkcs11 = join(root, 'hsm/pkcs11.ts');
  const softhsm = join(root, 'hsm/softhsm.ts');
  if (existsSync(pkcs11) && existsSync(softhsm)) {
    const { prepareSoftHsmToken } = await import(softhsm) as { prepareSoftHsmToken(o: { dir: string; pin: string; soPin: string; label: string }): Promise<unknown> };
    const { openPkcs11KeyStore } = await import(pkcs11) as { openPkcs11KeyStore(o: { module: string; slot?: number; tokenLabel: string; pin: string }): Promise<KeyStore> };
    await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin: '1234', soPin: '5678', label: 'bench' });
    const keys = await openPkcs11KeyStore({ module: process.env.YINXIN_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'bench', pin: '1234' });
    return { keys, kind: 'SoftHSM2 via PKCS#11 (hsm/pkcs11.ts)' };
  }
  return { keys: new SoftwareKeyStore(), kind: 'node:crypto software keys (hsm/pkcs11.ts not present yet)' };
}

const { store, kind: storeKind } = await openStore();
const { keys, kind: keyKind } = await openKeys();
const audit = new TableAuditLog(store, systemClock);
const authority = await CertificateAuthority.open({ store, keys, audit, clock: systemClock, options: { baseUrl: 'http://127.0.0.1:8080' } });
await authority.initialize();
const ra = await RegistrationAuthority.open({ store, keys, audit, authority, buildPkcs12: opensslPkcs12 });

// A pool of distinct keys (openssl req), each used by many requests with distinct subjects.
const csrs: Uint8Array[] = [];
for (let i = 0; i < 16; i++) {
  const out = join(dir, `r${i}.der`);
  execFileSync('openssl', ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', join(dir, `k${i}.pem`), '-subj', `/CN=device-${i}`, '-outform', 'DER', '-out', out], { stdio: 'pipe' });
  csrs.push(new Uint8Array(readFileSync(out)));
}
const ids: string[] = [];
for (let i = 0; i < count; i++) {
  const r = await ra.submit({
    ca: 'issuing', profile: 'device', csr: csrs[i % csrs.length],
    subject: [{ type: 'C', value: 'CN' }, { type: 'O', value: '北京市公安局' }, { type: 'CN', value: `摄像头-${String(i).padStart(6, '0')}` }, { type: 'serialNumber', value: `SN${i}` }],
  }, { actor: 'operator:alice' });
  ids.push(r.id);
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

// Raw sign rate of the same issuing key, same run: sequential and at the same concurrency.
const signer = await keys.getSigner('ca/issuing');
const tbsLike = new Uint8Array(520).fill(7);
const signN = Math.max(2000, Math.min(count, 20000));
let t0 = performance.now();
for (let i = 0; i < signN; i++) await signer.sign(tbsLike);
const signSeq = signN / ((performance.now() - t0) / 1000);
t0 = performance.now();
await pool(Array.from({ length: signN }, (_, i) => i), concurrency, () => signer.sign(tbsLike));
const signPar = signN / ((performance.now() - t0) / 1000);

// BENCH_PROFILE=file.cpuprofile: a CPU profile of the timed phase only (to keep per-certificate work small).
const profile = process.env.BENCH_PROFILE ? new (await import('node:inspector/promises')).Session() : null;
if (profile) {
  profile.connect();
  await profile.post('Profiler.enable');
  await profile.post('Profiler.start');
}
t0 = performance.now();
await pool(ids, concurrency, (id) => ra.approve(id, { actor: 'operator:bob' }));
const elapsed = (performance.now() - t0) / 1000;
if (profile) {
  const { profile: data } = await profile.post('Profiler.stop');
  (await import('node:fs')).writeFileSync(process.env.BENCH_PROFILE!, JSON.stringify(data));
}
const rate = count / elapsed;
const issued = authority.search({ status: 'good', ca: 'issuing', limit: 1000 }).length;

console.log(`store: ${storeKind}`);
console.log(`keys:  ${keyKind}`);
console.log(`count ${count}, concurrency ${concurrency}, issued and stored: ${ra.listRequests({ status: 'issued', limit: count }).length} (first page of search: ${issued})`);
console.log('| measure | per second |');
console.log('|---|---|');
console.log(`| raw sign, P-256 issuing key, sequential | ${signSeq.toFixed(0)} |`);
console.log(`| raw sign, P-256 issuing key, ${concurrency} in flight | ${signPar.toFixed(0)} |`);
console.log(`| approval -> certificate durable (target >= 1000) | ${rate.toFixed(0)} |`);
console.log(`issuance / raw sequential sign = ${(rate / signSeq).toFixed(2)}`);
await keys.close();
await store.close();
rmSync(dir, { recursive: true, force: true });
