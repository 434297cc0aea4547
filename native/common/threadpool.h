// A small persistent thread pool for CPU kernels. parallel_for splits [0, n) into chunks of at least
// `grain` items and runs them on the pool's workers plus the calling thread. Nested calls run inline.
#pragma once
#include <cstdint>
#include <functional>

namespace dd2 {

int num_threads();              // workers + caller; DD2_NUM_THREADS or hardware_concurrency()
void set_num_threads(int n);    // 1..64; takes effect for the next parallel_for

// fn(begin, end) is called for disjoint sub-ranges covering [0, n).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace dd2
