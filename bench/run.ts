/**
 * `npm run bench [-- name ...]`: runs the benchmarks one after another (each compares itself with
 * a peer measured in the same run and prints the ratio), or only the named ones.
 * Each is also runnable alone: `node bench/<name>.ts`. Not part of `npm test`.
 */
import { spawnSync } from 'node:child_process';

const benches: Record<string, { file: string; args: string[]; what: string }> = {
  hsm: { file: 'hsm-sign.ts', args: ['1'], what: 'Signer vs raw graphene C_Sign, 1/2/8 callers' },
  store: { file: 'store-lmdb.ts', args: ['3000'], what: 'audited LMDB transactions vs bare lmdb-js' },
  'ca-issue': { file: 'ca-issue.ts', args: ['5000', '64'], what: 'issuance to durable LMDB vs raw HSM sign rate' },
  'ca-crl': { file: 'ca-crl.ts', args: ['1000000'], what: '1M-entry CRL vs openssl ca -gencrl' },
  'ca-http': { file: 'ca-http.ts', args: ['10000', '3'], what: 'CRL / CA certificate routes vs bare fastify' },
  ocsp: { file: 'ocsp.ts', args: [], what: 'OCSP responder vs openssl ocsp -multi 2 and bare fastify' },
  tsa: { file: 'tsa.ts', args: [], what: 'POST /tsa with 1 and 2 public processes vs raw HSM sign rate and a bare route (TSA_BENCH_SECONDS, TSA_BENCH_CONNECTIONS)' },
  idp: { file: 'idp.ts', args: ['3'], what: 'password logins, client-credentials and refresh grants' },
  seal: { file: 'seal.ts', args: ['3'], what: 'PAdES vs PDF load+save, CAdES vs TSA tokens' },
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !benches[w]);
if (unknown.length) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}\n`);
  process.exit(2);
}
let failed = 0;
for (const [name, b] of Object.entries(benches)) {
  if (wanted.length && !wanted.includes(name)) continue;
  process.stdout.write(`\n=== ${name}: ${b.what}\n=== node bench/${b.file} ${b.args.join(' ')}\n`);
  const started = Date.now();
  const r = spawnSync(process.execPath, [new URL(b.file, import.meta.url).pathname, ...b.args], { stdio: 'inherit', timeout: 15 * 60_000 });
  process.stdout.write(`=== ${name}: ${r.status === 0 ? 'done' : `FAILED (${r.status ?? r.signal})`} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
