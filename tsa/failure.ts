/**
 * The one place where yinxin error codes become RFC 3161 PKIStatus / PKIFailureInfo (s2.4.2), and
 * where a rejection TimeStampResp is encoded. Every refusal the TSA gives goes through here.
 */
import * as asn1js from 'asn1js';
import { isYinxinError, type ErrorCode } from '../common/errors.ts';
import { encode } from './asn1.ts';

/** RFC 3161 s2.4.2 PKIStatus */
export const PKIStatus = { granted: 0, grantedWithMods: 1, rejection: 2, waiting: 3, revocationWarning: 4, revocationNotification: 5 } as const;

/** RFC 3161 s2.4.2 PKIFailureInfo: the bit numbers of the named BIT STRING. */
export const FailInfo = {
  badAlg: 0,
  badRequest: 2,
  badDataFormat: 5,
  timeNotAvailable: 14,
  unacceptedPolicy: 15,
  unacceptedExtension: 16,
  addInfoNotAvailable: 17,
  systemFailure: 25,
} as const;
export type FailInfoName = keyof typeof FailInfo;

/** Error code -> failInfo. Codes not listed are the TSA's own fault: systemFailure. */
const failInfoOfCode: Partial<Record<ErrorCode, FailInfoName>> = {
  'malformed-der': 'badDataFormat',
  'validation-failed': 'badDataFormat',
  'payload-too-large': 'badDataFormat',
  'bad-request': 'badRequest',
  'unsupported-media-type': 'badRequest',
  'unsupported-algorithm': 'badAlg',
  'unaccepted-policy': 'unacceptedPolicy',
  'unaccepted-extension': 'unacceptedExtension',
  'time-not-available': 'timeNotAvailable',
};

export interface Refusal {
  failInfo: FailInfoName;
  /** Shown to the client in statusString: the error's message for request faults, a generic text for ours. */
  text: string;
}

export function refusalOf(error: unknown): Refusal {
  if (isYinxinError(error)) {
    const failInfo = failInfoOfCode[error.code];
    if (failInfo) return { failInfo, text: error.message };
  }
  return { failInfo: 'systemFailure', text: 'the time-stamping authority could not serve this request' };
}

/** PKIFailureInfo as DER named BIT STRING: trailing zero bits removed (X.690 s11.2.2). */
function failInfoBits(name: FailInfoName): asn1js.BitString {
  const bit = FailInfo[name];
  const bytes = new Uint8Array((bit >> 3) + 1);
  bytes[bit >> 3] = 0x80 >> (bit & 7);
  return new asn1js.BitString({ valueHex: bytes, unusedBits: 7 - (bit & 7) });
}

/** TimeStampResp { status { rejection, statusString, failInfo } } without a token. */
export function encodeRejection(refusal: Refusal): Uint8Array {
  const statusInfo = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: PKIStatus.rejection }),
      new asn1js.Sequence({ value: [new asn1js.Utf8String({ value: refusal.text.slice(0, 200) })] }),
      failInfoBits(refusal.failInfo),
    ],
  });
  return encode(new asn1js.Sequence({ value: [statusInfo] }));
}
