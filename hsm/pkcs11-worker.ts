/**
 * A signing thread of the PKCS#11 key store (see the dispatch policy in pkcs11.ts). It shares
 * the process's PKCS#11 module (C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED, and the
 * login of the main thread's session covers every session of the process, PKCS#11 s6.7.1),
 * opens one session of its own, and signs batches synchronously: C_SignInit + C_Sign both run
 * here, which matters because C_SignInit of a token key costs SoftHSM as much as the signature.
 * It is sent RSA signatures only, whose mechanisms hash in the token and whose output is the
 * signature as it stands (ECDSA and Ed25519 sign on the main thread).
 */
import { parentPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import type { Mechanism } from 'pkcs11js';

export interface WorkerInit { modulePath: string; slot: Uint8Array }
export interface SignJob {
  id: number;
  key: Uint8Array;
  mechanism: Mechanism;
  data: Uint8Array;
}
export type SignResult = { id: number; signature: Uint8Array } | { id: number; error: { message: string; code?: number } };

const init = workerData as WorkerInit;
// pkcs11js alone, not graphene: a thread's memory is mostly the modules it loads.
const lib = new pkcs11js.PKCS11();
lib.load(init.modulePath);
try {
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
} catch (e) {
  // The main thread initialized the module for the whole process (PKCS#11 s5.4).
  if (!(e instanceof pkcs11js.Pkcs11Error && e.code === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) throw e;
}
const session = lib.C_OpenSession(Buffer.from(init.slot), pkcs11js.CKF_SERIAL_SESSION);
const out = Buffer.alloc(1024);

parentPort!.on('message', (batch: SignJob[] | 'close') => {
  if (batch === 'close') {
    try { lib.C_CloseSession(session); } catch { /* token gone: nothing to close */ }
    parentPort!.postMessage('closed');
    return;
  }
  const results: SignResult[] = [];
  for (const job of batch) {
    try {
      lib.C_SignInit(session, job.mechanism, Buffer.from(job.key));
      const signature = lib.C_Sign(session, Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength), out);
      results.push({ id: job.id, signature: new Uint8Array(signature) });
    } catch (e) {
      const code = e && typeof e === 'object' && 'code' in e && typeof e.code === 'number' ? e.code : undefined;
      results.push({ id: job.id, error: { message: e instanceof Error ? e.message.split('\n')[0] : String(e), code } });
    }
  }
  parentPort!.postMessage(results);
});
parentPort!.postMessage('ready');
