/*
 * wl_rptest - mixed sizes with cross-thread frees, in the spirit of
 * rpmalloc-benchmark (the `rptest` of mimalloc-bench, whose run there is
 * "threads, random sizes, linear falloff, cross-thread rate 2, 500 loops,
 * 1000 blocks, 100 ops, 8..16000 B").  Written from scratch here.
 *
 * Each thread owns BLOCKS slots.  Every loop it frees OPS blocks at slots
 * scattered over the whole array (stride walk from a random start), then
 * allocates OPS new blocks at other scattered slots (freeing the previous
 * occupant, if any).  Sizes are 8..16000 B with a linear falloff (density
 * decreasing linearly to 0 at the maximum: many small, some large blocks).
 * Every CROSS_RATE-th loop the thread also allocates OPS blocks and hands
 * them to the next thread, which verifies and frees them at its next loop
 * (and, once its own loops are done, until every thread is done):
 * cross-thread frees in batches.  Every block carries a stamp (one word per
 * page and the last word) verified before its free.
 * Fixed work: LOOPS loops per thread (3000; 200 with --quick), 2 threads.
 * ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define BLOCKS 1000
#define OPS 100
#define CROSS_RATE 2
#define MIN_SZ 8
#define MAX_SZ 16000
#define STRIDE 4096

struct obj { void *p; uint32_t size; };

struct handoff {
    struct handoff *next;
    struct obj o[OPS];
};

struct thr {
    int id;
    _Atomic(struct handoff *) inbox;
    struct obj slot[BLOCKS];
    rng_t rng;
    uint64_t ops;
    uint64_t cross_freed;
} __attribute__((aligned(64)));

static struct thr *thr;
static int nthreads;
static atomic_int running;    /* threads still in their loops */
static long loops;

static inline uint64_t tag_of(const void *p, uint32_t size)
{
    return (uint64_t)(uintptr_t)p ^ ((uint64_t)size << 40) ^ 0x5EEDull;
}

static uint32_t linear_falloff(rng_t *r)
{
    /* inverse CDF of a density proportional to (max - x) on [min, max] */
    double u = rng_unit(r);
    double s = 1.0;
    /* sqrt(u) by Newton (no libm): 20 iterations are plenty on [0,1] */
    if (u > 0) {
        s = u > 0.25 ? u : 0.5;
        for (int i = 0; i < 20; i++)
            s = 0.5 * (s + u / s);
    } else {
        s = 0;
    }
    return (uint32_t)(MIN_SZ + (double)(MAX_SZ - MIN_SZ) * (1.0 - s));
}

static void obj_new(struct thr *t, struct obj *o)
{
    o->size = linear_falloff(&t->rng);
    o->p = malloc(o->size);
    if (!o->p)
        bench_fail("malloc(%u) returned NULL", o->size);
    stamp_block(o->p, o->size, tag_of(o->p, o->size), STRIDE);
    t->ops++;
}

static void obj_free(struct thr *t, struct obj *o)
{
    if (!o->p)
        return;
    if (!stamp_ok(o->p, o->size, tag_of(o->p, o->size), STRIDE))
        bench_fail("block %p (%u B) corrupted before its free", o->p, o->size);
    free(o->p);
    o->p = NULL;
    t->ops++;
}

static void drain_inbox(struct thr *t)
{
    struct handoff *h = atomic_exchange(&t->inbox, NULL);
    while (h) {
        struct handoff *next = h->next;
        for (int i = 0; i < OPS; i++)
            obj_free(t, &h->o[i]);
        t->cross_freed += OPS;
        free(h);
        t->ops++;
        h = next;
    }
}

static void *worker(void *arg)
{
    struct thr *t = arg;
    struct thr *peer = &thr[(t->id + 1) % nthreads];
    for (long l = 0; l < loops; l++) {
        drain_inbox(t);
        /* a stride coprime with BLOCKS = 1000 = 2^3 * 5^3 (odd, not a
         * multiple of 5): the OPS steps of a walk visit distinct slots */
        size_t stride = 1 + 2 * (rng_next(&t->rng) % 200);
        if (stride % 5 == 0)
            stride += 2;
        size_t at = rng_next(&t->rng) % BLOCKS;
        for (int k = 0; k < OPS; k++, at = (at + stride) % BLOCKS)
            obj_free(t, &t->slot[at]);
        at = rng_next(&t->rng) % BLOCKS;
        for (int k = 0; k < OPS; k++, at = (at + stride) % BLOCKS) {
            obj_free(t, &t->slot[at]);
            obj_new(t, &t->slot[at]);
        }
        if (nthreads > 1 && l % CROSS_RATE == 0) {
            struct handoff *h = malloc(sizeof *h);
            if (!h)
                bench_fail("out of memory");
            t->ops++;
            for (int i = 0; i < OPS; i++)
                obj_new(t, &h->o[i]);
            h->next = atomic_load(&peer->inbox);
            while (!atomic_compare_exchange_weak(&peer->inbox, &h->next, h))
                ;
        }
    }
    /* Keep freeing what the others hand over until they are done too, so
     * that a thread that finished early does not let its inbox pile up. */
    atomic_fetch_sub(&running, 1);
    while (atomic_load(&running) > 0) {
        drain_inbox(t);
        sched_yield();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("rptest");
    int quick = bench_quick(argc, argv);
    nthreads = (int)bench_arg_long(argc, argv, "--threads", 2);
    loops = bench_arg_long(argc, argv, "--loops", quick ? 200 : 3000);
    thr = calloc((size_t)nthreads, sizeof *thr);
    if (!thr)
        bench_fail("out of memory");
    for (int i = 0; i < nthreads; i++) {
        thr[i].id = i;
        rng_seed(&thr[i].rng, 77 + (uint64_t)i);
    }
    atomic_store(&running, nthreads);
    double t0 = now_s();
    bench_run_threads(nthreads, worker, thr, sizeof *thr);
    double el = now_s() - t0;

    uint64_t ops = 0, cross = 0;
    for (int i = 0; i < nthreads; i++) {
        drain_inbox(&thr[i]);
        for (int s = 0; s < BLOCKS; s++)
            obj_free(&thr[i], &thr[i].slot[s]);
        ops += thr[i].ops;
        cross += thr[i].cross_freed;
    }
    free(thr);
    bench_result(el, ops, "threads=%d cross_freed=%llu", nthreads, (unsigned long long)cross);
    return 0;
}
