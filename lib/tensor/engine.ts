// Tensor lifetime bookkeeping: the scope stack behind tidy/keep, the live-tensor registry behind
// memory(), and the grad-mode flag behind noGrad. Native memory is released only by dispose (directly
// or at the end of a tidy scope), never by the garbage collector.
import { native, type MemoryCounters } from './native.js';
import type { Tensor } from './tensor.js';

interface Scope { tensors: Set<Tensor> }

const scopes: Scope[] = [];
// Live tensors: a count, plus weak references so that (with DD2_DEBUG_MEMORY) a tensor nobody
// disposed can still be garbage-collected and reported by tensor.ts's FinalizationRegistry.
let liveCount = 0;
const live = new Map<Tensor, WeakRef<Tensor>>();
const weakLive = new Set<WeakRef<Tensor>>();
const debugMemory = !!process.env.DD2_DEBUG_MEMORY && process.env.DD2_DEBUG_MEMORY !== '0';
let gradEnabled = true;

/** Registers a new tensor with the innermost scope. */
export function track(t: Tensor): void {
  liveCount++;
  if (debugMemory) weakLive.add(new WeakRef(t));
  else live.set(t, undefined as unknown as WeakRef<Tensor>);
  if (scopes.length) scopes[scopes.length - 1].tensors.add(t);
}

export function untrack(t: Tensor): void {
  liveCount--;
  live.delete(t);
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i].tensors.delete(t)) break;
}

/** Marks t so that no enclosing tidy() disposes it; dispose it yourself (or use Module.dispose()). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.tensors.delete(t);
  return t;
}

function collect(v: unknown, out: Set<Tensor>, isTensor: (x: unknown) => x is Tensor, depth = 0): void {
  if (depth > 8 || v == null) return;
  if (isTensor(v)) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collect(x, out, isTensor, depth + 1);
  else if (typeof v === 'object' && (v as object).constructor === Object) {
    for (const x of Object.values(v as object)) collect(x, out, isTensor, depth + 1);
  }
}

let isTensorFn: (x: unknown) => x is Tensor = (_x): _x is Tensor => false;
export function setTensorCheck(f: (x: unknown) => x is Tensor): void {
  isTensorFn = f;
}

/** Runs fn; disposes every tensor created inside except those returned (in a tensor, array or plain
 *  object) or kept. Returned tensors move to the enclosing scope. Scopes nest; fn must not be async. */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: new Set() };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope.tensors) if (!t.disposed) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    throw new Error('dd2: tidy() cannot take an async function (tensors would outlive the scope)');
  }
  const keepSet = new Set<Tensor>();
  collect(result, keepSet, isTensorFn);
  const parent = scopes.length ? scopes[scopes.length - 1] : null;
  for (const t of scope.tensors) {
    if (keepSet.has(t)) { if (parent && !t.disposed) parent.tensors.add(t); }
    else if (!t.disposed) t.dispose();
  }
  return result;
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off (sampling, evaluation, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export interface Memory {
  /** live tensors known to JavaScript (views count separately) */
  tensors: number;
  /** native storages alive and their bytes, per device */
  cpu: MemoryCounters;
  cuda: MemoryCounters;
}

export function memory(): Memory {
  const m = native.memory_stats();
  return { tensors: liveCount, cpu: m.cpu, cuda: m.cuda };
}

/** Live tensors (for leak reports): shape, dtype and name of each. */
export function liveTensors(): Tensor[] {
  if (!debugMemory) return [...live.keys()];
  const out: Tensor[] = [];
  for (const r of weakLive) {
    const t = r.deref();
    if (!t || t.disposed) weakLive.delete(r);
    else out.push(t);
  }
  return out;
}

/** Counts a tensor that was garbage-collected without dispose() (DD2_DEBUG_MEMORY) as released. */
export function collectedWithoutDispose(): void {
  liveCount--;
}
