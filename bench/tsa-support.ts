/**
 * Stand-ins the TSA benchmark needs until hsm/pkcs11.ts and store/lmdb.ts land: a SoftHSM2 token
 * with an ECDSA P-256 key signed through graphene-pk11 synchronously (C_Sign), and a Store over
 * lmdb-js (async transactions, batched into one durable commit). Switch to openPkcs11KeyStore and
 * openLmdbStore when they exist.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as graphene from 'graphene-pk11';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { ecdsaRawToDer, OID } from '../hsm/algorithms.ts';
import type { SignatureScheme, Signer } from '../hsm/signer.ts';
import type { Key, Store, StoreStats, Table, Tx } from '../store/store.ts';

export const SOFTHSM_MODULE = process.env.YINXIN_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
const PIN = '1234';
const TOKEN = 'yinxin-bench';

/** Creates a SoftHSM2 token directory and config; returns the SOFTHSM2_CONF path. */
export function prepareSoftHsm(dir: string): string {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', TOKEN, '--pin', PIN, '--so-pin', PIN], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'pipe' });
  return conf;
}

let cachedSession: graphene.Session | undefined;

/** One logged-in session per process (PKCS#11 login state is per application). */
function openSession(): graphene.Session {
  cachedSession ??= loginSession();
  return cachedSession;
}

function loginSession(): graphene.Session {
  const mod = graphene.Module.load(SOFTHSM_MODULE, 'SoftHSM2');
  mod.initialize();
  const slots = mod.getSlots(true);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    if (slot.getToken().label.trim() === TOKEN) {
      const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
      session.login(PIN, graphene.UserType.USER);
      return session;
    }
  }
  throw new Error(`token ${TOKEN} not found`);
}

function spkiOf(publicKey: graphene.PublicKey): Uint8Array {
  const point = asn1js.fromBER(publicKey.getAttribute({ pointEC: null }).pointEC as Buffer).result as asn1js.OctetString;
  return new Uint8Array(new asn1js.Sequence({
    value: [
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.ecPublicKey }), new asn1js.ObjectIdentifier({ value: OID.secp256r1 })] }),
      new asn1js.BitString({ valueHex: point.valueBlock.valueHexView }),
    ],
  }).toBER(false));
}

export function generateSoftHsmKey(label: string): void {
  const session = openSession();
  session.generateKeyPair(graphene.KeyGenMechanism.EC,
    { keyType: graphene.KeyType.EC, token: true, verify: true, label, id: Buffer.from(label), paramsEC: graphene.NamedCurve.getByName('secp256r1').value },
    { keyType: graphene.KeyType.EC, token: true, sign: true, private: true, sensitive: true, extractable: false, label, id: Buffer.from(label) });
}

export interface SoftHsmSigner extends Signer {
  /** One synchronous C_SignInit + C_Sign over a SHA-256 digest, returning r||s. */
  signRawSync(data: Uint8Array): Buffer;
}

export function softHsmSigner(label: string): SoftHsmSigner {
  const session = openSession();
  const privateKey = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label }).items(0).toType<graphene.PrivateKey>();
  const publicKey = session.find({ class: graphene.ObjectClass.PUBLIC_KEY, label }).items(0).toType<graphene.PublicKey>();
  const signRawSync = (data: Uint8Array) => session.createSign('ECDSA', privateKey).once(createHash('sha256').update(data).digest());
  return {
    label,
    spec: { type: 'ec', curve: 'P-256' },
    scheme: 'ecdsa-sha256',
    publicKeyInfo: spkiOf(publicKey),
    signRawSync,
    async sign(data: Uint8Array, _scheme?: SignatureScheme) {
      return ecdsaRawToDer(signRawSync(data));
    },
  };
}

/** A Store over lmdb-js: async transactions are batched by lmdb into one durable commit. */
export function openBenchLmdbStore(path: string): Store {
  const root: RootDatabase = openLmdb({ path, compression: false });
  const dbs = new Map<string, Database>();
  const db = (name: string) => {
    let d = dbs.get(name);
    if (!d) dbs.set(name, (d = root.openDB({ name })));
    return d;
  };
  return {
    path,
    readOnly: false,
    table<V>(name: string): Table<V> {
      const d = db(name);
      return {
        name,
        get: (key: Key) => d.get(key as never) as V | undefined,
        has: (key: Key) => d.doesExist(key as never),
        range: () => [],
        count: () => d.getCount(),
      };
    },
    transaction<R>(fn: (tx: Tx) => R): Promise<R> {
      const after: Array<() => void> = [];
      const tx: Tx = {
        get: <V>(t: Table<V>, key: Key) => db(t.name).get(key as never) as V | undefined,
        put: (t, key, value) => void db(t.name).put(key as never, value),
        remove: (t, key) => void db(t.name).remove(key as never),
        afterCommit: (f) => void after.push(f),
      };
      return root.transaction(() => fn(tx)).then((r) => {
        after.forEach((f) => f());
        return r;
      });
    },
    async backup() {},
    stats(): StoreStats {
      return { sizeBytes: 0, entries: {} };
    },
    close: () => root.close(),
  };
}
