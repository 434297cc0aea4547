// Persistent thread pool: workers sleep on a condition variable, a job hands out chunk indices with
// an atomic counter, and the caller works too. One job at a time (kernels are called from the JS
// thread); a parallel_for issued from inside a job runs serially.
#include "common/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace dd2 {
namespace {

thread_local bool t_in_job = false;

class Pool {
public:
    Pool() {
        int n = (int)std::thread::hardware_concurrency();
        if (const char* env = std::getenv("DD2_NUM_THREADS")) n = std::atoi(env);
        resize(std::max(1, std::min(64, n)));
    }
    ~Pool() { stop_workers(); }

    int size() const { return nthreads_; }

    void resize(int n) {
        n = std::max(1, std::min(64, n));
        if (n == nthreads_) return;
        stop_workers();
        nthreads_ = n;
        stopping_ = false;
        for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this] { worker_loop(); });
    }

    void run(int64_t nchunks, const std::function<void(int64_t)>& chunk_fn) {
        {
            std::lock_guard<std::mutex> lk(mu_);
            job_ = &chunk_fn;
            nchunks_ = nchunks;
            next_.store(0);
            pending_ = (int)workers_.size();
            ++generation_;
        }
        cv_.notify_all();
        work();
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [this] { return pending_ == 0; });
        job_ = nullptr;
        if (error_) {
            std::exception_ptr e = error_;
            error_ = nullptr;
            std::rethrow_exception(e);
        }
    }

private:
    // A chunk that throws stops the remaining chunks; the first exception is rethrown on the caller.
    void work() {
        t_in_job = true;
        for (;;) {
            int64_t i = next_.fetch_add(1);
            if (i >= nchunks_) break;
            try {
                (*job_)(i);
            } catch (...) {
                std::lock_guard<std::mutex> lk(err_mu_);
                if (!error_) error_ = std::current_exception();
                next_.store(nchunks_);
            }
        }
        t_in_job = false;
    }
    void worker_loop() {
        uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
            }
            work();
            std::lock_guard<std::mutex> lk(mu_);
            if (--pending_ == 0) done_cv_.notify_one();
        }
    }
    void stop_workers() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    int nthreads_ = 0;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    bool stopping_ = false;
    uint64_t generation_ = 0;
    int pending_ = 0;
    const std::function<void(int64_t)>* job_ = nullptr;
    int64_t nchunks_ = 0;
    std::atomic<int64_t> next_{0};
    std::mutex err_mu_;
    std::exception_ptr error_;
};

Pool& pool() {
    static Pool p;
    return p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    int nt = pool().size();
    if (t_in_job || nt == 1 || n <= grain) {
        fn(0, n);
        return;
    }
    // A few chunks per thread smooths out uneven work without much scheduling cost.
    int64_t nchunks = std::min<int64_t>((n + grain - 1) / grain, (int64_t)nt * 4);
    int64_t step = (n + nchunks - 1) / nchunks;
    nchunks = (n + step - 1) / step;
    pool().run(nchunks, [&](int64_t c) {
        int64_t b = c * step, e = std::min(n, b + step);
        if (b < e) fn(b, e);
    });
}

}  // namespace dd2
