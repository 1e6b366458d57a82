/**
 * `npm test` runs this after the type check: tap over every *.test.ts, then one plain summary
 * line ("tests: N passed, N failed, N skipped") that CI systems can read whatever the reporter.
 */
import { spawn } from 'node:child_process';

const child = spawn('tap', process.argv.slice(2), { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString('utf8')).slice(-4096);
});
child.on('exit', (code, signal) => {
  const m = /#\s*\{\s*total:\s*(\d+)([^}]*)\}/.exec(tail);
  const field = (name: string) => Number(new RegExp(`${name}:\\s*(\\d+)`).exec(m?.[2] ?? '')?.[1] ?? 0);
  if (m) {
    process.stdout.write(`\ntests: ${field('pass')} passed, ${field('fail')} failed, ${field('skip') + field('todo')} skipped\n`);
  } else {
    process.stdout.write('\ntests: no summary from tap (see the output above)\n');
  }
  process.exit(signal ? 1 : code ?? 1);
});
