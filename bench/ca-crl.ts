/**
 * CRL encoder at scale: encodeCrl over N random 128-bit serials (default 1,000,000) with mixed
 * reasons and invalidity dates, signed by a software P-256 key; then `openssl crl -verify` on the
 * result, and the same CRL made by the peer, `openssl ca -gencrl` from an index.txt of N lines.
 *   node bench/ca-crl.ts [N]
 * Budget (ca/ brief): N = 1e6 in <= 20 s with <= 2 GiB peak RSS on a 2-core machine.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { SoftwareKeyStore } from '../hsm/software.ts';
import { encodeCrl, type CrlEntry } from '../ca/crl.ts';
import { toPem } from '../common/pem.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'yinxin-bench-crl-'));
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 }).toString();
const seconds = (t0: number) => ((performance.now() - t0) / 1000).toFixed(2);

try {
  const keys = new SoftwareKeyStore();
  const signer = await keys.generateKeyPair('bench-ca', { type: 'ec', curve: 'P-256' });
  // A CA certificate carrying the signer's public key (signed by a throwaway key: openssl only needs the public key).
  writeFileSync(join(dir, 'ca.pub'), toPem(signer.publicKeyInfo, 'PUBLIC KEY'));
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=none\n');
  sh('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'throwaway.key']);
  sh('openssl', ['x509', '-new', '-subj', '/C=CN/O=Yinxin Bench/CN=Bench CA', '-key', 'throwaway.key', '-force_pubkey', 'ca.pub', '-days', '30', '-extfile', 'ca.ext', '-out', 'ca.pem']);
  const caCert = pkijs.Certificate.fromBER(execFileSync('openssl', ['x509', '-in', 'ca.pem', '-outform', 'DER'], { cwd: dir }));
  const issuerName = new Uint8Array(caCert.subject.toSchema().toBER());
  const ski = caCert.extensions!.find((e) => e.extnID === '2.5.29.14')!;
  const authorityKeyId = (asn1js.fromBER(ski.extnValue.valueBlock.valueHexView).result as asn1js.OctetString).valueBlock.valueHexView;

  const serialBytes = randomBytes(16 * N);
  const now = Date.now();
  const reasons = [undefined, 1, 3, 4, 5, 9, 0];
  function* entries(): Generator<CrlEntry> {
    for (let i = 0; i < N; i++) {
      const revoked = now - randomInt(2 * 365 * 86400) * 1000;
      const reason = reasons[i % reasons.length];
      yield {
        serial: serialBytes.subarray(16 * i, 16 * i + 16),
        revocationDate: new Date(revoked),
        ...(reason !== undefined ? { reason } : {}),
        ...(reason === 1 ? { invalidityDate: new Date(revoked - 86400_000) } : {}),
      };
    }
  }

  const t0 = performance.now();
  const der = await encodeCrl({
    issuerName, authorityKeyId, signer,
    thisUpdate: new Date(now), nextUpdate: new Date(now + 7 * 86400_000), crlNumber: 1n,
    entries: entries(),
  });
  const encodeSeconds = seconds(t0);
  const maxRssMiB = (process.resourceUsage().maxRSS / 1024).toFixed(0);
  writeFileSync(join(dir, 'yinxin.crl'), der);

  const t1 = performance.now();
  const verifyRun = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', 'yinxin.crl', '-CAfile', 'ca.pem', '-verify', '-noout'], { cwd: dir, encoding: 'utf8' });
  const verify = `${verifyRun.stdout}${verifyRun.stderr}`.trim() + ` (exit ${verifyRun.status})`;
  const verifySeconds = seconds(t1);
  const count = Number(sh('sh', ['-c', "openssl crl -inform DER -in yinxin.crl -noout -text | grep -c 'Serial Number'"]).trim());

  // Peer: openssl ca -gencrl over an index.txt listing the same number of revoked certificates.
  const lines: string[] = [];
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  for (let i = 0; i < N; i++) {
    lines.push(`R\t${stamp(now + 365 * 86400_000)}\t${stamp(now - 86400_000)},keyCompromise\t${serialBytes.subarray(16 * i, 16 * i + 16).toString('hex').toUpperCase()}\tunknown\t/CN=leaf${i}`);
  }
  writeFileSync(join(dir, 'index.txt'), lines.join('\n') + '\n');
  writeFileSync(join(dir, 'ca.cnf'), `[ca]\ndefault_ca=b\n[b]\ndatabase=${dir}/index.txt\ncrlnumber=${dir}/crlnumber\ndefault_md=sha256\ndefault_crl_days=7\ncrl_extensions=ext\n[ext]\nauthorityKeyIdentifier=keyid\n`);
  writeFileSync(join(dir, 'crlnumber'), '01\n');
  sh('openssl', ['req', '-x509', '-new', '-key', 'throwaway.key', '-subj', '/CN=Peer CA', '-days', '30', '-out', 'peer.pem']);
  const t2 = performance.now();
  sh('openssl', ['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'throwaway.key', '-cert', 'peer.pem', '-out', 'peer.crl']);
  const peerSeconds = seconds(t2);

  console.log(`CRL with ${N.toLocaleString('en')} entries (node ${process.version}, P-256 software signer)`);
  console.log('| measure | value |');
  console.log('|---|---|');
  console.log(`| encodeCrl time | ${encodeSeconds} s |`);
  console.log(`| peak RSS (maxRSS) | ${maxRssMiB} MiB |`);
  console.log(`| CRL size | ${(der.length / 2 ** 20).toFixed(1)} MiB |`);
  console.log(`| openssl crl -verify | ${verify} (${verifySeconds} s) |`);
  console.log(`| entries openssl lists | ${count.toLocaleString('en')} |`);
  console.log(`| peer: openssl ca -gencrl, same N | ${peerSeconds} s |`);
  console.log(`| ratio encodeCrl / openssl ca | ${(Number(encodeSeconds) / Number(peerSeconds)).toFixed(2)} |`);
  if (count !== N || verifyRun.status !== 0 || !/verify OK/.test(verify)) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
