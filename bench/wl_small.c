/*
 * wl_small - single-thread small-object churn.
 *
 * Sizes are uniform in 16..1024 B.  Two phases:
 *   LIFO:   push a random number of blocks on a stack, pop (free) a random
 *           number, repeat; frees come in exactly the reverse order of the
 *           allocations (the allocator's best case).
 *   random: an array of slots; each step picks a random slot, frees its
 *           block (if any) and puts a new block of a random size there, so
 *           frees come in random order (fragmenting the free lists).
 * Every block is stamped (one word per cache line) when allocated and the
 * stamp is verified before it is freed.
 * ops = number of malloc + free calls.
 */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>

#define MIN_SZ 16
#define MAX_SZ 1024

struct blk { void *p; uint32_t size; uint64_t tag; };

static uint64_t ops;

static void put(struct blk *b, rng_t *r, uint64_t tag)
{
    b->size = (uint32_t)rng_range(r, MIN_SZ, MAX_SZ);
    b->p = malloc(b->size);
    if (!b->p)
        bench_fail("malloc(%u) returned NULL", b->size);
    b->tag = tag;
    stamp_block(b->p, b->size, tag, 64);
    ops++;
}

static void drop(struct blk *b)
{
    if (!stamp_ok(b->p, b->size, b->tag, 64))
        bench_fail("block %p (size %u, tag %llu) corrupted before free",
                   b->p, b->size, (unsigned long long)b->tag);
    free(b->p);
    b->p = NULL;
    ops++;
}

int main(int argc, char **argv)
{
    bench_set_name("small");
    int quick = bench_quick(argc, argv);
    /* full: ~8M + ~12M ops; quick: a tenth */
    long lifo_rounds = quick ? 400 : 4000;
    size_t stack_max = 4096;
    long rand_steps = quick ? 600000 : 6000000;
    size_t nslots = quick ? 20000 : 100000;

    rng_t r;
    rng_seed(&r, 42);
    uint64_t tag = 1;
    struct blk *stack = calloc(stack_max, sizeof *stack);
    struct blk *slots = calloc(nslots, sizeof *slots);
    if (!stack || !slots)
        bench_fail("out of memory for the bookkeeping arrays");

    double t0 = now_s();

    /* LIFO phase: the stack depth wanders between 0 and stack_max. */
    size_t depth = 0;
    for (long round = 0; round < lifo_rounds; round++) {
        size_t push = (size_t)rng_range(&r, 1, stack_max - depth);
        for (size_t i = 0; i < push; i++)
            put(&stack[depth++], &r, tag++);
        size_t pop = (size_t)rng_range(&r, depth / 2, depth);
        for (size_t i = 0; i < pop; i++)
            drop(&stack[--depth]);
    }
    while (depth)
        drop(&stack[--depth]);
    double t_lifo = now_s() - t0;

    /* Random-order phase: fill the slots, then replace random slots. */
    double t1 = now_s();
    for (size_t i = 0; i < nslots; i++)
        put(&slots[i], &r, tag++);
    for (long s = 0; s < rand_steps; s++) {
        struct blk *b = &slots[rng_next(&r) % nslots];
        drop(b);
        put(b, &r, tag++);
    }
    for (size_t i = 0; i < nslots; i++)
        drop(&slots[i]);
    double t_rand = now_s() - t1;

    double t = now_s() - t0;
    free(stack);
    free(slots);
    bench_result(t, ops, "lifo_s=%.4f random_s=%.4f", t_lifo, t_rand);
    return 0;
}
