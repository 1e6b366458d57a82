#!/usr/bin/env node
// The `yinxin` command (package.json "bin"; `npm start` runs it too). The appliance runs on the
// Node 24 that the npm package `node` installs beside it, whatever Node started this shim, with
// the flags and environment of runtime.js.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_ARGS, runtimeEnv } from './runtime.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const node24 = join(root, 'node_modules', 'node', 'bin', 'node');
const runtime = existsSync(node24) ? node24 : process.execPath;
const args = [...NODE_ARGS, join(root, 'appliance', 'cli.ts'), ...process.argv.slice(2)];
const env = runtimeEnv(root);
if (typeof process.execve === 'function') {
  // Node 23.11+: become the appliance instead of keeping a second Node resident beside it.
  process.execve(runtime, [runtime, ...args], env);
}
const child = spawn(runtime, args, { stdio: 'inherit', env });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
