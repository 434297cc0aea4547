// The one file that loads the native addon, and the typed list of everything it exports.
// Conventions (see README "Native ABI"): tensors are passed as storage ids (positive integers) of
// contiguous buffers, destination first; optional tensors are passed as -1; sizes are plain integers.
// Dimension letters: B batch, M/N/K GEMM sizes, T tokens, D head dim, C channels, V vocabulary.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Per device: live storages, their bytes, the peak of bytes, allocations so far, and (cuda) bytes
 *  held in the caching allocator's free lists. */
export interface MemoryCounters { live: number; bytes: number; peak: number; allocs: number; cached: number }

export interface BuildInfo {
  cuda: {
    compiled: boolean; devices: number; error: string; archs?: string; compiler?: string;
    runtimeVersion?: number; driverVersion?: number; name?: string; computeCapability?: string;
    totalMemory?: number;
  };
  blas: string; cpuFeatures: string; compiler: string; threads: number; napiVersion: number;
}

/** Unary op codes for unary_forward / unary_backward. */
export const UnaryOp = {
  neg: 0, exp: 1, log: 2, sqrt: 3, tanh: 4, sigmoid: 5, silu: 6, gelu: 7, geluTanh: 8, relu: 9,
  abs: 10, square: 11, rsqrt: 12, sin: 13, cos: 14, reciprocal: 15,
} as const;
export type UnaryName = keyof typeof UnaryOp;

/** Binary op codes for binary_forward (broadcasting through strides). */
export const BinaryOp = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5, pow: 6 } as const;
export type BinaryName = keyof typeof BinaryOp;

/** Scalar op codes for scalar_forward: y = f(x, s). */
export const ScalarOp = {
  add: 0, mul: 1, pow: 2, rsub: 3, rdiv: 4, maximum: 5, minimum: 6, ge: 7, gt: 8, le: 9, lt: 10, eq: 11,
} as const;
export type ScalarName = keyof typeof ScalarOp;

/** Reduction op codes for reduce_forward over the middle axis of (outer, n, inner). */
export const ReduceOp = { sum: 0, max: 1, min: 2, logsumexp: 3 } as const;
export type ReduceName = keyof typeof ReduceOp;

export interface NativeModule {
  // ---- storage (ops-storage.cpp) ----
  storage_alloc(device: number, bytes: number, zero: boolean): number;
  storage_free(id: number): void;
  storage_write(id: number, byteOffset: number, src: ArrayBufferView): void;
  storage_read(id: number, byteOffset: number, dst: ArrayBufferView): void;
  storage_copy(dst: number, dstByteOffset: number, src: number, srcByteOffset: number, bytes: number): void;
  memory_stats(): { cpu: MemoryCounters; cuda: MemoryCounters };
  // ---- info (ops-info.cpp) ----
  build_info(): BuildInfo;
  supports(kernel: string, device: number): boolean;
  kernel_names(): string[];
  num_threads(): number;
  set_num_threads(n: number): void;
  cuda_synchronize(): void;
  cuda_empty_cache(): void;

  // ---- elementwise (cpu/elementwise.cpp) ---- n = element count
  fill_f32(y: number, n: number, value: number): void;
  fill_i32(y: number, n: number, value: number): void;
  cast_i32_to_f32(y: number, x: number, n: number): void;
  cast_f32_to_i32(y: number, x: number, n: number): void;     // truncation toward zero
  unary_forward(op: number, y: number, x: number, n: number): void;
  /** dx = dy * f'(x); y = f(x) is passed too (rules such as exp, tanh, sigmoid use it). */
  unary_backward(op: number, dx: number, dy: number, x: number, y: number, n: number): void;
  /** y[i] = f(a[ia], b[ib]); out has `shape`, a and b are read through strides (0 = broadcast). */
  binary_forward(op: number, y: number, a: number, b: number, shape: number[], aStrides: number[],
                 bStrides: number[]): void;
  scalar_forward(op: number, y: number, x: number, s: number, n: number): void;
  /** y += alpha * x (in place; gradient accumulation) */
  axpy(y: number, x: number, n: number, alpha: number): void;
  /** dst[dstOffset + sum(i_k * dstStrides_k)] = src[srcOffset + sum(i_k * srcStrides_k)], over `shape`
   *  (element units, 4-byte elements: float32 or int32). Covers contiguous(), permute, slice, expand,
   *  concat and slice-backward. */
  copy_strided(dst: number, dstOffset: number, dstStrides: number[], src: number, srcOffset: number,
               srcStrides: number[], shape: number[]): void;
  /** (outer, n, inner) -> (outer, inner) */
  reduce_forward(op: number, y: number, x: number, outer: number, n: number, inner: number): void;
  /** argmax over the middle axis; yIdx is int32 (outer, inner); first index wins ties */
  argmax(yIdx: number, x: number, outer: number, n: number, inner: number): void;
  /** dx (outer, n, inner) = 0 except dx[o, idx[o,i], i] = dy[o, i] */
  scatter_argmax_backward(dx: number, dy: number, idx: number, outer: number, n: number, inner: number): void;
  /** sum of squares of x in float64 (gradient norms) */
  sum_squares(x: number, n: number): number;

  // ---- random (cpu/random.cpp): Philox4x32-10, counter-based; element i of a call uses counter
  // offset + i, so CPU and CUDA produce the same streams. seed is split into two uint32 words.
  rng_uniform(y: number, n: number, seedLo: number, seedHi: number, offset: number): void;   // [0, 1)
  rng_normal(y: number, n: number, seedLo: number, seedHi: number, offset: number): void;    // N(0, 1)
  /** one draw per row from unnormalised non-negative weights (rows, cols); y int32 (rows) */
  rng_categorical(y: number, probs: number, rows: number, cols: number, seedLo: number, seedHi: number,
                  offset: number): void;
  /** mask[i] = (u_i >= p) / (1 - p) */
  rng_dropout_mask(mask: number, n: number, p: number, seedLo: number, seedHi: number, offset: number): void;

  // ---- GEMM (cpu/gemm.cpp): row-major; see native/include/dd2/cpu/gemm.h ----
  gemm(c: number, a: number, b: number, batch: number, M: number, N: number, K: number, transA: boolean,
       transB: boolean, strideA: number, strideB: number, strideC: number, alpha: number, beta: number): void;
  /** 'auto' | 'builtin' | 'openblas' */
  gemm_set_backend(name: string): void;
  gemm_get_backend(): string;
  /** bf16 GEMM on CUDA (cuBLAS): a, b hold bf16 (2-byte elements); c float32, or bf16 with outBf16 */
  gemm_bf16?(c: number, a: number, b: number, batch: number, M: number, N: number, K: number, transA: boolean,
    transB: boolean, strideA: number, strideB: number, strideC: number, alpha: number, beta: number,
    outBf16: boolean): void;
  /** CUDA GEMM settings: TF32 tensor-core math, forcing the built-in kernel; returns a description */
  gemm_cuda_options(opts?: { tf32?: boolean; builtin?: boolean }): string;

  // ---- softmax and losses (cpu/softmax.cpp), last axis of (rows, cols) ----
  softmax_forward(y: number, x: number, rows: number, cols: number): void;
  softmax_backward(dx: number, dy: number, y: number, rows: number, cols: number): void;
  log_softmax_forward(y: number, x: number, rows: number, cols: number): void;
  log_softmax_backward(dx: number, dy: number, y: number, rows: number, cols: number): void;
  /** loss[r] = lse(logits[r]) - logits[r, t[r]] (0 where t[r] == ignoreIndex); lse saved (rows) */
  cross_entropy_forward(loss: number, lse: number, logits: number, targets: number, rows: number, cols: number,
                        ignoreIndex: number): void;
  cross_entropy_backward(dlogits: number, dloss: number, logits: number, lse: number, targets: number,
                         rows: number, cols: number, ignoreIndex: number): void;

  // ---- norms (cpu/norm.cpp); w/b optional (-1); dw/db optional (-1), written (not accumulated) ----
  layer_norm_forward(y: number, mean: number, rstd: number, x: number, w: number, b: number, rows: number,
                     cols: number, eps: number): void;
  layer_norm_backward(dx: number, dw: number, db: number, dy: number, x: number, w: number, mean: number,
                      rstd: number, rows: number, cols: number): void;
  rms_norm_forward(y: number, rstd: number, x: number, w: number, rows: number, cols: number, eps: number): void;
  rms_norm_backward(dx: number, dw: number, dy: number, x: number, w: number, rstd: number, rows: number,
                    cols: number): void;
  /** x (N, C, HW), G groups of C/G channels; mean/rstd (N, G); w/b per channel (C) */
  group_norm_forward(y: number, mean: number, rstd: number, x: number, w: number, b: number, N: number, C: number,
                     HW: number, G: number, eps: number): void;
  group_norm_backward(dx: number, dw: number, db: number, dy: number, x: number, w: number, mean: number,
                      rstd: number, N: number, C: number, HW: number, G: number): void;

  // ---- indexing (cpu/index.cpp) ----
  /** y (n, dim) = weight[idx[i]] ; idx int32 (n), checked against vocab */
  embedding_forward(y: number, weight: number, idx: number, n: number, dim: number, vocab: number): void;
  /** dweight (vocab, dim) = scatter-add of dy rows (dweight is overwritten) */
  embedding_backward(dweight: number, dy: number, idx: number, n: number, dim: number, vocab: number): void;
  /** x (outer, n, inner), idx int32 (outer, k, inner) -> y (outer, k, inner) = x[o, idx[o,j,i], i] */
  gather_forward(y: number, x: number, idx: number, outer: number, n: number, inner: number, k: number): void;
  /** dx (outer, n, inner) overwritten with the scatter-add of dy */
  gather_backward(dx: number, dy: number, idx: number, outer: number, n: number, inner: number, k: number): void;

  // ---- convolution and resampling (cpu/conv.cpp), NCHW, groups = 1 ----
  /** padW defaults to padH (zero padding of padH rows and padW columns on each side) */
  conv2d_forward(y: number, x: number, w: number, b: number, N: number, Cin: number, H: number, W: number,
                 Cout: number, KH: number, KW: number, stride: number, padH: number, padW?: number): void;
  conv2d_backward_input(dx: number, dy: number, w: number, N: number, Cin: number, H: number, W: number,
                        Cout: number, KH: number, KW: number, stride: number, padH: number, padW?: number): void;
  conv2d_backward_weight(dw: number, db: number, dy: number, x: number, N: number, Cin: number, H: number,
                         W: number, Cout: number, KH: number, KW: number, stride: number, padH: number,
                         padW?: number): void;
  upsample_nearest_forward(y: number, x: number, NC: number, H: number, W: number, factor: number): void;
  upsample_nearest_backward(dx: number, dy: number, NC: number, H: number, W: number, factor: number): void;

  // ---- pooling and bilinear resizing (cpu/pool.cpp, cuda/pool.cu), NCHW as NC planes of H x W ----
  /** window KH x KW, strides SH/SW, padding PH/PW (<= half the window); idx int32 (NC, OH, OW) = h * W + w */
  max_pool2d_forward(y: number, idx: number, x: number, NC: number, H: number, W: number, KH: number, KW: number,
                     SH: number, SW: number, PH: number, PW: number): void;
  max_pool2d_backward(dx: number, dy: number, idx: number, NC: number, H: number, W: number, KH: number,
                      KW: number, SH: number, SW: number, PH: number, PW: number): void;
  avg_pool2d_forward(y: number, x: number, NC: number, H: number, W: number, KH: number, KW: number, SH: number,
                     SW: number, PH: number, PW: number, countIncludePad: boolean): void;
  avg_pool2d_backward(dx: number, dy: number, NC: number, H: number, W: number, KH: number, KW: number,
                      SH: number, SW: number, PH: number, PW: number, countIncludePad: boolean): void;
  /** (NC, H, W) -> (NC, OH, OW); mode 0 = half-pixel (PyTorch align_corners=False), 1 = asymmetric (TF1) */
  resize_bilinear_forward(y: number, x: number, NC: number, H: number, W: number, OH: number, OW: number,
                          mode: number): void;
  resize_bilinear_backward(dx: number, dy: number, NC: number, H: number, W: number, OH: number, OW: number,
                           mode: number): void;

  // ---- fused attention (cpu/attention.cpp, cuda/attention*.cu) ----
  /** q (BH, Tq, D), k/v (BH, Tk, D) -> o (BH, Tq, D), lse (BH, Tq) float32.
   *  Mask: with levels, key j is visible to query i iff levelK[j] <= levelQ[i] (int32 arrays of Tq and
   *  Tk; causal = level t, VAR block-causal = scale index); else with causal, iff j <= i + Tk - Tq;
   *  else all visible. Fully masked rows give o = 0 and lse = -inf. */
  attention_forward(o: number, lse: number, q: number, k: number, v: number, BH: number, Tq: number, Tk: number,
                    D: number, scale: number, causal: boolean, levelQ: number, levelK: number): void;
  attention_backward(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number,
                     o: number, lse: number, BH: number, Tq: number, Tk: number, D: number, scale: number,
                     causal: boolean, levelQ: number, levelK: number): void;
  /** which compiled variant the attention kernels use: 'avx512f' | 'avx2+fma' | 'base' */
  attention_isa(): string;
  /** cuda only, tensor cores: q/k/v/o bf16 (storage of 2 bytes per element holding bfloat16 bits), lse float32;
   *  same arguments and masks as attention_forward; D in {32, 64, 96, 128}. */
  attention_forward_bf16(o: number, lse: number, q: number, k: number, v: number, BH: number, Tq: number,
                         Tk: number, D: number, scale: number, causal: boolean, levelQ: number, levelK: number): void;
  /** cuda only: bf16 gradients dq/dk/dv from bf16 dout, q, k, v, o and the float32 lse of the forward. */
  attention_backward_bf16(dq: number, dk: number, dv: number, dout: number, q: number, k: number, v: number,
                          o: number, lse: number, BH: number, Tq: number, Tk: number, D: number, scale: number,
                          causal: boolean, levelQ: number, levelK: number): void;

  // ---- optimiser (cpu/optim.cpp), in place ----
  /** AdamW with decoupled weight decay; bc1 = 1 - beta1^t, bc2 = 1 - beta2^t */
  adamw_step(p: number, g: number, m: number, v: number, n: number, lr: number, beta1: number, beta2: number,
             eps: number, weightDecay: number, bc1: number, bc2: number): void;
  /** ema = decay * ema + (1 - decay) * p */
  ema_update(ema: number, p: number, n: number, decay: number): void;

  // ---- float64 host linear algebra (cpu/linalg.cpp): plain Float64Arrays, not storages; row-major.
  // LAPACK dsyevd_/cblas_dgemm from OpenBLAS via dlopen, else built-in (env DD2_LINALG=builtin forces it). ----
  /** eigenvalues of the symmetric a (n x n, lower triangle read) ascending into w (n); with vectors, a is
   *  overwritten so that row k is the unit eigenvector of w[k] (otherwise a is destroyed) */
  sym_eig_f64(n: number, a: Float64Array, w: Float64Array, vectors: boolean): void;
  /** c (M x N) = alpha * op(a) * op(b) + beta * c; op(a) is a (M x K) or, transposed, a stored K x M;
   *  op(b) is b (K x N) or, transposed, b stored N x K; beta = 0 never reads c */
  gemm_f64(c: Float64Array, a: Float64Array, b: Float64Array, M: number, N: number, K: number, transA: boolean,
           transB: boolean, alpha: number, beta: number): void;
  /** 'auto' | 'builtin' | 'lapack' */
  linalg_set_backend(name: string): void;
  linalg_backend(): 'lapack' | 'builtin';
  linalg_backend_description(): string;

  // ---- DD2 conditional denoiser and CSD gradient (cpu/cond-score.cpp); contracts in
  // native/include/dd2/cpu/cond-score.h. x (N, C), t (N), code (V, C); probabilities either dense
  // P (N, V) or sparse idx int32 (N, K) + val (N, K) (the unused form -1); C <= 64. ----
  /** D (N, C) = E[c | x] under Σ_j p_j N(x; (1-t)c_j, t²I); lse (N) = logsumexp_j ℓ_j for the VJP */
  cond_denoise_fwd(D: number, lse: number, x: number, t: number, code: number, P: number, idx: number, val: number,
                   N: number, C: number, V: number, K: number): void;
  /** gx (N, C) = (∂D/∂x)ᵀ g from the forward's lse and D */
  cond_denoise_vjp(gx: number, g: number, x: number, t: number, code: number, P: number, idx: number, val: number,
                   lse: number, D: number, N: number, C: number, V: number, K: number): void;
  /** per-token SiD/CSD loss (N) and gradients gx, gDpsi (N, C), and Dphi = D(xt) (N, C) */
  csd_grad(loss: number, gx: number, gDpsi: number, Dphi: number, x: number, xt: number, t: number, Dpsi: number,
           code: number, P: number, idx: number, val: number, N: number, C: number, V: number, K: number,
           alpha: number, scale: number, lambdaMin: number, detached: boolean): void;
}

function findAddon(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // lib/tensor (sources, run by tests) or dist/lib/tensor (compiled): walk up to the package root.
  const candidates = [
    process.env.DD2_ADDON,
    resolve(here, '../../build/Release/dd2.node'),
    resolve(here, '../../../build/Release/dd2.node'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new Error(
    `dd2: the native addon is not built (looked for ${candidates.filter(Boolean).join(', ')}).\n` +
    `Build it from the package root with:  npx cmake-js compile   (or: npm run build)`);
}

const require = createRequire(import.meta.url);
export const addonPath = findAddon();
export const native = require(addonPath) as NativeModule;
export const packageRoot = resolve(dirname(addonPath), '../..');
export const joinRoot = (...p: string[]): string => join(packageRoot, ...p);
