import { spawn } from 'node:child_process';
import t from 'tap';

// A process that grew its heap under load, then idles with a timer ticking (as the appliance
// does): V8's memory reducer hands the heap back only if keepMemoryReducerAwake() runs.
const child = (nudge: boolean) => `
  import { getHeapStatistics } from 'node:v8';
  import { keepMemoryReducerAwake } from ${JSON.stringify(new URL('./memory-reducer.ts', import.meta.url).href)};
  if (${nudge}) keepMemoryReducerAwake();
  let load = [];
  for (let i = 0; i < 300; i++) {
    load.push(Array.from({ length: 20_000 }, (_, j) => ({ i, j })));
    if (load.length > 60) load.shift();
  }
  load = null;
  const grown = getHeapStatistics().total_physical_size;
  const started = Date.now();
  setInterval(() => {
    const now = getHeapStatistics().total_physical_size;
    process.stdout.write(JSON.stringify({ grown, now, seconds: (Date.now() - started) / 1000 }) + '\\n');
  }, 1000);
`;

function run(nudge: boolean) {
  const p = spawn(process.execPath, ['--input-type=module', '-e', child(nudge)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last: { grown: number; now: number; seconds: number } | undefined;
  p.stdout.setEncoding('utf8').on('data', (d: string) => {
    const lines = d.trim().split('\n');
    last = JSON.parse(lines[lines.length - 1]);
  });
  return { process: p, last: () => last };
}

t.test('an idle process gives back the heap it grew, with the nudges and not without', { timeout: 90_000 }, async (t) => {
  const nudged = run(true);
  const control = run(false);
  t.teardown(() => { nudged.process.kill(); control.process.kill(); });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const n = nudged.last();
    if (n && n.now < n.grown / 3) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const n = nudged.last()!;
  const c = control.last()!;
  t.ok(n.grown > 60 * 2 ** 20, `the load grew the heap (${(n.grown / 2 ** 20).toFixed(0)} MiB)`);
  t.ok(n.now < n.grown / 3, `nudged: ${(n.grown / 2 ** 20).toFixed(0)} -> ${(n.now / 2 ** 20).toFixed(0)} MiB after ${n.seconds} s idle`);
  // V8's own watchdog would act only 100 s after the last full GC.
  t.ok(c.now > c.grown / 2, `without the nudges: ${(c.grown / 2 ** 20).toFixed(0)} -> ${(c.now / 2 ** 20).toFixed(0)} MiB after ${c.seconds} s idle`);
});
