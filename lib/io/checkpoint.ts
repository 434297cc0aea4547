// Checkpoints. A model file is a safetensors file of module.stateDict() (F32) whose metadata '__dd2__'
// holds the JSON of a CheckpointMeta. A RunDir is a run folder: run.json (the resolved config),
// log.jsonl, and per training name a consistent set of files named by step — <name>-model-<step>,
// <name>-ema-<step> (a complete model file with EMA weights), <name>-optim-<step> (AdamW moments) — plus
// the pointer <name>-latest.json (counters, RNG and batcher state), written last. Every file is written
// atomically and the previous set is deleted only after the pointer names the new one, so a SIGKILL at any
// moment leaves a loadable set. <name>.safetensors / <name>-ema.safetensors are hard links to the newest.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Module } from '../nn/module.js';
import type { AdamW, AdamWState, EMA } from '../nn/optim.js';
import { native } from '../tensor/native.js';
import { linkAtomic, removeStaleTemps, writeFileAtomic } from './atomic.js';
import { readSafetensors, toFloat32, writeSafetensors, type NamedArray } from './safetensors.js';

export interface CheckpointMeta {
  kind: string;             // 'vq' | 'gpt' | ...
  config: unknown;
  step: number;
  options?: unknown;
  tokenizer?: string;       // path of the tokenizer checkpoint the model belongs to
}

export const META_KEY = '__dd2__';
const OPTIM_KEY = '__dd2_optim__';
const EMA_KEY = '__dd2_ema__';

function parseMeta(text: string | undefined, path: string): CheckpointMeta {
  if (text === undefined) throw new Error(`dd2: ${path} is not a dd2 checkpoint (no '${META_KEY}' metadata)`);
  let m: unknown;
  try { m = JSON.parse(text); } catch (e) { throw new Error(`dd2: ${path}: '${META_KEY}' metadata is not JSON (${(e as Error).message})`); }
  const meta = m as CheckpointMeta;
  if (typeof meta !== 'object' || meta === null || typeof meta.kind !== 'string' || !Number.isSafeInteger(meta.step)) {
    throw new Error(`dd2: ${path}: '${META_KEY}' metadata needs a string 'kind' and an integer 'step', got ${text.slice(0, 200)}`);
  }
  return meta;
}

function checkMeta(meta: CheckpointMeta, where: string): void {
  if (typeof meta?.kind !== 'string' || !meta.kind || !(Number.isSafeInteger(meta.step) && meta.step >= 0)) {
    throw new TypeError(`dd2: ${where}: meta needs a non-empty string 'kind' and an integer step >= 0`);
  }
}

function f32Arrays(state: Map<string, Float32Array>, shapes: Map<string, number[]>): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [k, data] of state) out.set(k, { dtype: 'F32', shape: shapes.get(k) ?? [data.length], data });
  return out;
}

/** Writes host state (name -> values, name -> shape) with its meta as a model file (atomic). */
export function saveState(path: string, state: Map<string, Float32Array>, shapes: Map<string, number[]>,
  meta: CheckpointMeta, extraMetadata: Record<string, string> = {}): void {
  checkMeta(meta, `saveModel ${path}`);
  writeSafetensors(path, f32Arrays(state, shapes), { ...extraMetadata, [META_KEY]: JSON.stringify(meta) });
}

/** Writes module.stateDict() (parameters and persistent buffers, F32) with meta in '__dd2__' (atomic). */
export function saveModel(path: string, module: Module, meta: CheckpointMeta): void {
  saveState(path, module.stateDict(), module.stateShapes(), meta);
}

export interface LoadedModel { state: Map<string, Float32Array>; shapes: Map<string, number[]>; meta: CheckpointMeta }

function loadWithMetadata(path: string): LoadedModel & { metadata: Record<string, string> } {
  const { arrays, metadata } = readSafetensors(path);
  const meta = parseMeta(metadata[META_KEY], path);
  const state = new Map<string, Float32Array>(), shapes = new Map<string, number[]>();
  for (const [k, a] of arrays) { state.set(k, toFloat32(a)); shapes.set(k, a.shape); }
  return { state, shapes, meta, metadata };
}

/** Reads a model file: float32 values (BF16/integer tensors converted), shapes and the meta. */
export function loadModelFile(path: string): LoadedModel {
  const { state, shapes, meta } = loadWithMetadata(path);
  return { state, shapes, meta };
}

/** Loads a model file into a module (strict names, exact shapes); returns the meta. */
export function loadModelInto(module: Module, path: string): CheckpointMeta {
  const m = loadModelFile(path);
  module.loadStateDict(withShapes(m.state, m.shapes));
  return m.meta;
}

function withShapes(state: Map<string, Float32Array>, shapes: Map<string, number[]>): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map([...state].map(([k, data]) => [k, { shape: shapes.get(k) ?? [data.length], data }]));
}

export interface TrainingStateInput {
  module: Module; optimizer?: AdamW; ema?: EMA; step: number; rng?: object; batcher?: object; meta: CheckpointMeta;
  /** any other JSON-serialisable counters to restore */
  extra?: Record<string, unknown>;
}

export interface TrainingState {
  step: number;
  meta: CheckpointMeta;
  model: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  optimizer: AdamWState | null;
  ema: { shadow: Map<string, Float32Array>; names: string[]; updates: number; decay: number } | null;
  rng?: object;
  batcher?: object;
  extra?: Record<string, unknown>;
  files: { model: string; ema?: string; optim?: string };
}

interface Pointer {
  format: 'dd2-training-state'; version: 1; name: string; step: number; time: string;
  files: { model: string; ema?: string; optim?: string };
  state: { rng?: object; batcher?: object; extra?: Record<string, unknown> };
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.]*$/;
const stepTag = (step: number): string => String(step).padStart(6, '0');

function optimArrays(opt: AdamW, names: string[]): { arrays: Map<string, NamedArray>; meta: string } {
  const st = opt.stateDict();
  const params = opt.params();
  const arrays = new Map<string, NamedArray>();
  st.params.forEach((e, i) => {
    if (!e) return;
    const shape = [...params[i].shape];
    arrays.set(`state.${i}.exp_avg`, { dtype: 'F32', shape, data: e.m });
    arrays.set(`state.${i}.exp_avg_sq`, { dtype: 'F32', shape, data: e.v });
  });
  const meta = { step: st.step, groups: st.groups, params: st.params.map((e, i) => ({ name: names[i], step: e ? e.step : null })) };
  return { arrays, meta: JSON.stringify(meta) };
}

function readOptim(path: string): AdamWState {
  const { arrays, metadata } = readSafetensors(path);
  if (metadata[OPTIM_KEY] === undefined) throw new Error(`dd2: ${path} is not a dd2 optimizer file (no '${OPTIM_KEY}' metadata)`);
  const m = JSON.parse(metadata[OPTIM_KEY]) as { step: number; groups: AdamWState['groups']; params: { step: number | null }[] };
  const get = (k: string): Float32Array => {
    const a = arrays.get(k);
    if (!a || a.dtype !== 'F32') throw new Error(`dd2: ${path}: optimizer tensor '${k}' is missing or not F32`);
    return a.data as Float32Array;
  };
  return {
    step: m.step, groups: m.groups,
    params: m.params.map((p, i) => (p.step === null ? null : { step: p.step, m: get(`state.${i}.exp_avg`), v: get(`state.${i}.exp_avg_sq`) })),
  };
}

/** A run folder: config, JSON-lines log and training checkpoints. */
export class RunDir {
  private constructor(readonly dir: string, readonly config: unknown) {}

  /** Creates the folder (and parents) and writes run.json with the resolved config. */
  static create(dir: string, config: unknown): RunDir {
    const abs = resolve(dir);
    mkdirSync(abs, { recursive: true });
    writeFileAtomic(join(abs, 'run.json'), JSON.stringify(config, null, 2) + '\n');
    return new RunDir(abs, config);
  }

  /** Opens an existing run folder (for --resume); removes temporary files of killed writers. */
  static open(dir: string): RunDir {
    const abs = resolve(dir);
    const cfg = join(abs, 'run.json');
    if (!existsSync(cfg)) throw new Error(`dd2: ${dir} is not a run folder (no run.json)`);
    let config: unknown;
    try { config = JSON.parse(readFileSync(cfg, 'utf8')); } catch (e) { throw new Error(`dd2: ${cfg}: ${(e as Error).message}`); }
    removeStaleTemps(abs);
    return new RunDir(abs, config);
  }

  /** A path inside the run folder. */
  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Appends one JSON line to log.jsonl, with the time first. */
  log(record: object): void {
    appendFileSync(this.path('log.jsonl'), JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
  }

  /** The log records; a partial last line (a write cut by a kill) is skipped. */
  readLog(): Record<string, unknown>[] {
    const p = this.path('log.jsonl');
    if (!existsSync(p)) return [];
    const out: Record<string, unknown>[] = [];
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      if (!line) continue;
      try { out.push(JSON.parse(line)); } catch { /* cut line */ }
    }
    return out;
  }

  /** The newest model (and EMA model) of a training name: hard links updated after each save. */
  modelPath(name: string): string { return this.path(`${name}.safetensors`); }
  emaPath(name: string): string { return this.path(`${name}-ema.safetensors`); }
  private pointerPath(name: string): string { return this.path(`${name}-latest.json`); }

  private readPointer(name: string): Pointer | null {
    const p = this.pointerPath(name);
    if (!existsSync(p)) return null;
    let ptr: Pointer;
    try { ptr = JSON.parse(readFileSync(p, 'utf8')); } catch (e) { throw new Error(`dd2: ${p}: ${(e as Error).message}`); }
    if (ptr?.format !== 'dd2-training-state' || !Number.isSafeInteger(ptr.step) || typeof ptr.files?.model !== 'string') {
      throw new Error(`dd2: ${p} is not a dd2 training-state pointer`);
    }
    return ptr;
  }

  /**
   * Saves model, EMA and optimizer (one atomic file each) for `step`, then the pointer naming them,
   * then deletes sets older than the previous one. Returns the paths written.
   */
  saveTrainingState(name: string, s: TrainingStateInput): { model: string; ema?: string; optim?: string; pointer: string } {
    if (!NAME_RE.test(name)) throw new RangeError(`dd2: saveTrainingState: name '${name}' must match ${NAME_RE}`);
    if (!(Number.isSafeInteger(s.step) && s.step >= 0)) throw new RangeError(`dd2: saveTrainingState: step must be an integer >= 0, got ${s.step}`);
    const meta = { ...s.meta, step: s.step };
    const prev = this.readPointer(name);
    const tag = stepTag(s.step);
    const files: Pointer['files'] = { model: `${name}-model-${tag}.safetensors` };
    const state = s.module.stateDict(), shapes = s.module.stateShapes();
    saveState(this.path(files.model), state, shapes, meta);
    const nameOf = new Map(s.module.namedParameters().map(([k, p]) => [p, k] as const));
    if (s.ema) {
      const names = s.ema.params.map((p, i) => {
        const k = nameOf.get(p);
        if (!k) throw new Error(`dd2: saveTrainingState: EMA tensor ${i} (${p.describe()}) is not a parameter of the module`);
        return k;
      });
      const emaState = new Map(state);
      names.forEach((k, i) => emaState.set(k, s.ema!.shadow[i].toFloat32Array()));
      files.ema = `${name}-ema-${tag}.safetensors`;
      saveState(this.path(files.ema), emaState, shapes, meta,
        { [EMA_KEY]: JSON.stringify({ names, updates: s.ema.updates, decay: s.ema.decay }) });
    }
    if (s.optimizer) {
      const names = s.optimizer.params().map((p, i) => nameOf.get(p) ?? `#${i}`);
      const { arrays, meta: om } = optimArrays(s.optimizer, names);
      files.optim = `${name}-optim-${tag}.safetensors`;
      writeSafetensors(this.path(files.optim), arrays, { [OPTIM_KEY]: om });
    }
    const ptr: Pointer = {
      format: 'dd2-training-state', version: 1, name, step: s.step, time: new Date().toISOString(), files,
      state: { rng: s.rng, batcher: s.batcher, extra: s.extra },
    };
    writeFileAtomic(this.pointerPath(name), JSON.stringify(ptr, null, 2) + '\n');
    this.prune(name, new Set([s.step, ...(prev ? [prev.step] : [])]));
    const copy = (f: string) => (): Uint8Array => readFileSync(this.path(f));
    linkAtomic(this.path(files.model), this.modelPath(name), copy(files.model));
    if (files.ema) linkAtomic(this.path(files.ema), this.emaPath(name), copy(files.ema));
    return {
      model: this.path(files.model), ema: files.ema && this.path(files.ema), optim: files.optim && this.path(files.optim),
      pointer: this.pointerPath(name),
    };
  }

  /** Deletes this name's step files whose step is not kept. */
  private prune(name: string, keep: Set<number>): void {
    const re = new RegExp(`^${name.replace(/\./g, '\\.')}-(model|ema|optim)-(\\d+)\\.safetensors$`);
    for (const f of readdirSync(this.dir)) {
      const m = re.exec(f);
      if (m && !keep.has(Number(m[2]))) {
        try { unlinkSync(this.path(f)); } catch { /* already gone */ }
      }
    }
  }

  /** The step of the newest saved state, or null. */
  latestStep(name: string): number | null {
    return this.readPointer(name)?.step ?? null;
  }

  /** Reads the set named by the pointer as plain data, or null if nothing was saved under `name`. */
  loadTrainingState(name: string): TrainingState | null {
    const ptr = this.readPointer(name);
    if (!ptr) return null;
    const model = loadWithMetadata(this.path(ptr.files.model));
    if (model.meta.step !== ptr.step) {
      throw new Error(`dd2: ${this.path(ptr.files.model)} holds step ${model.meta.step}, the pointer says ${ptr.step}`);
    }
    let ema: TrainingState['ema'] = null;
    if (ptr.files.ema) {
      const e = loadWithMetadata(this.path(ptr.files.ema));
      const info = JSON.parse(e.metadata[EMA_KEY] ?? 'null') as { names: string[]; updates: number; decay: number } | null;
      if (!info) throw new Error(`dd2: ${this.path(ptr.files.ema)} has no '${EMA_KEY}' metadata`);
      ema = { shadow: new Map(info.names.map((k) => [k, e.state.get(k)!])), names: info.names, updates: info.updates, decay: info.decay };
    }
    return {
      step: ptr.step, meta: model.meta, model: model.state, shapes: model.shapes,
      optimizer: ptr.files.optim ? readOptim(this.path(ptr.files.optim)) : null, ema,
      rng: ptr.state.rng, batcher: ptr.state.batcher, extra: ptr.state.extra,
      files: {
        model: this.path(ptr.files.model), ema: ptr.files.ema && this.path(ptr.files.ema),
        optim: ptr.files.optim && this.path(ptr.files.optim),
      },
    };
  }
}

/**
 * Puts a loaded training state into live objects: module parameters/buffers (exact shapes), AdamW moments
 * and step counts, EMA averages and counters. Objects not passed are left alone; passing an optimizer or
 * EMA the checkpoint lacks is an error.
 */
export function restoreTrainingState(st: TrainingState, to: { module: Module; optimizer?: AdamW; ema?: EMA }): void {
  to.module.loadStateDict(withShapes(st.model, st.shapes));
  if (to.optimizer) {
    if (!st.optimizer) throw new Error(`dd2: ${st.files.model}: the checkpoint has no optimizer state`);
    to.optimizer.loadStateDict(st.optimizer);
  }
  if (to.ema) {
    const e = st.ema;
    if (!e) throw new Error(`dd2: ${st.files.model}: the checkpoint has no EMA state`);
    const ema = to.ema;
    if (e.names.length !== ema.shadow.length) {
      throw new RangeError(`dd2: restoreTrainingState: the checkpoint's EMA has ${e.names.length} tensors, the EMA has ${ema.shadow.length}`);
    }
    e.names.forEach((k, i) => {
      const data = e.shadow.get(k);
      const s = ema.shadow[i];
      if (!data || data.length !== s.size) {
        throw new RangeError(`dd2: restoreTrainingState: EMA '${k}' has ${data?.length ?? 0} values, expected ${s.size}`);
      }
    });
    e.names.forEach((k, i) => { if (ema.shadow[i].size) native.storage_write(ema.shadow[i].storage.id, 0, e.shadow.get(k)!); });
    ema.updates = e.updates;
    ema.decay = e.decay;
  }
}
