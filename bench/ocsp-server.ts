/**
 * The servers bench/ocsp.ts measures, each in a process of its own (as deployed):
 *   node bench/ocsp-server.ts yinxin <dir>   the CA (10,000 certificates, 10% revoked), its files for
 *                                            `openssl ocsp -index`, and yinxin's responder on a port
 *   node bench/ocsp-server.ts bare           a bare fastify POST /ocsp returning a fixed 500-byte body
 * Prints "READY <port>" when listening.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import Fastify from 'fastify';
import { systemClock } from '../common/clock.ts';
import { toPem } from '../common/pem.ts';
import type { Signer } from '../hsm/signer.ts';
import { createAuditLog } from '../audit/audit.ts';
import { CertificateAuthority } from '../ca/authority.ts';
import { openPkcs11KeyStore } from '../hsm/pkcs11.ts';
import { DEBIAN_SOFTHSM_MODULE, prepareSoftHsmToken } from '../hsm/softhsm.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { OcspResponder } from '../ocsp/responder.ts';
import { certificateParts } from '../ocsp/response.ts';
import { ocspRoutes } from '../ocsp/routes.ts';
import { ensureOcspSigners } from '../ocsp/signers.ts';

const [mode, dir] = process.argv.slice(2);
const POPULATION = Number(process.env.OCSP_BENCH_CERTS ?? 10_000);

function opensslTime(iso: string): string {
  // index.txt times: YYMMDDHHMMSSZ
  return iso.replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z');
}

function request(certId: asn1js.Sequence, nonce?: Uint8Array): Uint8Array {
  const tbs: asn1js.BaseBlock[] = [new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [certId] })] })];
  if (nonce) {
    tbs.push(new asn1js.Constructed({
      idBlock: { tagClass: 3, tagNumber: 2 },
      value: [new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [
        new asn1js.ObjectIdentifier({ value: '1.3.6.1.5.5.7.48.1.2' }),
        new asn1js.OctetString({ valueHex: new asn1js.OctetString({ valueHex: nonce }).toBER(false) }),
      ] })] })],
    }));
  }
  return new Uint8Array(new asn1js.Sequence({ value: [new asn1js.Sequence({ value: tbs })] }).toBER(false));
}

if (mode === 'bare') {
  const app = Fastify({ logger: false });
  const body = Buffer.alloc(500, 0x30);
  app.addContentTypeParser('application/ocsp-request', { parseAs: 'buffer' }, (_r, b, done) => done(null, b));
  app.post('/ocsp', async (_request, reply) => reply.type('application/ocsp-response').send(body));
  await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(`READY ${(app.server.address() as { port: number }).port}`);
} else {
  // The product's backends: CA and OCSP keys in a SoftHSM2 token, the store in LMDB with its audit trail.
  const pin = '1234-bench';
  await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin, label: 'ocsp-bench' });
  const keys = await openPkcs11KeyStore({ module: DEBIAN_SOFTHSM_MODULE, tokenLabel: 'ocsp-bench', pin });
  const store = openLmdbStore(join(dir, 'store'));
  const audit = createAuditLog({ store, clock: systemClock });
  const authority = await CertificateAuthority.open({ store, keys, audit, clock: systemClock, options: { baseUrl: 'http://127.0.0.1:8080' } });
  await authority.initialize();
  const signers = await ensureOcspSigners({ authority, keys, store });
  const issuing = authority.getAuthority('issuing');
  const { publicKeyBits } = certificateParts(issuing.certificate);
  const nameHash = createHash('sha1').update(issuing.nameDer).digest();
  const keyHash = createHash('sha1').update(publicKeyBits).digest();
  const certId = (serialHex: string) => new asn1js.Sequence({
    value: [
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: '1.3.14.3.2.26' }), new asn1js.Null()] }),
      new asn1js.OctetString({ valueHex: nameHash }), new asn1js.OctetString({ valueHex: keyHash }),
      new asn1js.Integer({ valueHex: Buffer.from(serialHex, 'hex') }),
    ],
  });

  // One key for every end entity: issuance, not key generation, is what the population needs.
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const index: string[] = [];
  const plain: string[] = [];
  const withNonce: string[] = [];
  for (let i = 0; i < POPULATION; i++) {
    const r = await authority.issue({ ca: 'issuing', profile: 'device', subject: [{ type: 'CN', value: `device ${i}` }], publicKeyInfo: spki }, { actor: 'bench' });
    let line = `V\t${opensslTime(r.notAfter)}\t\t${r.serial.toUpperCase()}\tunknown\t/CN=device ${i}`;
    if (i % 10 === 0) {
      const revoked = await authority.revoke({ ca: 'issuing', serial: r.serial, reason: 1 }, { actor: 'bench' });
      line = `R\t${opensslTime(r.notAfter)}\t${opensslTime(revoked.revokedAt!)},keyCompromise\t${r.serial.toUpperCase()}\tunknown\t/CN=device ${i}`;
    }
    index.push(line);
    plain.push(Buffer.from(request(certId(r.serial))).toString('hex'));
    withNonce.push(Buffer.from(request(certId(r.serial), new Uint8Array(createHash('sha256').update(String(i)).digest().subarray(0, 16)))).toString('hex'));
  }
  // openssl's own delegated responder certificate, from the same issuing CA, key in a file.
  const opensslKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const fakeSigner = { publicKeyInfo: new Uint8Array(opensslKey.publicKey.export({ type: 'spki', format: 'der' })) } as Signer;
  const opensslSigner = await authority.issueServiceCertificate('issuing', 'ocsp-signer', fakeSigner, [{ type: 'CN', value: 'openssl OCSP responder' }]);
  writeFileSync(join(dir, 'index.txt'), `${index.join('\n')}\n`);
  writeFileSync(join(dir, 'requests.hex'), `${plain.join('\n')}\n`);
  writeFileSync(join(dir, 'requests-nonce.hex'), `${withNonce.join('\n')}\n`);
  writeFileSync(join(dir, 'issuing.pem'), toPem(issuing.certificate, 'CERTIFICATE'));
  writeFileSync(join(dir, 'root.pem'), toPem(authority.caCertificate('root'), 'CERTIFICATE'));
  writeFileSync(join(dir, 'chain.pem'), toPem(authority.caCertificate('root'), 'CERTIFICATE') + toPem(issuing.certificate, 'CERTIFICATE'));
  writeFileSync(join(dir, 'openssl-ocsp.pem'), toPem(opensslSigner.der, 'CERTIFICATE'));
  writeFileSync(join(dir, 'openssl-ocsp.key'), opensslKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(dir, 'sample.der'), Buffer.from(plain[0], 'hex'));
  writeFileSync(join(dir, 'sample-nonce.der'), Buffer.from(withNonce[0], 'hex'));

  const responder = new OcspResponder({ store, clock: systemClock, signers });
  responder.start();
  const app = Fastify({ logger: false });
  await app.register(ocspRoutes, { responder });
  app.get('/stats', async () => responder.stats());
  await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(`READY ${(app.server.address() as { port: number }).port}`);
}
