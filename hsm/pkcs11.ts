/**
 * The KeyStore over a PKCS#11 token (graphene-pk11 loads the module; the hot path calls its
 * pkcs11js binding directly). Every private key is generated inside the token, sensitive and
 * never extractable; this file only ever sees public halves, handles and signatures.
 *
 * Signing concurrency (measured with bench/hsm-sign.ts on 2 cores, SoftHSM 2.6):
 *  - A PKCS#11 session runs one operation at a time (C_SignInit .. C_Sign), so every thread
 *    that signs owns a session: the main thread has one, and each signing worker thread
 *    (hsm/pkcs11-worker.ts) opens its own.
 *  - pkcs11js' async C_Sign (libuv pool) was measured and rejected: C_SignInit stays on the
 *    main thread, and for a token key it costs SoftHSM ~27 us of the ~48 us a signature takes,
 *    so the main thread remained the bottleneck (about 1.1x with 4 sessions). A worker thread
 *    does C_SignInit + C_Sign, and SoftHSM scales across threads of one process (1.75x on 2).
 *  - Policy for ECDSA and Ed25519 (tens of microseconds): the main thread signs them, helped
 *    by one helper thread through shared memory (hsm/sign-ring.ts). With nothing outstanding a
 *    light signature is made synchronously inside sign(): one caller gets the raw rate.
 *    Concurrent requests queue instead (a request arriving before the microtask queue has
 *    drained since the last synchronous signature counts as concurrent) and are settled by a
 *    drain on the next turn (setImmediate), after the work already queued for it: a TSA's ledger
 *    commit is handed to its thread before the main thread spends its time signing, so the fsync
 *    and the signatures overlap. From the second queued request on, each is also published to
 *    the helper as it is asked for, so the helper signs while the main thread goes on preparing
 *    the next requests; the drain signs here what the helper has not taken. All of a turn's
 *    requests are settled in its drain (one the helper is still signing after a brief wait, when
 *    it answers), so the commit they lead to is not split.
 *    Why this shape: handing each signature to a thread by postMessage and taking its answer
 *    back cost the main thread about what signing it does (~14 us a message here), so light
 *    signatures used to be signed on the main thread alone. A shared slot costs a digest copy
 *    and a few atomic operations. The helper runs at the lowest priority (nice 19): at the
 *    process's priority it took the other core from the commit thread, whose fsync'd commits then
 *    started later (TSA core at 16 callers 9.5k/s instead of 10.9k/s). Measured on 2 cores,
 *    ECDSA P-256 in SoftHSM2 (bench/seal.ts, bench/tsa.ts; docs/seal.md, docs/tsa.md): with 16
 *    callers CAdES seals +9% and the TSA core +3% (means of five alternating runs), with 64
 *    callers both within run-to-run noise; POST /tsa in one process 12.1k/s instead of 9.9k/s
 *    with 64 connections. A process started with no signing threads (sessionPool 0, as each of
 *    N public processes on N cores is) has no helper either.
 *  - RSA (milliseconds: RSA-4096 would block the event loop for ~10 ms) never signs on the main
 *    thread while it has signing threads: the first RSA signature starts them, each idle one
 *    takes an equal part of the queued RSA requests, and the rest wait for one to finish.
 */
import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { Mechanism, PKCS11, Template } from 'pkcs11js';
import { YinxinError } from '../common/errors.ts';
import { assertSchemeFitsKey, defaultScheme, describeKeySpec, ecdsaRawToDer, OID } from './algorithms.ts';
import {
  acquireModule, CKK_EC_EDWARDS, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, ckr, firstLine, P, releaseModule, tokenLabelText, toYinxinError,
  type LoadedModule,
} from './pkcs11-module.ts';
import type { SignJob, SignResult, WorkerInit } from './pkcs11-worker.ts';
import { CONTROL, createRingBuffers, SignRing, SLOT } from './sign-ring.ts';
import type { KeyInfo, KeySpec, KeyStore, SignatureScheme, Signer } from './signer.ts';

export interface Pkcs11Options {
  /** Path of the PKCS#11 library (YINXIN_PKCS11_MODULE). */
  module: string;
  /** Slot ID, as pkcs11-tool and softhsm2-util print it (YINXIN_PKCS11_SLOT). */
  slot?: number | string;
  /** Token label (YINXIN_PKCS11_TOKEN); when neither slot nor label is given, the first initialized token. */
  tokenLabel?: string;
  /** User PIN (YINXIN_PKCS11_PIN). */
  pin: string;
  /**
   * Signing threads for RSA, each with its own session, started by the first RSA signature;
   * default the number of CPUs. 0 signs RSA on the main thread too, and starts no helper for
   * ECDSA and Ed25519 either (see the policy above).
   */
  sessionPool?: number;
  /**
   * Use keys through working copies made inside the token as session objects (C_CopyObject with
   * CKA_TOKEN false; default true, YINXIN_PKCS11_SESSION_KEYS). See the note on working copies below.
   */
  sessionKeyCopies?: boolean;
  /** How often the token objects behind working copies are checked to still exist (ms; default 10,000). */
  workingCopyCheckMs?: number;
}

export interface Pkcs11Stats {
  signs: number;
  signErrors: number;
  signingThreads: number;
  signHelper: boolean;
  helperSigns: number;
}

export interface Pkcs11KeyStore extends KeyStore {
  /** The slot ID in use and the token's label. */
  readonly slotId: number;
  readonly tokenLabel: string;
  /** Whether the module can generate Ed25519 keys (CKM_EC_EDWARDS_KEY_PAIR_GEN). */
  readonly supportsEd25519: boolean;
  /**
   * Also: the signing threads running (RSA's; none until the first RSA signature), whether the
   * helper that shares light signatures runs, and how many of `signs` it made.
   */
  stats(): Pkcs11Stats;
}

const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

/** PINs that logged in per module and slot: C_Login answers CKR_USER_ALREADY_LOGGED_IN without checking the PIN. */
const loginDigests = new WeakMap<LoadedModule, Map<number, string>>();

export async function openPkcs11KeyStore(options: Pkcs11Options): Promise<Pkcs11KeyStore> {
  const loaded = acquireModule(options.module);
  let session: Buffer | undefined;
  try {
    const { lib } = loaded;
    const slot = selectSlot(lib, options);
    const token = lib.C_GetTokenInfo(slot);
    const tokenLabel = tokenLabelText(token.label);
    const slotId = handleToNumber(slot);
    if ((token.flags & P.CKF_TOKEN_INITIALIZED) === 0) {
      throw new YinxinError('config-invalid', `the token in slot ${slotId} is not initialized: run \`yinxin init\` (or softhsm2-util --init-token) or point YINXIN_PKCS11_SLOT / YINXIN_PKCS11_TOKEN at an initialized token`);
    }
    if ((token.flags & P.CKF_USER_PIN_INITIALIZED) === 0) {
      throw new YinxinError('config-invalid', `the token "${tokenLabel}" has no user PIN yet: initialize it (yinxin init) before use`);
    }
    session = lib.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    login(loaded, slotId, session, options.pin, tokenLabel);
    const mechanisms = lib.C_GetMechanismList(slot);
    const threads = options.sessionPool ?? availableParallelism();
    return new Pkcs11Store(loaded, slot, slotId, tokenLabel, session, mechanisms.includes(CKM_EC_EDWARDS_KEY_PAIR_GEN), threads,
      options.sessionKeyCopies ?? true, options.workingCopyCheckMs ?? 10_000);
  } catch (e) {
    if (session) try { loaded.lib.C_CloseSession(session); } catch { /* the failure above is the one to report */ }
    releaseModule(loaded);
    throw toYinxinError(e, 'opening the key store');
  }
}

function selectSlot(lib: PKCS11, options: Pkcs11Options): Buffer {
  const slots = lib.C_GetSlotList(true);
  const describe = () => slots.map((s) => `${handleToNumber(s)} "${tokenLabelText(lib.C_GetTokenInfo(s).label)}"`).join(', ') || 'none';
  let candidates = slots;
  if (options.slot !== undefined && options.slot !== '') {
    const wanted = Number(options.slot);
    candidates = slots.filter((s) => handleToNumber(s) === wanted);
    if (!candidates.length) {
      throw new YinxinError('config-invalid', `no PKCS#11 slot with ID ${options.slot} holds a token: fix YINXIN_PKCS11_SLOT (slots with tokens: ${describe()})`);
    }
  }
  if (options.tokenLabel) {
    const byLabel = candidates.filter((s) => tokenLabelText(lib.C_GetTokenInfo(s).label) === options.tokenLabel);
    if (!byLabel.length) {
      throw new YinxinError('config-invalid', `no PKCS#11 token labelled "${options.tokenLabel}": fix YINXIN_PKCS11_TOKEN (tokens present: ${describe()})`);
    }
    return byLabel[0];
  }
  const initialized = candidates.find((s) => (lib.C_GetTokenInfo(s).flags & P.CKF_TOKEN_INITIALIZED) !== 0);
  if (initialized) return initialized;
  if (candidates.length) return candidates[0]; // reported as not initialized by the caller
  throw new YinxinError('config-invalid', `the PKCS#11 module ${options.module} shows no token: initialize one (yinxin init) or set YINXIN_PKCS11_SLOT / YINXIN_PKCS11_TOKEN`);
}

function login(loaded: LoadedModule, slotId: number, session: Buffer, pin: string, tokenLabel: string): void {
  const digest = createHash('sha256').update(`${slotId}\0${pin}`).digest('hex');
  let digests = loginDigests.get(loaded);
  if (!digests) loginDigests.set(loaded, (digests = new Map()));
  try {
    loaded.lib.C_Login(session, P.CKU_USER, pin);
    digests.set(slotId, digest);
  } catch (e) {
    const c = ckr(e);
    if (c === P.CKR_USER_ALREADY_LOGGED_IN) {
      const known = digests.get(slotId);
      if (known === undefined || known === digest) return;
      throw new YinxinError('hsm-login-failed', `the token "${tokenLabel}" refused the PIN: check YINXIN_PKCS11_PIN`);
    }
    if (c === P.CKR_PIN_INCORRECT || c === P.CKR_PIN_LEN_RANGE || c === P.CKR_PIN_INVALID) {
      throw new YinxinError('hsm-login-failed', `the token "${tokenLabel}" refused the PIN: check YINXIN_PKCS11_PIN`, undefined, { cause: e });
    }
    if (c === P.CKR_PIN_LOCKED) {
      throw new YinxinError('hsm-login-failed', `the user PIN of the token "${tokenLabel}" is locked after too many wrong attempts: the security officer must reset it, then set YINXIN_PKCS11_PIN`, undefined, { cause: e });
    }
    throw toYinxinError(e, 'C_Login', tokenLabel);
  }
}

function handleToNumber(handle: Buffer): number {
  return handle.length >= 8 ? Number(handle.readBigUInt64LE(0)) : handle.readUInt32LE(0);
}

function ulong(value: Buffer): number {
  return value.length >= 8 ? Number(value.readBigUInt64LE(0)) : value.readUInt32LE(0);
}

// ---------------------------------------------------------------------------------------------
// Mechanisms

interface SignMechanism {
  mechanism: Mechanism;
  prehash: string | null;
  /**
   * Signed on the main thread with the helper (tens of microseconds), which is given the input
   * the main thread prepared (signInput) and a mechanism without parameters. The others (RSA) go
   * to a signing thread, which signs `data` as it is and returns the token's output: so they have
   * no prehash and no ecdsa conversion (hsm/pkcs11-worker.ts).
   */
  light: boolean;
  ecdsa: boolean;
}

function pssMechanism(ckm: number, hashCkm: number, mgf: number, saltLen: number): Mechanism {
  return { mechanism: ckm, parameter: { type: P.CK_PARAMS_RSA_PSS, hashAlg: hashCkm, mgf, saltLen } as Mechanism['parameter'] };
}

const signMechanisms: Record<SignatureScheme, SignMechanism> = {
  // SoftHSM (like many HSMs) offers only the raw CKM_ECDSA: we hash, it signs the digest.
  'ecdsa-sha256': { mechanism: { mechanism: P.CKM_ECDSA }, prehash: 'sha256', light: true, ecdsa: true },
  'ecdsa-sha384': { mechanism: { mechanism: P.CKM_ECDSA }, prehash: 'sha384', light: true, ecdsa: true },
  'ecdsa-sha512': { mechanism: { mechanism: P.CKM_ECDSA }, prehash: 'sha512', light: true, ecdsa: true },
  'rsa-pkcs1-sha256': { mechanism: { mechanism: P.CKM_SHA256_RSA_PKCS }, prehash: null, light: false, ecdsa: false },
  'rsa-pkcs1-sha384': { mechanism: { mechanism: P.CKM_SHA384_RSA_PKCS }, prehash: null, light: false, ecdsa: false },
  'rsa-pkcs1-sha512': { mechanism: { mechanism: P.CKM_SHA512_RSA_PKCS }, prehash: null, light: false, ecdsa: false },
  // RFC 4055 s3.1 / RFC 8017 s9.1: MGF1 with the message hash, salt as long as the hash.
  'rsa-pss-sha256': { mechanism: pssMechanism(P.CKM_SHA256_RSA_PKCS_PSS, P.CKM_SHA256, P.CKG_MGF1_SHA256, 32), prehash: null, light: false, ecdsa: false },
  'rsa-pss-sha384': { mechanism: pssMechanism(P.CKM_SHA384_RSA_PKCS_PSS, P.CKM_SHA384, P.CKG_MGF1_SHA384, 48), prehash: null, light: false, ecdsa: false },
  'rsa-pss-sha512': { mechanism: pssMechanism(P.CKM_SHA512_RSA_PKCS_PSS, P.CKM_SHA512, P.CKG_MGF1_SHA512, 64), prehash: null, light: false, ecdsa: false },
  // PKCS#11 v3.0 s2.3.14: CKM_EDDSA without parameters is pure Ed25519 (RFC 8032).
  'ed25519': { mechanism: { mechanism: CKM_EDDSA }, prehash: null, light: true, ecdsa: false },
};

// ---------------------------------------------------------------------------------------------
// Dispatch of signatures over the main thread and the worker threads

interface PendingSign {
  key: Buffer;
  how: SignMechanism;
  data: Uint8Array;
  label: string;
  resolve: (signature: Uint8Array) => void;
  reject: (error: unknown) => void;
  /** A light request published to the helper's ring: its slot and the input as published (hsm/sign-ring.ts). */
  slot?: number;
  input?: Uint8Array;
}

/** The thread that shares the light signatures (hsm/sign-ring.ts). */
interface SignHelper {
  worker: Worker;
  ring: SignRing;
  /** False once it failed, was closed or did not answer in time: nothing more is published to it. */
  usable: boolean;
}

/** How long a drain waits for the helper to finish a signature it started before it leaves the request to be settled later. */
const HELPER_BRIEF_WAIT_MS = 0.1;
/** How long a request the helper started may take before it is signed here instead and the helper retired. */
const HELPER_TIMEOUT_MS = 2000;

interface SigningThread {
  worker: Worker;
  ready: boolean;
  inFlight: Map<number, PendingSign>;
}

class SignDispatcher {
  readonly #lib: PKCS11;
  readonly #session: Buffer;
  readonly #workerInit: WorkerInit;
  readonly #threads: SigningThread[] = [];
  readonly #maxThreads: number;
  #helper: SignHelper | undefined;
  /** Requests the helper is still signing after their drain. */
  #awaitingHelper = 0;
  readonly #out = Buffer.alloc(1024);
  #queue: PendingSign[] = [];
  #scheduled = false;
  #nextId = 1;
  #workerFailures = 0;
  #closed = false;
  /** Set by a synchronous signature until the microtasks queued before it have run. */
  #justSigned = false;
  readonly #clearJustSigned = () => { this.#justSigned = false; };
  signs = 0;
  signErrors = 0;
  /** Of `signs`, those the helper made. */
  helperSigns = 0;

  /** Whether the helper thread is running (started by the first concurrent light requests). */
  get helperRunning(): boolean {
    return this.#helper?.usable === true;
  }

  get threads(): number {
    return this.#threads.length;
  }

  constructor(lib: PKCS11, session: Buffer, workerInit: WorkerInit, maxThreads: number) {
    this.#lib = lib;
    this.#session = session;
    this.#workerInit = workerInit;
    this.#maxThreads = maxThreads;
  }

  sign(key: Buffer, how: SignMechanism, data: Uint8Array, label: string): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(closedError());
    if (how.light && this.#queue.length === 0 && !this.#justSigned) {
      this.#justSigned = true;
      queueMicrotask(this.#clearJustSigned);
      try {
        return Promise.resolve(this.#signHere(key, how, signInput(how, data), label));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      const pending: PendingSign = { key, how, data, label, resolve, reject };
      if (how.light) this.#share(pending);
      this.#queue.push(pending);
      this.#schedule();
    });
  }

  /**
   * Publishes a queued light request to the helper, which may sign it before the drain does: from
   * the second request waiting on, since waking the helper for one alone costs this thread more
   * than it saves.
   */
  #share(pending: PendingSign): void {
    if (this.#maxThreads === 0 || this.#closed || this.#queue.length === 0) return;
    const helper = this.#helper ??= this.#startHelper();
    if (!helper.usable || Atomics.load(helper.ring.control, CONTROL.ready) !== 1) return;
    const input = signInput(pending.how, pending.data);
    const slot = helper.ring.publish(pending.key, pending.how.mechanism.mechanism, input);
    if (slot < 0) return;
    pending.slot = slot;
    pending.input = input;
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => this.#drain());
  }

  #usableThreads(): number {
    return this.#workerFailures >= 3 ? 0 : this.#maxThreads;
  }

  #drain(): void {
    this.#scheduled = false;
    if (this.#closed || this.#queue.length === 0) return;
    const queue = this.#queue;
    this.#queue = [];
    const heavy = queue.filter((p) => !p.how.light);
    // Threads are started by the first RSA signature: a store that only signs ECDSA or Ed25519 has none.
    if (heavy.length > 0) while (this.#threads.length < this.#usableThreads()) this.#startThread();
    const noWorkers = this.#threads.length === 0;
    // RSA to the idle workers in equal parts, sent before this thread signs the light requests so
    // that they work meanwhile; what finds no idle worker waits for one.
    const idle = this.#threads.filter((t) => t.ready && t.inFlight.size === 0);
    const share = Math.ceil(heavy.length / Math.max(1, idle.length));
    let next = 0;
    for (const thread of idle) {
      if (next >= heavy.length) break;
      this.#send(thread, heavy.slice(next, next + share));
      next += share;
    }
    for (const pending of heavy.slice(next)) {
      if (noWorkers) this.#settleHere(pending);
      else this.#queue.push(pending);
    }
    // What the helper has not started on is taken back and signed here, from the end of the queue
    // (the helper works from its start); then the helper's answers are read, in queue order,
    // waiting for the ones it is signing. All of this turn's requests are settled in this drain.
    const helperTook: PendingSign[] = [];
    for (let i = queue.length - 1; i >= 0; i--) {
      const p = queue[i];
      if (!p.how.light) continue;
      if (p.slot === undefined || this.#helper!.ring.steal(p.slot)) this.#settleHere(p);
      else helperTook.push(p);
    }
    for (let i = helperTook.length - 1; i >= 0; i--) this.#settleFromHelper(helperTook[i]);
  }

  #settleFromHelper(p: PendingSign): void {
    const helper = this.#helper!;
    const slot = p.slot!;
    // Usually the helper is in the middle of a signature: wait for it here, briefly. If it has not
    // answered by then it was most likely preempted (it runs at the lowest priority), and this
    // thread goes on with its own work and settles the request when the answer comes.
    Atomics.wait(helper.ring.state, slot, SLOT.taken, HELPER_BRIEF_WAIT_MS);
    const answer = helper.ring.answerOf(slot);
    if (answer !== undefined) return this.#settleAnswer(p, answer);
    if (this.#awaitingHelper++ === 0) helper.worker.ref();
    void helper.ring.answered(slot, HELPER_TIMEOUT_MS).then(() => {
      if (--this.#awaitingHelper === 0) helper.worker.unref();
      const late = helper.ring.answerOf(slot);
      if (late !== undefined) return this.#settleAnswer(p, late);
      // No answer in all that time: the slot stays the helper's, the ring is given up, and the request is signed here.
      helper.usable = false;
      void helper.worker.terminate();
      this.#settleHere(p);
    });
  }

  #settleAnswer(p: PendingSign, answer: Buffer | number): void {
    if (typeof answer === 'number') {
      this.signErrors++;
      p.reject(toYinxinError({ code: answer }, 'C_Sign', p.label));
    } else {
      this.signs++;
      this.helperSigns++;
      p.resolve(p.how.ecdsa ? ecdsaRawToDer(answer) : new Uint8Array(answer));
    }
  }

  #settleHere(p: PendingSign): void {
    try {
      p.resolve(this.#signHere(p.key, p.how, p.input ?? signInput(p.how, p.data), p.label));
    } catch (e) {
      p.reject(e);
    }
  }

  #signHere(key: Buffer, how: SignMechanism, input: Uint8Array, label: string): Uint8Array {
    let raw: Buffer;
    try {
      this.#lib.C_SignInit(this.#session, how.mechanism, key);
      raw = this.#lib.C_Sign(this.#session, Buffer.from(input.buffer, input.byteOffset, input.byteLength), this.#out);
    } catch (e) {
      this.signErrors++;
      throw toYinxinError(e, 'C_Sign', label);
    }
    this.signs++;
    return how.ecdsa ? ecdsaRawToDer(raw) : new Uint8Array(raw);
  }

  #send(thread: SigningThread, batch: PendingSign[]): void {
    const jobs: SignJob[] = batch.map((p) => {
      const id = this.#nextId++;
      thread.inFlight.set(id, p);
      // Copies of exactly their own bytes: a Buffer from Node's pool is a view of an 8 KiB slab,
      // and structured cloning a view clones its whole ArrayBuffer.
      return { id, key: new Uint8Array(p.key), mechanism: p.how.mechanism, data: new Uint8Array(p.data) };
    });
    thread.worker.ref();
    thread.worker.postMessage(jobs);
  }

  #startHelper(): SignHelper {
    const buffers = createRingBuffers();
    const worker = startSigningWorker({ ...this.#workerInit, ring: buffers });
    const helper: SignHelper = { worker, ring: new SignRing(buffers), usable: true };
    // It keeps the process alive only while it owes an answer (#settleFromHelper).
    worker.unref();
    const retire = () => { helper.usable = false; };
    worker.on('error', retire);
    worker.on('exit', retire);
    return helper;
  }

  #startThread(): void {
    const worker = startSigningWorker(this.#workerInit);
    const thread: SigningThread = { worker, ready: false, inFlight: new Map() };
    worker.unref();
    worker.on('message', (message: 'ready' | 'closed' | SignResult[]) => {
      if (message === 'closed') return;
      if (message === 'ready') {
        thread.ready = true;
      } else {
        for (const result of message) {
          const pending = thread.inFlight.get(result.id);
          thread.inFlight.delete(result.id);
          if (!pending) continue;
          if ('signature' in result) {
            this.signs++;
            pending.resolve(result.signature);
          } else {
            this.signErrors++;
            pending.reject(toYinxinError(result.error, 'C_Sign', pending.label));
          }
        }
        if (thread.inFlight.size === 0) worker.unref();
      }
      if (this.#queue.length) this.#schedule();
    });
    worker.on('error', (e) => this.#threadFailed(thread, e));
    worker.on('exit', (code) => { if (!this.#closed) this.#threadFailed(thread, new Error(`signing thread exited with code ${code}`)); });
    this.#threads.push(thread);
  }

  #threadFailed(thread: SigningThread, e: unknown): void {
    const index = this.#threads.indexOf(thread);
    if (index < 0) return;
    this.#threads.splice(index, 1);
    this.#workerFailures++;
    for (const pending of thread.inFlight.values()) {
      this.signErrors++;
      pending.reject(new YinxinError('hsm-unavailable', `a PKCS#11 signing thread failed: ${firstLine(e)}`));
    }
    thread.inFlight.clear();
    void thread.worker.terminate();
    if (this.#queue.length) this.#schedule();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const helper = this.#helper;
    if (helper?.usable) {
      helper.usable = false;
      Atomics.store(helper.ring.control, CONTROL.closing, 1);
      Atomics.notify(helper.ring.control, CONTROL.published);
      const exited = new Promise<void>((resolve) => helper.worker.once('exit', () => resolve()));
      const timer = setTimeout(() => void helper.worker.terminate(), 1000);
      await exited;
      clearTimeout(timer);
    }
    for (const pending of this.#queue) pending.reject(closedError());
    this.#queue = [];
    const threads = this.#threads.splice(0);
    for (const t of threads) for (const pending of t.inFlight.values()) pending.reject(closedError());
    // Each thread closes its session (other key stores of this process may keep the token open).
    await Promise.all(threads.map(async (t) => {
      if (t.ready) {
        const closed = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          t.worker.on('message', (m) => { if (m === 'closed') { clearTimeout(timer); resolve(); } });
        });
        t.worker.postMessage('close');
        await closed;
      }
      await t.worker.terminate();
    }));
  }
}

/** hsm/pkcs11-worker.ts on a thread: an RSA signing thread, or with `init.ring` the helper. */
function startSigningWorker(init: WorkerInit): Worker {
  // A signing thread keeps almost nothing alive (its modules, one batch at a time), but V8 sizes
  // every isolate's heap for a whole application and lets garbage pile up to that size before
  // collecting it: about 25 MiB of RSS per thread under load, without these limits.
  return new Worker(new URL('./pkcs11-worker.ts', import.meta.url), {
    workerData: init,
    resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
  });
}

/** What the token is given to sign: the digest for the ECDSA mechanisms, which do not hash; the data itself otherwise. */
function signInput(how: SignMechanism, data: Uint8Array): Uint8Array {
  return how.prehash ? createHash(how.prehash).update(data).digest() : data;
}

function closedError(): YinxinError {
  return new YinxinError('hsm-unavailable', 'the PKCS#11 key store is closed');
}

// ---------------------------------------------------------------------------------------------
// Public keys

function unwrapEcPoint(value: Buffer, expectedLengths: number[]): Uint8Array {
  // CKA_EC_POINT is DER OCTET STRING (PKCS#11 v2.40 s2.3.3); some modules return the bare point.
  if (value[0] === 0x04) {
    const parsed = asn1js.fromBER(value);
    if (parsed.offset === value.length && parsed.result instanceof asn1js.OctetString) {
      const inner = new Uint8Array(parsed.result.valueBlock.valueHexView);
      if (expectedLengths.includes(inner.length)) return inner;
    }
  }
  return new Uint8Array(value);
}

function unsignedInteger(bytes: Buffer): asn1js.Integer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return new asn1js.Integer({ valueHex: trimmed[0] & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed });
}

interface PublicHalf { spki: Uint8Array; subjectPublicKey: Uint8Array }

function buildSpki(algorithm: pkijs.AlgorithmIdentifier, subjectPublicKey: Uint8Array): PublicHalf {
  const info = new pkijs.PublicKeyInfo();
  info.algorithm = algorithm;
  info.subjectPublicKey = new asn1js.BitString({ valueHex: subjectPublicKey });
  return { spki: new Uint8Array(info.toSchema().toBER(false)), subjectPublicKey };
}

const curveOids: Record<string, 'P-256' | 'P-384'> = { [OID.secp256r1]: 'P-256', [OID.secp384r1]: 'P-384' };
const curveOidOf = { 'P-256': OID.secp256r1, 'P-384': OID.secp384r1 } as const;
const pointLength = { 'P-256': 65, 'P-384': 97 } as const;

function oidDer(oid: string): Buffer {
  return Buffer.from(new asn1js.ObjectIdentifier({ value: oid }).toBER(false));
}

// ---------------------------------------------------------------------------------------------
// The store

interface FoundKey { priv: Buffer; pub: Buffer | null; spec: KeySpec; id: string }

class Pkcs11Signer implements Signer {
  readonly label: string;
  readonly spec: KeySpec;
  readonly publicKeyInfo: Uint8Array;
  readonly scheme: SignatureScheme;
  readonly #key: Buffer;
  readonly #dispatcher: SignDispatcher;

  constructor(label: string, spec: KeySpec, publicKeyInfo: Uint8Array, key: Buffer, dispatcher: SignDispatcher) {
    this.label = label;
    this.spec = spec;
    this.publicKeyInfo = publicKeyInfo;
    this.scheme = defaultScheme(spec);
    this.#key = key;
    this.#dispatcher = dispatcher;
  }

  sign(data: Uint8Array, scheme: SignatureScheme = this.scheme): Promise<Uint8Array> {
    try {
      assertSchemeFitsKey(scheme, this.spec);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#dispatcher.sign(this.#key, signMechanisms[scheme], data, this.label);
  }
}

class Pkcs11Store implements Pkcs11KeyStore {
  readonly slotId: number;
  readonly tokenLabel: string;
  readonly supportsEd25519: boolean;
  readonly #loaded: LoadedModule;
  readonly #lib: PKCS11;
  readonly #slot: Buffer;
  readonly #session: Buffer;
  readonly #dispatcher: SignDispatcher;
  readonly #copyKeys: boolean;
  readonly #copyCheckMs: number;
  #copyCheck: NodeJS.Timeout | undefined;
  /** The handles keys are used through, by "private:<label>" or "secret:<label>": a working copy, or the token object itself where copies are off or refused. */
  readonly #workingCopies = new Map<string, { tokenObject: Buffer; handle: Buffer }>();
  /** Why the token refused a working copy, if it did (reported by health()). */
  #copyRefused: string | undefined;
  #closed = false;

  constructor(loaded: LoadedModule, slot: Buffer, slotId: number, tokenLabel: string, session: Buffer, ed25519: boolean, threads: number, copyKeys: boolean, copyCheckMs: number) {
    this.#loaded = loaded;
    this.#lib = loaded.lib;
    this.#slot = slot;
    this.slotId = slotId;
    this.tokenLabel = tokenLabel;
    this.#session = session;
    this.supportsEd25519 = ed25519;
    this.#copyKeys = copyKeys;
    this.#copyCheckMs = copyCheckMs;
    this.#dispatcher = new SignDispatcher(loaded.lib, session, { modulePath: loaded.path, slot: new Uint8Array(slot) }, threads);
  }


  #assertOpen(): void {
    if (this.#closed) throw closedError();
  }

  /** Runs synchronous PKCS#11 calls on the main session, mapping failures to YinxinError. */
  #call<T>(operation: string, subject: string | undefined, f: () => T): T {
    this.#assertOpen();
    try {
      return f();
    } catch (e) {
      throw toYinxinError(e, operation, subject);
    }
  }

  /** Token objects matching the template (never the working copies, which are session objects). */
  #find(template: Template, session: Buffer = this.#session): Buffer[] {
    const lib = this.#lib;
    lib.C_FindObjectsInit(session, [...template, { type: P.CKA_TOKEN, value: true }]);
    try {
      const found: Buffer[] = [];
      for (;;) {
        const batch = lib.C_FindObjects(session, 64);
        found.push(...batch);
        if (batch.length < 64) return found;
      }
    } finally {
      lib.C_FindObjectsFinal(session);
    }
  }

  #attrs(object: Buffer, types: number[]): Map<number, Buffer> {
    const result = this.#lib.C_GetAttributeValue(this.#session, object, types.map((type) => ({ type })));
    return new Map(result.map((a) => [a.type, a.value]));
  }

  #findKey(label: string): FoundKey | null {
    const [priv] = this.#find([{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, { type: P.CKA_LABEL, value: label }]);
    if (!priv) return null;
    const a = this.#attrs(priv, [P.CKA_KEY_TYPE, P.CKA_ID]);
    const id = a.get(P.CKA_ID) ?? Buffer.alloc(0);
    const pubs = this.#find([{ type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY }, { type: P.CKA_LABEL, value: label }]);
    return { priv, pub: pubs[0] ?? null, spec: this.#specOf(priv, ulong(a.get(P.CKA_KEY_TYPE)!), label), id: id.toString('hex') };
  }

  /** Recovers the KeySpec from the key's own attributes (a restart knows nothing else). */
  #specOf(key: Buffer, keyType: number, label: string): KeySpec {
    if (keyType === P.CKK_RSA) {
      const modulus = this.#attrs(key, [P.CKA_MODULUS]).get(P.CKA_MODULUS)!;
      let bits = modulus.length * 8;
      for (let i = 0; i < modulus.length && modulus[i] === 0; i++) bits -= 8;
      if (bits === 2048 || bits === 3072 || bits === 4096) return { type: 'rsa', bits };
      throw new YinxinError('unsupported-algorithm', `the key "${label}" is RSA-${bits}, which yinxin does not use`);
    }
    if (keyType === P.CKK_EC) {
      const params = this.#attrs(key, [P.CKA_EC_PARAMS]).get(P.CKA_EC_PARAMS)!;
      const parsed = asn1js.fromBER(params);
      const oid = parsed.result instanceof asn1js.ObjectIdentifier ? parsed.result.valueBlock.toString() : '';
      const curve = curveOids[oid];
      if (!curve) throw new YinxinError('unsupported-algorithm', `the key "${label}" is on an EC curve yinxin does not use (${oid || 'explicit parameters'})`);
      return { type: 'ec', curve };
    }
    if (keyType === CKK_EC_EDWARDS) return { type: 'ed25519' };
    throw new YinxinError('unsupported-algorithm', `the key "${label}" has PKCS#11 key type 0x${keyType.toString(16)}, which yinxin does not use`);
  }

  #publicHalf(found: FoundKey, label: string): PublicHalf {
    const { spec } = found;
    if (spec.type === 'rsa') {
      const source = found.pub ?? found.priv;
      const a = this.#attrs(source, [P.CKA_MODULUS, P.CKA_PUBLIC_EXPONENT]);
      const rsaKey = new pkijs.RSAPublicKey({ modulus: unsignedInteger(a.get(P.CKA_MODULUS)!), publicExponent: unsignedInteger(a.get(P.CKA_PUBLIC_EXPONENT)!) });
      const algorithm = new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() });
      return buildSpki(algorithm, new Uint8Array(rsaKey.toSchema().toBER(false)));
    }
    if (!found.pub) throw new YinxinError('key-not-found', `the public half of the key "${label}" is missing from the token`);
    const point = this.#attrs(found.pub, [P.CKA_EC_POINT]).get(P.CKA_EC_POINT)!;
    if (spec.type === 'ec') {
      const algorithm = new pkijs.AlgorithmIdentifier({ algorithmId: OID.ecPublicKey, algorithmParams: new asn1js.ObjectIdentifier({ value: curveOidOf[spec.curve] }) });
      return buildSpki(algorithm, unwrapEcPoint(point, [pointLength[spec.curve]]));
    }
    // RFC 8410 s4: the parameters are absent, the key is the 32-byte encoded point.
    return buildSpki(new pkijs.AlgorithmIdentifier({ algorithmId: OID.ed25519 }), unwrapEcPoint(point, [32]));
  }

  /**
   * The handle to use a key through: a working copy of the token object made inside the token as
   * a session object (C_CopyObject, CKA_TOKEN false; PKCS#11 v2.40 s5.7). The copy keeps the
   * original's CKA_SENSITIVE, CKA_EXTRACTABLE false and CKA_PRIVATE, lives in the token's memory
   * and is destroyed with the main session (close(), or the token losing power): the key still
   * never leaves the HSM. Why: SoftHSM2 re-reads a token object's file (open, fcntl lock, read,
   * fstat, close) on every C_SignInit to see whether another process changed it, which made an
   * ECDSA P-256 signature cost ~50 us instead of ~33 us and serialised threads on the file lock
   * (bench/hsm-sign.ts). Session objects are visible to every session of this process, so the
   * signing threads use the same handle. A token that refuses the copy (CKA_COPYABLE false, or
   * no C_CopyObject) is used through the token object, as before; health() says so.
   */
  #workingHandle(tokenObject: Buffer, name: string): Buffer {
    const known = this.#workingCopies.get(name);
    if (known?.tokenObject.equals(tokenObject)) return known.handle;
    if (known) this.#dropWorkingCopy(name);
    let handle = tokenObject;
    if (this.#copyKeys) {
      try {
        handle = this.#lib.C_CopyObject(this.#session, tokenObject, [{ type: P.CKA_TOKEN, value: false }]);
      } catch (e) {
        this.#copyRefused = `the token refused a session copy of "${name}" (${firstLine(e)}): using the token object`;
      }
    }
    this.#workingCopies.set(name, { tokenObject, handle });
    this.#copyCheck ??= setInterval(() => this.#checkWorkingCopies(), this.#copyCheckMs).unref();
    return handle;
  }

  #dropWorkingCopy(name: string): void {
    const copy = this.#workingCopies.get(name);
    if (!copy) return;
    this.#workingCopies.delete(name);
    if (!copy.handle.equals(copy.tokenObject)) {
      try { this.#lib.C_DestroyObject(this.#session, copy.handle); } catch { /* already gone with its session */ }
    }
  }

  /**
   * A key destroyed in the token by someone else (the security officer, pkcs11-tool) must stop
   * being used: a copy whose token object is gone is destroyed too, and its users then get
   * key-not-found, as they would with the token object.
   */
  #checkWorkingCopies(): void {
    if (this.#closed) return;
    for (const [name, copy] of [...this.#workingCopies]) {
      try {
        this.#lib.C_GetAttributeValue(this.#session, copy.tokenObject, [{ type: P.CKA_CLASS }]);
      } catch (e) {
        const c = ckr(e);
        if (c === P.CKR_OBJECT_HANDLE_INVALID || c === P.CKR_KEY_HANDLE_INVALID) this.#dropWorkingCopy(name);
      }
    }
  }

  #signerFor(found: FoundKey, label: string): Signer {
    const spki = this.#publicHalf(found, label).spki;
    return new Pkcs11Signer(label, found.spec, spki, this.#workingHandle(found.priv, `private:${label}`), this.#dispatcher);
  }

  async generateKeyPair(label: string, spec: KeySpec): Promise<Signer> {
    this.#assertOpen();
    if (this.#call('C_FindObjects', label, () => this.#find([{ type: P.CKA_LABEL, value: label }])).length) {
      throw new YinxinError('conflict', `a key labelled "${label}" already exists in the token "${this.tokenLabel}"`);
    }
    if (spec.type === 'ed25519' && !this.supportsEd25519) {
      throw new YinxinError('unsupported-algorithm', `the PKCS#11 module ${this.#loaded.path} cannot generate Ed25519 keys (no CKM_EC_EDWARDS_KEY_PAIR_GEN)`);
    }
    const common = [
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_LABEL, value: label },
    ];
    const publicTemplate: Template = [...common, { type: P.CKA_PRIVATE, value: false }, { type: P.CKA_VERIFY, value: true }];
    const privateTemplate: Template = [
      ...common,
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true },
      { type: P.CKA_EXTRACTABLE, value: false },
      { type: P.CKA_SIGN, value: true },
    ];
    let mechanism: Mechanism;
    if (spec.type === 'ec') {
      mechanism = { mechanism: P.CKM_EC_KEY_PAIR_GEN };
      publicTemplate.push({ type: P.CKA_EC_PARAMS, value: oidDer(curveOidOf[spec.curve]) });
    } else if (spec.type === 'rsa') {
      mechanism = { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN };
      publicTemplate.push({ type: P.CKA_MODULUS_BITS, value: spec.bits }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) });
    } else {
      mechanism = { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN };
      // RFC 8410's OID for the curve; PKCS#11 v3.0 also allows the PrintableString "edwards25519".
      publicTemplate.push({ type: P.CKA_EC_PARAMS, value: oidDer(OID.ed25519) });
    }
    // Key generation (RSA-4096: seconds) runs on the libuv pool, in a session of its own so that
    // the main session stays free for signatures meanwhile.
    const session = this.#call('C_OpenSession', label, () => this.#lib.C_OpenSession(this.#slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION));
    let pair: { privateKey: Buffer; publicKey: Buffer };
    try {
      pair = await this.#lib.C_GenerateKeyPairAsync(session, mechanism, publicTemplate, privateTemplate);
    } catch (e) {
      throw toYinxinError(e, `generating a ${describeKeySpec(spec)} key pair`, label);
    } finally {
      try { this.#lib.C_CloseSession(session); } catch { /* closing is best effort */ }
    }
    const found: FoundKey = { priv: pair.privateKey, pub: pair.publicKey, spec, id: '' };
    return this.#call('setting CKA_ID', label, () => {
      const half = this.#publicHalf(found, label);
      // CKA_ID = RFC 5280 s4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value
      // (EC point, RSAPublicKey DER, Ed25519 key bytes), so it equals the certificates' key IDs.
      const id = createHash('sha1').update(half.subjectPublicKey).digest();
      for (const object of [pair.privateKey, pair.publicKey]) this.#lib.C_SetAttributeValue(this.#session, object, [{ type: P.CKA_ID, value: id }]);
      return new Pkcs11Signer(label, spec, half.spki, this.#workingHandle(pair.privateKey, `private:${label}`), this.#dispatcher);
    });
  }

  async getSigner(label: string): Promise<Signer> {
    const found = this.#call('C_FindObjects', label, () => this.#findKey(label));
    if (!found) throw new YinxinError('key-not-found', `no key labelled "${label}" in the token "${this.tokenLabel}"`);
    return this.#call('reading the public key', label, () => this.#signerFor(found, label));
  }

  async hasKey(label: string): Promise<boolean> {
    return this.#call('C_FindObjects', label, () => this.#find([{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, { type: P.CKA_LABEL, value: label }]).length > 0);
  }

  async listKeys(): Promise<KeyInfo[]> {
    return this.#call('listing keys', undefined, () => {
      const keys: KeyInfo[] = [];
      for (const priv of this.#find([{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }])) {
        const a = this.#attrs(priv, [P.CKA_LABEL, P.CKA_ID, P.CKA_KEY_TYPE]);
        const label = a.get(P.CKA_LABEL)!.toString('utf8');
        try {
          keys.push({ label, spec: this.#specOf(priv, ulong(a.get(P.CKA_KEY_TYPE)!), label), id: a.get(P.CKA_ID)!.toString('hex') });
        } catch (e) {
          if (!(e instanceof YinxinError && e.code === 'unsupported-algorithm')) throw e; // keys of other applications
        }
      }
      return keys.sort((x, y) => x.label.localeCompare(y.label));
    });
  }

  async deleteKey(label: string): Promise<void> {
    this.#call('C_DestroyObject', label, () => {
      this.#dropWorkingCopy(`private:${label}`);
      for (const cls of [P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY]) {
        for (const object of this.#find([{ type: P.CKA_CLASS, value: cls }, { type: P.CKA_LABEL, value: label }])) this.#lib.C_DestroyObject(this.#session, object);
      }
    });
  }

  /**
   * The handle of a secret key, remembered with the working copies: a C_FindObjects per use cost
   * more than the AES-GCM operation itself (the IdP decrypts a client secret per token request).
   * encrypt/decrypt forget it and look again if the token says it is not valid (withSecretKey).
   */
  #secretKey(label: string): Buffer | undefined {
    const known = this.#workingCopies.get(`secret:${label}`);
    if (known) return known.handle;
    const found = this.#findSecretKey(label);
    return found && this.#workingHandle(found, `secret:${label}`);
  }

  #findSecretKey(label: string): Buffer | undefined {
    return this.#find([{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_LABEL, value: label }])[0];
  }

  #withSecretKey<T>(label: string, use: (key: Buffer) => T): T {
    const lookUp = () => {
      const key = this.#secretKey(label);
      if (!key) throw new YinxinError('key-not-found', `no secret key labelled "${label}" in the token "${this.tokenLabel}"`);
      return key;
    };
    try {
      return use(lookUp());
    } catch (e) {
      const c = ckr(e);
      if (c !== P.CKR_KEY_HANDLE_INVALID && c !== P.CKR_OBJECT_HANDLE_INVALID) throw e;
      this.#dropWorkingCopy(`secret:${label}`);
      return use(lookUp());
    }
  }

  async ensureSecretKey(label: string): Promise<void> {
    this.#call('C_GenerateKey', label, () => {
      // Look in the token, not in what was remembered (a replaced key gets a new working copy).
      const found = this.#findSecretKey(label);
      if (found) {
        this.#workingHandle(found, `secret:${label}`);
        return;
      }
      if (this.#find([{ type: P.CKA_LABEL, value: label }]).length) {
        throw new YinxinError('conflict', `the label "${label}" belongs to a key pair, not a secret key`);
      }
      this.#lib.C_GenerateKey(this.#session, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
        { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_PRIVATE, value: true },
        { type: P.CKA_SENSITIVE, value: true },
        { type: P.CKA_EXTRACTABLE, value: false },
        { type: P.CKA_ENCRYPT, value: true },
        { type: P.CKA_DECRYPT, value: true },
        { type: P.CKA_LABEL, value: label },
        { type: P.CKA_ID, value: createHash('sha1').update(`secret:${label}`).digest() },
      ]);
    });
  }

  #gcm(iv: Buffer, aad?: Uint8Array): Mechanism {
    const parameter = { type: P.CK_PARAMS_AES_GCM, iv, ivBits: 96, tagBits: 128, ...(aad?.length ? { aad: Buffer.from(aad) } : {}) };
    return { mechanism: P.CKM_AES_GCM, parameter: parameter as Mechanism['parameter'] };
  }

  async encrypt(label: string, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    return this.#call('C_Encrypt', label, () => this.#withSecretKey(label, (key) => {
      // A random 96-bit IV per message (NIST SP 800-38D s8.2.2): fine far below 2^32 messages per key.
      const iv = randomBytes(12);
      this.#lib.C_EncryptInit(this.#session, this.#gcm(iv, aad), key);
      // pkcs11js refuses an empty input buffer (CKR_ARGUMENTS_BAD): then only the tag is produced.
      const sealed = plaintext.length
        ? this.#lib.C_Encrypt(this.#session, Buffer.from(plaintext), Buffer.alloc(plaintext.length + 16))
        : this.#lib.C_EncryptFinal(this.#session, Buffer.alloc(16));
      return new Uint8Array(Buffer.concat([iv, sealed]));
    }));
  }

  async decrypt(label: string, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    return this.#call('C_Decrypt', label, () => this.#withSecretKey(label, (key) => {
      if (sealed.length < 12 + 16) throw new YinxinError('bad-signature', 'the sealed data is too short to hold an IV and a tag');
      const iv = Buffer.from(sealed.subarray(0, 12));
      try {
        this.#lib.C_DecryptInit(this.#session, this.#gcm(iv, aad), key);
        return new Uint8Array(this.#lib.C_Decrypt(this.#session, Buffer.from(sealed.subarray(12)), Buffer.alloc(sealed.length)));
      } catch (e) {
        const c = ckr(e);
        if (c === P.CKR_ENCRYPTED_DATA_INVALID || c === P.CKR_ENCRYPTED_DATA_LEN_RANGE || c === P.CKR_DATA_INVALID || c === P.CKR_GENERAL_ERROR) {
          throw new YinxinError('bad-signature', 'the sealed data failed its integrity check', undefined, { cause: e });
        }
        throw e;
      }
    }));
  }

  async health(): Promise<{ ok: boolean; detail: string }> {
    if (this.#closed) return { ok: false, detail: 'the key store is closed' };
    let session: Buffer | undefined;
    try {
      session = this.#lib.C_OpenSession(this.#slot, P.CKF_SERIAL_SESSION);
      const { state } = this.#lib.C_GetSessionInfo(session);
      const loggedIn = state === CKS_RO_USER_FUNCTIONS || state === CKS_RW_USER_FUNCTIONS;
      return loggedIn
        ? { ok: true, detail: `token "${this.tokenLabel}" in slot ${this.slotId}: logged in${this.#copyRefused ? `; ${this.#copyRefused}` : ''}` }
        : { ok: false, detail: `token "${this.tokenLabel}" in slot ${this.slotId}: not logged in` };
    } catch (e) {
      return { ok: false, detail: toYinxinError(e, 'C_OpenSession').message };
    } finally {
      if (session) try { this.#lib.C_CloseSession(session); } catch { /* reported above */ }
    }
  }

  stats(): Pkcs11Stats {
    const d = this.#dispatcher;
    return { signs: d.signs, signErrors: d.signErrors, signingThreads: d.threads, signHelper: d.helperRunning, helperSigns: d.helperSigns };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#copyCheck);
    await this.#dispatcher.close();
    try { this.#lib.C_CloseSession(this.#session); } catch { /* token gone: nothing to close */ }
    releaseModule(this.#loaded);
  }
}
