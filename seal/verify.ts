/**
 * Verification of seals: every signature of a PDF (PAdES) and a file with its detached .p7s
 * (CAdES). For each signature it reports integrity (the byte range covers the whole revision
 * except /Contents, the message digest), the CMS signature, signing-certificate-v2, the chain to
 * the trust anchors (yinxin's root and any an administrator configured) at the time-stamp's time,
 * revocation at signing time (through a status lookup, normally the CA store), the
 * signature-time-stamp and its TSA, the seal's identity (organization, credit code, seal name,
 * kind when the registry knows it), and for PDFs whether the document changed after the seal and
 * how (ISO 32000-1 s12.8.2.2 lets later incremental updates add signatures and form data).
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
import { readDss, revocationFromDss, vriKey, type DssContent, type DssRevocation } from './ltv.ts';
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
  /** PAdES / CAdES baseline level reached: B-B (no valid time-stamp), B-T, B-LT (the DSS proves the seal's and the TSA's certificate status). */
  level?: 'B-B' | 'B-T' | 'B-LT';
  /** What the PDF's DSS holds for this seal (PDFs with a DSS only). */
  ltv?: { vri: boolean; signer?: DssRevocation; tsa?: DssRevocation };
  claimedTime?: string;
  changesAfter?: ChangeKind;
  errors: string[];
}

export interface VerificationReport {
  valid: boolean;
  kind: 'pdf' | 'cades';
  signatures: SignatureReport[];
  summary: string;
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
export async function verifySignedData(cmsDer: Uint8Array, content: Uint8Array[], options: SealVerifyOptions, dss?: { content: DssContent; vri: boolean }): Promise<SignatureReport> {
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
      tsaCertificate = timeStampSigner(new Uint8Array(tokenAttr.toBER(false)));
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
    if (status.status === 'unknown' && signer && signer.status !== 'unknown') {
      status = signer.status === 'good' ? { status: 'good' } : { status: 'revoked', at: new Date(signer.revokedAt ?? signer.issuedAt) };
      source = signer.source === 'ocsp' ? 'dss-ocsp' : 'dss-crl';
    }
  }
  const from = source ? { source } : {};
  if (status.status === 'good') report.revocation = { status: 'good', ...from };
  else if (status.status === 'unknown') report.revocation = { status: 'unknown' };
  else if (status.status === 'suspended') {
    report.revocation = { status: 'suspended', at: status.at.toISOString(), ...from };
    if (status.at <= checkDate) report.errors.push('the seal certificate was suspended when the seal was made');
  } else if (status.at <= checkDate) {
    report.revocation = { status: 'revoked-before-signing', at: status.at.toISOString(), ...from };
    report.errors.push(`the seal certificate was revoked at ${status.at.toISOString()}, before the seal was made`);
  } else report.revocation = { status: 'revoked-after-signing', at: status.at.toISOString(), ...from };

  report.valid = report.errors.length === 0;
  return report;
}

/** The TSA certificate of a time-stamp token: the certificate its SignerInfo's sid names. */
function timeStampSigner(token: Uint8Array): Uint8Array | undefined {
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

const ALLOWED_NEW_TYPES = new Set(['Sig', 'XObject', 'Font', 'FontDescriptor', 'Encoding']);
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

/** Verifies every seal of a PDF. Throws only for an unreadable or encrypted file. */
export async function verifyPdf(pdf: Uint8Array, options: SealVerifyOptions): Promise<VerificationReport> {
  const doc = PdfDocument.parse(pdf);
  const fields = signatureFields(doc);
  let dss: DssContent | undefined;
  try {
    dss = readDss(doc);
  } catch {
    dss = undefined; // an unreadable DSS is no validation data; the seals are still checked
  }
  const signatures: SignatureReport[] = [];
  for (const { name, sig } of fields) {
    const br = sig.get('ByteRange');
    const contents = sig.get('Contents');
    const range = Array.isArray(br) && br.length === 4 && br.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0) ? br as number[] : undefined;
    if (!range || !(contents instanceof PdfString)) {
      signatures.push({ field: name, valid: false, integrity: { digestOk: false }, signatureOk: false, signingCertificateOk: false, chain: { ok: false, detail: 'not checked' },
        revocation: { status: 'unknown' }, timestamp: { ok: false }, errors: ['the signature dictionary has no usable /ByteRange or /Contents'] });
      continue;
    }
    const [a, b, c, d] = range;
    const end = c + d;
    // s12.8.1: the range starts at 0, skips exactly the /Contents hex string, and stays in the file.
    const byteRangeOk = a === 0 && b < c && end <= pdf.length && pdf[b] === 0x3c && pdf[c - 1] === 0x3e
      && /^[0-9a-fA-F]*$/.test(Buffer.from(pdf.subarray(b + 1, c - 1)).toString('latin1'));
    let cms = contents.bytes;
    try {
      const parsed = asn1js.fromBER(toArrayBuffer(cms));
      if (parsed.offset > 0) cms = cms.subarray(0, parsed.offset);
    } catch { /* reported by verifySignedData */ }
    const report = byteRangeOk
      ? await verifySignedData(cms, [pdf.subarray(0, b), pdf.subarray(c, end)], options, dss && { content: dss, vri: dss.vri.has(vriKey(contents.bytes)) })
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
    }
    signatures.push(report);
  }
  const valid = signatures.length > 0 && signatures.every((s) => s.valid);
  return { valid, kind: 'pdf', signatures, summary: summarize('PDF', signatures) };
}

/** Verifies a file against its detached .p7s. */
export async function verifyDetached(content: Uint8Array, p7s: Uint8Array, options: SealVerifyOptions): Promise<VerificationReport> {
  const report = await verifySignedData(p7s, [content], options);
  return { valid: report.valid, kind: 'cades', signatures: [report], summary: summarize('file', [report]) };
}

function summarize(what: string, signatures: SignatureReport[]): string {
  if (signatures.length === 0) return `The ${what} carries no seal.`;
  const lines = signatures.map((s, i) => {
    const who = s.seal ? `${s.seal.organization} / ${s.seal.name} (${s.seal.kind})` : s.signer ? `${s.signer.organization ?? ''} / ${s.signer.commonName ?? s.signer.subject}` : 'unknown signer';
    const when = s.timestamp.genTime ? `time-stamped ${s.timestamp.genTime} by ${s.timestamp.tsa}` : 'no valid time-stamp';
    const change = s.changesAfter && s.changesAfter !== 'none' ? `; changed afterwards: ${s.changesAfter}` : '';
    const level = s.level ? ` ${s.level}` : '';
    const revocation = `revocation ${s.revocation.status}${s.revocation.source ? ` (${s.revocation.source})` : ''}`;
    return `Seal ${i + 1}${s.field ? ` (${s.field})` : ''}: ${s.valid ? 'VALID' : 'INVALID'}${level} — ${who}, ${when}, ${revocation}${change}${s.errors.length ? `. Problems: ${s.errors.join('; ')}` : ''}`;
  });
  return [`${signatures.every((s) => s.valid) ? 'All' : 'Not all'} ${signatures.length} seal(s) of the ${what} are valid.`, ...lines].join('\n');
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
