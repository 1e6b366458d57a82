/**
 * The client side of RFC 3161: build a TimeStampReq for some data, read a TimeStampResp, and verify
 * a time-stamp token offline against trust anchors (used by `yinxin tsa stamp|verify` and by the
 * seal service). Not the hot path: pkijs objects throughout, signatures checked with node:crypto,
 * the chain with pkijs' validation engine given node's WebCrypto explicitly (no global engine).
 */
import { createHash, randomBytes, verify as nodeVerify, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { YinxinError } from '../common/errors.ts';
import { toArrayBuffer } from '../common/pem.ts';
import { OID } from '../hsm/algorithms.ts';
import { hex, TSA_OID } from './asn1.ts';
import { FailInfo, PKIStatus, type FailInfoName } from './failure.ts';
import { TSA_HASHES, tsaHashByOid, type TsaHashName } from './request.ts';

export interface TimeStampQueryOptions {
  /** Imprint algorithm (default SHA-256). */
  hash?: TsaHashName;
  /** true (default) for a random 64-bit nonce, false for none, or the nonce to send. */
  nonce?: boolean | bigint;
  /** Ask for the TSA certificate in the token (default true). */
  certReq?: boolean;
  /** TSA policy OID to request. */
  policy?: string;
}

export interface TimeStampQuery {
  der: Uint8Array;
  hash: TsaHashName;
  imprint: Uint8Array;
  nonce: bigint | undefined;
}

function bigintOctets(n: bigint): Uint8Array {
  if (n <= 0n) throw new YinxinError('bad-request', 'the nonce must be positive');
  let h = n.toString(16);
  if (h.length % 2) h = `0${h}`;
  if (parseInt(h.slice(0, 2), 16) & 0x80) h = `00${h}`;
  return new Uint8Array(Buffer.from(h, 'hex'));
}

function octetsBigint(u8: Uint8Array): bigint {
  return u8.length ? BigInt(`0x${hex(u8)}`) : 0n;
}

export function digestOf(data: Uint8Array, hash: TsaHashName): Uint8Array {
  return new Uint8Array(createHash(TSA_HASHES[hash].node).update(data).digest());
}

/** A DER TimeStampReq (RFC 3161 s2.4.1) for `data`. */
export function buildTimeStampQuery(data: Uint8Array, options: TimeStampQueryOptions = {}): TimeStampQuery {
  const hash = options.hash ?? 'SHA-256';
  const imprint = digestOf(data, hash);
  const nonce = options.nonce === false ? undefined : options.nonce === true || options.nonce === undefined
    ? octetsBigint(randomBytes(8)) | 1n
    : options.nonce;
  const request = new pkijs.TimeStampReq({
    version: 1,
    messageImprint: new pkijs.MessageImprint({
      hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: TSA_HASHES[hash].oid }),
      hashedMessage: new asn1js.OctetString({ valueHex: imprint }),
    }),
    certReq: options.certReq ?? true,
    ...(options.policy ? { reqPolicy: options.policy } : {}),
    ...(nonce !== undefined ? { nonce: new asn1js.Integer({ valueHex: bigintOctets(nonce) }) } : {}),
  });
  return { der: new Uint8Array(request.toSchema().toBER(false)), hash, imprint, nonce };
}

export interface ParsedTimeStampResponse {
  status: number;
  statusText: string[];
  failInfo: FailInfoName[];
  /** The TimeStampToken (a CMS ContentInfo), when granted. */
  token: Uint8Array | undefined;
}

export function parseTimeStampResponse(der: Uint8Array): ParsedTimeStampResponse {
  let response: pkijs.TimeStampResp;
  try {
    response = pkijs.TimeStampResp.fromBER(toArrayBuffer(der));
  } catch (e) {
    throw new YinxinError('malformed-der', 'not a TimeStampResp', undefined, { cause: e });
  }
  const info = response.status;
  const failInfo: FailInfoName[] = [];
  if (info.failInfo) {
    const bits = info.failInfo.valueBlock.valueHexView;
    for (const [name, bit] of Object.entries(FailInfo) as Array<[FailInfoName, number]>) {
      if (bits[bit >> 3] !== undefined && bits[bit >> 3] & (0x80 >> (bit & 7))) failInfo.push(name);
    }
  }
  return {
    status: info.status,
    statusText: (info.statusStrings ?? []).map((s) => s.valueBlock.value),
    failInfo,
    token: response.timeStampToken ? new Uint8Array(response.timeStampToken.toSchema().toBER(false)) : undefined,
  };
}

export interface VerifyOptions {
  /** Root certificates (DER) the TSA must chain to. */
  trustAnchors: Uint8Array[];
  /** Intermediate CA certificates (and the TSA certificate, if the token does not carry it). */
  intermediates?: Uint8Array[];
  /** The nonce sent, if any: the token must echo it. */
  nonce?: bigint;
}

export interface VerifiedTimeStamp {
  policy: string;
  serialNumber: string;
  genTime: Date;
  hashAlgorithm: TsaHashName;
  imprint: string;
  nonce: bigint | undefined;
  accuracy: { seconds?: number; millis?: number; micros?: number } | undefined;
  tsaName: string | undefined;
  /** Subject of the TSA certificate that signed it. */
  signer: string;
}

function fail(message: string): YinxinError {
  return new YinxinError('bad-signature', `the time-stamp token does not verify: ${message}`);
}

const attributeNames: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU',
};

function nameText(name: pkijs.RelativeDistinguishedNames): string {
  return name.typesAndValues.map((tv) => `${attributeNames[tv.type] ?? tv.type}=${tv.value.valueBlock.value}`).join(',');
}

/** The node:crypto hash for a CMS signatureAlgorithm / digestAlgorithm pair, or null for Ed25519. */
function verifyHash(signatureOid: string, digestOid: string): string | null {
  switch (signatureOid) {
    case OID.ecdsaWithSHA256: case OID.sha256WithRSAEncryption: return 'sha256';
    case OID.ecdsaWithSHA384: case OID.sha384WithRSAEncryption: return 'sha384';
    case OID.ecdsaWithSHA512: case OID.sha512WithRSAEncryption: return 'sha512';
    case OID.ed25519: return null;
    case OID.ecPublicKey: case OID.rsaEncryption: {
      const h = tsaHashByOid(digestOid);
      if (h) return h.node;
    }
  }
  throw fail(`unsupported signature algorithm ${signatureOid}`);
}

/**
 * Verifies a TimeStampToken for `data` (RFC 3161 s2.4.2, RFC 5816, RFC 5652 s5.6) and returns its
 * TSTInfo. Throws YinxinError 'bad-signature' saying what failed, 'malformed-der' if unreadable.
 */
export async function verifyTimeStampToken(tokenDer: Uint8Array, data: Uint8Array, options: VerifyOptions): Promise<VerifiedTimeStamp> {
  let signedData: pkijs.SignedData;
  let tstInfo: pkijs.TSTInfo;
  let eContent: Uint8Array;
  try {
    const contentInfo = pkijs.ContentInfo.fromBER(toArrayBuffer(tokenDer));
    if (contentInfo.contentType !== TSA_OID.signedData) throw fail('not a CMS SignedData');
    signedData = new pkijs.SignedData({ schema: contentInfo.content });
    if (signedData.encapContentInfo.eContentType !== TSA_OID.tstInfo) throw fail('the content is not a TSTInfo');
    const content = signedData.encapContentInfo.eContent;
    if (!content) throw fail('no content');
    eContent = new Uint8Array(content.getValue());
    tstInfo = pkijs.TSTInfo.fromBER(toArrayBuffer(eContent));
  } catch (e) {
    if (e instanceof YinxinError) throw e;
    throw new YinxinError('malformed-der', 'the time-stamp token is not a readable CMS SignedData with a TSTInfo', undefined, { cause: e });
  }

  const hash = tsaHashByOid(tstInfo.messageImprint.hashAlgorithm.algorithmId);
  if (!hash) throw fail(`unknown imprint algorithm ${tstInfo.messageImprint.hashAlgorithm.algorithmId}`);
  const imprint = new Uint8Array(tstInfo.messageImprint.hashedMessage.valueBlock.valueHexView);
  if (Buffer.compare(Buffer.from(imprint), Buffer.from(digestOf(data, hash.name))) !== 0) throw fail('the message imprint does not match the data');
  const nonce = tstInfo.nonce ? octetsBigint(new Uint8Array(tstInfo.nonce.valueBlock.valueHexView)) : undefined;
  if (options.nonce !== undefined && nonce !== options.nonce) throw fail('the nonce does not match the one sent');

  if (signedData.signerInfos.length !== 1) throw fail('a token has exactly one SignerInfo');
  const signerInfo = signedData.signerInfos[0];
  const attrs = signerInfo.signedAttrs;
  if (!attrs) throw fail('no signed attributes');
  const attr = (type: string) => attrs.attributes.find((a) => a.type === type)?.values[0];
  const contentType = attr(TSA_OID.contentType);
  if (!(contentType instanceof asn1js.ObjectIdentifier) || contentType.valueBlock.toString() !== TSA_OID.tstInfo) {
    throw fail('the content-type attribute is not id-ct-TSTInfo');
  }
  const digestHash = tsaHashByOid(signerInfo.digestAlgorithm.algorithmId);
  if (!digestHash) throw fail(`unknown digest algorithm ${signerInfo.digestAlgorithm.algorithmId}`);
  const messageDigest = attr(TSA_OID.messageDigest);
  if (!(messageDigest instanceof asn1js.OctetString)
    || Buffer.compare(Buffer.from(messageDigest.valueBlock.valueHexView), Buffer.from(digestOf(eContent, digestHash.name))) !== 0) {
    throw fail('the message-digest attribute does not match the TSTInfo');
  }

  const candidates = [
    ...((signedData.certificates ?? []).filter((c): c is pkijs.Certificate => c instanceof pkijs.Certificate)),
    ...(options.intermediates ?? []).map((d) => pkijs.Certificate.fromBER(toArrayBuffer(d))),
  ];
  const sid = signerInfo.sid;
  const signerCert = candidates.find((c) => sid instanceof pkijs.IssuerAndSerialNumber
    ? c.issuer.isEqual(sid.issuer) && c.serialNumber.isEqual(sid.serialNumber)
    : false);
  if (!signerCert) throw fail('the TSA certificate is neither in the token nor among the given certificates');
  const signerDer = new Uint8Array(signerCert.toSchema().toBER(false));

  // RFC 5816 s2.2.1 / RFC 3161 s2.4.1: signing-certificate(-v2) must identify the signer's certificate.
  const essV2 = attr(TSA_OID.signingCertificateV2);
  const essV1 = attr(TSA_OID.signingCertificate);
  const ess = essV2 ?? essV1;
  if (!(ess instanceof asn1js.Sequence)) throw fail('no signing-certificate attribute');
  const firstCertId = (ess.valueBlock.value[0] as asn1js.Sequence | undefined)?.valueBlock.value[0] as asn1js.Sequence | undefined;
  if (!firstCertId) throw fail('empty signing-certificate attribute');
  let certIdHash = 'sha1';
  let certHashBlock = firstCertId.valueBlock.value[0];
  if (essV2 && certHashBlock instanceof asn1js.Sequence) {
    const algorithm = new pkijs.AlgorithmIdentifier({ schema: certHashBlock });
    certIdHash = tsaHashByOid(algorithm.algorithmId)?.node ?? 'unknown';
    certHashBlock = firstCertId.valueBlock.value[1];
  } else if (essV2) certIdHash = 'sha256';
  if (!(certHashBlock instanceof asn1js.OctetString) || certIdHash === 'unknown'
    || Buffer.compare(Buffer.from(certHashBlock.valueBlock.valueHexView), createHash(certIdHash).update(signerDer).digest()) !== 0) {
    throw fail('the signing-certificate attribute does not identify the signer certificate');
  }

  // RFC 5652 s5.4: the signature covers the DER of the signed attributes with a SET OF tag.
  const signedBytes = new Uint8Array(attrs.encodedValue.slice(0));
  signedBytes[0] = 0x31;
  const publicKey = { key: Buffer.from(signerCert.subjectPublicKeyInfo.toSchema().toBER(false)), format: 'der' as const, type: 'spki' as const };
  const ok = nodeVerify(
    verifyHash(signerInfo.signatureAlgorithm.algorithmId, signerInfo.digestAlgorithm.algorithmId),
    signedBytes,
    { ...publicKey, dsaEncoding: 'der' },
    signerInfo.signature.valueBlock.valueHexView,
  );
  if (!ok) throw fail('the signature is not valid');

  // RFC 3161 s2.3: the TSA certificate has one critical EKU, id-kp-timeStamping only.
  const eku = signerCert.extensions?.find((e) => e.extnID === TSA_OID.extKeyUsage);
  const purposes = (eku?.parsedValue as pkijs.ExtKeyUsage | undefined)?.keyPurposes ?? [];
  if (!eku?.critical || purposes.length !== 1 || purposes[0] !== TSA_OID.timeStamping) {
    throw fail('the signer certificate is not a TSA certificate (critical extendedKeyUsage timeStamping only)');
  }

  const genTime = tstInfo.genTime;
  const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });
  const chain = new pkijs.CertificateChainValidationEngine({
    trustedCerts: options.trustAnchors.map((d) => pkijs.Certificate.fromBER(toArrayBuffer(d))),
    certs: [signerCert, ...candidates.filter((c) => c !== signerCert)],
    checkDate: genTime,
  });
  const result = await chain.verify({}, engine);
  if (!result.result) throw fail(`the TSA certificate does not chain to a trust anchor at genTime (${result.resultMessage})`);

  const tsaName = tstInfo.tsa && tstInfo.tsa.type === 4 ? nameText(tstInfo.tsa.value as pkijs.RelativeDistinguishedNames) : undefined;
  return {
    policy: tstInfo.policy,
    serialNumber: hex(tstInfo.serialNumber.valueBlock.valueHexView),
    genTime,
    hashAlgorithm: hash.name,
    imprint: hex(imprint),
    nonce,
    accuracy: tstInfo.accuracy ? { seconds: tstInfo.accuracy.seconds, millis: tstInfo.accuracy.millis, micros: tstInfo.accuracy.micros } : undefined,
    tsaName,
    signer: nameText(signerCert.subject),
  };
}

/**
 * Asks a running TSA (the appliance's POST /tsa) to stamp `data`. Resolves with the token (DER)
 * once the reply is granted and echoes the nonce; throws YinxinError otherwise.
 */
export async function requestTimeStamp(url: string, data: Uint8Array, options: TimeStampQueryOptions = {}): Promise<{ token: Uint8Array; query: TimeStampQuery }> {
  const query = buildTimeStampQuery(data, options);
  const reply = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: Buffer.from(query.der) });
  const body = new Uint8Array(await reply.arrayBuffer());
  if (!reply.ok) throw new YinxinError('bad-request', `the TSA answered HTTP ${reply.status}: ${Buffer.from(body).toString('utf8').slice(0, 300)}`);
  const parsed = parseTimeStampResponse(body);
  if ((parsed.status !== PKIStatus.granted && parsed.status !== PKIStatus.grantedWithMods) || !parsed.token) {
    throw new YinxinError('bad-request', `the TSA refused: ${parsed.failInfo.join(', ') || 'no reason'} ${parsed.statusText.join(' ')}`.trim(), {
      failInfo: parsed.failInfo,
    });
  }
  return { token: parsed.token, query };
}
