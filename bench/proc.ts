/** Process facts the benchmarks read from Linux's /proc. */
import { readFileSync } from 'node:fs';

/** CPU seconds (user + system, every thread) process `pid` has used so far. */
export function cpuSecondsOf(pid: number): number {
  // Fields after "(comm) ": state is [0], utime [11], stime [12], in USER_HZ (100) ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
