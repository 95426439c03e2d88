/*
 * wl_glibc_thread - per-thread malloc/free loops: modelled on glibc's
 * benchtests/bench-malloc-thread.c (written from scratch here).
 *
 * Each thread keeps its own working set of 1024 slots.  Every iteration it
 * picks a slot at random, checks and frees the block there and allocates a
 * new one of a random size between 4 B and 32 KiB, drawn so that small
 * sizes dominate (density ~ 1/size, as the original's distribution of
 * allocation sizes).  No block crosses threads.  The original runs for a
 * fixed time; here each of the 2 threads does a fixed number of iterations
 * (3M; 150k with --quick) so that every allocator does the same work.
 * ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>

#define WSET 1024
#define MIN_SZ 4
#define MAX_SZ 32768

struct thr {
    long iters;
    uint64_t seed, ops;
} __attribute__((aligned(64)));

static void *worker(void *arg)
{
    struct thr *t = arg;
    rng_t r;
    rng_seed(&r, t->seed);
    void *p[WSET] = { 0 };
    uint32_t size[WSET] = { 0 };
    for (long i = 0; i < t->iters; i++) {
        unsigned k = (unsigned)(rng_next(&r) % WSET);
        if (p[k]) {
            if (!stamp_ok(p[k], size[k], (uint64_t)(uintptr_t)p[k], 4096))
                bench_fail("block %p (%u B) corrupted", p[k], size[k]);
            free(p[k]);
            t->ops++;
        }
        size[k] = (uint32_t)rng_logsize(&r, MIN_SZ, MAX_SZ);
        p[k] = malloc(size[k]);
        if (!p[k])
            bench_fail("malloc(%u) returned NULL", size[k]);
        stamp_block(p[k], size[k], (uint64_t)(uintptr_t)p[k], 4096);
        t->ops++;
    }
    for (int k = 0; k < WSET; k++)
        if (p[k]) {
            if (!stamp_ok(p[k], size[k], (uint64_t)(uintptr_t)p[k], 4096))
                bench_fail("block %p (%u B) corrupted", p[k], size[k]);
            free(p[k]);
            t->ops++;
        }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("glibc_thread");
    int quick = bench_quick(argc, argv);
    int n = (int)bench_arg_long(argc, argv, "--threads", 2);
    long iters = bench_arg_long(argc, argv, "--iters", quick ? 150000 : 3000000);
    struct thr t[64];
    if (n < 1 || n > 64)
        bench_fail("--threads must be 1..64");
    for (int i = 0; i < n; i++)
        t[i] = (struct thr){ .iters = iters, .seed = 4242 + (uint64_t)i };
    double t0 = now_s();
    bench_run_threads(n, worker, t, sizeof t[0]);
    double el = now_s() - t0;
    uint64_t ops = 0;
    for (int i = 0; i < n; i++)
        ops += t[i].ops;
    bench_result(el, ops, "threads=%d", n);
    return 0;
}
