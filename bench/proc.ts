/** Process facts the benchmarks read from Linux's /proc, and the bench servers they start. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Starts a Node bench server (`node [nodeArgs] script ...args`) that prints "READY <port>" once
 * listening: the child at once (for the caller to stop), and its port once it is ready (rejected
 * if it exits first).
 */
export function startBenchServer(script: string, args: string[], options: { nodeArgs?: string[]; env?: SpawnOptions['env'] } = {}): { child: ChildProcess; port: Promise<number> } {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: options.env });
  const port = new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`${script} ${args.join(' ')} exited with ${code}`)));
  });
  return { child, port };
}

/** CPU seconds (user + system, every thread) process `pid` has used so far. */
export function cpuSecondsOf(pid: number): number {
  // Fields after "(comm) ": state is [0], utime [11], stime [12], in USER_HZ (100) ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process by where it lives, in bytes (from /proc/<pid>/smaps). */
export interface MemoryMap {
  rss: number;
  /** The node binary and shared libraries: code and read-only data, file-backed. */
  code: number;
  /** Pages of LMDB's data file mapped in (reads map them; they are file-backed). */
  lmdb: number;
  /** Anonymous 256 KiB mappings: V8's heap pages (every isolate: main thread and workers). */
  v8Pages: number;
  /** glibc malloc: the main arena ([heap]) and the others (64 MiB-aligned heaps). */
  malloc: number;
  /** The rest: thread stacks, V8 large objects and code, buffers malloc mapped on their own. */
  other: number;
}

const V8_PAGE = 256 * 1024;
const ARENA_ALIGNMENT = 64 * 1024 * 1024;

/**
 * Sorts the resident pages of process `pid` by mapping. The V8 and malloc figures rest on layout
 * facts (V8 allocates its regular pages as 256 KiB mappings; glibc's non-main arenas are 64
 * MiB-aligned), so they are close, not exact.
 */
export function memoryMapOf(pid: number): MemoryMap {
  const out: MemoryMap = { rss: 0, code: 0, lmdb: 0, v8Pages: 0, malloc: 0, other: 0 };
  let kind: keyof MemoryMap = 'other';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping) {
      const start = parseInt(mapping[1], 16);
      const size = parseInt(mapping[2], 16) - start;
      const path = mapping[3];
      if (path.endsWith('/data.mdb')) kind = 'lmdb';
      else if (path.startsWith('/')) kind = 'code';
      else if (path === '[heap]' || (!path && start % ARENA_ALIGNMENT === 0 && size < ARENA_ALIGNMENT)) kind = 'malloc';
      else if (!path && size === V8_PAGE) kind = 'v8Pages';
      else kind = 'other';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      out[kind] += Number(rss[1]) * 1024;
      out.rss += Number(rss[1]) * 1024;
    }
  }
  return out;
}

/** The process's peak resident set so far (VmHWM), in bytes. */
export function peakRssOf(pid: number): number {
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
}
