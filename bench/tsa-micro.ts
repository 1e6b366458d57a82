/**
 * Per-token CPU of the TSA's pieces in isolation (no HTTP, no HSM, no store): query parsing and
 * the token writer with a signer that returns a fixed ECDSA signature.
 *   node bench/tsa-micro.ts
 */
import { readFileSync } from 'node:fs';
import { SoftwareKeyStore } from '../hsm/software.ts';
import type { Signer } from '../hsm/signer.ts';
import { buildTimeStampQuery } from '../tsa/client.ts';
import { DEFAULT_TSA_HASHES, parseTimeStampQuery } from '../tsa/request.ts';
import { makeTestPki } from '../tsa/testing/pki.ts';
import { TokenWriter } from '../tsa/token.ts';

const keys = new SoftwareKeyStore();
const real = await keys.generateKeyPair('tsa', { type: 'ec', curve: 'P-256' });
const fixedSignature = await real.sign(new Uint8Array(10));
const signer: Signer = { ...real, label: real.label, spec: real.spec, scheme: real.scheme, publicKeyInfo: real.publicKeyInfo, sign: async () => fixedSignature };
const pki = makeTestPki(real.publicKeyInfo);
const writer = new TokenWriter({ signer, certificate: pki.tsa, includeTsaName: true, accuracy: { seconds: 1 } });
const query = buildTimeStampQuery(new Uint8Array(Buffer.from('x')), { certReq: true, nonce: 0x0102030405060708n }).der;
const hashes = new Set(DEFAULT_TSA_HASHES);

async function time(name: string, fn: () => unknown): Promise<void> {
  for (let i = 0; i < 2000; i++) await fn();
  const n = 20000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  console.log(`${name.padEnd(30)} ${(((performance.now() - t0) * 1000) / n).toFixed(1)} us`);
}
const parsed = parseTimeStampQuery(query, hashes);
const serial = new Uint8Array(17).fill(0x11); serial[0] = 1;
await time('parse query', () => parseTimeStampQuery(query, hashes));
await time('tstInfo', () => writer.tstInfo({ ...parsed, policy: '1.2.3.4.1', serial, genTime: new Date() }));
await time('response (fixed signature)', () => writer.response({ ...parsed, policy: '1.2.3.4.1', serial, genTime: new Date() }));
pki.cleanup();
void readFileSync;
