/*
 * wl_pairs - single-thread small malloc/free pairs: the allocator's hot path.
 *
 * Almost no work besides the allocator itself, so this workload shows the
 * per-call cost of malloc + free (thread cache / fast path) and little else.
 * Sizes are 16 + (rng % 1009), i.e. uniform in 16..1024 B.  Two phases:
 *   pairs:  p = malloc(size); stamp the first and the last byte; check them;
 *           free(p) - one block live at a time.
 *   bursts: allocate 8 blocks of random sizes, stamp each, then check and
 *           free them in reverse order (LIFO) - 8 blocks live at a time, so
 *           two blocks handed out on top of each other would be noticed.
 * Only the first and the last byte of a block are stamped (a cheap check
 * that keeps the memory traffic out of the measurement); a mismatch before
 * a free exits with status 2.  The workload is compiled with -fno-builtin
 * (see CMakeLists.txt), so the compiler does not know what malloc and free
 * do and cannot drop a pair; a compiler barrier between the stamp and the
 * check makes the check really read the block back.
 * ops = number of malloc + free calls.
 */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>

#define MIN_SZ 16
#define SZ_SPAN 1009            /* sizes 16 .. 16 + 1008 = 1024 */
#define BURST 8

/* the two stamp bytes of block number `tag` */
static inline unsigned char stamp_head(uint64_t tag)
{
    return (unsigned char)((tag * 0x9E3779B97F4A7C15ull) >> 56);
}
static inline unsigned char stamp_tail(uint64_t tag)
{
    return (unsigned char)(((tag * 0xBF58476D1CE4E5B9ull) >> 48) ^ 0xA5u);
}

static inline void *get(size_t size, uint64_t tag)
{
    unsigned char *p = malloc(size);
    if (!p)
        bench_fail("malloc(%zu) returned NULL", size);
    p[0] = stamp_head(tag);
    p[size - 1] = stamp_tail(tag);
    return p;
}

static inline void check(const void *q, size_t size, uint64_t tag)
{
    const unsigned char *p = q;
    if (p[0] != stamp_head(tag) || p[size - 1] != stamp_tail(tag))
        bench_fail("block %p (size %zu, tag %llu) corrupted before free",
                   q, size, (unsigned long long)tag);
}

int main(int argc, char **argv)
{
    bench_set_name("pairs");
    int quick = bench_quick(argc, argv);
    /* full: 40M + 40M ops; quick: a tenth */
    long npairs = quick ? 2000000L : 20000000L;
    long nbursts = quick ? 250000L : 2500000L;

    rng_t r;
    rng_seed(&r, 7);
    uint64_t tag = 1;
    uint64_t ops = 0;

    double t0 = now_s();

    /* Phase 1: isolated malloc/free pairs. */
    for (long i = 0; i < npairs; i++) {
        size_t size = MIN_SZ + (size_t)(rng_next(&r) % SZ_SPAN);
        void *p = get(size, tag);
        __asm__ __volatile__("" ::: "memory");   /* re-read the stamps */
        check(p, size, tag);
        free(p);
        tag++;
    }
    ops += 2 * (uint64_t)npairs;
    double t_pairs = now_s() - t0;

    /* Phase 2: bursts of 8 allocations, freed in reverse order. */
    double t1 = now_s();
    void *blk[BURST];
    size_t sz[BURST];
    for (long b = 0; b < nbursts; b++) {
        uint64_t base = tag;
        for (int k = 0; k < BURST; k++) {
            sz[k] = MIN_SZ + (size_t)(rng_next(&r) % SZ_SPAN);
            blk[k] = get(sz[k], base + (uint64_t)k);
        }
        __asm__ __volatile__("" ::: "memory");
        for (int k = BURST - 1; k >= 0; k--) {
            check(blk[k], sz[k], base + (uint64_t)k);
            free(blk[k]);
        }
        tag += BURST;
    }
    ops += 2 * BURST * (uint64_t)nbursts;
    double t_bursts = now_s() - t1;

    double t = now_s() - t0;
    bench_result(t, ops, "pairs_s=%.4f bursts_s=%.4f", t_pairs, t_bursts);
    return 0;
}
