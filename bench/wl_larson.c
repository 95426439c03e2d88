/*
 * wl_larson - a server simulation in the spirit of Larson & Krishnan's
 * benchmark (written from scratch here).
 *
 * A shared slot array is split into one region per thread.  A worker
 * repeatedly picks a random slot of its region, verifies and frees the
 * object there and stores a new object of 8..1000 B.  After SLICE
 * replacements the worker starts a successor thread (a new "generation")
 * and exits; the successor inherits the region, so it frees memory
 * allocated by threads that no longer exist.  The initial objects are
 * allocated by the main thread.  Parameters follow the public larson's run
 * in mimalloc-bench ("larson 5 8 1000 5000 100 4141 N": 8..1000 B, 5000
 * blocks per thread, 100 rounds of 5000 replacements per generation), with
 * 2 threads (this machine has 2 cores) and a shorter run: a fixed time of
 * 2 s (0.3 s with --quick; --seconds S, --threads N).
 * --sized frees with the allocator's sized free (free_sized, sdallocx,
 * tc_free_sized or mi_free_size: alloc_sized_free) when it has one, plain
 * free otherwise; the RESULT line names it (sized_free=...) and the
 * workload is then called larson_sized.
 * ops = number of malloc + free calls; ops_per_s is the figure of merit.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64
#define SLOTS_PER_THREAD 5000
#define SLICE (100 * SLOTS_PER_THREAD)
#define MIN_SZ 8
#define MAX_SZ 1000

struct obj { void *p; uint32_t size; uint64_t tag; };

struct region {
    struct obj *slot;          /* SLOTS_PER_THREAD entries */
    rng_t rng;
    uint64_t next_tag;
    uint64_t ops;
    long generations;
    atomic_int done;
};

static struct region regions[MAX_THREADS];
static int nthreads;
static double t_end;
static sized_free_fn sized_free;   /* NULL: plain free */

static void *worker(void *arg)
{
    struct region *rg = arg;
    rg->generations++;
    for (long i = 0; i < SLICE; i++) {
        struct obj *o = &rg->slot[rng_next(&rg->rng) % SLOTS_PER_THREAD];
        if (!stamp_ok(o->p, o->size, o->tag, 64))
            bench_fail("object %p (%u B) corrupted (region %ld, generation %ld)",
                       o->p, o->size, (long)(rg - regions), rg->generations);
        if (sized_free)
            sized_free(o->p, o->size);
        else
            free(o->p);
        o->size = (uint32_t)rng_range(&rg->rng, MIN_SZ, MAX_SZ);
        o->tag = rg->next_tag++;
        o->p = malloc(o->size);
        if (!o->p)
            bench_fail("malloc(%u) returned NULL", o->size);
        stamp_block(o->p, o->size, o->tag, 64);
    }
    rg->ops += 2 * SLICE;
    if (now_s() < t_end) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, rg))
            bench_fail("pthread_create failed (generation %ld)", rg->generations);
        pthread_attr_destroy(&a);
    } else {
        atomic_store(&rg->done, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int sized = 0;
    for (int i = 1; i < argc; i++)
        sized |= strcmp(argv[i], "--sized") == 0;
    bench_set_name(sized ? "larson_sized" : "larson");
    const char *sized_name = "none";
    if (sized)
        sized_free = alloc_sized_free(&sized_name);
    int quick = bench_quick(argc, argv);
    double seconds = quick ? 0.3 : 2.0;
    const char *s = bench_arg(argc, argv, "--seconds");
    if (s)
        seconds = atof(s);
    nthreads = (int)bench_arg_long(argc, argv, "--threads", 2);
    if (nthreads < 1 || nthreads > MAX_THREADS)
        bench_fail("--threads must be 1..%d", MAX_THREADS);

    /* Initial population, allocated by the main thread. */
    for (int t = 0; t < nthreads; t++) {
        struct region *rg = &regions[t];
        rg->slot = calloc(SLOTS_PER_THREAD, sizeof *rg->slot);
        if (!rg->slot)
            bench_fail("out of memory");
        rng_seed(&rg->rng, 500 + (uint64_t)t);
        rg->next_tag = (uint64_t)t << 40;
        for (int i = 0; i < SLOTS_PER_THREAD; i++) {
            struct obj *o = &rg->slot[i];
            o->size = (uint32_t)rng_range(&rg->rng, MIN_SZ, MAX_SZ);
            o->tag = rg->next_tag++;
            o->p = malloc(o->size);
            if (!o->p)
                bench_fail("malloc(%u) returned NULL", o->size);
            stamp_block(o->p, o->size, o->tag, 64);
        }
    }

    double t0 = now_s();
    t_end = t0 + seconds;
    for (int t = 0; t < nthreads; t++) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, worker, &regions[t]))
            bench_fail("pthread_create failed");
        pthread_attr_destroy(&a);
    }
    for (;;) {
        int all = 1;
        for (int t = 0; t < nthreads; t++)
            all &= atomic_load(&regions[t].done);
        if (all)
            break;
        sleep_s(0.001);
    }
    double elapsed = now_s() - t0;

    uint64_t ops = 0;
    long gens = 0;
    for (int t = 0; t < nthreads; t++) {
        struct region *rg = &regions[t];
        ops += rg->ops;
        gens += rg->generations;
        for (int i = 0; i < SLOTS_PER_THREAD; i++) {
            struct obj *o = &rg->slot[i];
            if (!stamp_ok(o->p, o->size, o->tag, 64))
                bench_fail("object %p corrupted at the end", o->p);
            free(o->p);
        }
        free(rg->slot);
    }
    /* Detached threads may still be unwinding; give them a moment so the
     * final RSS is not taken in the middle of a thread exit.            */
    sleep_s(0.01);
    bench_result(elapsed, ops, "threads=%d generations=%ld sized_free=%s", nthreads, gens,
                 sized ? sized_name : "no");
    return 0;
}
