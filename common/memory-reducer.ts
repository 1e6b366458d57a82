/**
 * Lets V8's memory reducer run in a Node 24 process (V8 13.6) that otherwise never would.
 *
 * Under load V8 grows the old generation past what is live and, after a full GC, keeps the pages
 * it freed in a pool, still resident; only a memory-reducing GC compacts the heap and hands the
 * pool back. The memory reducer starts one once the mutator looks idle, i.e. every allocation
 * rate it samples is low, the rate of cppgc ("embedder") allocations included. V8 13.x tracks
 * that rate with an exponential average that is exactly 0 in a process that never allocates on
 * cppgc, and Heap::ComputeMutatorUtilization reads a zero rate as the highest one (it returns a
 * utilization of 0 for a mutator speed of 0). So the reducer says "high alloc" at every tick, and
 * what the load left behind stays until its 100 s watchdog, which every major GC postpones: an
 * appliance that keeps answering now and then kept it for good (`--trace-memory-reducer` shows
 * it; bench/idp.ts measured ~120 MiB held after its load).
 *
 * node:vm's compiled scripts are cppgc objects (ContextifyScript), so compiling a trivial one now
 * and then keeps that rate above 0 and far below the threshold (a few bytes per interval), and
 * the reducer runs its GCs some 10-40 s after the load ends.
 */
import { Script } from 'node:vm';

/** Long enough that one script's bytes per sampling window (8 s) read as a low rate. */
const NUDGE_INTERVAL_MS = 30_000;

/** Starts the nudges (an unref'd timer); returns the function that stops them. */
export function keepMemoryReducerAwake(intervalMs = NUDGE_INTERVAL_MS): () => void {
  const nudge = () => void new Script('0');
  nudge();
  const timer = setInterval(nudge, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
