// The module system: parameters (kept, grad-requiring tensors), Module (a tree of named parameters,
// buffers and child modules with PyTorch state_dict naming, e.g. "blocks.0.attn.wqkv.weight"),
// ModuleList, and state-dict save/load with shape checks. Memory is explicit: dispose() frees the
// parameters, their gradients and buffers of the whole tree.
import { keep, noGrad } from '../tensor/engine.js';
import { native } from '../tensor/native.js';
import { Tensor } from '../tensor/tensor.js';
import { fmtShape, sizeOf } from '../tensor/shape.js';

/** Marks t as a trainable parameter: requires grad, survives tidy(), has no graph node. */
export function parameter(t: Tensor, name = ''): Tensor {
  t.assertLive();
  if (t.dtype !== 'float32') throw new TypeError(`dd2: parameter: ${t.describe()} must be float32`);
  if (!t.isDense()) throw new RangeError(`dd2: parameter: ${t.describe()} must be a dense tensor, not a view`);
  t.node = null;
  t.requiresGrad = true;
  if (name) t.name = name;
  return keep(t);
}

/** A state-dict value: bare data (checked by element count) or data with its shape (checked exactly). */
export type StateValue = Float32Array | { shape: readonly number[]; data: Float32Array };
export interface LoadOptions { strict?: boolean }
export interface LoadResult { missing: string[]; unexpected: string[] }

interface BufferEntry { t: Tensor; persistent: boolean }

export class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, BufferEntry>();
  private readonly children = new Map<string, Module>();
  private disposedFlag = false;

  /** Registers t (made a parameter) under `name` and returns it. */
  registerParameter(name: string, t: Tensor): Tensor {
    this.checkName(name, 'parameter');
    const old = this.params.get(name);
    if (old && old !== t) { old.grad?.dispose(); old.dispose(); }
    this.params.set(name, parameter(t, name));
    return t;
  }

  /** A non-trainable tensor owned by the module (kept); persistent buffers appear in stateDict. */
  registerBuffer(name: string, t: Tensor, persistent = true): Tensor {
    this.checkName(name, 'buffer');
    const old = this.buffers.get(name);
    if (old && old.t !== t) old.t.dispose();
    t.name = name;
    this.buffers.set(name, { t: keep(t), persistent });
    return t;
  }

  registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name, 'module');
    if (m === (this as Module)) throw new Error(`dd2: registerModule: a module cannot contain itself`);
    this.children.set(name, m);
    return m;
  }

  private checkName(name: string, kind: 'parameter' | 'buffer' | 'module'): void {
    if (!name || name.includes('.')) throw new Error(`dd2: module member name '${name}' must be non-empty without '.'`);
    if (this.disposedFlag) throw new Error(`dd2: cannot register '${name}': the module was disposed`);
    const clash = (kind !== 'parameter' && this.params.has(name)) || (kind !== 'buffer' && this.buffers.has(name)) ||
      (kind !== 'module' && this.children.has(name));
    if (clash) throw new Error(`dd2: cannot register ${kind} '${name}': the name is taken by another kind of member`);
  }

  /** [dotted name, parameter] in registration order, depth first (PyTorch's named_parameters). */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, p] of this.params) out.push([prefix + k, p]);
    for (const [k, c] of this.children) out.push(...c.namedParameters(`${prefix}${k}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(prefix = '', persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, b] of this.buffers) if (!persistentOnly || b.persistent) out.push([prefix + k, b.t]);
    for (const [k, c] of this.children) out.push(...c.namedBuffers(`${prefix}${k}.`, persistentOnly));
    return out;
  }

  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** This module and all descendants, depth first, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [k, c] of this.children) out.push(...c.namedModules(`${prefix}${k}.`));
    return out;
  }

  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) { p.grad?.dispose(); p.grad = null; }
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Frees every parameter, gradient and buffer of the tree. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    for (const p of this.params.values()) { p.grad?.dispose(); p.grad = null; p.dispose(); }
    for (const b of this.buffers.values()) b.t.dispose();
    for (const c of this.children.values()) c.dispose();
  }

  /** Host copies of all parameters and persistent buffers, keyed by dotted name. */
  stateDict(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [k, t] of this.stateEntries()) out.set(k, t.toFloat32Array());
    return out;
  }

  /** Shapes of the stateDict entries (for writers that need them). */
  stateShapes(): Map<string, number[]> {
    return new Map(this.stateEntries().map(([k, t]) => [k, [...t.shape]]));
  }

  private stateEntries(): [string, Tensor][] {
    const entries = [...this.namedParameters(), ...this.namedBuffers('', true)];
    for (const [k, t] of entries) {
      if (t.dtype !== 'float32') throw new TypeError(`dd2: stateDict: '${k}' is ${t.describe()}, only float32 is supported`);
    }
    return entries;
  }

  /**
   * Copies values into the parameters and persistent buffers. Everything is validated before anything
   * is written. Shape mismatches always throw; with strict (the default) missing or unexpected keys
   * throw too, otherwise they are returned.
   */
  loadStateDict(state: ReadonlyMap<string, StateValue>, opts: LoadOptions = {}): LoadResult {
    const strict = opts.strict ?? true;
    const entries = this.stateEntries();
    const own = new Map(entries);
    const missing = entries.map(([k]) => k).filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length || unexpected.length)) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      throw new Error(`dd2: loadStateDict (strict): ${parts.join('; ')}`);
    }
    const writes: [Tensor, Float32Array][] = [];
    const errors: string[] = [];
    for (const [k, t] of entries) {
      const v = state.get(k);
      if (!v) continue;
      const data = v instanceof Float32Array ? v : v.data;
      if (!(v instanceof Float32Array)) {
        if (!(v.shape.length === t.rank && v.shape.every((d, i) => d === t.shape[i])) || sizeOf(v.shape) !== data.length) {
          errors.push(`'${k}': checkpoint has shape ${fmtShape(v.shape)} (${data.length} values), model has ${fmtShape(t.shape)}`);
          continue;
        }
      } else if (data.length !== t.size) {
        errors.push(`'${k}': checkpoint has ${data.length} values, model has shape ${fmtShape(t.shape)} (${t.size} values)`);
        continue;
      }
      writes.push([t, data]);
    }
    if (errors.length) throw new RangeError(`dd2: loadStateDict: shape mismatch for ${errors.join('; ')}`);
    noGrad(() => {
      for (const [t, data] of writes) if (data.length) native.storage_write(t.storage.id, t.offset * 4, data);
    });
    return { missing, unexpected };
  }
}

/** An indexable list of modules named "0", "1", ... (PyTorch's ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];

  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): M {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return m;
  }

  get(i: number): M {
    const m = this.items[i < 0 ? this.items.length + i : i];
    if (!m) throw new RangeError(`dd2: ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  get length(): number {
    return this.items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
