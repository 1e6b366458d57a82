/**
 * PAdES B-LTA (ETSI EN 319 142-1 s5.4.3 document time-stamp, s6.3 level B-LTA; ISO 32000-2
 * s12.8.5): after the DSS of a B-LT seal, an incremental update adds a document time-stamp, an
 * invisible signature field whose value is
 *
 *   << /Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161 /V 0
 *      /ByteRange [...] /Contents <TimeStampToken> >>
 *
 * where the token's message imprint is the SHA-256 of the byte ranges (the whole file but
 * /Contents, the DSS included), from yinxin's own TSA core in process. A further update then puts
 * the validation data of the TSA certificate's chain (OCSP responses or CRLs) into the DSS with a
 * VRI entry keyed by the time-stamp's /Contents, so the archive time-stamp is itself verifiable
 * offline; a later archive time-stamp over that extends the chain of evidence before this one's
 * TSA certificate expires.
 */
import type { Clock } from '../common/clock.ts';
import { YinxinError } from '../common/errors.ts';
import { digest } from './cms.ts';
import { timeStampImprint, type TimeStamper } from './time-stamp.ts';
import { appendDss, certificatesOfSignature, collectValidationData, issuerChain, readDss, signerCertificateOf, type ValidationDataSource } from './ltv.ts';
import { PdfDict, PdfDocument, PdfName } from './pdf.ts';
import { prepareSignature, UpdateObjects } from './signature-field.ts';

export interface ArchiveTimeStampInput {
  timeStamper: TimeStamper;
  validationData: ValidationDataSource;
  clock: Clock;
  /** Certificates where the TSA certificate's issuers may be found besides the document's DSS (DER). */
  certificates?: Uint8Array[];
  /** Octets reserved for the token in /Contents (default 12 KiB; a larger token is stamped again with room for it). */
  reserve?: number;
}

export interface ArchiveTimeStampResult {
  pdf: Uint8Array;
  fieldName: string;
  byteRange: [number, number, number, number];
}

const DEFAULT_RESERVE = 12 * 1024;

/**
 * Adds a document time-stamp and its validation data to `pdf` (two incremental updates). Throws
 * 'time-not-available' when the TSA fails and 'validation-data-unavailable' when the TSA
 * certificate's status cannot be had: nothing is returned half-done.
 */
export async function addArchiveTimeStamp(pdf: Uint8Array, input: ArchiveTimeStampInput): Promise<ArchiveTimeStampResult> {
  const doc = PdfDocument.parse(pdf);
  let reserve = input.reserve ?? DEFAULT_RESERVE;
  for (let attempt = 0; ; attempt++) {
    const signature = new PdfDict([
      ['Type', new PdfName('DocTimeStamp')], ['Filter', new PdfName('Adobe.PPKLite')], ['SubFilter', new PdfName('ETSI.RFC3161')], ['V', 0],
    ]);
    // Invisible (a zero rectangle), on the first page as readers expect a widget to be on some page.
    const prepared = prepareSignature(pdf, new UpdateObjects(doc), { prefix: 'DocTimeStamp', page: doc.page(1), rect: [0, 0, 0, 0], signature, reserve });
    const token = await timeStampImprint(digest('SHA-256', prepared.signedParts), input.timeStamper, 'a B-LTA seal needs a document time-stamp');
    if (token.length > reserve) {
      if (attempt > 0) throw new YinxinError('internal', `the time-stamp token (${token.length} bytes) does not fit the space reserved (${reserve})`);
      reserve = token.length + 1024;
      continue;
    }
    prepared.fill(token);
    const pool = [...(input.certificates ?? []), ...(readDss(doc)?.certs ?? [])];
    const tsaCertificate = signerCertificateOf(token);
    if (!tsaCertificate) throw new YinxinError('time-not-available', 'the TSA returned a token without its certificate');
    const data = await collectValidationData(issuerChain(tsaCertificate, [...certificatesOfSignature(token), ...pool]), input.validationData);
    return { pdf: appendDss(prepared.joined(), prepared.contents(), data, input.clock.now()), fieldName: prepared.fieldName, byteRange: prepared.byteRange };
  }
}
