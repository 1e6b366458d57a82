/**
 * PAdES B-LT (ETSI EN 319 142-1 s5.4, s6.3 level B-LT; ISO 32000-2 s12.8.4.3): the validation data
 * a relying party needs years later, offline, added after the B-T signature in a second incremental
 * update as the Document Security Store:
 *
 *   catalog /DSS << /Type /DSS
 *                   /Certs [streams: every certificate of the seal's and the TSA's chains, and the OCSP responders']
 *                   /OCSPs [streams: an OCSPResponse per certificate that is not a trust anchor]
 *                   /CRLs  [streams: the issuer's CRL where OCSP could not answer]
 *                   /VRI << /<SHA-1 of the signature's /Contents, upper-case hex> << /Cert /OCSP /CRL /TU >> >> >>
 *
 * The /Contents bytes hashed for the VRI key are the whole string, zero padding included (as
 * iText and pyHanko do). The data comes from a ValidationDataSource: in the appliance, its own OCSP
 * responder core (called in process, not over HTTP) and its CRL publisher.
 *
 * The reading side finds the DSS, and answers "what did the DSS say about this certificate" by
 * checking an OCSP response (signature by the issuer or by a responder it delegated to with
 * id-kp-OCSPSigning, CertID matching) or a CRL (signed by the issuer), with node:crypto.
 */
import { createHash, verify as nodeVerify, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { OID } from '../hsm/algorithms.ts';
import { CMS_OID } from './cms.ts';
import { appendUpdate, writeIncrement, type NewObject } from './increment.ts';
import { decodeStream, PdfDict, PdfDocument, PdfName, PdfRef, PdfStream, PdfString, serialize, type PdfObject } from './pdf.ts';

/** Where validation data comes from when sealing at level B-LT. */
export interface ValidationDataSource {
  /** OCSPRequest DER in, OCSPResponse DER out (the appliance's responder core). */
  ocsp(request: Uint8Array): Promise<Uint8Array>;
  /** The current CRL (DER) of the CA whose certificate is `issuer`, if it publishes one. */
  crl(issuer: Uint8Array): Uint8Array | undefined | Promise<Uint8Array | undefined>;
}

/** A ValidationDataSource over the appliance's OCSP responder core and its CRLs, by CA name. */
export function applianceValidationData(deps: {
  respond(request: Uint8Array): Promise<Uint8Array>;
  cas: { listAuthorities(): Array<{ name: string }>; caCertificate(name: string): Uint8Array };
  crlOf(ca: string): Uint8Array | undefined;
}): ValidationDataSource {
  return {
    ocsp: (request) => deps.respond(request),
    crl: (issuer) => {
      const ca = deps.cas.listAuthorities().find((a) => same(deps.cas.caCertificate(a.name), issuer));
      return ca ? deps.crlOf(ca.name) : undefined;
    },
  };
}

export interface ValidationData {
  certs: Uint8Array[];
  ocsps: Uint8Array[];
  crls: Uint8Array[];
}

const OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';

const signatureHashes: Record<string, string | null> = {
  [OID.ecdsaWithSHA256]: 'sha256', [OID.ecdsaWithSHA384]: 'sha384', [OID.ecdsaWithSHA512]: 'sha512',
  [OID.sha256WithRSAEncryption]: 'sha256', [OID.sha384WithRSAEncryption]: 'sha384', [OID.sha512WithRSAEncryption]: 'sha512',
  [OID.ed25519]: null,
};
const certIdHashes: Record<string, string> = { [OID.sha1]: 'sha1', [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** The VRI key of a signature: SHA-1 of its /Contents string's bytes, upper-case hex. */
export function vriKey(contents: Uint8Array): string {
  return createHash('sha1').update(contents).digest('hex').toUpperCase();
}

function x509(der: Uint8Array): X509Certificate | undefined {
  try {
    return new X509Certificate(der);
  } catch {
    return undefined;
  }
}

/** The issuer of `cert` among `candidates`: names match and the signature verifies. */
function issuerOf(cert: X509Certificate, candidates: X509Certificate[]): X509Certificate | undefined {
  return candidates.find((c) => c.subject === cert.issuer && cert.checkIssued(c) && cert.verify(c.publicKey));
}

function selfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

/** CertID (RFC 6960 s4.1.1) of `cert` under SHA-1, the hash RFC 5019 responders must accept. */
function certIdFor(cert: X509Certificate, issuer: X509Certificate, hash = 'sha1', hashOid: string = OID.sha1): pkijs.CertID {
  const issuerCert = pkijs.Certificate.fromBER(toArrayBuffer(new Uint8Array(issuer.raw)));
  const subject = pkijs.Certificate.fromBER(toArrayBuffer(new Uint8Array(cert.raw)));
  return new pkijs.CertID({
    hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: hashOid, algorithmParams: new asn1js.Null() }),
    issuerNameHash: new asn1js.OctetString({ valueHex: createHash(hash).update(Buffer.from(issuerCert.subject.toSchema().toBER(false))).digest() }),
    issuerKeyHash: new asn1js.OctetString({ valueHex: createHash(hash).update(Buffer.from(issuerCert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)).digest() }),
    serialNumber: subject.serialNumber,
  });
}

export function ocspRequestFor(cert: Uint8Array, issuer: Uint8Array): Uint8Array {
  return requests([cert, issuer], () => encodeOcspRequest(cert, issuer));
}

function encodeOcspRequest(cert: Uint8Array, issuer: Uint8Array): Uint8Array {
  const c = x509(cert);
  const i = x509(issuer);
  if (!c || !i) throw new YinxinError('internal', 'an OCSP request needs the certificate and its issuer');
  const request = new pkijs.OCSPRequest();
  request.tbsRequest.requestList = [new pkijs.Request({ reqCert: certIdFor(c, i) })];
  return new Uint8Array(request.toSchema(true).toBER(false));
}

function basicResponse(der: Uint8Array): pkijs.BasicOCSPResponse | undefined {
  try {
    const response = pkijs.OCSPResponse.fromBER(toArrayBuffer(der));
    if (response.responseStatus.valueBlock.valueDec !== 0 || !response.responseBytes || response.responseBytes.responseType !== OCSP_BASIC) return undefined;
    return pkijs.BasicOCSPResponse.fromBER(toArrayBuffer(new Uint8Array(response.responseBytes.response.valueBlock.valueHexView)));
  } catch {
    return undefined;
  }
}

function derOf(c: pkijs.CertificateSetItem | pkijs.Certificate): Uint8Array {
  return new Uint8Array((c as pkijs.Certificate).toSchema().toBER(false));
}

/**
 * Every certificate a seal's CMS carries: its own set and its signature-time-stamp token's. Read
 * by stepping over the DER (RFC 5652 s5.1: SignedData's [0] certificates, the SignerInfo's [1]
 * unsignedAttrs) and sliced out as encoded, without a pkijs parse of each certificate.
 */
export function certificatesOfSignature(cms: Uint8Array): Uint8Array[] {
  const signedData = (der: Uint8Array): asn1js.Sequence => {
    const contentInfo = asn1js.fromBER(toArrayBuffer(der)).result as asn1js.Sequence;
    return (contentInfo.valueBlock.value[1] as asn1js.Constructed).valueBlock.value[0] as asn1js.Sequence;
  };
  const tagged = (block: asn1js.BaseBlock, n: number) => block.idBlock.tagClass === 3 && block.idBlock.tagNumber === n;
  const certificates = (sd: asn1js.Sequence) => {
    const set = sd.valueBlock.value.find((b) => tagged(b, 0)) as asn1js.Constructed | undefined;
    return (set?.valueBlock.value ?? []).map((c) => new Uint8Array(c.valueBeforeDecodeView));
  };
  try {
    const sd = signedData(cms);
    const out = certificates(sd);
    const signerInfos = sd.valueBlock.value[sd.valueBlock.value.length - 1] as asn1js.Set;
    const signerInfo = signerInfos.valueBlock.value[0] as asn1js.Sequence;
    const unsigned = signerInfo.valueBlock.value.find((b) => tagged(b, 1)) as asn1js.Constructed | undefined;
    for (const attribute of unsigned?.valueBlock.value ?? []) {
      const [type, values] = (attribute as asn1js.Sequence).valueBlock.value;
      if (type instanceof asn1js.ObjectIdentifier && type.valueBlock.toString() === CMS_OID.signatureTimeStampToken) {
        out.push(...certificates(signedData(new Uint8Array((values as asn1js.Set).valueBlock.value[0].valueBeforeDecodeView))));
      }
    }
    return out;
  } catch (e) {
    throw new YinxinError('internal', 'the seal\'s own CMS could not be read back', undefined, { cause: e });
  }
}

/** The signer's certificate of a SignedData (a time-stamp token's TSA certificate): the one its SignerInfo's sid names. */
export function signerCertificateOf(token: Uint8Array): Uint8Array | undefined {
  try {
    const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toArrayBuffer(token)).content });
    const sid = sd.signerInfos[0]?.sid;
    const cert = (sd.certificates ?? []).find((c): c is pkijs.Certificate => c instanceof pkijs.Certificate
      && sid instanceof pkijs.IssuerAndSerialNumber && c.issuer.isEqual(sid.issuer) && c.serialNumber.isEqual(sid.serialNumber));
    return cert ? new Uint8Array(cert.toSchema().toBER(false)) : undefined;
  } catch {
    return undefined;
  }
}

/** Results kept by the bytes they were computed from (certificates and pre-signed responses repeat seal after seal). */
function memo<T>(max: number): (key: Uint8Array[], compute: () => T) => T {
  const map = new Map<string, T>();
  return (key, compute) => {
    const h = createHash('sha256');
    for (const k of key) h.update(String(k.length)).update(k);
    const id = h.digest('base64');
    if (map.has(id)) return map.get(id)!;
    const value = compute();
    if (map.size >= max) map.delete(map.keys().next().value!);
    map.set(id, value);
    return value;
  };
}
const requests = memo<Uint8Array>(1024);
const responses = memo<{ ok: boolean; certs: Uint8Array[] }>(1024);

/**
 * Validation data for `certificates` (the seal's chain and the TSA's): an OCSP response for each one
 * that is not self-signed, the issuer's CRL where the responder gives no successful answer, and the
 * certificates of the OCSP responders. Throws 'validation-data-unavailable' when neither exists for
 * a certificate, so a B-LT seal is never silently a B-T one.
 */
export async function collectValidationData(certificates: Uint8Array[], source: ValidationDataSource): Promise<ValidationData> {
  const unique: Uint8Array[] = [];
  for (const c of certificates) if (!unique.some((u) => same(u, c))) unique.push(c);
  const parsed = unique.map((der) => ({ der, cert: x509(der) }));
  const known = parsed.flatMap((p) => (p.cert ? [p.cert] : []));
  const out: ValidationData = { certs: [...unique], ocsps: [], crls: [] };
  for (const { der, cert } of parsed) {
    if (!cert || selfSigned(cert)) continue;
    const issuer = issuerOf(cert, known);
    if (!issuer) throw new YinxinError('validation-data-unavailable', `the issuer of ${cert.subject.replace(/\n/g, ', ')} is not in the chain`);
    let response: Uint8Array | undefined;
    try {
      response = await source.ocsp(ocspRequestFor(der, new Uint8Array(issuer.raw)));
    } catch {
      response = undefined;
    }
    const answer = response && responses([response], () => {
      const basic = basicResponse(response);
      return { ok: basic !== undefined, certs: (basic?.certs ?? []).map(derOf) };
    });
    if (response && answer && answer.ok) {
      out.ocsps.push(response);
      for (const d of answer.certs) if (!out.certs.some((u) => same(u, d))) out.certs.push(d);
      continue;
    }
    const crl = await source.crl(new Uint8Array(issuer.raw));
    if (!crl) throw new YinxinError('validation-data-unavailable', `neither OCSP nor a CRL is available for ${cert.subject.replace(/\n/g, ', ')}`);
    if (!out.crls.some((u) => same(u, crl))) out.crls.push(crl);
  }
  return out;
}

/**
 * `leaf` and its issuers up to a self-signed certificate, found by name and signature among `pool`
 * (DER); stops where no issuer is found (collectValidationData then says so).
 */
export function issuerChain(leaf: Uint8Array, pool: Uint8Array[]): Uint8Array[] {
  const known = pool.flatMap((der) => { const x = x509(der); return x ? [x] : []; });
  const out = [leaf];
  let cert = x509(leaf);
  while (cert && !selfSigned(cert) && out.length < 16) {
    const issuer = issuerOf(cert, known);
    if (!issuer) break;
    out.push(new Uint8Array(issuer.raw));
    cert = issuer;
  }
  return out;
}

/**
 * The incremental update that adds (or extends) the DSS with `data` and a VRI entry for the
 * signature (or document time-stamp) whose /Contents string is `contents`. Returns the whole new
 * file. Certificates, responses and CRLs the DSS already holds are referred to, not added again.
 */
export function appendDss(pdf: Uint8Array, contents: Uint8Array, data: ValidationData, time: Date): Uint8Array {
  const doc = PdfDocument.parse(pdf);
  const catalog = doc.catalog;
  const old = doc.resolve(catalog.get('DSS'));
  const dss = old instanceof PdfDict ? old.clone() : new PdfDict([['Type', new PdfName('DSS')]]);
  let next = doc.size;
  const objects: NewObject[] = [];
  const keyOf = (key: string, bytes: Uint8Array) => `${key} ${createHash('sha256').update(bytes).digest('base64')}`;
  const held = new Map<string, PdfRef>();
  for (const key of ['Certs', 'OCSPs', 'CRLs']) {
    const before = doc.resolve(dss.get(key));
    for (const item of Array.isArray(before) ? before : []) {
      if (!(item instanceof PdfRef)) continue;
      try {
        const s = doc.resolve(item);
        if (s instanceof PdfStream) held.set(keyOf(key, streamData(s)), item);
      } catch { /* an unreadable entry is left where it is */ }
    }
  }
  const streams = (key: string, items: Uint8Array[]) => {
    const added: PdfRef[] = [];
    const refs = items.map((data) => {
      const known = held.get(keyOf(key, data));
      if (known) return known;
      const ref = new PdfRef(next++, 0);
      objects.push({ num: ref.num, gen: 0, body: { dict: new PdfDict(), data } });
      held.set(keyOf(key, data), ref);
      added.push(ref);
      return ref;
    });
    const before = doc.resolve(dss.get(key));
    const merged = [...(Array.isArray(before) ? before : []), ...added];
    if (merged.length) dss.set(key, merged);
    return refs;
  };
  const certs = streams('Certs', data.certs);
  const ocsps = streams('OCSPs', data.ocsps);
  const crls = streams('CRLs', data.crls);
  const vriOld = doc.resolve(dss.get('VRI'));
  const vri = vriOld instanceof PdfDict ? vriOld.clone() : new PdfDict();
  const entry = new PdfDict([['Type', new PdfName('VRI')], ['Cert', certs]]);
  if (ocsps.length) entry.set('OCSP', ocsps);
  if (crls.length) entry.set('CRL', crls);
  entry.set('TU', new PdfString(Buffer.from(pdfUtcDate(time), 'latin1')));
  vri.set(vriKey(contents), entry);
  dss.set('VRI', vri);
  const dssRef = new PdfRef(next++, 0);
  objects.push({ num: dssRef.num, gen: 0, body: serialize(dss) });
  objects.push({ num: doc.catalogRef.num, gen: doc.catalogRef.gen, body: serialize(catalog.clone().set('DSS', dssRef)) });
  const update = writeIncrement(doc, objects, next);
  return appendUpdate(pdf, update);
}

function pdfUtcDate(d: Date): string {
  return `D:${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

// ---------------------------------------------------------------- reading

export interface DssContent {
  certs: Uint8Array[];
  ocsps: Uint8Array[];
  crls: Uint8Array[];
  /** VRI keys present (upper-case hex). */
  vri: Set<string>;
}

/** The DSS of a document, if it has one (streams decoded; unreadable entries left out). */
export function readDss(doc: PdfDocument): DssContent | undefined {
  const dss = doc.resolve(doc.catalog.get('DSS'));
  if (!(dss instanceof PdfDict)) return undefined;
  const streams = (key: string) => {
    const arr = doc.resolve(dss.get(key));
    if (!Array.isArray(arr)) return [];
    return arr.flatMap((item: PdfObject) => {
      try {
        const s = doc.resolve(item);
        return s instanceof PdfStream ? [streamData(s)] : [];
      } catch {
        return [];
      }
    });
  };
  const vri = doc.resolve(dss.get('VRI'));
  return {
    certs: streams('Certs'), ocsps: streams('OCSPs'), crls: streams('CRLs'),
    vri: new Set(vri instanceof PdfDict ? [...vri.map.keys()].map((k) => k.toUpperCase()) : []),
  };
}

function streamData(s: PdfStream): Uint8Array {
  return s.dict.get('Filter') === undefined ? s.raw : decodeStream(s);
}

export interface DssRevocation {
  status: 'good' | 'revoked' | 'unknown';
  source: 'ocsp' | 'crl';
  /** OCSP producedAt or CRL thisUpdate. */
  issuedAt: string;
  revokedAt?: string;
}

function signatureOk(data: ArrayBuffer | Uint8Array, signature: Uint8Array, algorithmOid: string, signer: X509Certificate): boolean {
  if (!(algorithmOid in signatureHashes)) return false;
  try {
    return nodeVerify(signatureHashes[algorithmOid], new Uint8Array(data), { key: signer.publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

function ocspStatus(der: Uint8Array, cert: X509Certificate, issuer: X509Certificate, extra: X509Certificate[]): DssRevocation | undefined {
  const basic = basicResponse(der);
  if (!basic) return undefined;
  const tbs = basic.tbsResponseData;
  const candidates = [...(basic.certs ?? []).flatMap((c) => { const x = x509(derOf(c)); return x ? [x] : []; }), ...extra, issuer];
  const rid = tbs.responderID;
  const keyHash = (c: X509Certificate) => {
    const spki = pkijs.Certificate.fromBER(toArrayBuffer(new Uint8Array(c.raw))).subjectPublicKeyInfo;
    return createHash('sha1').update(Buffer.from(spki.subjectPublicKey.valueBlock.valueHexView)).digest();
  };
  const responder = candidates.find((c) => rid instanceof asn1js.OctetString
    ? same(keyHash(c), new Uint8Array(rid.valueBlock.valueHexView))
    : rid instanceof pkijs.RelativeDistinguishedNames && same(new Uint8Array(pkijs.Certificate.fromBER(toArrayBuffer(new Uint8Array(c.raw))).subject.toSchema().toBER(false)), new Uint8Array(rid.toSchema().toBER(false))));
  if (!responder) return undefined;
  // RFC 6960 s4.2.2.2: the issuer itself, or a certificate it issued for OCSPSigning.
  const authorized = responder.raw.equals(issuer.raw)
    || (responder.checkIssued(issuer) && responder.verify(issuer.publicKey) && (responder.keyUsage ?? []).includes(OCSP_SIGNING));
  if (!authorized) return undefined;
  if (!signatureOk(tbs.tbsView, new Uint8Array(basic.signature.valueBlock.valueHexView), basic.signatureAlgorithm.algorithmId, responder)) return undefined;
  for (const single of tbs.responses) {
    const hash = certIdHashes[single.certID.hashAlgorithm.algorithmId];
    if (!hash) continue;
    const expected = certIdFor(cert, issuer, hash, single.certID.hashAlgorithm.algorithmId);
    if (!same(new Uint8Array(single.certID.toSchema().toBER(false)), new Uint8Array(expected.toSchema().toBER(false)))) continue;
    const tag = single.certStatus.idBlock.tagNumber;
    const status = tag === 0 ? 'good' : tag === 1 ? 'revoked' : 'unknown';
    const out: DssRevocation = { status, source: 'ocsp', issuedAt: tbs.producedAt.toISOString() };
    if (status === 'revoked') {
      const time = (single.certStatus as asn1js.Constructed).valueBlock.value[0];
      if (time instanceof asn1js.GeneralizedTime) out.revokedAt = time.toDate().toISOString();
    }
    return out;
  }
  return undefined;
}

function crlStatus(der: Uint8Array, cert: X509Certificate, issuer: X509Certificate): DssRevocation | undefined {
  try {
    const crl = pkijs.CertificateRevocationList.fromBER(toArrayBuffer(der));
    const issuerName = pkijs.Certificate.fromBER(toArrayBuffer(new Uint8Array(issuer.raw))).subject;
    if (!crl.issuer.isEqual(issuerName)) return undefined;
    if (!signatureOk(crl.tbsView, new Uint8Array(crl.signatureValue.valueBlock.valueHexView), crl.signature.algorithmId, issuer)) return undefined;
    const serial = pkijs.Certificate.fromBER(toArrayBuffer(new Uint8Array(cert.raw))).serialNumber;
    const entry = (crl.revokedCertificates ?? []).find((r) => r.userCertificate.isEqual(serial));
    return { status: entry ? 'revoked' : 'good', source: 'crl', issuedAt: crl.thisUpdate.value.toISOString(), ...(entry ? { revokedAt: entry.revocationDate.value.toISOString() } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * What the DSS says about `certificate` (DER): the first OCSP response, else CRL, that is properly
 * signed for it. `certificates` are the other certificates known (the signature's, the DSS's).
 */
export function revocationFromDss(certificate: Uint8Array, dss: DssContent, certificates: Uint8Array[]): DssRevocation | undefined {
  const cert = x509(certificate);
  if (!cert) return undefined;
  const known = [...dss.certs, ...certificates].flatMap((d) => { const x = x509(d); return x ? [x] : []; });
  const issuer = issuerOf(cert, known);
  if (!issuer) return undefined;
  for (const o of dss.ocsps) {
    const r = ocspStatus(o, cert, issuer, known);
    if (r) return r;
  }
  for (const c of dss.crls) {
    const r = crlStatus(c, cert, issuer);
    if (r) return r;
  }
  return undefined;
}
