/**
 * PNG seal images (ISO/IEC 15948, W3C PNG 2nd edition) as PDF image XObjects (ISO 32000-1 s8.9.5):
 * 8-bit greyscale, RGB, greyscale+alpha, RGBA and palette images, not interlaced. Every chunk's CRC
 * is checked and the image data must inflate to exactly the size IHDR announces, so a broken upload
 * is refused when it is registered, not when a document is sealed.
 *
 *   - greyscale and RGB: the zlib stream of the IDAT chunks goes into the PDF unchanged, with
 *     /DecodeParms << /Predictor 15 /Colors n /BitsPerComponent 8 /Columns width >> (s7.4.4.4:
 *     PNG's own row filters are the PDF's PNG predictors);
 *   - alpha (colour types 4 and 6) and palette (type 3, expanded to RGB, tRNS to alpha): the rows
 *     are unfiltered, split into colour and alpha, and re-deflated; the alpha becomes the image's
 *     /SMask (s11.6.5.3).
 * Refused: other bit depths, interlacing, unknown critical chunks.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { YinxinError } from '../common/errors.ts';
import { unpredictRows } from './pdf.ts';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const MAX_PIXELS = 4096 * 4096;

export interface PngInfo {
  width: number;
  height: number;
  colorType: 0 | 2 | 3 | 4 | 6;
}

/** A decoded image ready for a PDF: colour samples (Flate) with their decode parameters, and alpha if any. */
export interface PdfImageData {
  width: number;
  height: number;
  colorSpace: 'DeviceGray' | 'DeviceRGB';
  /** Flate-compressed colour samples; with `predictor`, PNG-filtered rows (Predictor 15). */
  color: Uint8Array;
  predictor: boolean;
  /** Flate-compressed 8-bit alpha samples (the /SMask), unfiltered. */
  alpha?: Uint8Array;
}

function bad(message: string): YinxinError {
  return new YinxinError('validation-failed', `the seal image is not a usable PNG: ${message}`, { field: 'image', reason: 'png-invalid' });
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(SIGNATURE);
}

interface Parsed extends PngInfo {
  idat: Buffer;
  palette?: Buffer;
  transparency?: Buffer;
}

function parse(bytes: Uint8Array): Parsed {
  if (!isPng(bytes)) throw bad('no PNG signature');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let header: PngInfo | undefined;
  const idat: Buffer[] = [];
  let palette: Buffer | undefined;
  let transparency: Buffer | undefined;
  let ended = false;
  while (!ended) {
    if (pos + 12 > b.length) throw bad('truncated (no IEND chunk)');
    const length = b.readUInt32BE(pos);
    const type = b.toString('latin1', pos + 4, pos + 8);
    if (length > 0x7fffffff || pos + 12 + length > b.length) throw bad(`truncated in the ${type} chunk`);
    const data = b.subarray(pos + 8, pos + 8 + length);
    if (crc32(b.subarray(pos + 4, pos + 8 + length)) !== b.readUInt32BE(pos + 8 + length)) throw bad(`the CRC of the ${type} chunk is wrong`);
    pos += 12 + length;
    if (!header && type !== 'IHDR') throw bad('the first chunk is not IHDR');
    switch (type) {
      case 'IHDR': {
        if (header || length !== 13) throw bad('bad IHDR');
        const [width, height] = [data.readUInt32BE(0), data.readUInt32BE(4)];
        const [depth, colorType, compression, filter, interlace] = [data[8], data[9], data[10], data[11], data[12]];
        if (!(colorType in CHANNELS)) throw bad(`colour type ${colorType} does not exist`);
        if (depth !== 8) throw bad(`bit depth ${depth} is not supported (8-bit images only)`);
        if (compression !== 0 || filter !== 0) throw bad('unknown compression or filter method');
        if (interlace !== 0) throw bad('interlaced (Adam7) images are not supported; save it without interlacing');
        if (width === 0 || height === 0 || width * height > MAX_PIXELS) throw bad(`${width}x${height} pixels is outside 1..${MAX_PIXELS}`);
        header = { width, height, colorType: colorType as PngInfo['colorType'] };
        break;
      }
      case 'PLTE': palette = data; break;
      case 'tRNS': transparency = data; break;
      case 'IDAT': idat.push(data); break;
      case 'IEND': ended = true; break;
      default:
        // s5.4: a chunk whose type starts with an upper-case letter is critical.
        if (type.charCodeAt(0) < 0x61) throw bad(`unknown critical chunk ${type}`);
    }
  }
  if (!header) throw bad('no IHDR');
  if (idat.length === 0) throw bad('no image data');
  if (header.colorType === 3 && (!palette || palette.length % 3 !== 0 || palette.length === 0)) throw bad('a palette image without a valid PLTE');
  return { ...header, idat: Buffer.concat(idat), palette, transparency };
}

/** Checks a PNG completely (chunks, CRCs, image data size, palette indexes); returns its size and colour type. */
export function pngInfo(bytes: Uint8Array): PngInfo {
  const p = parse(bytes);
  pngToPdfImage(bytes);
  return { width: p.width, height: p.height, colorType: p.colorType };
}

/** The inflated, still filtered scanlines, checked against IHDR. */
function rows(p: Parsed): Uint8Array {
  let raw: Buffer;
  try {
    raw = inflateSync(p.idat);
  } catch (e) {
    throw bad(`the image data does not inflate (${(e as Error).message})`);
  }
  const expected = p.height * (1 + p.width * CHANNELS[p.colorType]);
  if (raw.length !== expected) throw bad(`the image data holds ${raw.length} bytes where ${expected} were expected`);
  for (let r = 0; r < p.height; r++) if (raw[r * (expected / p.height)] > 4) throw bad(`row ${r} has an unknown filter type`);
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

export function pngToPdfImage(bytes: Uint8Array): PdfImageData {
  const p = parse(bytes);
  const filtered = rows(p);
  const { width, height, colorType } = p;
  if (colorType === 0 || colorType === 2) {
    return { width, height, colorSpace: colorType === 0 ? 'DeviceGray' : 'DeviceRGB', color: new Uint8Array(p.idat), predictor: true };
  }
  const channels = CHANNELS[colorType];
  const pixels = unpredictRows(filtered, { colors: channels, columns: width });
  const n = width * height;
  const colorChannels = colorType === 4 ? 1 : 3;
  const color = new Uint8Array(n * colorChannels);
  let alpha: Uint8Array | undefined = colorType === 3 && !p.transparency ? undefined : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (colorType === 3) {
      const index = pixels[i];
      if (index * 3 + 2 >= p.palette!.length) throw bad(`pixel ${i} uses palette entry ${index}, beyond the palette`);
      color.set(p.palette!.subarray(index * 3, index * 3 + 3), i * 3);
      if (alpha) alpha[i] = index < p.transparency!.length ? p.transparency![index] : 255;
    } else {
      for (let c = 0; c < colorChannels; c++) color[i * colorChannels + c] = pixels[i * channels + c];
      alpha![i] = pixels[i * channels + colorChannels];
    }
  }
  if (alpha && alpha.every((a) => a === 255)) alpha = undefined;
  return {
    width, height, colorSpace: colorChannels === 1 ? 'DeviceGray' : 'DeviceRGB', predictor: false,
    color: new Uint8Array(deflateSync(color)), ...(alpha ? { alpha: new Uint8Array(deflateSync(alpha)) } : {}),
  };
}
