/**
 * PNG seal images, checked by rendering: poppler's pdftoppm draws the sealed page and the pixel in
 * the middle of the seal is red, while a transparent corner of an RGBA or palette+tRNS image lets
 * the white page through (the /SMask works). RGB and grey images keep their PNG row filters as PDF
 * predictors (every filter type is used), which poppler decodes. pdfsig and qpdf --check accept the
 * files. Broken PNGs (bad CRC, truncated, interlaced, 16-bit, palette index beyond the palette,
 * wrong data size) are refused with a clear 'validation-failed'.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isYinxinError } from '../common/errors.ts';
import { sealPdf } from './pades.ts';
import { pngInfo } from './png.ts';
import { makeSealPki, run } from './test-support.ts';
import { encodePng, simplePdf } from './testing-pdfs.ts';

const pki = await makeSealPki();
t.teardown(() => pki.cleanup());
const office = await pki.credential('seal/office', '福州市人民政府办公厅', '公章');

const N = 64;
/** A red disc: inside[i] for each pixel, row-major from the top. */
const inside = Array.from({ length: N * N }, (_, i) => (Math.hypot((i % N) - N / 2 + 0.5, Math.floor(i / N) - N / 2 + 0.5) < N / 2 - 2));
const RED = [215, 20, 20];
const images: Record<string, { png: Uint8Array; transparentCorner: boolean }> = {
  rgba: { png: encodePng(N, N, 6, new Uint8Array(inside.flatMap((x) => (x ? [...RED, 255] : [255, 255, 255, 0])))), transparentCorner: true },
  rgb: { png: encodePng(N, N, 2, new Uint8Array(inside.flatMap((x) => (x ? RED : [0, 0, 255])))), transparentCorner: false },
  palette: { png: encodePng(N, N, 3, new Uint8Array(inside.map((x) => (x ? 1 : 0))), { palette: [[0, 0, 0], RED], transparency: [0] }), transparentCorner: true },
  'grey+alpha': { png: encodePng(N, N, 4, new Uint8Array(inside.flatMap((x) => (x ? [90, 255] : [0, 0])))), transparentCorner: true },
};

/** The page rendered by pdftoppm at 72 dpi (PPM), and a pixel reader in PDF coordinates. */
function render(name: string, pdf: Uint8Array): (x: number, y: number) => number[] {
  const path = pki.file(`${name}.pdf`, pdf);
  const out = join(pki.dir, `${name}-render`);
  const r = run('pdftoppm', ['-r', '72', '-f', '1', '-l', '1', '-singlefile', path, out]);
  t.equal(r.status, 0, r.out);
  const ppm = readFileSync(`${out}.ppm`);
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(ppm.toString('latin1', 0, 50))!;
  const [w, h] = [Number(header[1]), Number(header[2])];
  const start = header[0].length;
  return (x, y) => {
    const p = start + ((h - 1 - Math.round(y)) * w + Math.round(x)) * 3;
    return [ppm[p], ppm[p + 1], ppm[p + 2]];
  };
}

for (const [name, image] of Object.entries(images)) {
  t.test(`${name} PNG: embedded, rendered by poppler, signature valid`, async (t) => {
    t.same(pngInfo(image.png), { width: N, height: N, colorType: { rgba: 6, rgb: 2, palette: 3, 'grey+alpha': 4 }[name] });
    const sealed = await sealPdf(simplePdf(), { ...office, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'png', bytes: image.png }, placement: { page: 1, x: 100, y: 100, size: 120 } });
    const path = pki.file(`${name}-sealed.pdf`, sealed.pdf);
    t.match(run('pdfsig', [path]).out, /Signature is Valid\./);
    const check = run('qpdf', ['--check', path]);
    t.equal(check.status, 0, check.out);
    const pixel = render(name, sealed.pdf);
    const [r, g, b] = pixel(160, 160);
    if (name === 'grey+alpha') t.ok(r < 120 && r === g && g === b, `grey in the middle: ${[r, g, b]}`);
    else t.ok(r > 150 && g < 90 && b < 90, `red in the middle of the seal: ${[r, g, b]}`);
    const corner = pixel(102, 102);
    if (image.transparentCorner) t.same(corner, [255, 255, 255], 'the transparent corner shows the white page');
    else t.same(corner, [0, 0, 255], 'the opaque corner is the image\'s blue');
    t.same(pixel(300, 300), [255, 255, 255], 'the page outside the seal is untouched');
  });
}

t.test('broken PNGs are refused clearly', async (t) => {
  const good = images.rgb.png;
  const badCrc = Buffer.from(good);
  badCrc[30] ^= 0xff; // inside IHDR's data
  const pixelsRgb = new Uint8Array(N * N * 3);
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['not a PNG', new Uint8Array(Buffer.from('GIF89a....')), /signature/],
    ['bad CRC', new Uint8Array(badCrc), /CRC/],
    ['truncated', good.subarray(0, good.length - 20), /truncated/],
    ['no IEND', good.subarray(0, good.length - 12), /truncated/],
    ['interlaced', encodePng(N, N, 2, pixelsRgb, { interlace: 1 }), /interlaced/],
    ['16-bit', encodePng(N, N, 2, pixelsRgb, { depth: 16 }), /bit depth 16/],
    ['palette index beyond the palette', encodePng(4, 4, 3, new Uint8Array(16).fill(5), { palette: [[0, 0, 0]] }), /beyond the palette/],
    ['image data of the wrong size', encodePng(N, N, 2, pixelsRgb, { dataRows: N - 1 }), /bytes where/],
  ];
  for (const [label, png, message] of cases) {
    let error: unknown;
    try {
      pngInfo(png);
    } catch (e) {
      error = e;
    }
    t.ok(isYinxinError(error, 'validation-failed') && error.details?.reason === 'png-invalid', `${label}: ${String(error)}`);
    t.match((error as Error)?.message, message, label);
    const sealing = await sealPdf(simplePdf(), { ...office, timeStamper: pki.timeStamper, clock: pki.clock, image: { kind: 'png', bytes: png } }).then(() => undefined, (e: unknown) => e);
    t.ok(isYinxinError(sealing, 'validation-failed'), `${label}: sealing refuses it too`);
  }
});
