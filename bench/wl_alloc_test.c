/*
 * wl_alloc_test - random allocation with a heavy-tailed size distribution,
 * modelled on alloc-test (OLogN Technologies; alloc-test1 / alloc-testN in
 * mimalloc-bench).  Written from scratch here.
 *
 * Each thread owns SLOTS slots.  Every step picks a slot at random: an empty
 * slot gets a new block, a full one is checked and freed, so the working set
 * hovers around half the slots with a constantly changing address pattern.
 * Sizes: an octave is drawn with halving probability from [8,16) B up to
 * [32,64) KiB, then a size uniformly inside it - most blocks are tens of
 * bytes, a few are tens of KiB (a Pareto-like tail, as the original's).
 * Every RESET steps the thread frees everything it holds (a burst of frees
 * and a fresh build-up).  Fixed work: 2 threads x 8M steps (400k with
 * --quick).  ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>

#define SLOTS 16384
#define RESET 1000000

struct thr {
    long steps;
    uint64_t seed, ops;
    uint64_t live_peak;
} __attribute__((aligned(64)));

static size_t tail_size(rng_t *r)
{
    /* octave b (8 B << b) with probability 2^-(b+1), b = 0..12 */
    uint64_t x = rng_next(r) | (1ull << 12);
    unsigned b = (unsigned)__builtin_ctzll(x);
    size_t base = (size_t)8 << b;
    return base + (size_t)(rng_next(r) % base);
}

/* Checks the block in slot k and frees it; returns its size. */
static uint32_t slot_free(void **p, const uint32_t *size, unsigned k)
{
    if (!stamp_ok(p[k], size[k], (uint64_t)(uintptr_t)p[k] + k, 4096))
        bench_fail("block %p (%u B) corrupted", p[k], size[k]);
    free(p[k]);
    p[k] = NULL;
    return size[k];
}

static void *worker(void *arg)
{
    struct thr *t = arg;
    rng_t r;
    rng_seed(&r, t->seed);
    void **p = calloc(SLOTS, sizeof *p);
    uint32_t *size = calloc(SLOTS, sizeof *size);
    if (!p || !size)
        bench_fail("out of memory");
    uint64_t live = 0;
    for (long s = 1; s <= t->steps; s++) {
        unsigned k = (unsigned)(rng_next(&r) % SLOTS);
        if (p[k]) {
            live -= slot_free(p, size, k);
        } else {
            size[k] = (uint32_t)tail_size(&r);
            p[k] = malloc(size[k]);
            if (!p[k])
                bench_fail("malloc(%u) returned NULL", size[k]);
            stamp_block(p[k], size[k], (uint64_t)(uintptr_t)p[k] + k, 4096);
            live += size[k];
            if (live > t->live_peak)
                t->live_peak = live;
        }
        t->ops++;
        if (s % RESET == 0)
            for (unsigned j = 0; j < SLOTS; j++)
                if (p[j]) {
                    live -= slot_free(p, size, j);
                    t->ops++;
                }
    }
    for (unsigned j = 0; j < SLOTS; j++)
        if (p[j]) {
            slot_free(p, size, j);
            t->ops++;
        }
    free(p);
    free(size);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("alloc_test");
    int quick = bench_quick(argc, argv);
    int n = (int)bench_arg_long(argc, argv, "--threads", 2);
    long steps = bench_arg_long(argc, argv, "--steps", quick ? 400000 : 8000000);
    struct thr t[64];
    if (n < 1 || n > 64)
        bench_fail("--threads must be 1..64");
    for (int i = 0; i < n; i++)
        t[i] = (struct thr){ .steps = steps, .seed = 9000 + (uint64_t)i };
    double t0 = now_s();
    bench_run_threads(n, worker, t, sizeof t[0]);
    double el = now_s() - t0;
    uint64_t ops = 0, peak = 0;
    for (int i = 0; i < n; i++) {
        ops += t[i].ops;
        peak += t[i].live_peak;
    }
    bench_result(el, ops, "threads=%d live_peak_bytes=%llu", n, (unsigned long long)peak);
    return 0;
}
