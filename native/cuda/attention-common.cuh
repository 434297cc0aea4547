// Shared pieces of the CUDA attention kernels (attention.cu float32, attention-fwd.cu / attention-bwd.cu
// bf16): the mask parameters as kernels see them, per-tile level ranges, tile classification (skip /
// per-element mask / fully visible) and the visibility test. Letters: BH batch × heads, Tq queries, Tk
// keys, D head dim; a query tile has BQ rows, a key tile BK keys.
#pragma once
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/cuda-api.h"
#include "dd2/cpu/attention.h"

namespace dd2 {
namespace attn {

enum TileKind { kSkip = 0, kPartial = 1, kFull = 2 };

struct Params {
    int BH = 0, Tq = 0, Tk = 0, D = 0;
    int off = 0;            // Tk - Tq, the causal diagonal shift
    int nqt = 0, nkt = 0;   // query / key tiles
    float scale = 1.0f;
    bool causal = false;
    const int32_t* lq = nullptr;   // levels (device), or null
    const int32_t* lk = nullptr;
    const int32_t* qmin = nullptr;   // level range of every query tile / key tile (device), with levels
    const int32_t* qmax = nullptr;
    const int32_t* kmin = nullptr;
    const int32_t* kmax = nullptr;
};

// Key j is visible to query i (both in range).
__device__ __forceinline__ bool visible(const Params& p, int i, int j) {
    if (p.lq) return __ldg(p.lk + j) <= __ldg(p.lq + i);
    return !p.causal || j <= i + p.off;
}

// Whether key tile kt is hidden from every row of query tile qt, needs a per-element mask (mixed
// visibility, or keys past Tk), or is visible to every row. Uniform over a block.
__device__ __forceinline__ int tile_kind(const Params& p, int qt, int kt, int BQ, int BK) {
    const int i0 = qt * BQ, i1 = min(p.Tq, i0 + BQ);
    const int j0 = kt * BK, j1 = min(p.Tk, j0 + BK);
    const bool edge = j0 + BK > p.Tk;
    if (p.lq) {
        if (p.kmin[kt] > p.qmax[qt]) return kSkip;
        return p.kmax[kt] <= p.qmin[qt] && !edge ? kFull : kPartial;
    }
    if (p.causal) {
        if (j0 > i1 - 1 + p.off) return kSkip;
        return j1 - 1 <= i0 + p.off && !edge ? kFull : kPartial;
    }
    return edge ? kPartial : kFull;
}

// lo[t], hi[t] = min / max of lv over [t·tile, min(n, (t+1)·tile)).
static __global__ void level_ranges_kernel(int32_t* lo, int32_t* hi, const int32_t* lv, int n, int tile) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t * tile >= n) return;
    int32_t mn = lv[t * tile], mx = mn;
    for (int i = t * tile + 1; i < min(n, (t + 1) * tile); ++i) {
        mn = min(mn, lv[i]);
        mx = max(mx, lv[i]);
    }
    lo[t] = mn;
    hi[t] = mx;
}

// Scratch device memory from the caching allocator, returned when the owner goes out of scope (kernels
// run in stream order on one stream, so the block is only reused by later work).
struct Scratch {
    void* ptr = nullptr;
    size_t bytes = 0;
    Scratch() = default;
    explicit Scratch(size_t n) { reset(n); }
    ~Scratch() { reset(0); }
    void reset(size_t n) {
        if (ptr) cuda::free_bytes(ptr, bytes);
        ptr = n ? cuda::malloc_bytes(n) : nullptr;
        bytes = n;
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    template <class T>
    T* as(size_t offset_elems = 0) const { return static_cast<T*>(ptr) + offset_elems; }
};

// Kernel parameters for tiles of BQ queries and BK keys; with levels, fills the tile ranges into `ranges`
// (which must outlive the kernels' enqueueing).
inline Params make_params(const AttentionShape& s, int BQ, int BK, Scratch& ranges, const char* op) {
    DD2_CHECK_RANGE(s.BH <= INT32_MAX && s.Tq <= INT32_MAX / 2 && s.Tk <= INT32_MAX / 2, op,
                    ": sizes too large for the cuda kernels (BH=", s.BH, ", Tq=", s.Tq, ", Tk=", s.Tk, ")");
    Params p;
    p.BH = (int)s.BH;
    p.Tq = (int)s.Tq;
    p.Tk = (int)s.Tk;
    p.D = (int)s.D;
    p.off = (int)(s.Tk - s.Tq);
    p.nqt = (int)((s.Tq + BQ - 1) / BQ);
    p.nkt = (int)((s.Tk + BK - 1) / BK);
    p.scale = s.scale;
    p.causal = s.causal;
    if (s.level_q && p.Tq > 0 && p.Tk > 0) {
        p.lq = s.level_q;
        p.lk = s.level_k;
        ranges.reset(sizeof(int32_t) * 2 * (size_t)(p.nqt + p.nkt));
        int32_t* r = ranges.as<int32_t>();
        p.qmin = r;
        p.qmax = r + p.nqt;
        p.kmin = r + 2 * p.nqt;
        p.kmax = r + 2 * p.nqt + p.nkt;
        level_ranges_kernel<<<cuda::blocks_for(p.nqt, 128), 128, 0, cuda::stream()>>>(
            const_cast<int32_t*>(p.qmin), const_cast<int32_t*>(p.qmax), p.lq, p.Tq, BQ);
        cuda::check_launch(op);
        level_ranges_kernel<<<cuda::blocks_for(p.nkt, 128), 128, 0, cuda::stream()>>>(
            const_cast<int32_t*>(p.kmin), const_cast<int32_t*>(p.kmax), p.lk, p.Tk, BK);
        cuda::check_launch(op);
    }
    return p;
}

}  // namespace attn
}  // namespace dd2
