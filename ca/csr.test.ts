import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { YinxinError } from '../common/errors.ts';
import { CSR_MAX_BYTES, parseCsr } from './csr.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-csr-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

/** Makes a CSR with `openssl req`; returns its DER and the DER SPKI openssl extracts from it. */
function opensslCsr(name: string, newkey: string[], extra: string[] = []): { der: Uint8Array; spki: Uint8Array } {
  openssl('req', '-new', ...newkey, '-nodes', '-keyout', `${name}.key`, '-subj', `/C=CN/O=Yinxin Test/CN=${name}.example.cn`,
    '-addext', `subjectAltName=DNS:${name}.example.cn,DNS:www.${name}.example.cn,email:ops@${name}.example.cn`,
    ...extra, '-outform', 'DER', '-out', `${name}.csr`);
  openssl('req', '-inform', 'DER', '-in', `${name}.csr`, '-pubkey', '-noout', '-out', `${name}.pub`);
  openssl('pkey', '-pubin', '-in', `${name}.pub`, '-outform', 'DER', '-out', `${name}.pub.der`);
  return { der: new Uint8Array(readFileSync(join(dir, `${name}.csr`))), spki: new Uint8Array(readFileSync(join(dir, `${name}.pub.der`))) };
}

/** openssl 3.0's `req -verify` exits 0 even when the signature fails: read its verdict instead. */
function opensslVerdict(file: string): 'OK' | 'failure' | 'error' {
  const r = spawnSync('openssl', ['req', '-inform', 'DER', '-in', file, '-verify', '-noout'], { cwd: dir, encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  return /self-signature verify OK/.test(out) ? 'OK' : /verify failure/.test(out) ? 'failure' : 'error';
}

async function rejection(p: Promise<unknown>): Promise<YinxinError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof YinxinError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

const good = {
  p256: opensslCsr('p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-sha256']),
  p384: opensslCsr('p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], ['-sha384']),
  p256sha512: opensslCsr('p256sha512', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-sha512']),
  rsa2048: opensslCsr('rsa2048', ['-newkey', 'rsa:2048'], ['-sha256']),
  rsaPssPadding: opensslCsr('rsapss', ['-newkey', 'rsa:2048'], ['-sha384', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48']),
  rsaPssKey: opensslCsr('rsapsskey', ['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048'], ['-sha256']),
  ed25519: opensslCsr('ed25519', ['-newkey', 'ed25519']),
};

t.test('CSRs made by openssl req parse, verify and report the right key', async (t) => {
  const expected: Record<keyof typeof good, object> = {
    p256: { type: 'ec', curve: 'P-256' },
    p384: { type: 'ec', curve: 'P-384' },
    p256sha512: { type: 'ec', curve: 'P-256' },
    rsa2048: { type: 'rsa', bits: 2048 },
    rsaPssPadding: { type: 'rsa', bits: 2048 },
    rsaPssKey: { type: 'rsa', bits: 2048 },
    ed25519: { type: 'ed25519' },
  };
  for (const [name, { der, spki }] of Object.entries(good) as [keyof typeof good, { der: Uint8Array; spki: Uint8Array }][]) {
    const csr = await parseCsr(der);
    t.same(csr.keySpec, expected[name], `${name}: key spec`);
    t.same(Buffer.from(csr.publicKeyInfo), Buffer.from(spki), `${name}: SPKI equals what openssl extracts`);
    t.same(Buffer.from(csr.der), Buffer.from(der), `${name}: DER kept`);
    const host = name === 'rsaPssPadding' ? 'rsapss' : name === 'rsaPssKey' ? 'rsapsskey' : name.toLowerCase();
    t.same(csr.sanDns, [`${host}.example.cn`, `www.${host}.example.cn`], `${name}: SAN dNSNames`);
    t.same(csr.sanEmail, [`ops@${host}.example.cn`], `${name}: SAN rfc822Names`);
    t.ok(csr.requestedExtensions?.extensions.some((e) => e.extnID === '2.5.29.17'), `${name}: requested extensions`);
    const cn = csr.subject.typesAndValues.find((tv) => tv.type === '2.5.4.3');
    t.equal(cn?.value.valueBlock.value, `${host}.example.cn`, `${name}: subject CN`);
    // subjectDer is the Name as requested: openssl prints the same name from it.
    writeFileSync(join(dir, 'subject.der'), csr.subjectDer);
    t.match(openssl('asn1parse', '-inform', 'DER', '-in', 'subject.der').toString(), /Yinxin Test/);
  }
});

t.test('PEM input: with explanatory text around it, and the legacy NEW label', async (t) => {
  const pem = openssl('req', '-inform', 'DER', '-in', 'p256.csr', '-outform', 'PEM').toString();
  const csr = await parseCsr(Buffer.from(`Subject: p256 request\r\nsent by the RA\n${pem}\ntrailing notes\n`));
  t.same(csr.keySpec, { type: 'ec', curve: 'P-256' });
  t.same(Buffer.from(csr.der), Buffer.from(good.p256.der));
  const legacy = pem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST').replace(/\n/g, '\r\n');
  t.same((await parseCsr(Buffer.from(legacy))).keySpec, { type: 'ec', curve: 'P-256' });

  const lines = pem.split('\n');
  lines.splice(3, 0, 'junk!line');
  t.match(await rejection(parseCsr(Buffer.from(lines.join('\n')))), { code: 'malformed-der', message: /not base64/ });
  t.match(await rejection(parseCsr(Buffer.from(pem.replace('-----END CERTIFICATE REQUEST-----', '')))), { code: 'malformed-der', message: /no complete/ });
  t.match(await rejection(parseCsr(Buffer.from(pem.replace(/REQUEST/g, 'REQUEST').replace('BEGIN CERTIFICATE REQUEST', 'BEGIN CERTIFICATE')))), { code: 'malformed-der' });
  t.match(await rejection(parseCsr(Buffer.from('hello, this is not a CSR'))), { code: 'malformed-der' });
});

t.test('keys and algorithms the CA does not issue for are refused, saying which', async (t) => {
  const rsa1024 = opensslCsr('rsa1024', ['-newkey', 'rsa:1024'], ['-sha256']);
  t.match(await rejection(parseCsr(rsa1024.der)), { code: 'unsupported-algorithm', message: /1024 bits.*2048/ });
  const k1 = opensslCsr('k1', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], ['-sha256']);
  t.match(await rejection(parseCsr(k1.der)), { code: 'unsupported-algorithm', message: /1\.3\.132\.0\.10 \(secp256k1\)/ });
  const p521 = opensslCsr('p521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'], ['-sha512']);
  t.match(await rejection(parseCsr(p521.der)), { code: 'unsupported-algorithm', message: /1\.3\.132\.0\.35/ });
  const rsa2560 = opensslCsr('rsa2560', ['-newkey', 'rsa:2560'], ['-sha256']);
  t.match(await rejection(parseCsr(rsa2560.der)), { code: 'unsupported-algorithm', message: /2560 bits/ });
  const sha1 = opensslCsr('sha1', ['-newkey', 'rsa:2048'], ['-sha1']);
  t.match(await rejection(parseCsr(sha1.der)), { code: 'unsupported-algorithm', message: /sha1WithRSAEncryption/ });
  const ed448 = opensslCsr('ed448', ['-newkey', 'ed448']);
  t.match(await rejection(parseCsr(ed448.der)), { code: 'unsupported-algorithm', message: /Ed448/ });
  openssl('genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:1024', '-out', 'dsa.param');
  const dsa = opensslCsr('dsa', ['-newkey', 'dsa:dsa.param'], ['-sha256']);
  t.match(await rejection(parseCsr(dsa.der)), { code: 'unsupported-algorithm', message: /1\.2\.840\.10040\.4\.1 \(DSA\)/ });
  const pssSha1 = opensslCsr('psssha1', ['-newkey', 'rsa:2048'], ['-sha1', '-sigopt', 'rsa_padding_mode:pss']);
  t.match(await rejection(parseCsr(pssSha1.der)), { code: 'unsupported-algorithm', message: /RSASSA-PSS with hash SHA-1/ });
});

t.test('a forged or altered CSR fails proof of possession', async (t) => {
  for (const name of ['p256', 'rsa2048', 'rsaPssPadding', 'ed25519'] as const) {
    const flipped = new Uint8Array(good[name].der);
    flipped[flipped.length - 1] ^= 0x01;
    t.match(await rejection(parseCsr(flipped)), { code: 'bad-signature' }, `${name}: one signature bit flipped`);
    // Change one letter of the subject ("Yinxin Test" -> "Yinxin Tesu"): the signed part changes.
    const altered = Buffer.from(good[name].der);
    const at = altered.indexOf('Yinxin Test');
    altered[at + 10] = 'u'.charCodeAt(0);
    t.match(await rejection(parseCsr(altered)), { code: 'bad-signature' }, `${name}: subject altered`);
  }
  // openssl agrees the flipped one is bad (so the test is not our verifier agreeing with itself).
  const flipped = new Uint8Array(good.p256.der);
  flipped[flipped.length - 1] ^= 0x01;
  writeFileSync(join(dir, 'flipped.csr'), flipped);
  t.equal(opensslVerdict('flipped.csr'), 'failure');
  t.equal(opensslVerdict('p256.csr'), 'OK');
});

t.test('truncated, padded, BER, oversize and empty input are malformed, never a crash', async (t) => {
  const der = good.p256.der;
  for (const cut of [1, 10, der.length - 1, der.length - 30]) {
    t.match(await rejection(parseCsr(der.subarray(0, der.length - cut))), { code: 'malformed-der' }, `cut ${cut}`);
  }
  t.match(await rejection(parseCsr(Buffer.concat([der, Buffer.from([0, 0])]))), { code: 'malformed-der', message: /2 bytes of trailing data/ });
  t.match(await rejection(parseCsr(Buffer.concat([der, der]))), { code: 'malformed-der', message: /trailing/ });
  // Same structure with a non-minimal (BER) outer length: 30 82 LL LL -> 30 83 00 LL LL.
  t.equal(der[1], 0x82);
  const ber = Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), der.subarray(2)]);
  t.match(await rejection(parseCsr(ber)), { code: 'malformed-der' });
  t.match(await rejection(parseCsr(new Uint8Array(0))), { code: 'malformed-der' });
  t.match(await rejection(parseCsr(new Uint8Array(CSR_MAX_BYTES + 1).fill(0x30))), { code: 'payload-too-large', message: /65537 bytes/ });
  t.match(await rejection(parseCsr(Buffer.from('30030201', 'hex'))), { code: 'malformed-der' });
  // A certificate is DER but not a CertificationRequest.
  openssl('req', '-x509', '-inform', 'DER', '-in', 'p256.csr', '-key', 'p256.key', '-days', '1', '-outform', 'DER', '-out', 'p256.crt');
  t.match(await rejection(parseCsr(readFileSync(join(dir, 'p256.crt')))), { code: 'malformed-der' });
});

t.test('fuzz: random mutations of valid CSRs never crash', async (t) => {
  const seeds = [good.p256.der, good.rsaPssPadding.der, good.ed25519.der];
  const codes: Record<string, number> = {};
  let accepted = 0;
  const rounds = 3000;
  for (let n = 0; n < rounds; n++) {
    const seed = Buffer.from(seeds[n % seeds.length]);
    let m: Buffer = seed;
    const mutations = 1 + randomInt(3);
    for (let k = 0; k < mutations && m.length > 0; k++) {
      const at = randomInt(m.length);
      switch (randomInt(5)) {
        case 0: m = Buffer.from(m); m[at] ^= 1 << randomInt(8); break;
        case 1: m = Buffer.from(m); m[at] = randomInt(256); break;
        case 2: m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]); break;
        case 3: m = Buffer.concat([m.subarray(0, at), Buffer.from([randomInt(256)]), m.subarray(at)]); break;
        case 4: m = m.subarray(0, at); break;
      }
    }
    try {
      const csr = await parseCsr(m);
      accepted++;
      // Whatever we accept, openssl must agree is a self-signed valid request.
      writeFileSync(join(dir, 'fuzz.csr'), m);
      t.equal(opensslVerdict('fuzz.csr'), 'OK', `openssl verifies accepted mutation ${m.toString('hex')}`);
      t.ok(csr.publicKeyInfo.length > 0);
    } catch (e) {
      if (!(e instanceof YinxinError)) {
        t.fail(`mutation ${m.toString('hex')} threw ${String(e)}`);
        continue;
      }
      codes[e.code] = (codes[e.code] ?? 0) + 1;
    }
  }
  t.same(Object.keys(codes).filter((c) => !['malformed-der', 'bad-signature', 'unsupported-algorithm'].includes(c)), [], `codes: ${JSON.stringify(codes)}`);
  t.ok((codes['malformed-der'] ?? 0) > 0 && (codes['bad-signature'] ?? 0) > 0, 'both failure kinds were exercised');
  t.comment(`${rounds} mutations: ${accepted} still valid, ${JSON.stringify(codes)}`);
});

t.test('regression: RSASSA-PSS with an empty INTEGER as MGF1 hash parameters is malformed, as openssl says', async (t) => {
  // Found by the fuzz test above: a one-byte mutation (NULL 05 00 -> 02 00) that openssl refuses and we accepted.
  const der = new Uint8Array(Buffer.from(readFileSync(new URL('./fixtures/pss-mgf1-hash-params-empty-integer.hex', import.meta.url), 'utf8').trim(), 'hex'));
  await t.rejects(parseCsr(der), { code: 'malformed-der', message: /parameters must be absent or NULL/ });
});
