#!/usr/bin/env node
// The `yinxin` command (package.json "bin"). The appliance runs on the Node 24 that the npm
// package `node` installs beside it, whatever Node started this shim.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const node24 = join(root, 'node_modules', 'node', 'bin', 'node');
const runtime = existsSync(node24) ? node24 : process.execPath;
// The memory settings `npm start` uses (README, Memory): V8 young generation of 8 MiB semi-spaces,
// and two glibc malloc arenas instead of eight per core.
const child = spawn(runtime, ['--max-semi-space-size=8', join(root, 'appliance', 'cli.ts'), ...process.argv.slice(2)], {
  stdio: 'inherit', env: { MALLOC_ARENA_MAX: '2', ...process.env },
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
