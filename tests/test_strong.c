/*
 * test_strong.c - the strong mode (mallopt(M_TIDE_HARDEN, 1) or
 * TIDEMALLOC_HARDEN=1): what it promises, checked from outside.
 *
 *   test_strong          switches the mode on with mallopt
 *   test_strong env      expects it on from the environment already
 *
 * Checked: the mallopt answers; a freed block reads as one repeated poison
 * byte; a freed block is not handed out again for at least 1000 further
 * allocations of its size, and is reused after a bounded number; a write
 * one byte past an mmapped block (plain, memalign'ed, and grown by realloc
 * through mremap) faults on the guard page; freeing those gives every
 * mapped byte back (mallinfo2 hblkhd); switching the mode off releases
 * the quarantine.  Use after free, double free and realloc of a freed block
 * in this mode are in the misuse suite (tests/misuse/misuse_harden.c).
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "tidemalloc.h"

static void *volatile target;
static size_t target_off;
static void poke(void *arg)
{
    (void)arg;
    ((volatile char *)target)[target_off] = 1;
}
static int faults_at(void *p, size_t off)
{
    target = p;
    target_off = off;
    int st = harness_run_child(poke, NULL);
    return st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char *val)
{
    for (size_t i = 1; i < n; i++)
        if (p[i] != p[0])
            return 0;
    *val = p[0];
    return 1;
}

int main(int argc, char **argv)
{
    int from_env = argc > 1 && strcmp(argv[1], "env") == 0;
    if (!from_env) {
        CHECK("mallopt(M_TIDE_HARDEN, 2) is rejected", mallopt(M_TIDE_HARDEN, 2) == 0);
        CHECK("mallopt(M_TIDE_HARDEN, 1) succeeds", mallopt(M_TIDE_HARDEN, 1) == 1);
    }

    /* Poison. */
    unsigned char *p = malloc(200);
    memset(p, 'x', 200);
    size_t usable = malloc_usable_size(p);
    free(p);
    unsigned char val = 0;
    int same = all_bytes(harness_launder(p), usable, &val);
    CHECKF("a freed block reads as one poison byte", same && val != 'x', "first bytes %02x %02x %02x",
           p[0], p[1], p[2]);

    /* Quarantine: p is not reused for >= 1000 allocations of its size. */
    void *held[1000];
    int reused_early = 0;
    for (int i = 0; i < 1000; i++) {
        held[i] = malloc(200);
        if (held[i] == (void *)p)
            reused_early = 1;
    }
    CHECK("a freed block is not reused by the next 1000 mallocs of its size", !reused_early);
    for (int i = 0; i < 1000; i++)
        free(held[i]);
    /* ... but it comes back once the quarantine moves on (bounded). */
    int back = -1;
    for (int i = 0; i < 20000 && back < 0; i++) {
        void *q = malloc(200);
        if (q == (void *)p)
            back = i;
        free(q);
    }
    CHECKF("the quarantine is bounded: the block is reused eventually", back >= 0, "not within 20000");

    /* Guard pages after mmapped chunks. */
    struct mallinfo2 base = mallinfo2();
    char *m = malloc(1 << 20);
    size_t mu = malloc_usable_size(m);
    CHECK("a 1 MiB block is usable to its last byte", !faults_at(m, mu - 1));
    CHECK("one byte past a 1 MiB block faults (guard page)", faults_at(m, mu));
    char *a = memalign(65536, 1 << 20);
    size_t au = malloc_usable_size(a);
    CHECK("memalign'ed mmapped block: its last byte is usable", !faults_at(a, au - 1));
    CHECK("memalign'ed mmapped block: one byte past faults", faults_at(a, au));
    memset(m, 'm', mu);
    char *r = realloc(m, 3 << 20);
    size_t ru = malloc_usable_size(r);
    int kept = r && r[0] == 'm' && r[mu - 1] == 'm';
    CHECK("realloc of a guarded block (mremap) keeps the data", kept);
    CHECK("the grown block: its last byte is usable", r && !faults_at(r, ru - 1));
    CHECK("the grown block: one byte past faults", r && faults_at(r, ru));
    free(r);
    free(a);
    struct mallinfo2 after = mallinfo2();
    CHECKF("freeing guarded blocks gives their mappings back", after.hblkhd == base.hblkhd,
           "hblkhd %zu before, %zu after", base.hblkhd, after.hblkhd);

    if (!from_env) {
        /* Off: the quarantine is emptied and the block is reused at once. */
        unsigned char *z = malloc(200);
        free(z);
        CHECK("mallopt(M_TIDE_HARDEN, 0) succeeds", mallopt(M_TIDE_HARDEN, 0) == 1);
        int soon = 0;
        void *keep[64];
        for (int i = 0; i < 64; i++) {
            keep[i] = malloc(200);
            if (keep[i] == (void *)z)
                soon = 1;
        }
        CHECK("switched off, the quarantined block is reusable at once", soon);
        for (int i = 0; i < 64; i++)
            free(keep[i]);
        char *n = malloc(1 << 20);
        size_t nu = malloc_usable_size(n);
        CHECK("switched off, mmapped blocks have no guard page", !faults_at(n, (nu + 4095) & ~(size_t)4095));
        free(n);
    }
    return harness_finish();
}
