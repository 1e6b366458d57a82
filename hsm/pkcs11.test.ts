/**
 * The PKCS#11 key store against a real SoftHSM2 token in a temp directory; signatures are
 * checked with node:crypto and openssl, key attributes with OpenSC's pkcs11-tool.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { constants, createHash, createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import t from 'tap';
import type { YinxinError } from '../common/errors.ts';
import { toPem } from '../common/pem.ts';
import { hashOfScheme } from './algorithms.ts';
import { openPkcs11KeyStore, prepareSoftHsmToken, type KeySpec, type SignatureScheme, type Signer } from './index.ts';
import type { Pkcs11KeyStore } from './pkcs11.ts';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '246810';
const TOKEN = 'yinxin-test';
const dir = mkdtempSync(join(tmpdir(), 'yinxin-hsm-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const prepared = await prepareSoftHsmToken({ dir, pin: PIN, soPin: '13579', label: TOKEN });
const open = (extra: Partial<Parameters<typeof openPkcs11KeyStore>[0]> = {}) => openPkcs11KeyStore({ module: MODULE, tokenLabel: TOKEN, pin: PIN, ...extra });
// Working copies are checked against their token objects every 50 ms here (10 s by default).
const store: Pkcs11KeyStore = await open({ workingCopyCheckMs: 50 });
t.teardown(() => store.close());

const data = Buffer.from('yinxin: the seals and credentials of an official');

function nodeVerifies(signer: Signer, scheme: SignatureScheme, message: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: Buffer.from(signer.publicKeyInfo), format: 'der', type: 'spki' });
  const hash = hashOfScheme(scheme);
  const algorithm = hash === null ? null : hash.replace('-', '').toLowerCase();
  const options = scheme.startsWith('rsa-pss-')
    ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(scheme.slice(-3)) / 8 }
    : key;
  return verify(algorithm, message, options, signature);
}

let fileCounter = 0;
/** openssl's verdict on `signature` over `message` under the signer's SPKI (as PEM). */
function opensslVerifies(signer: Signer, scheme: SignatureScheme, message: Uint8Array, signature: Uint8Array): boolean {
  const n = fileCounter++;
  const pub = join(dir, `pub${n}.pem`);
  const msg = join(dir, `msg${n}`);
  const sig = join(dir, `sig${n}`);
  writeFileSync(pub, toPem(signer.publicKeyInfo, 'PUBLIC KEY'));
  writeFileSync(msg, message);
  writeFileSync(sig, signature);
  const hash = hashOfScheme(scheme);
  const args = hash === null
    ? ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', msg, '-sigfile', sig]
    : ['dgst', `-${hash.replace('-', '').toLowerCase()}`, '-verify', pub, '-signature', sig,
      ...(scheme.startsWith('rsa-pss-') ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${Number(scheme.slice(-3)) / 8}`] : []),
      msg];
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return r.status === 0 && /Verified OK|Signature Verified Successfully/.test(r.stdout);
}

/** The subjectPublicKey BIT STRING value of an SPKI (what RFC 5280 s4.2.1.2 method 1 hashes). */
function subjectPublicKeyBytes(spki: Uint8Array): Buffer {
  const info = pkijs.PublicKeyInfo.fromBER(Buffer.from(spki));
  return Buffer.from(info.subjectPublicKey.valueBlock.valueHexView);
}

function expectCode(code: string, pattern?: RegExp): { name: string; code: string; message?: RegExp } {
  return { name: 'YinxinError', code, ...(pattern ? { message: pattern } : {}) };
}

const cases: { label: string; spec: KeySpec; schemes: SignatureScheme[] }[] = [
  { label: 'ec-p256', spec: { type: 'ec', curve: 'P-256' }, schemes: ['ecdsa-sha256', 'ecdsa-sha384', 'ecdsa-sha512'] },
  { label: 'ec-p384', spec: { type: 'ec', curve: 'P-384' }, schemes: ['ecdsa-sha384', 'ecdsa-sha256'] },
  { label: 'rsa-2048', spec: { type: 'rsa', bits: 2048 }, schemes: ['rsa-pkcs1-sha256', 'rsa-pkcs1-sha384', 'rsa-pkcs1-sha512', 'rsa-pss-sha256', 'rsa-pss-sha384', 'rsa-pss-sha512'] },
  { label: 'rsa-3072', spec: { type: 'rsa', bits: 3072 }, schemes: ['rsa-pkcs1-sha384', 'rsa-pss-sha256'] },
  { label: 'rsa-4096', spec: { type: 'rsa', bits: 4096 }, schemes: ['rsa-pkcs1-sha512', 'rsa-pss-sha512'] },
  { label: 'ed25519', spec: { type: 'ed25519' }, schemes: ['ed25519'] },
];

t.test('prepareSoftHsmToken is idempotent and writes the configuration', async (t) => {
  t.equal(prepared.created, true);
  t.equal(prepared.module, MODULE);
  t.equal(prepared.confPath, join(dir, 'softhsm2.conf'));
  t.equal(process.env.SOFTHSM2_CONF, prepared.confPath);
  const again = await prepareSoftHsmToken({ dir, pin: PIN, label: TOKEN });
  t.equal(again.created, false, 'the second call finds the token');
  const slots = execFileSync('softhsm2-util', ['--show-slots'], { env: { ...process.env, SOFTHSM2_CONF: prepared.confPath }, encoding: 'utf8' });
  t.match(slots, new RegExp(`Label:\\s+${TOKEN}\\s`), 'softhsm2-util sees the token');
  t.equal(slots.match(new RegExp(`Label:\\s+${TOKEN}\\s`, 'g'))?.length, 1, 'only one token with that label');
  t.match(slots, /User PIN init\.:\s+yes/);
  await t.rejects(prepareSoftHsmToken({ dir, pin: '12', label: TOKEN }), expectCode('config-invalid', /YINXIN_PKCS11_PIN/));
});

const signers = new Map<string, Signer>();

t.test('generates every key type in the token, signs, and node:crypto and openssl verify', async (t) => {
  t.equal(store.supportsEd25519, true, 'SoftHSM 2.6 offers CKM_EC_EDWARDS_KEY_PAIR_GEN');
  for (const c of cases) {
    const signer = await store.generateKeyPair(c.label, c.spec);
    signers.set(c.label, signer);
    t.same(signer.spec, c.spec, `${c.label}: spec`);
    t.equal(signer.label, c.label);
    const parsed = createPublicKey({ key: Buffer.from(signer.publicKeyInfo), format: 'der', type: 'spki' });
    t.equal(parsed.asymmetricKeyType, c.spec.type === 'ec' ? 'ec' : c.spec.type, `${c.label}: SPKI parses`);
    if (c.spec.type === 'rsa') t.equal(parsed.asymmetricKeyDetails?.modulusLength, c.spec.bits);
    if (c.spec.type === 'ec') t.equal(parsed.asymmetricKeyDetails?.namedCurve, c.spec.curve === 'P-256' ? 'prime256v1' : 'secp384r1');
    for (const scheme of c.schemes) {
      const signature = await signer.sign(data, scheme);
      t.ok(nodeVerifies(signer, scheme, data, signature), `${c.label} ${scheme}: node:crypto verifies`);
      t.ok(opensslVerifies(signer, scheme, data, signature), `${c.label} ${scheme}: openssl verifies`);
      t.notOk(nodeVerifies(signer, scheme, Buffer.from('another message'), signature), `${c.label} ${scheme}: not over other data`);
      t.notOk(opensslVerifies(signer, scheme, Buffer.from('another message'), signature), `${c.label} ${scheme}: openssl rejects other data`);
    }
    const byDefault = await signer.sign(data);
    t.ok(nodeVerifies(signer, signer.scheme, data, byDefault), `${c.label}: default scheme ${signer.scheme}`);
    if (c.spec.type === 'ec') {
      // X.509 form: a DER SEQUENCE of two INTEGERs, not PKCS#11's r || s.
      const seq = asn1js.fromBER(byDefault);
      t.ok(seq.result instanceof asn1js.Sequence && seq.offset === byDefault.length, `${c.label}: DER ECDSA-Sig-Value`);
    }
  }
});

t.test('a scheme the key cannot do is refused', async (t) => {
  await t.rejects(signers.get('ec-p256')!.sign(data, 'rsa-pss-sha256'), expectCode('unsupported-algorithm'));
  await t.rejects(signers.get('rsa-2048')!.sign(data, 'ed25519'), expectCode('unsupported-algorithm'));
});

t.test('CKA_ID is the SHA-1 of the subjectPublicKey, and listKeys reports it', async (t) => {
  const keys = await store.listKeys();
  t.same(keys.map((k) => k.label), cases.map((c) => c.label).sort());
  for (const key of keys) {
    const signer = signers.get(key.label)!;
    t.same(key.spec, signer.spec);
    t.equal(key.id, createHash('sha1').update(subjectPublicKeyBytes(signer.publicKeyInfo)).digest('hex'), `${key.label}: id`);
  }
});

/** pkcs11-tool's object listing, one block per object. */
function pkcs11ToolObjects(): { kind: string; label: string; id: string; access: string; usage: string }[] {
  const out = execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', TOKEN, '--login', '--pin', PIN, '--list-objects'], {
    env: { ...process.env, SOFTHSM2_CONF: prepared.confPath }, encoding: 'utf8',
  });
  return out.split(/\n(?=\S)/).filter((b) => / Object;/.test(b)).map((block) => ({
    kind: block.split(';')[0].trim(),
    label: /label:\s+(.*)/.exec(block)?.[1].trim() ?? '',
    id: /ID:\s+([0-9a-f]+)/.exec(block)?.[1] ?? '',
    access: /Access:\s+(.*)/.exec(block)?.[1] ?? '',
    usage: /Usage:\s+(.*)/.exec(block)?.[1] ?? '',
  }));
}

t.test('pkcs11-tool shows the private keys sensitive and never extractable, public halves stored', async (t) => {
  const objects = pkcs11ToolObjects();
  for (const c of cases) {
    const priv = objects.find((o) => o.kind === 'Private Key Object' && o.label === c.label);
    t.ok(priv, `${c.label}: private key listed`);
    if (!priv) continue;
    const access = priv.access.split(/,\s*/);
    t.ok(access.includes('sensitive'), `${c.label}: sensitive (${priv.access})`);
    t.ok(access.includes('never extractable'), `${c.label}: never extractable`);
    t.notOk(access.includes('extractable'), `${c.label}: not extractable`);
    t.match(priv.usage, /sign/, `${c.label}: usage sign`);
    const pub = objects.find((o) => o.kind === 'Public Key Object' && o.label === c.label);
    t.ok(pub, `${c.label}: public key stored`);
    t.equal(priv.id, pub?.id, `${c.label}: same CKA_ID on both halves`);
    t.equal(priv.id, createHash('sha1').update(subjectPublicKeyBytes(signers.get(c.label)!.publicKeyInfo)).digest('hex'));
  }
});

t.test('keys are found again by label in a fresh key store, also after the module was finalized', async (t) => {
  const second = await open({ sessionPool: 1 });
  for (const c of cases) {
    const again = await second.getSigner(c.label);
    t.same(again.spec, c.spec, `${c.label}: spec recovered from attributes`);
    t.same(Buffer.from(again.publicKeyInfo), Buffer.from(signers.get(c.label)!.publicKeyInfo), `${c.label}: same SPKI`);
    const sig = await again.sign(data);
    t.ok(nodeVerifies(signers.get(c.label)!, again.scheme, data, sig), `${c.label}: signs with the original key`);
  }
  await second.close();
  await second.close(); // safe twice
  t.ok((await store.health()).ok, 'closing the second store leaves the first logged in');
  t.ok(nodeVerifies(signers.get('ec-p256')!, 'ecdsa-sha256', data, await signers.get('ec-p256')!.sign(data)));
});

t.test('200 concurrent signatures all verify (session pool correctness)', async (t) => {
  const ec = signers.get('ec-p256')!;
  const rsa = signers.get('rsa-2048')!;
  const messages = Array.from({ length: 200 }, (_, i) => Buffer.from(`message ${i}`));
  const ecSigs = await Promise.all(messages.map((m) => ec.sign(m)));
  const bad = ecSigs.filter((s, i) => !nodeVerifies(ec, 'ecdsa-sha256', messages[i], s)).length;
  t.equal(bad, 0, 'every ECDSA signature verifies over its own message');
  const mixed = await Promise.all(messages.slice(0, 40).map((m, i) => (i % 2 ? rsa.sign(m, 'rsa-pss-sha256') : ec.sign(m, 'ecdsa-sha384'))));
  t.equal(mixed.filter((s, i) => !nodeVerifies(i % 2 ? rsa : ec, i % 2 ? 'rsa-pss-sha256' : 'ecdsa-sha384', messages[i], s)).length, 0, 'mixed RSA/ECDSA load verifies');
  const stats = store.stats();
  t.ok(stats.signs >= 240, `stats counts signatures (${stats.signs})`);
  t.equal(stats.signErrors, 0);
});

t.test('concurrent ECDSA and Ed25519 signatures are shared with one helper thread; RSA starts the signing threads', async (t) => {
  const fresh = await open({ sessionPool: 2 });
  t.teardown(() => fresh.close());
  const ec = await fresh.getSigner('ec-p256');
  const ed = fresh.supportsEd25519 ? await fresh.getSigner('ed25519') : undefined;
  const messages = Array.from({ length: 64 }, (_, i) => Buffer.from(`light ${i}`));
  const one = await ec.sign(messages[0]);
  t.ok(nodeVerifies(ec, 'ecdsa-sha256', messages[0], one), 'a lone signature verifies');
  t.same([fresh.stats().signHelper, fresh.stats().helperSigns], [false, 0], 'and starts no helper');
  // The first burst starts the helper; it takes requests once its session is open.
  let bursts = 0;
  for (; bursts < 100 && fresh.stats().helperSigns === 0; bursts++) {
    const ecSigs = await Promise.all(messages.map((m) => ec.sign(m)));
    t.equal(ecSigs.filter((s, i) => !nodeVerifies(ec, 'ecdsa-sha256', messages[i], s)).length, 0, `burst ${bursts + 1}: 64 concurrent ECDSA signatures verify`);
    if (ed) {
      const edSigs = await Promise.all(messages.map((m) => ed.sign(m)));
      t.equal(edSigs.filter((s, i) => !nodeVerifies(ed, 'ed25519', messages[i], s)).length, 0, `burst ${bursts + 1}: 64 concurrent Ed25519 signatures verify`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const stats = fresh.stats();
  t.ok(stats.signHelper && stats.helperSigns > 0, `the helper signed ${stats.helperSigns} of ${stats.signs}`);
  t.ok(stats.helperSigns < stats.signs, 'and the main thread signed the rest');
  t.equal(stats.signingThreads, 0, 'no RSA signing thread was started for them');
  // Every scheme and curve through the helper: P-384 with its own digest, SHA-512 over P-256.
  const p384 = await fresh.getSigner('ec-p384');
  const mixedLight = await Promise.all(messages.map((m, i) => (i % 3 === 0 ? p384.sign(m) : i % 3 === 1 ? ec.sign(m, 'ecdsa-sha512') : ec.sign(m, 'ecdsa-sha384'))));
  t.equal(mixedLight.filter((s, i) => !nodeVerifies(i % 3 === 0 ? p384 : ec, i % 3 === 0 ? 'ecdsa-sha384' : i % 3 === 1 ? 'ecdsa-sha512' : 'ecdsa-sha384', messages[i], s)).length, 0, 'P-384 and other digests verify');
  const rsa = await fresh.getSigner('rsa-2048');
  const rsaSigs = await Promise.all(messages.slice(0, 8).map((m) => rsa.sign(m, 'rsa-pss-sha256')));
  t.equal(rsaSigs.filter((s, i) => !nodeVerifies(rsa, 'rsa-pss-sha256', messages[i], s)).length, 0, '8 concurrent RSA signatures verify');
  t.equal(fresh.stats().signingThreads, 2, 'RSA started the signing threads');
  const mixed = await Promise.all(messages.slice(0, 16).map((m, i) => (i % 2 ? rsa.sign(m, 'rsa-pkcs1-sha256') : ec.sign(m))));
  t.equal(mixed.filter((s, i) => !nodeVerifies(i % 2 ? rsa : ec, i % 2 ? 'rsa-pkcs1-sha256' : 'ecdsa-sha256', messages[i], s)).length, 0, 'mixed RSA and ECDSA verify');
  t.equal(fresh.stats().signErrors, 0);
});

t.test('the helper reports a key destroyed under it as the main thread does, and a store without threads has no helper', async (t) => {
  const fresh = await open({ sessionPool: 1 });
  t.teardown(() => fresh.close());
  const doomed = await fresh.generateKeyPair('helper-doomed', { type: 'ec', curve: 'P-256' });
  const messages = Array.from({ length: 32 }, (_, i) => Buffer.from(`doomed ${i}`));
  for (let i = 0; i < 100 && fresh.stats().helperSigns === 0; i++) {
    await Promise.all(messages.map((m) => doomed.sign(m)));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.ok(fresh.stats().helperSigns > 0, 'the helper is signing with the key');
  await fresh.deleteKey('helper-doomed');
  const outcomes = await Promise.allSettled(messages.map((m) => doomed.sign(m)));
  t.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 0, 'no signature is made with a destroyed key');
  const codes = new Set(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as YinxinError).code : 'signed')));
  t.same([...codes], ['key-not-found'], 'every request fails as key-not-found, whichever thread had it');
  const ec = await fresh.getSigner('ec-p256');
  const after = await Promise.all(messages.map((m) => ec.sign(m)));
  t.equal(after.filter((s, i) => !nodeVerifies(ec, 'ecdsa-sha256', messages[i], s)).length, 0, 'other keys still sign');

  const single = await open({ sessionPool: 0 });
  t.teardown(() => single.close());
  const ecSingle = await single.getSigner('ec-p256');
  for (let i = 0; i < 5; i++) await Promise.all(messages.map((m) => ecSingle.sign(m)));
  t.same([single.stats().signHelper, single.stats().helperSigns], [false, 0], 'sessionPool 0: no helper');
});

t.test('errors are YinxinErrors naming what to fix', async (t) => {
  await t.rejects(store.getSigner('no-such-key'), expectCode('key-not-found', /"no-such-key"/));
  t.equal(await store.hasKey('no-such-key'), false);
  t.equal(await store.hasKey('ec-p256'), true);
  await t.rejects(store.generateKeyPair('ec-p256', { type: 'ec', curve: 'P-256' }), expectCode('conflict', /ec-p256/));
  await t.rejects(open({ pin: 'wrong-pin' }), expectCode('hsm-login-failed', /YINXIN_PKCS11_PIN/), 'wrong PIN while the token is logged in');
  await t.rejects(open({ module: join(dir, 'no-such-module.so') }), expectCode('config-invalid', /YINXIN_PKCS11_MODULE/));
  writeFileSync(join(dir, 'not-a-module.so'), 'not an ELF file');
  await t.rejects(open({ module: join(dir, 'not-a-module.so') }), expectCode('config-invalid', /YINXIN_PKCS11_MODULE/));
  await t.rejects(open({ tokenLabel: 'no-such-token' }), expectCode('config-invalid', /YINXIN_PKCS11_TOKEN/));
  await t.rejects(open({ tokenLabel: undefined, slot: 987654 }), expectCode('config-invalid', /YINXIN_PKCS11_SLOT/));
  const bySlot = await open({ tokenLabel: undefined, slot: store.slotId, sessionPool: 0 });
  t.equal(bySlot.tokenLabel, TOKEN, 'the slot ID selects the token');
  await bySlot.close();
  const slots = execFileSync('softhsm2-util', ['--show-slots'], { env: { ...process.env, SOFTHSM2_CONF: prepared.confPath }, encoding: 'utf8' });
  const freeSlot = Number(/Slot (\d+)\n(?:(?!\nSlot ).)*?Initialized:\s+no/s.exec(slots)?.[1]);
  t.ok(Number.isInteger(freeSlot), `softhsm2-util shows a free slot (${freeSlot})`);
  await t.rejects(open({ tokenLabel: undefined, slot: freeSlot }), expectCode('config-invalid', /not initialized/), 'the free uninitialized slot is refused');
  for (const e of await Promise.allSettled([open({ pin: 'x' })])) {
    t.equal(e.status, 'rejected');
    if (e.status === 'rejected') t.notMatch(String((e.reason as Error).message), /at .*\.ts:\d+/, 'no stack trace in the message');
  }
});

t.test('deleting a key', async (t) => {
  const temp = await store.generateKeyPair('to-delete', { type: 'ec', curve: 'P-256' });
  await store.deleteKey('to-delete');
  t.equal(await store.hasKey('to-delete'), false);
  t.notOk(pkcs11ToolObjects().some((o) => o.label === 'to-delete'), 'both halves are gone');
  await t.rejects(temp.sign(data), expectCode('key-not-found', /to-delete/));
  await t.rejects(store.getSigner('to-delete'), expectCode('key-not-found'));
});

t.test('AES-256-GCM secret key inside the token', async (t) => {
  await t.rejects(store.encrypt('archive', Buffer.from('x')), expectCode('key-not-found', /archive/));
  await store.ensureSecretKey('archive');
  await store.ensureSecretKey('archive'); // idempotent
  const secrets = pkcs11ToolObjects().filter((o) => o.kind === 'Secret Key Object' && o.label === 'archive');
  t.equal(secrets.length, 1, 'one secret key');
  t.ok(secrets[0]?.access.split(/,\s*/).includes('never extractable') && secrets[0]?.access.split(/,\s*/).includes('sensitive'), `sensitive, never extractable (${secrets[0]?.access})`);
  const plaintext = Buffer.from('an escrowed end-entity key, say');
  const aad = Buffer.from('record 42');
  const sealed = await store.encrypt('archive', plaintext, aad);
  t.equal(sealed.length, 12 + plaintext.length + 16, 'iv || ciphertext || tag');
  t.notOk(Buffer.from(sealed).includes(plaintext), 'ciphertext hides the plaintext');
  t.same(Buffer.from(await store.decrypt('archive', sealed, aad)), plaintext, 'round trip');
  const again = await store.encrypt('archive', plaintext, aad);
  t.notSame(Buffer.from(again.subarray(0, 12)), Buffer.from(sealed.subarray(0, 12)), 'a fresh IV per message');
  for (const i of [0, 12, sealed.length - 1]) {
    const tampered = Buffer.from(sealed);
    tampered[i] ^= 1;
    await t.rejects(store.decrypt('archive', tampered, aad), expectCode('bad-signature'), `byte ${i} flipped is rejected`);
  }
  await t.rejects(store.decrypt('archive', sealed, Buffer.from('record 43')), expectCode('bad-signature'), 'other AAD is rejected');
  await t.rejects(store.decrypt('archive', sealed), expectCode('bad-signature'), 'missing AAD is rejected');
  await t.rejects(store.decrypt('archive', sealed.subarray(0, 20), aad), expectCode('bad-signature'), 'truncated');
  t.same(Buffer.from(await store.decrypt('archive', await store.encrypt('archive', Buffer.alloc(0)))), Buffer.alloc(0), 'empty plaintext');
  await t.rejects(store.ensureSecretKey('ec-p256'), expectCode('conflict'));
});

t.test('a secret key replaced behind the store: the remembered handle is dropped, never used for the wrong key', async (t) => {
  await store.ensureSecretKey('rotating');
  const sealed = await store.encrypt('rotating', Buffer.from('first key'));
  t.same(Buffer.from(await store.decrypt('rotating', sealed)), Buffer.from('first key'));
  // Another application (pkcs11-tool) destroys the key while the store remembers its handle.
  execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', TOKEN, '--login', '--pin', PIN, '--delete-object', '--type', 'secrkey', '--label', 'rotating'], {
    env: { ...process.env, SOFTHSM2_CONF: prepared.confPath },
  });
  await new Promise((r) => setTimeout(r, 200)); // the working copy's check notices the token object is gone
  await t.rejects(store.encrypt('rotating', Buffer.from('x')), expectCode('key-not-found'), 'neither the stale handle nor the working copy is used');
  await store.ensureSecretKey('rotating');
  const resealed = await store.encrypt('rotating', Buffer.from('second key'));
  t.same(Buffer.from(await store.decrypt('rotating', resealed)), Buffer.from('second key'));
  await t.rejects(store.decrypt('rotating', sealed), expectCode('bad-signature'), 'data of the destroyed key does not open with the new one');
});

t.test('keys are used through session copies made inside the token, which never show as keys of their own', async (t) => {
  const signer = await store.generateKeyPair('copied', { type: 'ec', curve: 'P-256' });
  const again = await store.getSigner('copied');
  t.ok(nodeVerifies(again, 'ecdsa-sha256', data, await again.sign(data)), 'signs');
  const token = () => execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', TOKEN, '--login', '--pin', PIN, '--list-objects', '--type', 'privkey'], {
    env: { ...process.env, SOFTHSM2_CONF: prepared.confPath }, encoding: 'utf8',
  });
  t.equal(token().split('label:      copied').length - 1, 1, 'the token holds one token object (another process sees no session copy)');
  t.equal((await store.listKeys()).filter((k) => k.label === 'copied').length, 1, 'listKeys shows the key once');
  await t.rejects(store.generateKeyPair('copied', { type: 'ec', curve: 'P-256' }), expectCode('conflict'));
  // Destroyed by another application: the copy stops being used within the check period.
  execFileSync('pkcs11-tool', ['--module', MODULE, '--token-label', TOKEN, '--login', '--pin', PIN, '--delete-object', '--type', 'privkey', '--label', 'copied'], {
    env: { ...process.env, SOFTHSM2_CONF: prepared.confPath },
  });
  await new Promise((r) => setTimeout(r, 200));
  await t.rejects(signer.sign(data), expectCode('key-not-found'), 'a key destroyed in the token no longer signs');
  await t.rejects(again.sign(data), expectCode('key-not-found'));
  await store.deleteKey('copied');
  // Deleted through the store: at once.
  const third = await store.generateKeyPair('copied', { type: 'ec', curve: 'P-256' });
  t.ok(nodeVerifies(third, 'ecdsa-sha256', data, await third.sign(data)), 'a new key under the same label signs');
  t.notSame(Buffer.from(third.publicKeyInfo), Buffer.from(signer.publicKeyInfo), 'with the new key');
  await store.deleteKey('copied');
  await t.rejects(third.sign(data), expectCode('key-not-found'), 'deleteKey stops its working copy at once');
});

t.test('without session copies (YINXIN_PKCS11_SESSION_KEYS=token) keys sign through the token objects', async (t) => {
  const direct = await open({ sessionKeyCopies: false, sessionPool: 0 });
  t.teardown(() => direct.close());
  const signer = await direct.generateKeyPair('direct', { type: 'ec', curve: 'P-256' });
  t.ok(nodeVerifies(signer, 'ecdsa-sha256', data, await signer.sign(data)));
  await direct.deleteKey('direct');
  await t.rejects(signer.sign(data), expectCode('key-not-found'));
});

t.test('health, and a closed store reports hsm-unavailable', async (t) => {
  const extra = await open({ sessionPool: 1 });
  t.same(await extra.health(), { ok: true, detail: `token "${TOKEN}" in slot ${extra.slotId}: logged in` });
  const ec = await extra.getSigner('ec-p256');
  const rsa = await extra.getSigner('rsa-2048');
  await rsa.sign(data); // starts the signing thread
  await extra.close();
  await extra.close();
  t.equal((await extra.health()).ok, false);
  await t.rejects(ec.sign(data), expectCode('hsm-unavailable'));
  await t.rejects(rsa.sign(data), expectCode('hsm-unavailable'));
  await t.rejects(extra.listKeys(), expectCode('hsm-unavailable'));
  t.ok((await store.health()).ok, 'the other store is unaffected');
});

t.test('wrong PIN with a real C_Login, after every store closed', async (t) => {
  await store.close();
  await t.rejects(open({ pin: 'wrong-pin' }), expectCode('hsm-login-failed', /YINXIN_PKCS11_PIN/));
  const reopened = await open();
  t.same(await reopened.hasKey('ec-p256'), true, 'keys survive the restart of the module');
  const signer = await reopened.getSigner('ed25519');
  t.ok(nodeVerifies(signer, 'ed25519', data, await signer.sign(data)));
  await reopened.close();
});

t.test('PKCS#11 failures map to stable codes (a removed token is hsm-unavailable)', async (t) => {
  const { P, toYinxinError } = await import('./pkcs11-module.ts');
  for (const code of [P.CKR_DEVICE_REMOVED, P.CKR_TOKEN_NOT_PRESENT, P.CKR_SESSION_HANDLE_INVALID, P.CKR_DEVICE_ERROR]) {
    const e = toYinxinError({ code, message: 'native' }, 'C_Sign', 'ca-key');
    t.equal(e.code, 'hsm-unavailable');
    t.match(e.message, /^PKCS#11 C_Sign \(ca-key\) failed with CKR_[A-Z_]+: the token is gone/);
  }
  t.equal(toYinxinError({ code: P.CKR_OBJECT_HANDLE_INVALID }, 'C_Sign', 'ca-key').code, 'key-not-found');
  t.equal(toYinxinError({ code: P.CKR_MECHANISM_INVALID }, 'C_Sign').code, 'unsupported-algorithm');
  t.equal(toYinxinError({ code: P.CKR_PIN_INCORRECT }, 'C_Login').code, 'hsm-login-failed');
  t.equal(toYinxinError(new Error('CKR_DEVICE_REMOVED'), 'C_Sign').code, 'hsm-unavailable', 'graphene-style message errors too');
  t.equal(toYinxinError(new Error('something odd'), 'C_Sign').code, 'internal');
});
