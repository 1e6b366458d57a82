/**
 * The appliance's own TLS certificate for the HTTPS port.
 *
 * Why this key is not in the HSM: Node's TLS stack needs the private key in-process (its bundled
 * OpenSSL cannot reach a PKCS#11 token without an engine/provider that Node does not ship), so the
 * TLS key is a software key in <data>/tls/key.pem (mode 0600). It is the documented exception to
 * "keys live in the HSM"; deployments that need it in hardware terminate TLS in front of the
 * appliance (YINXIN_TRUST_PROXY). Until the CA exists the certificate is self-signed; once the
 * issuing CA exists, the composition root has it re-issued there (`issue` callback).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { fromPemAll, toArrayBuffer, toPem } from '../common/pem.ts';
import { signatureAlgorithm } from '../hsm/algorithms.ts';

export interface TlsMaterial {
  key: string;
  /** Leaf first, then the chain, PEM. */
  cert: string;
  /** DER of the leaf. */
  leaf: Uint8Array;
  selfSigned: boolean;
}

/** Issues a TLS server certificate for `spki` and `names` from a CA; returns leaf + chain DER. */
export type TlsIssuer = (spki: Uint8Array, names: string[]) => Promise<Uint8Array[]>;

export async function ensureTlsMaterial(dir: string, names: string[], issue?: TlsIssuer): Promise<TlsMaterial> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  let key: KeyObject;
  if (existsSync(keyPath)) {
    key = createPrivateKey(readFileSync(keyPath));
  } else {
    key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    writeFileSync(keyPath, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  }
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  let pem = existsSync(certPath) ? readFileSync(certPath, 'utf8') : '';
  let selfSigned = existsSync(join(dir, 'self-signed'));
  if (!pem || (selfSigned && issue)) {
    const chain = issue ? await issue(spki, names) : [await selfSignedCertificate(key, spki, names)];
    pem = chain.map((der) => toPem(der, 'CERTIFICATE')).join('');
    writeFileSync(certPath, pem);
    selfSigned = !issue;
    if (selfSigned) writeFileSync(join(dir, 'self-signed'), 'replaced by an issuing-CA certificate once the CA exists\n');
    else rmSync(join(dir, 'self-signed'), { force: true });
  }
  const [leaf] = fromPemAll(pem, 'CERTIFICATE');
  return { key: key.export({ type: 'pkcs8', format: 'pem' }) as string, cert: pem, leaf, selfSigned };
}

async function selfSignedCertificate(key: KeyObject, spki: Uint8Array, names: string[]): Promise<Uint8Array> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  cert.serialNumber = new asn1js.Integer({ valueHex: toArrayBuffer(serial) });
  const name = new pkijs.RelativeDistinguishedNames({
    typesAndValues: [new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: `yinxin bootstrap (${names[0]})` }) })],
  });
  cert.issuer = name;
  cert.subject = name;
  const now = Date.now();
  cert.notBefore.value = new Date(now - 5 * 60_000);
  cert.notAfter.value = new Date(now + 90 * 86400_000);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(toArrayBuffer(spki));
  const altNames = new pkijs.GeneralNames({
    names: names.map((n) => isIP(n)
      ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: toArrayBuffer(ipBytes(n)) }) })
      : new pkijs.GeneralName({ type: 2, value: n })),
  });
  cert.extensions = [
    new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: new asn1js.BitString({ valueHex: new Uint8Array([0x80]).buffer, unusedBits: 7 }).toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.37', critical: false, extnValue: new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.1'] }).toSchema().toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.17', critical: false, extnValue: altNames.toSchema().toBER(false) }),
  ];
  const alg = signatureAlgorithm('ecdsa-sha256');
  cert.signature = alg;
  cert.signatureAlgorithm = alg;
  const tbs = cert.encodeTBS().toBER(false);
  cert.tbsView = new Uint8Array(tbs);
  const sig = sign('sha256', new Uint8Array(tbs), { key, dsaEncoding: 'der' });
  cert.signatureValue = new asn1js.BitString({ valueHex: toArrayBuffer(new Uint8Array(sig)) });
  return new Uint8Array(cert.toSchema(true).toBER(false));
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return new Uint8Array(ip.split('.').map(Number));
  const parts = ip.split('::');
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts.length > 1 && parts[1] ? parts[1].split(':') : [];
  const groups = [...head, ...new Array(8 - head.length - tail.length).fill('0'), ...tail];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[i * 2] = v >> 8; out[i * 2 + 1] = v & 0xff; });
  return out;
}
