/*
 * wl_cache - false sharing of small blocks between threads, modelled on
 * Hoard's cache-scratch and cache-thrash benchmarks (Berger et al.; both in
 * mimalloc-bench).  Written from scratch here.  One program, two modes:
 *
 *   --mode thrash  (active false sharing): every thread repeatedly allocates
 *                  an OBJ_SIZE (8 B) block, writes each of its bytes REPS
 *                  times, checks it and frees it.  An allocator that hands
 *                  two threads blocks in the same cache line makes their
 *                  writes fight over it.
 *   --mode scratch (passive false sharing): the main thread first allocates
 *                  one 8 B block per thread, back to back (so they share a
 *                  cache line), and hands block i to thread i, which frees
 *                  it before its loop.  An allocator that then gives the
 *                  thread that very block again (a thread cache taking any
 *                  freed block) makes the threads write to one line.
 *
 * Fixed work: 2 threads x ITERS (1000) blocks x REPS (20000) passes over
 * the 8 bytes (REPS 1000 with --quick).  ops = malloc + free calls;
 * time_s is the figure of merit (nearly all of it is the writes: what is
 * measured is where the allocator placed the blocks, not its speed).
 */
#include "bench_common.h"

#include <stdlib.h>
#include <string.h>

#define OBJ_SIZE 8
#define ITERS 1000

struct thr {
    void *handed;       /* scratch: block to free first (allocated by main) */
    long reps;
    uint64_t ops;
    uint64_t shared_line;   /* blocks that shared a cache line with the handed-out ones */
} __attribute__((aligned(64)));

static uintptr_t first_line, last_line;   /* lines of the handed-out blocks */

static void *worker(void *arg)
{
    struct thr *t = arg;
    if (t->handed) {
        free(t->handed);
        t->ops++;
    }
    for (int it = 0; it < ITERS; it++) {
        volatile unsigned char *b = malloc(OBJ_SIZE);
        if (!b)
            bench_fail("malloc(%d) returned NULL", OBJ_SIZE);
        uintptr_t line = (uintptr_t)b / 64;
        if (first_line && line >= first_line && line <= last_line)
            t->shared_line++;
        for (int j = 0; j < OBJ_SIZE; j++)
            b[j] = (unsigned char)(it + j);
        for (long r = 0; r < t->reps; r++)
            for (int j = 0; j < OBJ_SIZE; j++)
                b[j]++;
        for (int j = 0; j < OBJ_SIZE; j++)
            if (b[j] != (unsigned char)(it + j + t->reps))
                bench_fail("block %p byte %d: %u, expected %u", (void *)b, j, b[j],
                           (unsigned char)(it + j + t->reps));
        free((void *)b);
        t->ops += 2;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = bench_arg(argc, argv, "--mode");
    int scratch;
    if (!mode || strcmp(mode, "thrash") == 0)
        scratch = 0, bench_set_name("cache_thrash");
    else if (strcmp(mode, "scratch") == 0)
        scratch = 1, bench_set_name("cache_scratch");
    else
        bench_fail("--mode must be thrash or scratch");
    int quick = bench_quick(argc, argv);
    int n = (int)bench_arg_long(argc, argv, "--threads", 2);
    long reps = bench_arg_long(argc, argv, "--reps", quick ? 1000 : 20000);
    struct thr t[64];
    if (n < 1 || n > 64)
        bench_fail("--threads must be 1..64");
    memset(t, 0, sizeof t);
    for (int i = 0; i < n; i++) {
        t[i].reps = reps;
        if (scratch) {
            t[i].handed = malloc(OBJ_SIZE);
            if (!t[i].handed)
                bench_fail("out of memory");
            memset(t[i].handed, 0, OBJ_SIZE);
            uintptr_t line = (uintptr_t)t[i].handed / 64;
            if (!first_line || line < first_line)
                first_line = line;
            if (line > last_line)
                last_line = line;
        }
    }
    double t0 = now_s();
    bench_run_threads(n, worker, t, sizeof t[0]);
    double el = now_s() - t0;
    uint64_t ops = 0, shared = 0;
    for (int i = 0; i < n; i++) {
        ops += t[i].ops;
        shared += t[i].shared_line;
    }
    /* How many blocks landed in the handed-out blocks' lines, and how many
     * lines those span: 1 means the main thread's consecutive blocks
     * shared a line, and then every thread that reuses its handed block
     * writes to that one line.  For blocks packed side by side that is a
     * matter of where the first one fell (2 blocks of 32 bytes share a
     * line half of the time), whatever else the allocator does.       */
    if (scratch)
        bench_result(el, ops, "threads=%d reps=%ld reused_handed_lines=%llu handed_span_lines=%llu",
                     n, reps, (unsigned long long)shared,
                     (unsigned long long)(last_line - first_line + 1));
    else
        bench_result(el, ops, "threads=%d reps=%ld", n, reps);
    return 0;
}
