/**
 * Verification of seals: every signature of a PDF (PAdES) and a file with its detached .p7s
 * (CAdES). For each signature it reports integrity (the byte range covers the whole revision
 * except /Contents, the message digest), the CMS signature, signing-certificate-v2, the chain to
 * the trust anchors (yinxin's root and any an administrator configured) at the time-stamp's time,
 * revocation at signing time (through a status lookup, normally the CA store), the
 * signature-time-stamp and its TSA, the seal's identity (organization, credit code, seal name,
 * kind when the registry knows it), and for PDFs whether the document changed after the seal and
 * how (ISO 32000-1 s12.8.2.2 lets later incremental updates add signatures and form data).
 * Document time-stamps (/DocTimeStamp, /SubFilter /ETSI.RFC3161, ISO 32000-2 s12.8.5) are
 * reported apart from the seals: the token over the byte ranges, its TSA, the TSA certificate's
 * status (the appliance's lookup, else the DSS) and which seals it covers; a B-LT seal that a
 * valid document time-stamp covers, with its validation data in the DSS under that time-stamp,
 * is B-LTA (ETSI EN 319 142-1 s6.3).
 * Returns structured JSON and a readable summary. Signatures are checked with node:crypto; the
 * chain with pkijs' engine given node's WebCrypto explicitly.
 */
import { verify as nodeVerify, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { toArrayBuffer } from '../common/pem.ts';
import { hashNameFromOid, OID } from '../hsm/algorithms.ts';
import { verifyTimeStampToken } from '../tsa/client.ts';
import { CMS_OID, digest } from './cms.ts';
import { certificatesOfSignature, readDss, revocationFromDss, signerCertificateOf, vriKey, type DssContent, type DssRevocation } from './ltv.ts';
import { PdfDict, PdfDocument, PdfRef, PdfStream, PdfString, serialize, type PdfObject } from './pdf.ts';
import type { HashName } from '../hsm/signer.ts';

export type RevocationAnswer = { status: 'good' } | { status: 'revoked' | 'suspended'; at: Date; reason?: number } | { status: 'unknown' };

export interface SealVerifyOptions {
  /** Root certificates (DER): yinxin's root and configured extra roots. */
  trustAnchors: Uint8Array[];
  intermediates?: Uint8Array[];
  /** The certificate's status as known now (revocation time if revoked); 'unknown' if not ours. */
  statusOf?: (certificate: Uint8Array) => RevocationAnswer;
  /** Seal identity from the registry, by certificate (DER). */
  sealOf?: (certificate: Uint8Array) => { id: string; name: string; kind: string; organization: string } | undefined;
  now?: Date;
}

export type ChangeKind = 'none' | 'validation-data-added' | 'signatures-added' | 'form-or-annotations' | 'content-modified';

export interface SignatureReport {
  field?: string;
  valid: boolean;
  integrity: { byteRange?: number[]; byteRangeOk?: boolean; coversWholeFile?: boolean; digestOk: boolean };
  signatureOk: boolean;
  signingCertificateOk: boolean;
  signer?: { subject: string; organization?: string; creditCode?: string; commonName?: string; serial: string; issuer: string; notAfter: string };
  seal?: { id: string; name: string; kind: string; organization: string };
  chain: { ok: boolean; detail: string };
  revocation: { status: 'good' | 'revoked-before-signing' | 'revoked-after-signing' | 'suspended' | 'unknown'; at?: string; source?: 'appliance' | 'dss-ocsp' | 'dss-crl' };
  timestamp: { ok: boolean; genTime?: string; tsa?: string; detail?: string };
  /**
   * PAdES / CAdES baseline level reached: B-B (no valid time-stamp), B-T, B-LT (the DSS proves the
   * seal's and the TSA's certificate status), B-LTA (and a valid document time-stamp covers that DSS).
   */
  level?: 'B-B' | 'B-T' | 'B-LT' | 'B-LTA';
  /** What the PDF's DSS holds for this seal (PDFs with a DSS only), and the document time-stamp that archives it. */
  ltv?: { vri: boolean; signer?: DssRevocation; tsa?: DssRevocation; archiveTimestamp?: { field: string; genTime: string } };
  claimedTime?: string;
  changesAfter?: ChangeKind;
  errors: string[];
}

/** A document time-stamp (ISO 32000-2 s12.8.5): not a seal, a TSA's proof that the bytes it covers existed at genTime. */
export interface DocumentTimestampReport {
  field: string;
  valid: boolean;
  integrity: { byteRange?: number[]; byteRangeOk?: boolean; coversWholeFile?: boolean; digestOk: boolean };
  timestamp: { ok: boolean; genTime?: string; tsa?: string; serialNumber?: string; policy?: string; detail?: string };
  /** The TSA certificate's status at genTime: the appliance's lookup, else the DSS. */
  revocation: SignatureReport['revocation'];
  /** Whether a VRI entry names this time-stamp, and what the DSS says about its TSA certificate. */
  ltv?: { vri: boolean; tsa?: DssRevocation };
  /** The seals (field names) whose revisions it covers. */
  covers: string[];
  changesAfter?: ChangeKind;
  errors: string[];
}

export interface VerificationReport {
  valid: boolean;
  kind: 'pdf' | 'cades';
  signatures: SignatureReport[];
  /** PDFs: the document time-stamps (B-LTA archive time-stamps), in file order. */
  documentTimestamps?: DocumentTimestampReport[];
  summary: string;
}

/** A valid document time-stamp as the seals before it see it: the DSS it covers. */
interface ArchiveEvidence {
  field: string;
  genTime: string;
  dss: DssContent;
}

const attrNames: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.97': 'organizationIdentifier',
};

function nameText(name: pkijs.RelativeDistinguishedNames): string {
  return name.typesAndValues.map((tv) => `${attrNames[tv.type] ?? tv.type}=${tv.value.valueBlock.value}`).join(', ');
}

function nameAttr(name: pkijs.RelativeDistinguishedNames, oid: string): string | undefined {
  return name.typesAndValues.find((tv) => tv.type === oid)?.value.valueBlock.value as string | undefined;
}

const nodeHash: Record<string, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/**
 * Verifies one CMS SignedData over content given as parts (PDF byte ranges) or whole (a file).
 * Never throws for a bad signature: the report says what failed.
 */
export async function verifySignedData(cmsDer: Uint8Array, content: Uint8Array[], options: SealVerifyOptions,
  dss?: { content: DssContent; vri: boolean; archives?: ArchiveEvidence[] }): Promise<SignatureReport> {
  const report: SignatureReport = {
    valid: false, integrity: { digestOk: false }, signatureOk: false, signingCertificateOk: false,
    chain: { ok: false, detail: 'not checked' }, revocation: { status: 'unknown' }, timestamp: { ok: false }, errors: [],
  };
  let sd: pkijs.SignedData;
  try {
    const ci = pkijs.ContentInfo.fromBER(toArrayBuffer(cmsDer));
    if (ci.contentType !== CMS_OID.signedData) throw new Error('not SignedData');
    sd = new pkijs.SignedData({ schema: ci.content });
  } catch {
    report.errors.push('the signature is not a readable CMS SignedData');
    return report;
  }
  if (sd.signerInfos.length !== 1) {
    report.errors.push(`expected one SignerInfo, found ${sd.signerInfos.length}`);
    return report;
  }
  const si = sd.signerInfos[0];
  const certs = (sd.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate);
  const sid = si.sid;
  const signerCert = certs.find((c) => sid instanceof pkijs.IssuerAndSerialNumber ? c.issuer.isEqual(sid.issuer) && c.serialNumber.isEqual(sid.serialNumber) : false);
  if (!signerCert) {
    report.errors.push('the signer certificate is not in the signature');
    return report;
  }
  const signerDer = new Uint8Array(signerCert.toSchema().toBER(false));
  report.signer = {
    subject: nameText(signerCert.subject), organization: nameAttr(signerCert.subject, '2.5.4.10'), creditCode: nameAttr(signerCert.subject, '2.5.4.97'),
    commonName: nameAttr(signerCert.subject, '2.5.4.3'), serial: Buffer.from(signerCert.serialNumber.valueBlock.valueHexView).toString('hex'),
    issuer: nameText(signerCert.issuer), notAfter: signerCert.notAfter.value.toISOString(),
  };
  const seal = options.sealOf?.(signerDer);
  if (seal) report.seal = seal;

  const hash = hashNameFromOid(si.digestAlgorithm.algorithmId);
  const attrs = si.signedAttrs;
  if (!hash || !(hash in nodeHash) || !attrs) {
    report.errors.push(!attrs ? 'no signed attributes' : `unsupported digest algorithm ${si.digestAlgorithm.algorithmId}`);
    return report;
  }
  const attr = (type: string) => attrs.attributes.find((a) => a.type === type)?.values[0];
  const md = attr(CMS_OID.messageDigest);
  const actual = digest(hash as HashName, content);
  report.integrity.digestOk = md instanceof asn1js.OctetString && Buffer.compare(Buffer.from(md.valueBlock.valueHexView), Buffer.from(actual)) === 0;
  if (!report.integrity.digestOk) report.errors.push('the document digest does not match: the signed content was changed');
  const ct = attr(CMS_OID.contentType);
  if (!(ct instanceof asn1js.ObjectIdentifier) || ct.valueBlock.toString() !== CMS_OID.data) report.errors.push('the content-type attribute is not id-data');

  // RFC 5035: signing-certificate-v2 binds the signer certificate into the signature.
  const ess = attr(CMS_OID.signingCertificateV2);
  try {
    const certId = ((ess as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
    let hashBlock = certId.valueBlock.value[0];
    let essHash = 'sha256';
    if (hashBlock instanceof asn1js.Sequence) {
      const h = hashNameFromOid(new pkijs.AlgorithmIdentifier({ schema: hashBlock }).algorithmId);
      essHash = h && nodeHash[h] ? nodeHash[h] : 'unknown';
      hashBlock = certId.valueBlock.value[1];
    }
    const { createHash } = await import('node:crypto');
    report.signingCertificateOk = hashBlock instanceof asn1js.OctetString && essHash !== 'unknown'
      && Buffer.compare(Buffer.from(hashBlock.valueBlock.valueHexView), createHash(essHash).update(signerDer).digest()) === 0;
  } catch {
    report.signingCertificateOk = false;
  }
  if (!report.signingCertificateOk) report.errors.push('signing-certificate-v2 is missing or does not identify the signer certificate');

  const signedBytes = new Uint8Array(attrs.encodedValue.slice(0));
  signedBytes[0] = 0x31;
  const signature = new Uint8Array(si.signature.valueBlock.valueHexView);
  try {
    const sigAlg = si.signatureAlgorithm.algorithmId;
    const algHash = sigAlg === OID.ed25519 ? null : nodeHash[hash];
    report.signatureOk = nodeVerify(algHash, signedBytes,
      { key: Buffer.from(signerCert.subjectPublicKeyInfo.toSchema().toBER(false)), format: 'der', type: 'spki', dsaEncoding: 'der' }, signature);
  } catch (e) {
    report.errors.push(`the signature could not be checked: ${(e as Error).message}`);
  }
  if (!report.signatureOk) report.errors.push('the CMS signature does not verify');

  // RFC 3161 Appendix A: the signature-time-stamp covers the signature value.
  let signingTime: Date | undefined;
  let tsaCertificate: Uint8Array | undefined;
  const tokenAttr = si.unsignedAttrs?.attributes.find((a) => a.type === CMS_OID.signatureTimeStampToken)?.values[0];
  if (!tokenAttr) {
    report.timestamp = { ok: false, detail: 'no signature-time-stamp (B-B level only)' };
    report.errors.push('no signature-time-stamp');
  } else {
    try {
      const ts = await verifyTimeStampToken(new Uint8Array(tokenAttr.toBER(false)), signature, {
        trustAnchors: options.trustAnchors,
        // The TSA's issuers usually travel in the seal's own certificate set.
        intermediates: [...(options.intermediates ?? []), ...certs.map((c) => new Uint8Array(c.toSchema().toBER(false)))],
      });
      signingTime = ts.genTime;
      tsaCertificate = signerCertificateOf(new Uint8Array(tokenAttr.toBER(false)));
      report.timestamp = { ok: true, genTime: ts.genTime.toISOString(), tsa: ts.signer };
    } catch (e) {
      report.timestamp = { ok: false, detail: (e as Error).message };
      report.errors.push(`the signature-time-stamp does not verify: ${(e as Error).message}`);
    }
  }
  const st = attr(CMS_OID.signingTime);
  if (st instanceof asn1js.UTCTime || st instanceof asn1js.GeneralizedTime) report.claimedTime = st.toDate().toISOString();

  // The chain at the time the seal was made (the time-stamp's), else now.
  const checkDate = signingTime ?? options.now ?? new Date();
  try {
    const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });
    const chain = new pkijs.CertificateChainValidationEngine({
      trustedCerts: options.trustAnchors.map((d) => pkijs.Certificate.fromBER(toArrayBuffer(d))),
      certs: [signerCert, ...certs.filter((c) => c !== signerCert), ...(options.intermediates ?? []).map((d) => pkijs.Certificate.fromBER(toArrayBuffer(d)))],
      checkDate,
    });
    const r = await chain.verify({}, engine);
    report.chain = { ok: r.result, detail: r.result ? `chains to a trusted root at ${checkDate.toISOString()}` : r.resultMessage };
  } catch (e) {
    report.chain = { ok: false, detail: (e as Error).message };
  }
  if (!report.chain.ok) report.errors.push(`the seal certificate does not chain to a trusted root: ${report.chain.detail}`);

  report.level = report.timestamp.ok ? 'B-T' : 'B-B';
  let status: RevocationAnswer = options.statusOf?.(signerDer) ?? { status: 'unknown' };
  let source: SignatureReport['revocation']['source'] = status.status === 'unknown' ? undefined : 'appliance';
  if (dss) {
    // B-LT: the DSS answers offline, for the seal certificate and the TSA certificate.
    const known = certs.map((c) => new Uint8Array(c.toSchema().toBER(false)));
    const signer = revocationFromDss(signerDer, dss.content, known);
    const tsa = tsaCertificate ? revocationFromDss(tsaCertificate, dss.content, known) : undefined;
    report.ltv = { vri: dss.vri, ...(signer ? { signer } : {}), ...(tsa ? { tsa } : {}) };
    if (report.timestamp.ok && signer && tsa && signer.status !== 'unknown' && tsa.status !== 'unknown') report.level = 'B-LT';
    // B-LTA: a valid document time-stamp after this seal covers a DSS that already proves both statuses.
    const archive = report.level === 'B-LT' && tsaCertificate ? dss.archives?.find((a) => {
      const s = revocationFromDss(signerDer, a.dss, known);
      const t = revocationFromDss(tsaCertificate, a.dss, known);
      return s && t && s.status !== 'unknown' && t.status !== 'unknown';
    }) : undefined;
    if (archive) {
      report.level = 'B-LTA';
      report.ltv.archiveTimestamp = { field: archive.field, genTime: archive.genTime };
    }
    if (status.status === 'unknown' && signer && signer.status !== 'unknown') {
      status = signer.status === 'good' ? { status: 'good' } : { status: 'revoked', at: new Date(signer.revokedAt ?? signer.issuedAt) };
      source = signer.source === 'ocsp' ? 'dss-ocsp' : 'dss-crl';
    }
  }
  report.revocation = judgeRevocation(status, source, checkDate, { certificate: 'the seal certificate', made: 'the seal' }, report.errors);

  report.valid = report.errors.length === 0;
  return report;
}

/** The revocation verdict at `checkDate` (when the seal or time-stamp was made); a status that voids it adds an error. */
function judgeRevocation(status: RevocationAnswer, source: SignatureReport['revocation']['source'], checkDate: Date,
  what: { certificate: string; made: string }, errors: string[]): SignatureReport['revocation'] {
  const from = source ? { source } : {};
  if (status.status === 'good') return { status: 'good', ...from };
  if (status.status === 'unknown') return { status: 'unknown' };
  if (status.status === 'suspended') {
    if (status.at <= checkDate) errors.push(`${what.certificate} was suspended when ${what.made} was made`);
    return { status: 'suspended', at: status.at.toISOString(), ...from };
  }
  if (status.at <= checkDate) {
    errors.push(`${what.certificate} was revoked at ${status.at.toISOString()}, before ${what.made} was made`);
    return { status: 'revoked-before-signing', at: status.at.toISOString(), ...from };
  }
  return { status: 'revoked-after-signing', at: status.at.toISOString(), ...from };
}

/** Signature fields with a value, walking /Fields and /Kids (s12.7.3.1). */
function signatureFields(doc: PdfDocument): Array<{ name: string; sig: PdfDict }> {
  const out: Array<{ name: string; sig: PdfDict }> = [];
  const form = doc.resolve(doc.catalog.get('AcroForm'));
  if (!(form instanceof PdfDict)) return out;
  const seen = new Set<number>();
  const walk = (items: PdfObject, prefix: string, depth: number) => {
    if (!Array.isArray(items) || depth > 32) return;
    for (const item of items) {
      if (item instanceof PdfRef) {
        if (seen.has(item.num)) continue;
        seen.add(item.num);
      }
      const f = doc.resolve(item);
      if (!(f instanceof PdfDict)) continue;
      const t = f.get('T');
      const name = t instanceof PdfString ? (prefix ? `${prefix}.${t.text()}` : t.text()) : prefix;
      if (f.name('FT') === 'Sig') {
        const v = doc.resolve(f.get('V'));
        if (v instanceof PdfDict) out.push({ name, sig: v });
      }
      walk(doc.resolve(f.get('Kids')), name, depth + 1);
    }
  };
  walk(doc.resolve(form.get('Fields')), '', 0);
  return out;
}

const ALLOWED_NEW_TYPES = new Set(['Sig', 'DocTimeStamp', 'XObject', 'Font', 'FontDescriptor', 'Encoding']);
/** What a DSS update (B-LT, ltv.ts) and any revision's bookkeeping add. */
const VALIDATION_DATA_TYPES = new Set(['DSS', 'VRI', 'XRef', 'ObjStm']);

/** What the incremental updates after `end` did (ISO 32000-1 s12.8.2.2.2 DocMDP's categories). */
function changesAfter(doc: PdfDocument, end: number): ChangeKind {
  if (end >= doc.bytes.length) return 'none';
  let old: PdfDocument;
  try {
    old = PdfDocument.parse(doc.bytes.subarray(0, end));
  } catch {
    return 'content-modified';
  }
  let worst: ChangeKind = 'validation-data-added';
  const rank: Record<ChangeKind, number> = { 'none': 0, 'validation-data-added': 1, 'signatures-added': 2, 'form-or-annotations': 3, 'content-modified': 4 };
  const note = (k: ChangeKind) => { if (rank[k] > rank[worst]) worst = k; };
  const changed = new Set<number>();
  for (const [num, e] of doc.xref) {
    const before = old.xref.get(num);
    if (e.type === 'offset' && e.offset >= end) changed.add(num);
    else if (e.type === 'compressed' && JSON.stringify(e) !== JSON.stringify(before)) changed.add(num);
    else if (e.type === 'free' && before && before.type !== 'free') note('content-modified');
  }
  const without = (d: PdfDict, keys: string[]) => {
    const c = d.clone();
    for (const k of keys) c.map.delete(k);
    return serialize(c);
  };
  for (const num of changed) {
    let now: PdfObject;
    try {
      now = doc.object(num);
    } catch {
      note('content-modified');
      continue;
    }
    const existed = old.xref.has(num) && old.xref.get(num)!.type !== 'free';
    const dict = now instanceof PdfStream ? now.dict : now instanceof PdfDict ? now : undefined;
    const type = dict?.name('Type');
    if (!existed) {
      if (type && VALIDATION_DATA_TYPES.has(type)) continue;
      if (now instanceof PdfStream && !type) continue; // DSS certificates, OCSP responses, CRLs
      if (Array.isArray(now)) { note('signatures-added'); continue; }
      if (type === 'Annot') { note(dict!.name('Subtype') === 'Widget' && dict!.name('FT') === 'Sig' ? 'signatures-added' : 'form-or-annotations'); continue; }
      if (type && ALLOWED_NEW_TYPES.has(type)) { note('signatures-added'); continue; }
      if (type === 'Page' || type === 'Pages' || type === 'Catalog') { note('content-modified'); continue; }
      if (dict && dict.get('Fields') !== undefined) { note('signatures-added'); continue; } // a new AcroForm
      note('form-or-annotations');
      continue;
    }
    let before: PdfObject;
    try {
      before = old.object(num);
    } catch {
      note('content-modified');
      continue;
    }
    if (Array.isArray(now) && Array.isArray(before)) { if (before.some((x, i) => serialize(x) !== serialize(now[i] ?? null))) note('form-or-annotations'); continue; }
    const oldDict = before instanceof PdfDict ? before : undefined;
    if (!dict || !oldDict || now instanceof PdfStream) { note('content-modified'); continue; }
    if (type === 'Page') { note(without(dict, ['Annots']) !== without(oldDict, ['Annots']) ? 'content-modified' : 'signatures-added'); continue; }
    if (type === 'Catalog') {
      if (without(dict, ['AcroForm', 'DSS', 'Perms']) !== without(oldDict, ['AcroForm', 'DSS', 'Perms'])) note('content-modified');
      else if (without(dict, ['DSS']) !== without(oldDict, ['DSS'])) note('signatures-added');
      continue;
    }
    if (type === 'DSS') continue;
    if (dict.get('Fields') !== undefined) { note('signatures-added'); continue; } // the AcroForm gaining fields
    if (type === 'Annot' && dict.name('FT') === 'Sig') { note('form-or-annotations'); continue; }
    note('content-modified');
  }
  return worst;
}

/** A signature dictionary's /ByteRange and /Contents, checked against the file (s12.8.1). */
function signedRange(pdf: Uint8Array, sig: PdfDict): { range: number[]; byteRangeOk: boolean; contents: PdfString; der: Uint8Array } | undefined {
  const br = sig.get('ByteRange');
  const contents = sig.get('Contents');
  const range = Array.isArray(br) && br.length === 4 && br.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0) ? br as number[] : undefined;
  if (!range || !(contents instanceof PdfString)) return undefined;
  const [a, b, c, d] = range;
  // The range starts at 0, skips exactly the /Contents hex string, and stays in the file.
  const byteRangeOk = a === 0 && b < c && c + d <= pdf.length && pdf[b] === 0x3c && pdf[c - 1] === 0x3e
    && /^[0-9a-fA-F]*$/.test(Buffer.from(pdf.subarray(b + 1, c - 1)).toString('latin1'));
  let der = contents.bytes;
  try {
    const parsed = asn1js.fromBER(toArrayBuffer(der));
    if (parsed.offset > 0) der = der.subarray(0, parsed.offset); // the zero padding after the DER
  } catch { /* reported by the verifier */ }
  return { range, byteRangeOk, contents, der };
}

function isDocumentTimestamp(sig: PdfDict): boolean {
  return sig.name('Type') === 'DocTimeStamp' || sig.name('SubFilter') === 'ETSI.RFC3161';
}

/** One document time-stamp: the token over the byte ranges, its TSA and the TSA certificate's status. */
async function verifyDocumentTimestamp(doc: PdfDocument, field: string, sig: PdfDict, options: SealVerifyOptions, dss: DssContent | undefined): Promise<DocumentTimestampReport> {
  const pdf = doc.bytes;
  const report: DocumentTimestampReport = { field, valid: false, integrity: { digestOk: false }, timestamp: { ok: false }, revocation: { status: 'unknown' }, covers: [], errors: [] };
  const signed = signedRange(pdf, sig);
  if (!signed) {
    report.errors.push('the document time-stamp has no usable /ByteRange or /Contents');
    return report;
  }
  const [, b, c, d] = signed.range;
  report.integrity = { byteRange: signed.range, byteRangeOk: signed.byteRangeOk, coversWholeFile: c + d === pdf.length, digestOk: false };
  if (!signed.byteRangeOk) {
    report.errors.push('the /ByteRange does not cover the file except /Contents');
    return report;
  }
  if (sig.name('SubFilter') !== 'ETSI.RFC3161') report.errors.push(`a document time-stamp has /SubFilter /ETSI.RFC3161, not ${sig.name('SubFilter')}`);
  const tokenCertificates = (() => { try { return certificatesOfSignature(signed.der); } catch { return []; } })();
  let genTime: Date | undefined;
  try {
    const ts = await verifyTimeStampToken(signed.der, Buffer.concat([pdf.subarray(0, b), pdf.subarray(c, c + d)]), {
      trustAnchors: options.trustAnchors,
      // The TSA's issuers travel in the DSS (archive.ts puts them there).
      intermediates: [...(options.intermediates ?? []), ...(dss?.certs ?? [])],
    });
    genTime = ts.genTime;
    report.integrity.digestOk = true;
    report.timestamp = { ok: true, genTime: ts.genTime.toISOString(), tsa: ts.signer, serialNumber: ts.serialNumber, policy: ts.policy };
  } catch (e) {
    report.timestamp = { ok: false, detail: (e as Error).message };
    report.errors.push(`the document time-stamp does not verify: ${(e as Error).message}`);
  }
  const tsaCertificate = signerCertificateOf(signed.der);
  let status: RevocationAnswer = tsaCertificate ? options.statusOf?.(tsaCertificate) ?? { status: 'unknown' } : { status: 'unknown' };
  let source: SignatureReport['revocation']['source'] = status.status === 'unknown' ? undefined : 'appliance';
  if (dss) {
    const tsa = tsaCertificate ? revocationFromDss(tsaCertificate, dss, tokenCertificates) : undefined;
    report.ltv = { vri: dss.vri.has(vriKey(signed.contents.bytes)), ...(tsa ? { tsa } : {}) };
    if (status.status === 'unknown' && tsa && tsa.status !== 'unknown') {
      status = tsa.status === 'good' ? { status: 'good' } : { status: 'revoked', at: new Date(tsa.revokedAt ?? tsa.issuedAt) };
      source = tsa.source === 'ocsp' ? 'dss-ocsp' : 'dss-crl';
    }
  }
  report.revocation = judgeRevocation(status, source, genTime ?? options.now ?? new Date(), { certificate: 'the TSA certificate', made: 'the document time-stamp' }, report.errors);
  report.changesAfter = changesAfter(doc, c + d);
  if (report.changesAfter === 'content-modified') report.errors.push('the document was changed after this time-stamp (not only signatures or validation data were added)');
  report.valid = report.errors.length === 0;
  return report;
}

/** Verifies every seal and document time-stamp of a PDF. Throws only for an unreadable or encrypted file. */
export async function verifyPdf(pdf: Uint8Array, options: SealVerifyOptions): Promise<VerificationReport> {
  const doc = PdfDocument.parse(pdf);
  const fields = signatureFields(doc);
  let dss: DssContent | undefined;
  try {
    dss = readDss(doc);
  } catch {
    dss = undefined; // an unreadable DSS is no validation data; the seals are still checked
  }
  const documentTimestamps: DocumentTimestampReport[] = [];
  const archives: Array<ArchiveEvidence & { from: number }> = [];
  for (const { name, sig } of fields.filter((f) => isDocumentTimestamp(f.sig))) {
    const report = await verifyDocumentTimestamp(doc, name, sig, options, dss);
    documentTimestamps.push(report);
    const [, b, c, d] = report.integrity.byteRange ?? [];
    if (!report.valid || !report.timestamp.genTime) continue;
    // The DSS as it stood when time-stamped: the revision the time-stamp closes.
    let covered: DssContent | undefined;
    try {
      covered = c + d === pdf.length ? dss : readDss(PdfDocument.parse(pdf.subarray(0, c + d)));
    } catch {
      covered = undefined;
    }
    if (covered) archives.push({ field: name, genTime: report.timestamp.genTime, dss: covered, from: b });
  }

  const signatures: SignatureReport[] = [];
  for (const { name, sig } of fields.filter((f) => !isDocumentTimestamp(f.sig))) {
    const signed = signedRange(pdf, sig);
    if (!signed) {
      signatures.push({ field: name, valid: false, integrity: { digestOk: false }, signatureOk: false, signingCertificateOk: false, chain: { ok: false, detail: 'not checked' },
        revocation: { status: 'unknown' }, timestamp: { ok: false }, errors: ['the signature dictionary has no usable /ByteRange or /Contents'] });
      continue;
    }
    const { range, byteRangeOk } = signed;
    const [, b, c, d] = range;
    const end = c + d;
    const report = byteRangeOk
      ? await verifySignedData(signed.der, [pdf.subarray(0, b), pdf.subarray(c, end)], options, dss && {
        content: dss, vri: dss.vri.has(vriKey(signed.contents.bytes)), archives: archives.filter((a) => a.from >= end),
      })
      : { valid: false, integrity: { digestOk: false }, signatureOk: false, signingCertificateOk: false, chain: { ok: false, detail: 'not checked' },
        revocation: { status: 'unknown' as const }, timestamp: { ok: false }, errors: ['the /ByteRange does not cover the file except /Contents'] };
    report.field = name;
    report.integrity = { ...report.integrity, byteRange: range, byteRangeOk, coversWholeFile: end === pdf.length };
    if (sig.name('SubFilter') !== 'ETSI.CAdES.detached' && sig.name('SubFilter') !== 'adbe.pkcs7.detached') {
      report.errors.push(`unsupported /SubFilter ${sig.name('SubFilter')}`);
      report.valid = false;
    }
    const m = sig.get('M');
    if (m instanceof PdfString && !report.claimedTime) report.claimedTime = m.text();
    if (byteRangeOk) {
      report.changesAfter = changesAfter(doc, end);
      if (report.changesAfter === 'content-modified') {
        report.errors.push('the document was changed after this seal (not only signatures or form data were added)');
        report.valid = false;
      }
      for (const ts of documentTimestamps) if (ts.integrity.byteRangeOk && ts.integrity.byteRange![1] >= end) ts.covers.push(name);
    }
    signatures.push(report);
  }
  const valid = signatures.length > 0 && signatures.every((s) => s.valid) && documentTimestamps.every((t) => t.valid);
  return { valid, kind: 'pdf', signatures, documentTimestamps, summary: summarize('PDF', signatures, documentTimestamps) };
}

/** Verifies a file against its detached .p7s. */
export async function verifyDetached(content: Uint8Array, p7s: Uint8Array, options: SealVerifyOptions): Promise<VerificationReport> {
  const report = await verifySignedData(p7s, [content], options);
  return { valid: report.valid, kind: 'cades', signatures: [report], summary: summarize('file', [report]) };
}

function summarize(what: string, signatures: SignatureReport[], documentTimestamps: DocumentTimestampReport[] = []): string {
  if (signatures.length === 0 && documentTimestamps.length === 0) return `The ${what} carries no seal.`;
  const lines = signatures.map((s, i) => {
    const who = s.seal ? `${s.seal.organization} / ${s.seal.name} (${s.seal.kind})` : s.signer ? `${s.signer.organization ?? ''} / ${s.signer.commonName ?? s.signer.subject}` : 'unknown signer';
    const when = s.timestamp.genTime ? `time-stamped ${s.timestamp.genTime} by ${s.timestamp.tsa}` : 'no valid time-stamp';
    const change = s.changesAfter && s.changesAfter !== 'none' ? `; changed afterwards: ${s.changesAfter}` : '';
    const level = s.level ? ` ${s.level}` : '';
    const revocation = `revocation ${s.revocation.status}${s.revocation.source ? ` (${s.revocation.source})` : ''}`;
    return `Seal ${i + 1}${s.field ? ` (${s.field})` : ''}: ${s.valid ? 'VALID' : 'INVALID'}${level} — ${who}, ${when}, ${revocation}${change}${s.errors.length ? `. Problems: ${s.errors.join('; ')}` : ''}`;
  });
  const stamps = documentTimestamps.map((t, i) => {
    const when = t.timestamp.genTime ? `time-stamped ${t.timestamp.genTime} by ${t.timestamp.tsa}` : 'no valid time-stamp';
    const covers = t.covers.length ? `covering ${t.covers.join(', ')}` : 'covering no seal';
    const revocation = `TSA certificate ${t.revocation.status}${t.revocation.source ? ` (${t.revocation.source})` : ''}`;
    const change = t.changesAfter && t.changesAfter !== 'none' ? `; changed afterwards: ${t.changesAfter}` : '';
    return `Document time-stamp ${i + 1} (${t.field}): ${t.valid ? 'VALID' : 'INVALID'} — ${when}, ${covers}, ${revocation}${change}${t.errors.length ? `. Problems: ${t.errors.join('; ')}` : ''}`;
  });
  const allValid = signatures.length > 0 && signatures.every((s) => s.valid) && documentTimestamps.every((t) => t.valid);
  const counted = documentTimestamps.length ? `${signatures.length} seal(s) and ${documentTimestamps.length} document time-stamp(s)` : `${signatures.length} seal(s)`;
  return [`${allValid ? 'All' : 'Not all'} ${counted} of the ${what} are valid.`, ...lines, ...stamps].join('\n');
}

/** Certificate status from yinxin's CA store, for statusOf. */
export function caStatusLookup(ca: { listAuthorities(): Array<{ name: string }>; get(ca: string, serial: string): { der: Uint8Array; status: string; revokedAt?: string; reason?: number } | undefined }): (certificate: Uint8Array) => RevocationAnswer {
  return (certificate) => {
    let serial: string;
    try {
      serial = Buffer.from(pkijs.Certificate.fromBER(toArrayBuffer(certificate)).serialNumber.valueBlock.valueHexView).toString('hex');
    } catch {
      return { status: 'unknown' };
    }
    for (const a of ca.listAuthorities()) {
      const r = ca.get(a.name, serial);
      if (!r || Buffer.compare(Buffer.from(r.der), Buffer.from(certificate)) !== 0) continue;
      if (r.status === 'good') return { status: 'good' };
      return { status: r.status === 'hold' ? 'suspended' : 'revoked', at: new Date(r.revokedAt!), reason: r.reason };
    }
    return { status: 'unknown' };
  };
}
