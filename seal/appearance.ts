/**
 * The customary red round seal, drawn as PDF vector graphics (ISO 32000-1 s8.5 paths, s9.4 text):
 * a ring, a five-pointed star in the centre, the organization's name along the upper rim and the
 * seal's name under the star. Chinese text uses the non-embedded CID font STSong-Light with the
 * UniGB-UCS2-H CMap (one of the Adobe-GB1 fonts every conforming reader supplies, s9.7.5.2), so
 * the characters are UCS-2 code units. Characters outside the BMP are dropped.
 */

export interface SealDrawing {
  organization: string;
  sealName: string;
  /** Side of the square appearance box, in points. */
  size: number;
}

/** Resource name of the font in the appearance stream. */
export const SEAL_FONT = 'F1';

function ucs2Hex(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp <= 0xffff) out += cp.toString(16).padStart(4, '0');
  }
  return out;
}

const f = (n: number) => (Math.abs(n) < 1e-6 ? '0' : n.toFixed(3).replace(/\.?0+$/, ''));

/** Drawings already made, by seal and size (a seal is drawn the same way every time it is used). */
const drawn = new Map<string, string>();
const MAX_DRAWN = 256;

/** The content stream of the appearance (operators only; the caller wraps it in a Form XObject). */
export function sealAppearanceStream(d: SealDrawing): string {
  const key = JSON.stringify([d.organization, d.sealName, d.size]);
  let ops = drawn.get(key);
  if (ops === undefined) {
    ops = draw(d);
    if (drawn.size >= MAX_DRAWN) drawn.delete(drawn.keys().next().value!);
    drawn.set(key, ops);
  }
  return ops;
}

function draw(d: SealDrawing): string {
  const s = d.size;
  const c = s / 2;
  const r = s / 2 - 3;
  const k = 0.5523 * r;
  const ops: string[] = ['q', '0.85 0.07 0.07 RG 0.85 0.07 0.07 rg', `${f(s / 40)} w`];
  // The ring: four cubic Bezier quarter circles.
  ops.push(`${f(c + r)} ${f(c)} m`,
    `${f(c + r)} ${f(c + k)} ${f(c + k)} ${f(c + r)} ${f(c)} ${f(c + r)} c`,
    `${f(c - k)} ${f(c + r)} ${f(c - r)} ${f(c + k)} ${f(c - r)} ${f(c)} c`,
    `${f(c - r)} ${f(c - k)} ${f(c - k)} ${f(c - r)} ${f(c)} ${f(c - r)} c`,
    `${f(c + k)} ${f(c - r)} ${f(c + r)} ${f(c - k)} ${f(c + r)} ${f(c)} c`, 'S');
  // The star: ten points alternating between the outer and inner radius, first point up.
  const outer = r * 0.3;
  const inner = outer * 0.382;
  for (let i = 0; i < 10; i++) {
    const angle = Math.PI / 2 + (i * Math.PI) / 5;
    const rad = i % 2 === 0 ? outer : inner;
    ops.push(`${f(c + rad * Math.cos(angle))} ${f(c + rad * Math.sin(angle))} ${i === 0 ? 'm' : 'l'}`);
  }
  ops.push('h f');
  // The organization along the rim, clockwise from lower left to lower right across the top.
  const chars = [...d.organization].filter((ch) => ch.codePointAt(0)! <= 0xffff);
  if (chars.length) {
    const span = Math.min(Math.PI * 1.4, 0.3 * chars.length + 0.2);
    const fontSize = Math.min(r * 0.26, (r * 0.8 * span) / chars.length);
    const textRadius = r - fontSize * 1.05 - s / 60;
    const start = Math.PI / 2 + span / 2;
    const step = chars.length > 1 ? span / (chars.length - 1) : 0;
    ops.push('BT', `/${SEAL_FONT} ${f(fontSize)} Tf`);
    chars.forEach((ch, i) => {
      const theta = chars.length > 1 ? start - i * step : Math.PI / 2;
      const phi = theta - Math.PI / 2;
      const cos = Math.cos(phi);
      const sin = Math.sin(phi);
      // Centre the glyph on the arc: move back half a glyph along the baseline.
      const x = c + textRadius * Math.cos(theta) - (fontSize / 2) * cos;
      const y = c + textRadius * Math.sin(theta) - (fontSize / 2) * sin;
      ops.push(`${f(cos)} ${f(sin)} ${f(-sin)} ${f(cos)} ${f(x)} ${f(y)} Tm <${ucs2Hex(ch)}> Tj`);
    });
    ops.push('ET');
  }
  const name = [...d.sealName].filter((ch) => ch.codePointAt(0)! <= 0xffff);
  if (name.length) {
    const fontSize = Math.min(r * 0.16, (r * 1.2) / name.length);
    const width = fontSize * name.length;
    ops.push('BT', `/${SEAL_FONT} ${f(fontSize)} Tf`, `1 0 0 1 ${f(c - width / 2)} ${f(c - outer - fontSize * 1.4)} Tm <${ucs2Hex(name.join(''))}> Tj`, 'ET');
  }
  ops.push('Q');
  return ops.join('\n');
}
