/*
 * wl_larson - a server simulation in the spirit of Larson & Krishnan's
 * benchmark (written from scratch here).
 *
 * A shared slot array is split into THREADS regions.  A worker repeatedly
 * picks a random slot of its region, verifies and frees the object there
 * and stores a new object of 16..1000 B.  After SLICE replacements the
 * worker starts a successor thread (a new "generation") and exits; the
 * successor inherits the region, so it frees memory allocated by threads
 * that no longer exist.  Runs for a fixed time (3 s, 0.5 s with --quick).
 * ops = number of malloc + free calls; ops_per_s is the figure of merit.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define SLOTS_PER_THREAD 1000
#define SLICE 20000
#define MIN_SZ 16
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

static struct region regions[THREADS];
static double t_end;

static void *worker(void *arg)
{
    struct region *rg = arg;
    rg->generations++;
    for (long i = 0; i < SLICE; i++) {
        struct obj *o = &rg->slot[rng_next(&rg->rng) % SLOTS_PER_THREAD];
        if (!stamp_ok(o->p, o->size, o->tag, 64))
            bench_fail("object %p (%u B) corrupted (region %ld, generation %ld)",
                       o->p, o->size, (long)(rg - regions), rg->generations);
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
    bench_set_name("larson");
    int quick = bench_quick(argc, argv);
    double seconds = quick ? 0.5 : 3.0;
    const char *s = bench_arg(argc, argv, "--seconds");
    if (s)
        seconds = atof(s);

    /* Initial population, allocated by the main thread. */
    for (int t = 0; t < THREADS; t++) {
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
    for (int t = 0; t < THREADS; t++) {
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
        for (int t = 0; t < THREADS; t++)
            all &= atomic_load(&regions[t].done);
        if (all)
            break;
        sleep_s(0.001);
    }
    double elapsed = now_s() - t0;

    uint64_t ops = 0;
    long gens = 0;
    for (int t = 0; t < THREADS; t++) {
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
    bench_result(elapsed, ops, "threads=%d generations=%ld", THREADS, gens);
    return 0;
}
