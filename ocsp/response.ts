/**
 * Writing signed OCSP responses (RFC 6960 s4.2.1, RFC 5019 s2.2):
 *
 *   OCSPResponse      ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes }
 *   ResponseBytes     ::= SEQUENCE { responseType OID (id-pkix-ocsp-basic), response OCTET STRING }
 *   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm, signature BIT STRING,
 *                                    certs [0] EXPLICIT SEQUENCE OF Certificate }
 *   ResponseData      ::= SEQUENCE { responderID [2] EXPLICIT KeyHash, producedAt GeneralizedTime,
 *                                    responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
 *   SingleResponse    ::= SEQUENCE { certID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT GeneralizedTime }
 *   CertStatus        ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL }
 *   RevokedInfo       ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
 *
 * What is the same in every response of one signer (the responderID, the signature algorithm, the
 * certs field holding the responder certificate, the ResponseBytes OID) is encoded once with
 * asn1js; per response only the variable parts are, and they are joined as pre-encoded blocks.
 */
import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import { oidBlock, raw } from '../ca/certificate.ts';
import { signatureAlgorithmDer } from '../hsm/algorithms.ts';
import type { Signer } from '../hsm/signer.ts';
import { TurnBatchingSigner } from '../hsm/turn-batch.ts';
import { OCSP_OID } from './request.ts';

export type SingleStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: Date; reason?: number }
  | { status: 'unknown' };

export interface SingleResponseInput {
  certIdDer: Uint8Array;
  status: SingleStatus;
}

export interface ResponseInput {
  responses: SingleResponseInput[];
  producedAt: Date;
  thisUpdate: Date;
  nextUpdate: Date;
  /** The request's nonce Extension, echoed (RFC 8954). */
  nonceExtension?: Uint8Array;
  /** Adds id-pkix-ocsp-extended-revoke (RFC 6960 s2.2) to responseExtensions. */
  extendedRevoke?: boolean;
}

/** An OCSP signing identity: the key and the certificate relying parties check it with. */
export interface OcspSigner {
  signer: Signer;
  /** DER certificate of the responder (a delegated OCSP signer, or the issuer itself). */
  certificate: Uint8Array;
}

const der = (block: asn1js.BaseBlock) => new Uint8Array(block.toBER(false));
const context = (tagNumber: number, value: asn1js.BaseBlock[]) => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value });

/**
 * Joining pre-encoded parts under a header. The identifier and length octets come from asn1js
 * (a fresh block of that kind given the content length), memoized per kind and length, as
 * ca/crl.ts does: per response nothing is hand-encoded, and no asn1js object tree is built (that
 * costs ~10x more than the signature itself on the live, nonce-carrying path).
 */
type HeaderKind = () => asn1js.BaseBlock;
const SEQUENCE: HeaderKind = () => new asn1js.Sequence();
const OCTET_STRING: HeaderKind = () => new asn1js.OctetString();
const BIT_STRING: HeaderKind = () => new asn1js.BitString();
const CONTEXT_0: HeaderKind = () => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 } });
const CONTEXT_1: HeaderKind = () => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 } });
const NO_UNUSED_BITS = new Uint8Array([0]);
const headerCache = new Map<HeaderKind, Map<number, Uint8Array>>();

function header(kind: HeaderKind, length: number): Uint8Array {
  let byLength = headerCache.get(kind);
  if (!byLength) headerCache.set(kind, (byLength = new Map()));
  let h = byLength.get(length);
  if (!h) {
    const block = kind();
    block.lenBlock.length = length;
    block.lenBlock.isIndefiniteForm = false;
    const id = new Uint8Array(block.idBlock.toBER(false));
    const len = new Uint8Array(block.lenBlock.toBER(false));
    h = new Uint8Array(id.length + len.length);
    h.set(id);
    h.set(len, id.length);
    if (length < 65536) byLength.set(length, h);
  }
  return h;
}

/** kind { parts... }: the asn1js header for the total length, then the parts. */
function tagged(kind: HeaderKind, parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const h = header(kind, length);
  const out = new Uint8Array(h.length + length);
  out.set(h);
  let at = h.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The subject and SubjectPublicKeyInfo of a DER certificate, read with asn1js. */
export function certificateParts(certificate: Uint8Array): { subjectDer: Uint8Array; spkiDer: Uint8Array; publicKeyBits: Uint8Array } {
  const decoded = asn1js.fromBER(certificate);
  const cert = decoded.result as asn1js.Sequence;
  const tbs = cert.valueBlock?.value?.[0] as asn1js.Sequence | undefined;
  if (decoded.offset === -1 || !(tbs instanceof asn1js.Sequence)) throw new Error('not a certificate');
  const fields = tbs.valueBlock.value;
  const offset = fields[0].idBlock.tagClass === 3 ? 1 : 0;
  const subject = fields[offset + 4];
  const spki = fields[offset + 5] as asn1js.Sequence;
  const bits = spki.valueBlock.value[1] as asn1js.BitString;
  return {
    subjectDer: new Uint8Array(subject.valueBeforeDecodeView),
    spkiDer: new Uint8Array(spki.valueBeforeDecodeView),
    publicKeyBits: new Uint8Array(bits.valueBlock.valueHexView),
  };
}

const generalizedTimeCache = new Map<number, Uint8Array>();
/** GeneralizedTime without fractions (RFC 5280 s4.1.2.5.2), memoized: responses share their seconds. */
function generalizedTime(d: Date): Uint8Array {
  const ms = Math.floor(d.getTime() / 1000) * 1000;
  let bytes = generalizedTimeCache.get(ms);
  if (!bytes) {
    if (generalizedTimeCache.size > 4096) generalizedTimeCache.clear();
    bytes = der(new asn1js.GeneralizedTime({ valueDate: new Date(ms) }));
    generalizedTimeCache.set(ms, bytes);
  }
  return bytes;
}

const GOOD = der(new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } }));
const UNKNOWN = der(new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } }));
const SUCCESSFUL = der(new asn1js.Enumerated({ value: 0 }));

function certStatus(s: SingleStatus): Uint8Array {
  if (s.status === 'good') return GOOD;
  if (s.status === 'unknown') return UNKNOWN;
  const fields: asn1js.BaseBlock[] = [raw(generalizedTime(s.revokedAt))];
  if (s.reason !== undefined) fields.push(context(0, [new asn1js.Enumerated({ value: s.reason })]));
  return der(context(1, fields));
}

/** id-pkix-ocsp-extended-revoke: Extension { extnID, extnValue OCTET STRING (NULL) } (s4.4.8). */
const EXTENDED_REVOKE_EXTENSION = der(new asn1js.Sequence({
  value: [new asn1js.ObjectIdentifier({ value: OCSP_OID.extendedRevoke }), new asn1js.OctetString({ valueHex: der(new asn1js.Null()) })],
}));

export class ResponseWriter {
  readonly signer: Signer;
  readonly certificate: Uint8Array;
  /** SHA-1 of the responder's public key bits: its ResponderID byKey (s4.2.2.3). */
  readonly responderKeyHash: Uint8Array;
  readonly #responderId: Uint8Array;
  readonly #signatureAlgorithm: Uint8Array;
  readonly #certs: Uint8Array;
  readonly #responseType: Uint8Array;
  /** Live-signed responses (nonce, several CertIDs) arrive one per socket callback: signed per turn in a batch. */
  readonly #batching: TurnBatchingSigner;

  constructor(identity: OcspSigner) {
    this.signer = identity.signer;
    this.#batching = new TurnBatchingSigner(identity.signer);
    this.certificate = identity.certificate;
    const { publicKeyBits } = certificateParts(identity.certificate);
    this.responderKeyHash = new Uint8Array(createHash('sha1').update(publicKeyBits).digest());
    // ResponderID byKey: identified by key, never by name, since sub-CAs may share a subject.
    this.#responderId = der(context(2, [new asn1js.OctetString({ valueHex: this.responderKeyHash })]));
    this.#signatureAlgorithm = signatureAlgorithmDer(identity.signer.scheme);
    this.#certs = der(context(0, [new asn1js.Sequence({ value: [raw(identity.certificate)] })]));
    this.#responseType = der(oidBlock(OCSP_OID.basic));
  }

  /** The DER OCSPResponse (status successful) for these answers, signed (one HSM call). */
  async write(input: ResponseInput): Promise<Uint8Array> {
    const thisUpdate = generalizedTime(input.thisUpdate);
    const nextUpdate = tagged(CONTEXT_0, [generalizedTime(input.nextUpdate)]);
    const singles = input.responses.map((r) => tagged(SEQUENCE, [r.certIdDer, certStatus(r.status), thisUpdate, nextUpdate]));
    const fields = [this.#responderId, generalizedTime(input.producedAt), tagged(SEQUENCE, singles)];
    const extensions: Uint8Array[] = [];
    if (input.nonceExtension) extensions.push(input.nonceExtension);
    if (input.extendedRevoke) extensions.push(EXTENDED_REVOKE_EXTENSION);
    if (extensions.length) fields.push(tagged(CONTEXT_1, [tagged(SEQUENCE, extensions)]));
    const tbs = tagged(SEQUENCE, fields);
    const signature = await this.#batching.sign(tbs);
    const basic = tagged(SEQUENCE, [tbs, this.#signatureAlgorithm, tagged(BIT_STRING, [NO_UNUSED_BITS, signature]), this.#certs]);
    return tagged(SEQUENCE, [SUCCESSFUL, tagged(CONTEXT_0, [tagged(SEQUENCE, [this.#responseType, tagged(OCTET_STRING, [basic])])])]);
  }
}
