/*
 * wl_large - large blocks, 64 KiB .. 32 MiB (log-uniform).
 *
 * A window of SLOTS live blocks; each step frees a random slot's block
 * (after verifying it) and allocates a new one there, so blocks die in
 * random order.  Every new block is touched on every page (one stamped
 * word per 4 KiB page + the last word), which is what makes the pages
 * resident; a block that comes back from the OS costs page faults, a block
 * reused from the allocator's cache does not.
 * ops = number of malloc + free calls.
 */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>

#define SLOTS 24
#define MIN_SZ ((size_t)64 << 10)
#define MAX_SZ ((size_t)32 << 20)

struct blk { void *p; size_t size; uint64_t tag; };

static uint64_t ops, bytes;

static void put(struct blk *b, rng_t *r, uint64_t tag)
{
    b->size = rng_logsize(r, MIN_SZ, MAX_SZ);
    b->p = malloc(b->size);
    if (!b->p)
        bench_fail("malloc(%zu) returned NULL", b->size);
    b->tag = tag;
    stamp_block(b->p, b->size, tag, 4096);
    ops++;
    bytes += b->size;
}

static void drop(struct blk *b)
{
    if (!stamp_ok(b->p, b->size, b->tag, 4096))
        bench_fail("block %p (%zu bytes) corrupted before free", b->p, b->size);
    free(b->p);
    b->p = NULL;
    ops++;
}

int main(int argc, char **argv)
{
    bench_set_name("large");
    int quick = bench_quick(argc, argv);
    long steps = quick ? 150 : 1500;

    rng_t r;
    rng_seed(&r, 99);
    struct blk slots[SLOTS];
    uint64_t tag = 1;
    double t0 = now_s();
    for (int i = 0; i < SLOTS; i++)
        put(&slots[i], &r, tag++);
    for (long s = 0; s < steps; s++) {
        struct blk *b = &slots[rng_next(&r) % SLOTS];
        drop(b);
        put(b, &r, tag++);
    }
    /* free the rest in random order */
    for (int left = SLOTS; left > 0; left--) {
        int k = (int)(rng_next(&r) % (uint64_t)left), seen = -1;
        for (int i = 0; i < SLOTS; i++)
            if (slots[i].p && ++seen == k) {
                drop(&slots[i]);
                break;
            }
    }
    double t = now_s() - t0;
    bench_result(t, ops, "bytes=%llu", (unsigned long long)bytes);
    return 0;
}
