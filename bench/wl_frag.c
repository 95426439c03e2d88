/*
 * wl_frag - fragmentation: long-lived objects pinned between short-lived ones.
 *
 * ROUNDS rounds.  Each round allocates N objects of mixed sizes (80 % of
 * them 16..1024 B, 20 % log-uniform 1..64 KiB; the size mix drifts upwards
 * from round to round so later requests fit the earlier holes badly), one
 * object in 10 is long-lived, the others are short-lived; at the end of the
 * round all short-lived objects are freed in random order.  The long-lived
 * ones stay until the end.  After the last round the program reports its
 * RSS against the bytes still live:
 *   live_bytes=   sum of the sizes of the live (long-lived) objects
 *   rss_kb=       VmRSS then
 *   rss_over_live= rss_kb*1024 / live_bytes (1.0 = no overhead at all)
 * Every object is stamped (one word per cache line, so every page it spans
 * is touched) and verified before it is freed.
 * ops = number of malloc + free calls.
 */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>

#define ROUNDS 4
#define LONG_EVERY 10

struct blk { void *p; uint32_t size; uint64_t tag; };

static uint64_t ops;

static size_t pick_size(rng_t *r, int round)
{
    /* round 0: 16..1024 / 1K..16K; the upper ends grow with the round */
    if (rng_next(r) % 5 != 0)
        return (size_t)rng_range(r, 16, 1024 + (size_t)round * 256);
    return rng_logsize(r, 1024, (size_t)16384 << (round > 2 ? 2 : round));
}

static void put(struct blk *b, size_t size, uint64_t tag)
{
    b->size = (uint32_t)size;
    b->p = malloc(size);
    if (!b->p)
        bench_fail("malloc(%zu) returned NULL", size);
    b->tag = tag;
    stamp_block(b->p, size, tag, 64);
    ops++;
}

static void drop(struct blk *b)
{
    if (!stamp_ok(b->p, b->size, b->tag, 64))
        bench_fail("block %p (%u B) corrupted before free", b->p, b->size);
    free(b->p);
    b->p = NULL;
    ops++;
}

int main(int argc, char **argv)
{
    bench_set_name("frag");
    int quick = bench_quick(argc, argv);
    size_t n = quick ? 20000 : 150000;      /* objects per round */

    rng_t r;
    rng_seed(&r, 2024);
    struct blk *keep = calloc(n * ROUNDS / LONG_EVERY + ROUNDS, sizeof *keep);
    struct blk *tmp = calloc(n, sizeof *tmp);
    size_t *order = calloc(n, sizeof *order);
    if (!keep || !tmp || !order)
        bench_fail("out of memory for the bookkeeping arrays");
    size_t nkeep = 0, ntmp;
    uint64_t tag = 1, live = 0, peak_live = 0, cur = 0;

    double t0 = now_s();
    for (int round = 0; round < ROUNDS; round++) {
        ntmp = 0;
        for (size_t i = 0; i < n; i++) {
            size_t sz = pick_size(&r, round);
            if (i % LONG_EVERY == LONG_EVERY - 1) {
                put(&keep[nkeep++], sz, tag++);
                live += sz;
            } else {
                put(&tmp[ntmp++], sz, tag++);
            }
            cur += sz;
            if (cur > peak_live)
                peak_live = cur;
        }
        /* free the short-lived ones in random order */
        rng_order(&r, order, ntmp);
        for (size_t i = 0; i < ntmp; i++) {
            cur -= tmp[order[i]].size;
            drop(&tmp[order[i]]);
        }
    }
    double t = now_s() - t0;
    long rss = status_kb("VmRSS");
    double ratio = (double)rss * 1024.0 / (double)live;

    for (size_t i = 0; i < nkeep; i++)
        drop(&keep[i]);
    free(keep);
    free(tmp);
    free(order);
    bench_result(t, ops, "live_bytes=%llu peak_live_bytes=%llu rss_kb=%ld rss_over_live=%.3f",
                 (unsigned long long)live, (unsigned long long)peak_live, rss, ratio);
    return 0;
}
