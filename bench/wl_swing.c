/*
 * wl_swing - a working set that comes and goes: a batch job, or a server
 * whose every request builds a big structure and drops it.
 *
 * ROUNDS rounds.  Each round allocates N blocks (3 in 4 of 16..1024 B,
 * 1 in 4 of 1..16 KiB: ~50 MiB at N = 20000), stamps them, then frees
 * them all in random order: nothing stays live between rounds.  An
 * allocator that gives memory back at each drain pays the page faults
 * again in the next round; one that keeps everything keeps the peak.
 * ROUNDS = 20 (6 with --quick, N = 8000).  ops = malloc + free calls;
 * time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>

struct blk { void *p; uint32_t size; };

int main(int argc, char **argv)
{
    bench_set_name("swing");
    int quick = bench_quick(argc, argv);
    int rounds = (int)bench_arg_long(argc, argv, "--rounds", quick ? 6 : 20);
    size_t n = (size_t)bench_arg_long(argc, argv, "--blocks", quick ? 8000 : 20000);

    rng_t r;
    rng_seed(&r, 77);
    struct blk *b = calloc(n, sizeof *b);
    size_t *order = calloc(n, sizeof *order);
    if (!b || !order)
        bench_fail("out of memory for the bookkeeping arrays");
    uint64_t ops = 0, peak_live = 0;

    double t0 = now_s();
    for (int round = 0; round < rounds; round++) {
        uint64_t live = 0;
        for (size_t i = 0; i < n; i++) {
            size_t sz = i % 4 ? (size_t)rng_range(&r, 16, 1024) : (size_t)rng_range(&r, 1024, 16384);
            b[i].p = malloc(sz);
            if (!b[i].p)
                bench_fail("malloc(%zu) returned NULL", sz);
            b[i].size = (uint32_t)sz;
            stamp_block(b[i].p, sz, (uint64_t)i ^ (uint64_t)round << 32, 64);
            live += sz;
            ops++;
        }
        if (live > peak_live)
            peak_live = live;
        rng_order(&r, order, n);
        for (size_t i = 0; i < n; i++) {
            struct blk *x = &b[order[i]];
            if (!stamp_ok(x->p, x->size, (uint64_t)order[i] ^ (uint64_t)round << 32, 64))
                bench_fail("block %p (%u B) corrupted before free", x->p, x->size);
            free(x->p);
            ops++;
        }
    }
    double t = now_s() - t0;
    free(b);
    free(order);
    bench_result(t, ops, "rounds=%d blocks=%zu peak_live_bytes=%llu", rounds, n,
                 (unsigned long long)peak_live);
    return 0;
}
