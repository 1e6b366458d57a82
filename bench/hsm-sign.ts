/**
 * Sign rate of the PKCS#11 key store against graphene-pk11's raw synchronous C_Sign on the same
 * key, in a fresh SoftHSM2 token. Run: node bench/hsm-sign.ts [seconds per run, default 1]
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as graphene from 'graphene-pk11';
import { openPkcs11KeyStore, prepareSoftHsmToken } from '../hsm/index.ts';
import type { Signer } from '../hsm/index.ts';

const seconds = Number(process.argv[2] ?? 1);
const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-hsm-'));
const pin = '1234';
const token = await prepareSoftHsmToken({ dir, pin, label: 'bench' });
const store = await openPkcs11KeyStore({ module: token.module, tokenLabel: 'bench', pin });
const ec = await store.generateKeyPair('bench-ec', { type: 'ec', curve: 'P-256' });
const rsa = await store.generateKeyPair('bench-rsa', { type: 'rsa', bits: 2048 });
const message = Buffer.alloc(100, 0x5a);

// graphene on the same module: initialize() tolerates CKR_CRYPTOKI_ALREADY_INITIALIZED.
const module = graphene.Module.load(token.module);
module.initialize({ flags: 2 /* CKF_OS_LOCKING_OK */ });
const slot = [...module.getSlots(true)].find((s) => s.getToken().label.replace(/[\s\0]+$/, '') === 'bench')!;
const session = slot.open(graphene.SessionFlag.SERIAL_SESSION);
const privateKey = (label: string) => session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label }).items(0).toType<graphene.PrivateKey>();

function rawRate(mechanism: string, label: string, input: Buffer): number {
  const key = privateKey(label);
  const end = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 20; i++) session.createSign(mechanism, key).once(input);
    n += 20;
  }
  return n / seconds;
}

async function signerRate(signer: Signer, callers: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (performance.now() < end) {
      await signer.sign(message);
      n++;
    }
  }));
  return n / ((performance.now() - start) / 1000);
}

// The machine is shared: each row alternates raw and Signer runs (paired) for `rounds` rounds
// and reports the medians, so that a load spike elsewhere skews one round, not the ratio.
const rounds = 3;
const median = (xs: number[]) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const rows: { what: string; rate: number; ratio: number }[] = [];
async function row(what: string, raw: () => number, ours: () => Promise<number>): Promise<void> {
  const rates: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const r = raw();
    const o = await ours();
    rates.push(o);
    ratios.push(o / r);
  }
  rows.push({ what, rate: median(rates), ratio: median(ratios) });
}
const ecDigest = createHash('sha256').update(message).digest();
const rawEc = () => rawRate('ECDSA', 'bench-ec', ecDigest);
const rawRsa = () => rawRate('SHA256_RSA_PKCS', 'bench-rsa', message);
await row('ECDSA P-256 graphene raw sync C_Sign', rawEc, async () => rawEc());
for (const callers of [1, 2, 8]) await row(`ECDSA P-256 Signer, ${callers} caller${callers > 1 ? 's' : ''}`, rawEc, () => signerRate(ec, callers));
await row('RSA-2048 graphene raw sync C_Sign', rawRsa, async () => rawRsa());
for (const callers of [1, 2, 8]) await row(`RSA-2048 Signer, ${callers} caller${callers > 1 ? 's' : ''}`, rawRsa, () => signerRate(rsa, callers));

console.log(`SoftHSM2 token in ${dir}; ${availableParallelism()} CPUs; medians of ${rounds} paired rounds of ${seconds} s; signatures checked: ${store.stats().signErrors === 0 ? 'no errors' : `${store.stats().signErrors} ERRORS`}`);
console.log('| operation | ops/s | ratio to raw |');
console.log('|---|---:|---:|');
for (const r of rows) console.log(`| ${r.what} | ${Math.round(r.rate)} | ${r.ratio.toFixed(2)} |`);

session.close();
await store.close();
rmSync(dir, { recursive: true, force: true });
