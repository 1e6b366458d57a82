/**
 * Seal throughput, in one process, with the product's pieces: seals made through the seal registry
 * (seal/registry.ts, as the API makes them: access and status check, credential, seal, then the
 * usage record with its audit record as a durable commit), the seal key and the TSA key in a
 * SoftHSM2 token through hsm/pkcs11.ts, the TSA core (tsa/authority.ts) on an LMDB store
 * (store/lmdb.ts) with its audit log, so every time stamp's ledger record is a durable commit too.
 * The CA that issues the certificates is a test double (seal/test-support.ts) on the same store,
 * so the seal's certificate is read from LMDB as the appliance reads it; issuing is not measured.
 *   - PAdES B-T seals/s on a 20-page ~500 KB PDF, time stamp included, beside loading and saving
 *     the same PDF in the same run (read the file, parse every object with seal/pdf.ts, write a
 *     whole new file with a fresh xref; and `qpdf in out` as an outside reference). Target <= 2x.
 *     B-LT beside it (OCSP responses from the responder core of the test CA, the DSS update).
 *   - CAdES B-T seals/s on 1 KB and 10 MB files beside the TSA core's own tokens/s. Target >= 50%.
 *
 * It runs on the appliance's Node flags (appliance/bin/runtime.js: young generation and heap
 * growth), re-starting itself with them when started without.
 *
 *   node bench/seal.ts [seconds-per-row=3] [rows, e.g. cades1k,tsa]   (SEAL_BENCH_CALLERS=64 for the saturated rows;
 *   SEAL_BENCH_SESSION_POOL=0 to compare without the signing helper)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writevSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { NODE_ARGS } from '../appliance/bin/runtime.js';
import { SealRegistry, type SealUser } from '../seal/registry.ts';
import { PdfDocument, PdfStream, serialize } from '../seal/pdf.ts';
import { createAuditLog } from '../audit/audit.ts';
import { systemClock } from '../common/clock.ts';
import { openPkcs11KeyStore, prepareSoftHsmToken } from '../hsm/index.ts';
import { CREDIT_CODE, makeSealPkiOn } from '../seal/test-support.ts';
import { simplePdf } from '../seal/testing-pdfs.ts';
import { openLmdbStore } from '../store/lmdb.ts';
import { createTimeStampAuthority } from '../tsa/authority.ts';
import { ThreadedCommitter } from '../store/commit-thread.ts';
import { buildTimeStampQuery } from '../tsa/client.ts';
import { TimeGuard } from '../tsa/timeguard.ts';

if (!NODE_ARGS.every((a) => process.execArgv.includes(a))) {
  const r = spawnSync(process.execPath, [...NODE_ARGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const seconds = Number(process.argv[2] ?? 3);
/** Only these rows (to profile one with --cpu-prof): pades, padeslt, loadsave, qpdf, cades1k, tsa, cades10m. */
const only = process.argv[3]?.split(',');
/** Concurrent callers of the many-caller rows (SEAL_BENCH_CALLERS, default 16; 64 saturates the main thread). */
const CALLERS = Number(process.env.SEAL_BENCH_CALLERS ?? 16);
const dir = mkdtempSync(join(tmpdir(), 'yinxin-seal-bench-'));
const store = openLmdbStore(join(dir, 'store'));
const audit = createAuditLog({ store, clock: systemClock });
const pki = await makeSealPkiOn(store, audit);
const pin = '8642-bench';
const token = await prepareSoftHsmToken({ dir: join(dir, 'hsm'), pin, label: 'seal-bench' });
// SEAL_BENCH_SESSION_POOL=0: no signing threads, so no helper for the light signatures either (hsm/pkcs11.ts).
const sessionPool = process.env.SEAL_BENCH_SESSION_POOL ? Number(process.env.SEAL_BENCH_SESSION_POOL) : undefined;
const keys = await openPkcs11KeyStore({ module: token.module, tokenLabel: 'seal-bench', pin, sessionPool });
const tsaSigner = await keys.generateKeyPair('tsa/signing', { type: 'ec', curve: 'P-256' });
const tsaCert = await pki.ca.issueServiceCertificate('issuing', 'tsa', tsaSigner, [{ type: 'C', value: 'CN' }, { type: 'O', value: 'yinxin' }, { type: 'CN', value: 'yinxin TSA' }]);
// One commit thread for the TSA's token records and the seals' usage records, as the appliance (appliance/services.ts).
const committer = new ThreadedCommitter(store, audit);
const tsa = createTimeStampAuthority({
  signer: tsaSigner, certificate: tsaCert.der, chain: pki.ca.caChain('issuing'), store, audit, clock: systemClock,
  timeGuard: new TimeGuard({ clock: systemClock }), policy: { default: '1.2.3.4.1', accepted: [] },
  committer,
});
const timeStamper = (q: Uint8Array) => tsa.respond(q);
const registry = new SealRegistry({ store, keys, audit, clock: systemClock, ca: pki.ca, timeStamper, validationData: pki.validationData, committer });
const requested = await registry.request({ organization: '福州市人民政府办公厅', creditCode: CREDIT_CODE, name: '公章', kind: 'official', clients: ['bench'] }, { actor: 'bench:admin', person: 'admin' });
const seal = await registry.approve(requested.id, { actor: 'bench:officer', person: 'officer' });
const user: SealUser = { actor: 'token:bench(app)', username: 'app', roles: [], clientId: 'bench' };

type Op = () => Promise<unknown> | unknown;

/**
 * Rates (per second) of the named operations, measured in alternating 250 ms slices, `callers`
 * concurrent loops each, `seconds` in all per operation: the operations compared with each other
 * see the same machine (the fsync latency of this shared disk varies 2-3x from second to second).
 */
async function rates(ops: Record<string, Op>, callers = 1): Promise<Record<string, number>> {
  const names = Object.keys(ops).filter((n) => !only || only.includes(n));
  const done: Record<string, number> = {};
  const spent: Record<string, number> = {};
  for (const n of names) {
    for (let i = 0; i < 3; i++) await ops[n]();
    done[n] = 0;
    spent[n] = 0;
  }
  const slices = Math.max(1, Math.round((seconds * 1000) / 250));
  for (let s = 0; s < slices; s++) {
    for (const n of names) {
      const start = performance.now();
      const until = start + 250;
      await Promise.all(Array.from({ length: callers }, async () => {
        while (performance.now() < until) { await ops[n](); done[n]++; }
      }));
      spent[n] += performance.now() - start;
    }
  }
  const out: Record<string, number> = {};
  for (const n of Object.keys(ops)) out[n] = names.includes(n) ? done[n] / (spent[n] / 1000) : NaN;
  return out;
}

// A 20-page document of ~500 KB: 20 one-page files with ~25 KB of distinct uncompressed text each, joined by qpdf.
const pageFiles = Array.from({ length: 20 }, (_, p) => {
  const line = `\nBT /F1 9 Tf 40 800 Td (Page ${p + 1}: the quick brown fox jumps over the lazy dog 0123456789) Tj ET`;
  return pki.file(`page-${p}.pdf`, simplePdf(`Official document, page ${p + 1}`, line.repeat(Math.ceil(25_000 / line.length))));
});
execFileSync('qpdf', ['--stream-data=uncompress', '--empty', '--pages', ...pageFiles, '--', join(pki.dir, 'bench.pdf')]);
const pdf = new Uint8Array(readFileSync(join(pki.dir, 'bench.pdf')));
const pdfPath = pki.file('bench.pdf', pdf);

/** The sealed file as the API sends it: the original bytes, then the update (PadesResult.parts). */
function writeParts(path: string, parts: Uint8Array[]): void {
  const fd = openSync(path, 'w');
  try {
    writevSync(fd, parts);
  } finally {
    closeSync(fd);
  }
}

function loadAndSave(): void {
  const doc = PdfDocument.parse(readFileSync(pdfPath));
  const parts: Buffer[] = [Buffer.from('%PDF-1.7\n')];
  const offsets: number[] = [];
  let length = parts[0].length;
  const max = Math.max(...doc.xref.keys());
  for (let num = 1; num <= max; num++) {
    const e = doc.xref.get(num);
    if (!e || e.type === 'free') continue;
    const obj = doc.object(num);
    offsets[num] = length;
    const chunk = obj instanceof PdfStream
      ? Buffer.concat([Buffer.from(`${num} 0 obj\n${serialize(obj.dict)}\nstream\n`, 'latin1'), obj.raw, Buffer.from('\nendstream\nendobj\n')])
      : Buffer.from(`${num} 0 obj\n${serialize(obj)}\nendobj\n`, 'latin1');
    parts.push(chunk);
    length += chunk.length;
  }
  let xref = `xref\n0 ${max + 1}\n0000000000 65535 f\r\n`;
  for (let num = 1; num <= max; num++) xref += offsets[num] === undefined ? '0000000000 65535 f\r\n' : `${String(offsets[num]).padStart(10, '0')} 00000 n\r\n`;
  parts.push(Buffer.from(`${xref}trailer\n${serialize(doc.trailer)}\nstartxref\n${length}\n%%EOF\n`, 'latin1'));
  writeFileSync(join(pki.dir, 'saved.pdf'), Buffer.concat(parts));
}

const pdfRates = await rates({
  pades: async () => {
    const r = await registry.sealPdf(seal.id, user, readFileSync(pdfPath));
    writeParts(join(pki.dir, 'sealed.pdf'), r.parts);
  },
  padeslt: async () => {
    const r = await registry.sealPdf(seal.id, user, readFileSync(pdfPath), { level: 'B-LT' });
    writeParts(join(pki.dir, 'sealed-lt.pdf'), r.parts);
  },
  loadsave: loadAndSave,
  qpdf: () => execFileSync('qpdf', [pdfPath, join(pki.dir, 'qpdf-out.pdf')]),
});

const small = randomBytes(1024);
const large = randomBytes(10 * 1024 * 1024);
// The TSA's own rate: respond() only, on queries built beforehand (a client's cost is not the TSA's),
// held in one buffer: 20,000 separate ArrayBuffers kept alive made V8's garbage collection cost
// every operation of both rows ~15% more (the seal row's too, measured in the same process).
const queries = only && !only.includes('tsa') ? [] : packed(Array.from({ length: 20_000 }, () => buildTimeStampQuery(randomBytes(64)).der));

/** Views of `parts` in one buffer. */
function packed(parts: Uint8Array[]): Uint8Array[] {
  const all = Buffer.concat(parts);
  let at = 0;
  return parts.map((p) => all.subarray(at, (at += p.length)));
}
let nextQuery = 0;
const cadesOps = {
  cades1k: () => registry.sealFile(seal.id, user, small),
  tsa: () => tsa.respond(queries[nextQuery++ % queries.length]),
};
const one = await rates(cadesOps, 1);
const many = await rates(cadesOps, CALLERS);
const { cades10m: cadesLarge } = await rates({ cades10m: () => registry.sealFile(seal.id, user, large) });

const f = (n: number) => n.toFixed(1).padStart(9);
console.log(`PDF: 20 pages, ${(pdf.length / 1024).toFixed(0)} KB; ${seconds} s per row in alternating 250 ms slices; ECDSA P-256 keys in SoftHSM2; seals through the registry, usage records and TSA ledger in LMDB (durable commits)`);
console.log('operation                                         per second   ms each');
const row = (label: string, n: number) => console.log(`${label.padEnd(48)} ${f(n)} ${f(1000 / n)}`);
row('PAdES B-T seal (read, seal, time stamp, write)', pdfRates.pades);
row('PAdES B-LT seal (+ OCSP responses, DSS update)', pdfRates.padeslt);
row('PDF load + save (parse all, rewrite, write)', pdfRates.loadsave);
row('qpdf in.pdf out.pdf (process, reference)', pdfRates.qpdf);
row('CAdES B-T seal, 1 KB, 1 caller', one.cades1k);
row('TSA core tokens (respond), 1 caller', one.tsa);
row(`CAdES B-T seal, 1 KB, ${CALLERS} callers`, many.cades1k);
row(`TSA core tokens (respond), ${CALLERS} callers`, many.tsa);
row('CAdES B-T seal, 10 MB, 1 caller', cadesLarge);
console.log(`PAdES time / load+save time: ${(pdfRates.loadsave / pdfRates.pades).toFixed(2)}x (target <= 2x); vs qpdf: ${(pdfRates.qpdf / pdfRates.pades).toFixed(2)}x`);
console.log(`CAdES 1 KB / TSA tokens: ${((100 * one.cades1k) / one.tsa).toFixed(0)}% with 1 caller, ${((100 * many.cades1k) / many.tsa).toFixed(0)}% with ${CALLERS} (target >= 50%)`);
const stats = tsa.stats();
console.log(`TSA: ${stats.issued} tokens issued, ${stats.ledger.commits} ledger commits, rejected ${JSON.stringify(stats.rejected)}; seal uses recorded: ${registry.usageOf(seal.id, 1).stats.uses}`);
const hsm = keys.stats();
console.log(`HSM: ${hsm.signs} signatures, ${hsm.helperSigns} of them by the signing helper${hsm.signHelper ? '' : ' (not running)'}`);
await tsa.close();
await committer.close();
await audit.close();
pki.cleanup();
await store.close();
await keys.close();
rmSync(dir, { recursive: true, force: true });
