/*
 * placement - where an allocator puts blocks that a program allocates one
 * after the other: next to each other, or anywhere in the heap.
 *
 * A program that allocates its objects in sequence and walks them in the
 * same order (building a list, an array of records, a batch) reads memory
 * sequentially if consecutive blocks are neighbours, and the hardware
 * prefetcher hides the misses; scattered blocks make every object a miss.
 * Callgrind and cachegrind model no prefetcher, so they do not see this;
 * `perf record -e cpu-clock` does (the program's own loops take longer).
 *
 * The probe runs wl_swing's pattern (ROUNDS rounds of N blocks, 3 in 4 of
 * 16..1024 B and 1 in 4 of 1..16 KiB, all freed in random order at the end
 * of a round) and prints, per round, for consecutive blocks a and b:
 *   adjacent   b starts at most 16 bytes after a's usable end (the next
 *              chunk: glibc carving from one chunk or top);
 *   within 4K  b starts within a page of a's end, either side;
 *   forward    b lies above a;
 *   mean|gap|  the mean distance between a's end and b.
 *
 *   cc -O2 -o /tmp/placement scripts/placement.c
 *   /tmp/placement [ROUNDS]                        # glibc
 *   LD_PRELOAD=build/libtidemalloc.so /tmp/placement
 *
 * At c41dca1's allocator (2026-12-07, round 3 of 5): glibc 82 % adjacent, 91 % forward;
 * tidemalloc 0.3 % / 50 % (a refill carves a run for one class, the next
 * class's refill another, and after a drain the runs come from wherever
 * best fit finds a hole); mimalloc 3.6 % / 49 % (a page per size class).
 * docs/measurements.md, nineteenth session.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define N 20000

static uint64_t rng_state = 77;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    static void *blk[N];
    static size_t order[N];
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < N; i++) {
            size_t sz = i % 4 ? 16 + rnd() % 1009 : 1024 + rnd() % 15361;
            blk[i] = malloc(sz);
            if (!blk[i]) {
                fprintf(stderr, "placement: malloc(%zu) failed\n", sz);
                return 1;
            }
            *(volatile char *)blk[i] = 1;
        }
        size_t adjacent = 0, near = 0, forward = 0;
        double dist = 0;
        for (size_t i = 1; i < N; i++) {
            intptr_t end = (intptr_t)blk[i - 1] + (intptr_t)malloc_usable_size(blk[i - 1]);
            intptr_t d = (intptr_t)blk[i] - end;
            adjacent += d >= 0 && d <= 16;
            near += d >= -4096 && d <= 4096;
            forward += d > 0;
            dist += d < 0 ? -(double)d : (double)d;
        }
        printf("round %d: adjacent %5.1f%%  within 4K %5.1f%%  forward %5.1f%%  mean|gap| %.0f KiB\n", r,
               100.0 * adjacent / (N - 1), 100.0 * near / (N - 1), 100.0 * forward / (N - 1),
               dist / (N - 1) / 1024);
        for (size_t i = 0; i < N; i++)
            order[i] = i;
        for (size_t i = N - 1; i > 0; i--) {
            size_t j = rnd() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t i = 0; i < N; i++)
            free(blk[order[i]]);
    }
    return 0;
}
