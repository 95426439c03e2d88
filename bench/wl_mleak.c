/*
 * wl_mleak - a slowly leaking program (mleak-like; modelled on the leak
 * pattern of mimalloc-bench's mleak: short-lived churn in which a small
 * fraction of the blocks is never freed).  Written from scratch here.
 *
 * Each of 2 threads runs ROUNDS rounds; a round allocates BATCH blocks of
 * 16 B..4 KiB (log-uniform), then frees them in random order - except about
 * 1 in 100, which "leak": they stay allocated to the end (kept on a list
 * only so that they can be checked, never freed).  The leaked blocks are
 * scattered through memory the churn keeps reusing, so the question is how
 * much of that memory the allocator keeps resident around them:
 * `rss_over_leaked` = final RSS / leaked bytes (reported; the program's own
 * code and stacks add a constant).  All leaked blocks are checked at the
 * end.  Fixed work: 2 threads x 100 rounds x 10000 blocks (10 rounds with
 * --quick).  ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>

#define BATCH 10000

struct leak { struct leak *next; uint32_t size; };

struct thr {
    long rounds;
    uint64_t seed, ops, leaked_bytes, leaked_blocks;
    struct leak *leaks;
} __attribute__((aligned(64)));

static void *worker(void *arg)
{
    struct thr *t = arg;
    rng_t r;
    rng_seed(&r, t->seed);
    void **p = malloc(BATCH * sizeof *p);
    uint32_t *sz = malloc(BATCH * sizeof *sz);
    if (!p || !sz)
        bench_fail("out of memory");
    for (long round = 0; round < t->rounds; round++) {
        for (int i = 0; i < BATCH; i++) {
            sz[i] = (uint32_t)rng_logsize(&r, 16, 4096);
            p[i] = malloc(sz[i]);
            if (!p[i])
                bench_fail("malloc(%u) returned NULL", sz[i]);
            stamp_block(p[i], sz[i], (uint64_t)(uintptr_t)p[i], 64);
        }
        t->ops += BATCH;
        /* free in random order: a Fisher-Yates pass decides the order */
        for (int i = BATCH - 1; i >= 0; i--) {
            int j = (int)(rng_next(&r) % (uint64_t)(i + 1));
            void *q = p[j];
            uint32_t qs = sz[j];
            p[j] = p[i];
            sz[j] = sz[i];
            if (!stamp_ok(q, qs, (uint64_t)(uintptr_t)q, 64))
                bench_fail("block %p (%u B) corrupted", q, qs);
            if (rng_next(&r) % 100 == 0) {
                struct leak *l = q;   /* the block records its own size */
                l->next = t->leaks;
                l->size = qs;
                if (qs >= sizeof *l)
                    stamp_block((char *)q + sizeof *l, qs - sizeof *l, (uint64_t)(uintptr_t)q, 64);
                t->leaks = l;
                t->leaked_bytes += qs;
                t->leaked_blocks++;
            } else {
                free(q);
                t->ops++;
            }
        }
    }
    free(p);
    free(sz);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("mleak");
    int quick = bench_quick(argc, argv);
    int n = (int)bench_arg_long(argc, argv, "--threads", 2);
    long rounds = bench_arg_long(argc, argv, "--rounds", quick ? 10 : 100);
    struct thr t[64] = { 0 };
    if (n < 1 || n > 64)
        bench_fail("--threads must be 1..64");
    for (int i = 0; i < n; i++) {
        t[i].rounds = rounds;
        t[i].seed = 555 + (uint64_t)i;
    }
    double t0 = now_s();
    bench_run_threads(n, worker, t, sizeof t[0]);
    double el = now_s() - t0;
    uint64_t ops = 0, bytes = 0, blocks = 0;
    for (int i = 0; i < n; i++) {
        ops += t[i].ops;
        bytes += t[i].leaked_bytes;
        blocks += t[i].leaked_blocks;
        for (struct leak *l = t[i].leaks; l; l = l->next)
            if (l->size >= sizeof *l &&
                !stamp_ok((char *)l + sizeof *l, l->size - sizeof *l, (uint64_t)(uintptr_t)l, 64))
                bench_fail("leaked block %p (%u B) corrupted", (void *)l, l->size);
    }
    long rss = status_kb("VmRSS");
    bench_result(el, ops, "threads=%d leaked_blocks=%llu leaked_bytes=%llu rss_over_leaked=%.2f", n,
                 (unsigned long long)blocks, (unsigned long long)bytes,
                 bytes ? (double)rss * 1024.0 / (double)bytes : 0.0);
    return 0;
}
