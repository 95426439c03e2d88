/*
 * pair_loop - the hot path alone: 8 blocks of n bytes kept live, then
 * `iters` malloc(n)/free pairs.  Run under callgrind at two iteration
 * counts, the difference divided by the difference of the counts is the
 * cost of one pair in instructions, whatever the allocator's start-up
 * costs (bench/pair_cost.py).
 *
 *   pair_loop N ITERS
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pair_loop BYTES ITERS\n");
        return 2;
    }
    size_t n = strtoul(argv[1], NULL, 10);
    long iters = atol(argv[2]);
    void *keep[8];
    for (int k = 0; k < 8; k++)
        keep[k] = malloc(n);
    for (long i = 0; i < iters; i++) {
        void *p = malloc(n);
        if (!p)
            return 1;
        __asm__ volatile("" : : "r"(p) : "memory");   /* the pair is not elided */
        free(p);
    }
    for (int k = 0; k < 8; k++)
        free(keep[k]);
    return 0;
}
