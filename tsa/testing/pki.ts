/**
 * A throw-away PKI for the TSA's tests, made with the openssl CLI (not our code): a root CA, an
 * issuing CA, and a TSA certificate for a Signer's public key (critical EKU timeStamping,
 * critical keyUsage digitalSignature), as RFC 3161 s2.3 requires.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPem, toPem } from '../../common/pem.ts';

export interface TestPki {
  dir: string;
  rootPem: string;
  issuingPem: string;
  tsaPem: string;
  root: Uint8Array;
  issuing: Uint8Array;
  tsa: Uint8Array;
  /** Files for openssl: root.pem (CAfile), untrusted.pem (issuing CA + TSA certificate). */
  files: { root: string; issuing: string; tsa: string; untrusted: string };
  /** Makes another certificate for the key with custom extensions (for bad-certificate tests). */
  certify(publicKeyInfo: Uint8Array, extensions: string, name: string): Uint8Array;
  cleanup(): void;
}

export function openssl(args: string[], input?: Uint8Array | string): Buffer {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function makeTestPki(tsaPublicKeyInfo: Uint8Array): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'yinxin-tsa-pki-'));
  const f = (n: string) => join(dir, n);
  writeFileSync(f('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('root.key'), '-out', f('root.pem'),
    '-subj', '/C=CN/O=Yinxin Test/CN=Test Root CA', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('issuing.key'), '-out', f('issuing.csr'),
    '-subj', '/C=CN/O=Yinxin Test/CN=Test Issuing CA']);
  openssl(['x509', '-req', '-in', f('issuing.csr'), '-CA', f('root.pem'), '-CAkey', f('root.key'), '-set_serial', '0x1001',
    '-days', '3000', '-extfile', f('ca.ext'), '-out', f('issuing.pem')]);

  const certify = (publicKeyInfo: Uint8Array, extensions: string, name: string): Uint8Array => {
    writeFileSync(f(`${name}.spki.pem`), toPem(publicKeyInfo, 'PUBLIC KEY'));
    writeFileSync(f(`${name}.ext`), extensions);
    openssl(['x509', '-new', '-force_pubkey', f(`${name}.spki.pem`), '-subj', `/C=CN/O=Yinxin Test/OU=TSA/CN=${name}`,
      '-CA', f('issuing.pem'), '-CAkey', f('issuing.key'), '-set_serial', `0x${Date.now().toString(16)}`, '-days', '2000',
      '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)]);
    return fromPem(readFileSync(f(`${name}.pem`), 'utf8'));
  };
  const tsa = certify(tsaPublicKeyInfo,
    'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    'Test TSA');
  // certify() named the file after the CN; give it a stable name.
  const tsaPem = readFileSync(f('Test TSA.pem'), 'utf8');
  writeFileSync(f('tsa.pem'), tsaPem);
  const rootPem = readFileSync(f('root.pem'), 'utf8');
  const issuingPem = readFileSync(f('issuing.pem'), 'utf8');
  writeFileSync(f('untrusted.pem'), issuingPem + tsaPem);
  return {
    dir, rootPem, issuingPem, tsaPem, tsa,
    root: fromPem(rootPem), issuing: fromPem(issuingPem),
    files: { root: f('root.pem'), issuing: f('issuing.pem'), tsa: f('tsa.pem'), untrusted: f('untrusted.pem') },
    certify,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
