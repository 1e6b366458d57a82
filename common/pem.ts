/** PEM <-> DER (RFC 7468). */
export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** All PEM blocks with the given label (any label when omitted), in order. */
export function fromPemAll(text: string, label?: string): Uint8Array[] {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) {
    if (label && m[1] !== label) continue;
    out.push(new Uint8Array(Buffer.from(m[2].replace(/\s+/g, ''), 'base64')));
  }
  return out;
}

export function fromPem(text: string, label?: string): Uint8Array {
  const [first] = fromPemAll(text, label);
  if (!first) throw new Error(`no PEM block${label ? ` labelled ${label}` : ''} found`);
  return first;
}

/** Accepts DER or PEM bytes and returns DER. */
export function derOrPem(input: Uint8Array, label?: string): Uint8Array {
  const head = Buffer.from(input.subarray(0, 11)).toString('latin1');
  if (head === '-----BEGIN ') return fromPem(Buffer.from(input).toString('utf8'), label);
  return input;
}

export function toArrayBuffer(u8: Uint8Array): ArrayBuffer {
  return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength) as ArrayBuffer;
}
