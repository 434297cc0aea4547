/* Peer benchmark for bench/gemm.ts: cblas_sgemm called directly from C (row-major, NoTrans, alpha 1,
 * beta 0), with the same sizes and thread count as the addon run, so the addon's overhead can be judged.
 *   usage: gemm-openblas THREADS REPS SIZE...      (built by bench/gemm.ts: cc -O2 ... -lopenblas)
 * Prints one JSON line with OpenBLAS's config/core name, then one per size: best and median GFLOP/s.
 * OPENBLAS_CORETYPE (read when the library loads) picks the kernel set; run it under the same env. */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void* x, const void* y) {
    double a = *(const double*)x, b = *(const double*)y;
    return (a > b) - (a < b);
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s THREADS REPS SIZE...\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), reps = atoi(argv[2]);
    if (threads < 1 || reps < 1) return 2;
    openblas_set_num_threads(threads);
    const char* env = getenv("OPENBLAS_CORETYPE");
    printf("{\"config\":\"%s\",\"core\":\"%s\",\"threads\":%d,\"coretype_env\":\"%s\"}\n", openblas_get_config(),
           openblas_get_corename(), openblas_get_num_threads(), env ? env : "");
    fflush(stdout);
    for (int s = 3; s < argc; ++s) {
        int n = atoi(argv[s]);
        if (n < 1) continue;
        size_t nn = (size_t)n * (size_t)n;
        float* a = (float*)malloc(nn * sizeof(float));
        float* b = (float*)malloc(nn * sizeof(float));
        float* c = (float*)malloc(nn * sizeof(float));
        double* t = (double*)malloc((size_t)reps * sizeof(double));
        if (!a || !b || !c || !t) return 3;
        unsigned x = 12345u;
        for (size_t i = 0; i < nn; ++i) {
            x = x * 1664525u + 1013904223u;
            a[i] = (float)((x >> 8) * (1.0 / 16777216.0)) - 0.5f;
            x = x * 1664525u + 1013904223u;
            b[i] = (float)((x >> 8) * (1.0 / 16777216.0)) - 0.5f;
        }
        memset(c, 0, nn * sizeof(float));
        const double flop = 2.0 * (double)n * (double)n * (double)n;
        /* warm-up: at least 2 calls and ~0.2 s, so threads are spun up and pages touched */
        double w0 = now_s();
        for (int i = 0; i < 2 || now_s() - w0 < 0.2; ++i)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        for (int r = 0; r < reps; ++r) {
            /* small sizes: time a batch of calls so each sample lasts >= ~20 ms */
            int inner = 1;
            while (inner < 1024 && flop * inner < 2e9) inner *= 2;
            double t0 = now_s();
            for (int i = 0; i < inner; ++i)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            t[r] = (now_s() - t0) / inner;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        double checksum = 0;
        for (size_t i = 0; i < nn; i += 997) checksum += c[i];
        printf("{\"size\":%d,\"best_gflops\":%.3f,\"median_gflops\":%.3f,\"best_ms\":%.4f,\"checksum\":%.6g}\n", n,
               flop / t[0] * 1e-9, flop / t[reps / 2] * 1e-9, t[0] * 1e3, checksum);
        fflush(stdout);
        free(a);
        free(b);
        free(c);
        free(t);
    }
    return 0;
}
