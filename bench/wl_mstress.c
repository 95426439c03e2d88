/*
 * wl_mstress - a stress test with objects moving between threads, modelled
 * on mimalloc's test/test-stress.c (`mstress` in mimalloc-bench).  Written
 * from scratch here.
 *
 * ROUNDS rounds; each round starts 2 fresh threads (so thread start and
 * exit, with whatever the allocator keeps per thread, are part of it) and
 * joins them.  A thread makes ALLOCS allocations and RETAIN long-lived ones
 * (kept until its end), interleaved at random; after each it may free a
 * random block of its working set (2 in 3) and may swap a random block with
 * a random slot of a global TRANSFER array (1 in 4, atomic exchange): the
 * block it receives was made by another thread, often of an earlier round,
 * and is freed by this one - or passed on again.  Sizes: 1..32 words (8 B
 * to 256 B), 1 in 100 blocks x50 larger, 1 in 1000 x1000 larger.  Every
 * word of a block holds a cookie derived from its address and size,
 * written at allocation and checked at its free.  What stays in TRANSFER
 * after the last round is checked and freed by the main thread.
 * Fixed work: 10 rounds, scale 200 (--scale; 15 with --quick).
 * ops = malloc + free (+ realloc of the working-set arrays) calls;
 * time_s is the figure of merit.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define TRANSFER 1000

static _Atomic(uint64_t *) transfer[TRANSFER];
static long scale;
static int nthreads;
static _Atomic uint64_t total_ops;

static inline uint64_t cookie(const uint64_t *p, size_t words)
{
    return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ words;
}

/* block layout: word 0 = number of words, words 1.. = cookie */
static uint64_t *block_new(rng_t *r)
{
    size_t words = (size_t)1 << (rng_next(r) % 6);
    uint64_t dice = rng_next(r) % 1000;
    if (dice == 0)
        words *= 1000;
    else if (dice % 100 == 1)
        words *= 50;
    words += 1;
    uint64_t *p = malloc(words * 8);
    if (!p)
        bench_fail("malloc(%zu) returned NULL", words * 8);
    p[0] = words;
    uint64_t c = cookie(p, words);
    for (size_t i = 1; i < words; i++)
        p[i] = c + i;
    return p;
}

static void block_free(uint64_t *p)
{
    if (!p)
        return;
    size_t words = (size_t)p[0];
    uint64_t c = cookie(p, words);
    for (size_t i = 1; i < words; i++)
        if (p[i] != c + i)
            bench_fail("block %p (%zu words) corrupted at word %zu", (void *)p, words, i);
    free(p);
}

static void *stress(void *arg)
{
    uintptr_t tid = (uintptr_t)arg;
    rng_t r;
    rng_seed(&r, 31337 + tid);
    uint64_t ops = 0;
    long allocs = 100 * scale * (long)(tid % 8 + 1);
    long retain = allocs / 2;
    size_t data_cap = 0, data_n = 0, ret_n = 0;
    uint64_t **data = NULL;
    uint64_t **kept = malloc((size_t)(retain + 1) * sizeof *kept);
    if (!kept)
        bench_fail("out of memory");
    ops++;
    while (allocs > 0 || retain > 0) {
        if (retain == 0 || (allocs > 0 && rng_next(&r) % 2)) {
            allocs--;
            if (data_n == data_cap) {
                data_cap = data_cap ? data_cap * 2 : 64;
                uint64_t **nd = realloc(data, data_cap * sizeof *data);
                if (!nd)
                    bench_fail("realloc returned NULL");
                data = nd;
                ops++;
            }
            data[data_n++] = block_new(&r);
        } else {
            retain--;
            kept[ret_n++] = block_new(&r);
        }
        ops++;
        if (data_n && rng_next(&r) % 3 < 2) {
            size_t i = rng_next(&r) % data_n;
            block_free(data[i]);
            data[i] = data[--data_n];
            ops++;
        }
        if (data_n && rng_next(&r) % 4 == 0) {
            size_t i = rng_next(&r) % data_n;
            size_t j = rng_next(&r) % TRANSFER;
            uint64_t *got = atomic_exchange(&transfer[j], data[i]);
            if (got)
                data[i] = got;
            else
                data[i] = data[--data_n];
        }
    }
    for (size_t i = 0; i < data_n; i++)
        block_free(data[i]);
    for (size_t i = 0; i < ret_n; i++)
        block_free(kept[i]);
    ops += data_n + ret_n + 2;
    free(data);
    free(kept);
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("mstress");
    int quick = bench_quick(argc, argv);
    nthreads = (int)bench_arg_long(argc, argv, "--threads", 2);
    scale = bench_arg_long(argc, argv, "--scale", quick ? 15 : 200);
    long rounds = bench_arg_long(argc, argv, "--rounds", 10);
    if (nthreads < 1 || nthreads > 64)
        bench_fail("--threads must be 1..64");
    double t0 = now_s();
    for (long round = 0; round < rounds; round++) {
        pthread_t th[64];
        for (int i = 0; i < nthreads; i++)
            if (pthread_create(&th[i], NULL, stress,
                               (void *)(uintptr_t)(round * nthreads + i)))
                bench_fail("pthread_create failed");
        for (int i = 0; i < nthreads; i++)
            pthread_join(th[i], NULL);
    }
    long left = 0;
    for (int j = 0; j < TRANSFER; j++) {
        uint64_t *p = atomic_exchange(&transfer[j], NULL);
        if (p) {
            block_free(p);
            left++;
        }
    }
    double el = now_s() - t0;
    bench_result(el, atomic_load(&total_ops) + (uint64_t)left,
                 "threads=%d rounds=%ld scale=%ld", nthreads, rounds, scale);
    return 0;
}
