import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPkcs12, generateOneTimePassword, PKCS12_ITERATIONS } from './pkcs12.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-p12-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
const read = (f: string) => new Uint8Array(readFileSync(join(dir, f)));

// A root and an issuing CA, and leaves with EC, RSA and Ed25519 keys, all made by openssl.
openssl('req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'root.key', '-subj', '/CN=Root', '-days', '30', '-outform', 'DER', '-out', 'root.der');
writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=Issuing CA', '-out', 'ca.csr');
openssl('x509', '-req', '-in', 'ca.csr', '-CA', 'root.der', '-CAform', 'DER', '-CAkey', 'root.key', '-set_serial', '2', '-days', '30', '-extfile', 'ca.ext', '-outform', 'DER', '-out', 'ca.der');
function leaf(name: string, newkey: string[]): { key: Uint8Array; cert: Uint8Array } {
  openssl('req', '-new', ...newkey, '-nodes', '-keyout', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.der', '-CAform', 'DER', '-CAkey', 'ca.key', '-set_serial', '3', '-days', '30', '-outform', 'DER', '-out', `${name}.der`);
  openssl('pkcs8', '-topk8', '-nocrypt', '-in', `${name}.key`, '-outform', 'DER', '-out', `${name}.p8`);
  return { key: read(`${name}.p8`), cert: read(`${name}.der`) };
}
const leaves = {
  ec: leaf('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
  rsa: leaf('rsa', ['-newkey', 'rsa:2048']),
  ed25519: leaf('ed25519', ['-newkey', 'ed25519']),
};
const chain = [read('ca.der'), read('root.der')];

function opensslPkcs12(file: string, password: string, extra: string[] = []) {
  return spawnSync('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, ...extra], { cwd: dir, encoding: 'utf8' });
}

t.test('openssl 3 opens it without -legacy; the key matches the certificate; the chain is there', async (t) => {
  for (const [name, { key, cert }] of Object.entries(leaves)) {
    const password = generateOneTimePassword();
    const p12 = buildPkcs12({ privateKeyPkcs8: key, certificate: cert, chain, password, friendlyName: `${name} 证书` });
    writeFileSync(join(dir, `${name}.p12`), p12);
    // BMPString (UTF-16BE) 证书 = 8BC1 4E66; openssl 3.0 prints only the low byte of each BMP character.
    t.ok(Buffer.from(p12).includes(Buffer.from('8bc14e66', 'hex')), `${name}: friendlyName as BMPString`);
    const r = opensslPkcs12(`${name}.p12`, password, ['-nodes']);
    t.equal(r.status, 0, `${name}: openssl pkcs12 -nodes exit status (${r.stderr.trim()})`);
    const pem = r.stdout;
    t.equal((pem.match(/BEGIN CERTIFICATE/g) ?? []).length, 3, `${name}: leaf + 2 chain certificates`);
    t.match(pem, /BEGIN PRIVATE KEY/, `${name}: the key`);
    t.match(pem, new RegExp(`friendlyName: ${name} `), `${name}: openssl reads the friendlyName`);
    writeFileSync(join(dir, `${name}.out.pem`), pem);
    const keyPub = openssl('pkey', '-in', `${name}.out.pem`, '-pubout').toString();
    const certPub = openssl('x509', '-in', `${name}.der`, '-inform', 'DER', '-pubkey', '-noout').toString();
    t.equal(keyPub, certPub, `${name}: extracted key is the certificate's`);
    const originalPub = openssl('pkey', '-in', `${name}.key`, '-pubout').toString();
    t.equal(keyPub, originalPub, `${name}: and the key we put in`);
  }
});

t.test('algorithms: PBES2/PBKDF2-SHA256/AES-256-CBC and a SHA-256 MAC, no legacy ciphers', async (t) => {
  const password = 'correct horse battery';
  writeFileSync(join(dir, 'info.p12'), buildPkcs12({ privateKeyPkcs8: leaves.ec.key, certificate: leaves.ec.cert, chain, password }));
  const info = opensslPkcs12('info.p12', password, ['-info', '-noout']);
  t.equal(info.status, 0, info.stderr);
  const text = info.stdout + info.stderr;
  t.match(text, new RegExp(`MAC: sha256, Iteration ${PKCS12_ITERATIONS}`));
  t.match(text, new RegExp(`Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration ${PKCS12_ITERATIONS}, PRF hmacWithSHA256`));
  t.notMatch(text, /RC2|3DES|DES-EDE|pbeWithSHA1/i);
  t.ok(PKCS12_ITERATIONS >= 10_000);
});

t.test('a wrong password is refused; a non-ASCII password works (UTF-8 for PBKDF2, BMPString for the MAC)', async (t) => {
  const password = 'Pässwörd-密码';
  writeFileSync(join(dir, 'pw.p12'), buildPkcs12({ privateKeyPkcs8: leaves.rsa.key, certificate: leaves.rsa.cert, chain: [], password }));
  const ok = opensslPkcs12('pw.p12', password, ['-nodes']);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /BEGIN PRIVATE KEY/);
  const wrong = opensslPkcs12('pw.p12', 'Passwort-密码', ['-nodes']);
  t.not(wrong.status, 0);
  t.match(wrong.stderr, /Mac verify error|invalid password/i);
  t.notMatch(wrong.stdout, /PRIVATE KEY/);
});

t.test('inputs are checked', async (t) => {
  t.throws(() => buildPkcs12({ privateKeyPkcs8: leaves.ec.key, certificate: leaves.rsa.cert, chain, password: 'x'.repeat(16) }),
    { code: 'validation-failed', message: /does not belong/ });
  t.throws(() => buildPkcs12({ privateKeyPkcs8: new Uint8Array([1, 2, 3]), certificate: leaves.ec.cert, chain, password: 'x'.repeat(16) }),
    { code: 'validation-failed', message: /PKCS#8/ });
  t.throws(() => buildPkcs12({ privateKeyPkcs8: leaves.ec.key, certificate: new Uint8Array([0x30, 0]), chain, password: 'x'.repeat(16) }),
    { code: 'validation-failed', message: /not a DER X.509/ });
  t.throws(() => buildPkcs12({ privateKeyPkcs8: leaves.ec.key, certificate: leaves.ec.cert, chain: [new Uint8Array([5])], password: 'x'.repeat(16) }),
    { code: 'validation-failed', message: /chain certificate 0/ });
  t.throws(() => buildPkcs12({ privateKeyPkcs8: leaves.ec.key, certificate: leaves.ec.cert, chain, password: '' }), { code: 'validation-failed' });
});

t.test('one-time passwords: 16 unambiguous characters, distinct, roughly uniform', async (t) => {
  const seen = new Set<string>();
  const counts = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const p = generateOneTimePassword();
    t.equal(p.length, 16);
    if (/[0O1lIio]/.test(p)) t.fail(`ambiguous character in ${p}`);
    seen.add(p);
    for (const c of p) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  t.equal(seen.size, 2000, 'no repeats');
  t.equal(counts.size, 55, 'every symbol of the alphabet appears');
  const expected = (2000 * 16) / 55;
  t.ok([...counts.values()].every((n) => n > expected * 0.7 && n < expected * 1.3), 'no symbol far from its expected frequency');
  t.equal(generateOneTimePassword(24).length, 24);
  t.throws(() => generateOneTimePassword(4), { code: 'validation-failed' });
});
