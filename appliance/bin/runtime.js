// How the appliance's Node runs (README, Memory): the flags and environment `npm start`, the
// `yinxin` command and bench/idp.ts use. Plain JavaScript: the `yinxin` shim may run on a Node
// that cannot strip TypeScript.
import { join } from 'node:path';

export const NODE_ARGS = [
  // V8's young generation: semi-spaces of 8 MiB (Node's default lets it reach 3 x 16 MiB).
  '--max-semi-space-size=8',
  // The old generation grows to twice what the last full GC left, not up to 4x: under load the
  // main heap stays near 85 MiB instead of ~165 MiB, for no CPU per request we could measure.
  '--heap-growing-percent=100',
];

/** `env` with the appliance's defaults under it: two glibc malloc arenas, and Node's compile cache. */
export function runtimeEnv(root, env = process.env) {
  return {
    MALLOC_ARENA_MAX: '2',
    // With the cache, later starts neither strip TypeScript nor load the WebAssembly stripper
    // (Node's amaro, in every thread: ~14 MiB) and start sooner.
    NODE_COMPILE_CACHE: join(root, 'node_modules', '.cache', 'yinxin-node-compile'),
    ...env,
  };
}
