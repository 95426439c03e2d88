/*
 * pair_loop - the hot path alone: 8 blocks of n bytes kept live, then
 * `iters` malloc(n)/free pairs.  Run under callgrind at two iteration
 * counts, the difference divided by the difference of the counts is the
 * cost of one pair in instructions, whatever the allocator's start-up
 * costs (bench/pair_cost.py).  With `thread`, the loop runs in a second
 * thread while the first waits: the path of a thread that is not the
 * main one (in tidemalloc and glibc, an arena of its own, in sub-heaps).
 *
 *   pair_loop N ITERS [thread]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t n;
static long iters;

static void *loop(void *arg)
{
    (void)arg;
    void *keep[8];
    for (int k = 0; k < 8; k++)
        keep[k] = malloc(n);
    for (long i = 0; i < iters; i++) {
        void *p = malloc(n);
        if (!p)
            return (void *)1;
        __asm__ volatile("" : : "r"(p) : "memory");   /* the pair is not elided */
        free(p);
    }
    for (int k = 0; k < 8; k++)
        free(keep[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "thread") == 0)) {
        fprintf(stderr, "usage: pair_loop BYTES ITERS [thread]\n");
        return 2;
    }
    n = strtoul(argv[1], NULL, 10);
    iters = atol(argv[2]);
    void *ret = NULL;
    if (argc == 4) {
        pthread_t t;
        if (pthread_create(&t, NULL, loop, NULL) != 0 || pthread_join(t, &ret) != 0)
            return 1;
    } else {
        ret = loop(NULL);
    }
    return ret != NULL;
}
