/** The software key store is the fake other folders test with: its signatures must be real ones. */
import { spawnSync } from 'node:child_process';
import { constants, createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { toPem } from '../common/pem.ts';
import { SoftwareKeyStore, type KeySpec, type SignatureScheme } from './index.ts';

const dir = mkdtempSync(join(tmpdir(), 'yinxin-soft-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const data = Buffer.from('software store');

const cases: [KeySpec, SignatureScheme, string[]][] = [
  [{ type: 'ec', curve: 'P-256' }, 'ecdsa-sha256', ['dgst', '-sha256']],
  [{ type: 'ec', curve: 'P-384' }, 'ecdsa-sha384', ['dgst', '-sha384']],
  [{ type: 'rsa', bits: 2048 }, 'rsa-pkcs1-sha256', ['dgst', '-sha256']],
  [{ type: 'rsa', bits: 2048 }, 'rsa-pss-sha256', ['dgst', '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32']],
  [{ type: 'ed25519' }, 'ed25519', []],
];

t.test('signatures verify with node:crypto and openssl', async (t) => {
  const store = new SoftwareKeyStore();
  let n = 0;
  for (const [spec, scheme, dgst] of cases) {
    const signer = await store.generateKeyPair(`k${n++}`, spec);
    const signature = await signer.sign(data, scheme);
    const key = createPublicKey({ key: Buffer.from(signer.publicKeyInfo), format: 'der', type: 'spki' });
    const hash = scheme === 'ed25519' ? null : `sha${scheme.slice(-3)}`;
    const pss = scheme.startsWith('rsa-pss') ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : {};
    t.ok(verify(hash, data, { key, ...pss }, signature), `${scheme}: node:crypto`);
    t.notOk(verify(hash, Buffer.from('other'), { key, ...pss }, signature), `${scheme}: not over other data`);
    const pub = join(dir, `pub${n}.pem`), msg = join(dir, `msg${n}`), sig = join(dir, `sig${n}`);
    writeFileSync(pub, toPem(signer.publicKeyInfo, 'PUBLIC KEY'));
    writeFileSync(msg, data);
    writeFileSync(sig, signature);
    const args = dgst.length ? [...dgst, '-verify', pub, '-signature', sig, msg] : ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', msg, '-sigfile', sig];
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    t.equal(r.status, 0, `${scheme}: openssl verifies (${r.stdout.trim()} ${r.stderr.trim()})`);
  }
  await t.rejects(store.getSigner('missing'), { code: 'key-not-found' });
  await t.rejects(store.generateKeyPair('k0', { type: 'ed25519' }), { code: 'conflict' });
});
