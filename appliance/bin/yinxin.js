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
const child = spawn(runtime, [join(root, 'appliance', 'cli.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
