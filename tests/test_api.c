/*
 * test_api.c - conformance of tidemalloc's public API with glibc 2.36.
 *
 * Covers malloc, free, calloc, realloc, reallocarray, memalign,
 * posix_memalign, aligned_alloc, valloc, pvalloc, malloc_usable_size,
 * free_sized, free_aligned_sized, mallopt, mallinfo, mallinfo2, malloc_trim,
 * malloc_stats, malloc_info and the tide_ prefixed entry points.  Where the
 * expected behaviour is glibc's rather than the C standard's, the comment at
 * the check says so.  tide_check_heap() is run after every group.
 * TEST_API_TRACE=1 in the environment prints mallinfo2() after each group.
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tidemalloc.h"

/* C23 functions; glibc 2.36's headers do not declare them. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* Keeps constant sizes away from the compiler (no -Walloc-size warnings,
 * no folding of calls it thinks it understands). */
static size_t hide(size_t v)
{
    volatile size_t x = v;
    return x;
}

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* The chunk header word before a user pointer (see include/tidemalloc.h). */
static size_t chunk_size_word(const void *p)
{
    const size_t *w = harness_launder((void *)p);
    return w[-1];
}
static int is_mmapped(const void *p)
{
    return (chunk_size_word(p) & 2) != 0;
}

static int aligned_to(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static size_t next_pow2(size_t v)
{
    size_t a = 1;
    while (a < v)
        a <<= 1;
    return a;
}

/* Position-dependent pattern: a block shifted or mixed with another shows. */
static unsigned char pat(unsigned seed, size_t i)
{
    return (unsigned char)(i * 31u + (i >> 8) * 7u + (i >> 16) * 13u + seed * 101u + 1u);
}
static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = pat(seed, i);
}
/* Returns the first differing offset, or (size_t)-1 when all match. */
static size_t verify(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pat(seed, i))
            return i;
    return (size_t)-1;
}
static int all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

static void heap_ok(const char *group)
{
    char name[160];
    snprintf(name, sizeof name, "tide_check_heap() > 0 after %s", group);
    long n = tide_check_heap();
    CHECKF(name, n > 0, "returned %ld", n);
    if (getenv("TEST_API_TRACE")) {
        struct mallinfo2 m = mallinfo2();
        fprintf(stderr, "[%s] arena %zu in use %zu free %zu top %zu mmapped %zu in %zu\n", group,
                m.arena, m.uordblks, m.fordblks, m.keepcost, m.hblkhd, m.hblks);
    }
}

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;
static unsigned long long rnd(void)
{
    unsigned long long z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ======================================================================= */
static void test_ownership(void)
{
    void *p = harness_launder(malloc(16));
    CHECK("malloc(16) is served by tidemalloc (tide_owns)", p && tide_owns(p));
    void *q = calloc(4, 4);
    CHECK("calloc(4,4) is served by tidemalloc (tide_owns)", q && tide_owns(q));
    void *r = realloc(NULL, 100);
    CHECK("realloc(NULL,100) is served by tidemalloc (tide_owns)", r && tide_owns(r));
    void *s = malloc(2 * MiB);
    CHECK("malloc(2 MiB) is served by tidemalloc (tide_owns)", s && tide_owns(s));
    free(p);
    free(q);
    free(r);
    free(s);
    heap_ok("ownership");
}

/* mallinfo2 in the default state (first, before any mmapped chunk is freed:
 * glibc's dynamic threshold would otherwise move). */
static void mallinfo2_invariants(const char *when, struct mallinfo2 m)
{
    char name[200];
    snprintf(name, sizeof name, "mallinfo2 %s: arena == uordblks + fordblks", when);
    CHECKF(name, m.arena == m.uordblks + m.fordblks, "arena %zu uordblks %zu fordblks %zu",
           m.arena, m.uordblks, m.fordblks);
    snprintf(name, sizeof name, "mallinfo2 %s: fsmblks <= fordblks", when);
    CHECKF(name, m.fsmblks <= m.fordblks, "fsmblks %zu fordblks %zu", m.fsmblks, m.fordblks);
    snprintf(name, sizeof name, "mallinfo2 %s: keepcost <= fordblks", when);
    CHECKF(name, m.keepcost <= m.fordblks, "keepcost %zu fordblks %zu", m.keepcost, m.fordblks);
    snprintf(name, sizeof name, "mallinfo2 %s: usmblks == 0 (glibc)", when);
    CHECKF(name, m.usmblks == 0, "usmblks %zu", m.usmblks);
    snprintf(name, sizeof name, "mallinfo2 %s: ordblks >= 1 (top counts)", when);
    CHECKF(name, m.ordblks >= 1, "ordblks %zu", m.ordblks);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static struct mallinfo old_mallinfo(void)
{
    return mallinfo();
}
#pragma GCC diagnostic pop

static void test_mallinfo(void)
{
    struct mallinfo2 m0 = mallinfo2();
    mallinfo2_invariants("at start", m0);

    /* A 1 MiB block is mmapped and counted in hblks/hblkhd. */
    void *big = malloc(MiB);
    struct mallinfo2 m1 = mallinfo2();
    CHECK("malloc(1 MiB) succeeds", big != NULL);
    CHECKF("malloc(1 MiB) is an mmapped chunk (M bit)", big && is_mmapped(big),
           "size word 0x%zx", big ? chunk_size_word(big) : 0);
    CHECKF("hblks +1 for a live 1 MiB block", m1.hblks == m0.hblks + 1,
           "before %zu after %zu", m0.hblks, m1.hblks);
    CHECKF("hblkhd grows by >= 1 MiB", m1.hblkhd >= m0.hblkhd + MiB,
           "before %zu after %zu", m0.hblkhd, m1.hblkhd);
    CHECKF("hblkhd grows by < 1 MiB + 2 pages", m1.hblkhd < m0.hblkhd + MiB + 2 * page_size(),
           "before %zu after %zu", m0.hblkhd, m1.hblkhd);
    mallinfo2_invariants("with a 1 MiB mmapped block", m1);
    free(big);
    struct mallinfo2 m2 = mallinfo2();
    CHECKF("hblkhd back after freeing the 1 MiB block", m2.hblkhd == m0.hblkhd,
           "before %zu after %zu", m0.hblkhd, m2.hblkhd);
    CHECKF("hblks back after freeing the 1 MiB block", m2.hblks == m0.hblks,
           "before %zu after %zu", m0.hblks, m2.hblks);

    /* 1000 small blocks of 100 bytes: uordblks grows by at least 100000. */
    enum { NSMALL = 1000 };
    static void *small[NSMALL];
    tide_thread_cache_flush();
    struct mallinfo2 a = mallinfo2();
    for (int i = 0; i < NSMALL; i++)
        small[i] = malloc(100);
    struct mallinfo2 b = mallinfo2();
    int allok = 1;
    for (int i = 0; i < NSMALL; i++)
        allok &= small[i] != NULL;
    CHECK("1000 x malloc(100) succeed", allok);
    CHECKF("uordblks grows by >= 100000 after 1000 x malloc(100)",
           b.uordblks >= a.uordblks + 100000, "before %zu after %zu", a.uordblks, b.uordblks);
    mallinfo2_invariants("with 1000 small blocks", b);
    for (int i = 0; i < NSMALL; i++)
        free(small[i]);
    tide_thread_cache_flush();
    struct mallinfo2 c = mallinfo2();
    /* Back to where it was, give or take what a thread cache still holds
     * (glibc's tcache counts as "in use"). */
    CHECKF("uordblks returns (within 16 KiB) after freeing them",
           c.uordblks <= a.uordblks + 16 * KiB && c.uordblks + 16 * KiB >= a.uordblks,
           "before %zu after %zu", a.uordblks, c.uordblks);
    mallinfo2_invariants("after freeing the small blocks", c);

    /* Blocks of 2000 bytes (outside any thread cache): exact accounting. */
    enum { NMID = 200 };
    static void *mid[NMID];
    tide_thread_cache_flush();
    a = mallinfo2();
    for (int i = 0; i < NMID; i++)
        mid[i] = malloc(2000);
    b = mallinfo2();
    CHECKF("uordblks grows by >= 400000 after 200 x malloc(2000)",
           b.uordblks >= a.uordblks + 400000, "before %zu after %zu", a.uordblks, b.uordblks);
    for (int i = 0; i < NMID; i++)
        free(mid[i]);
    tide_thread_cache_flush();
    c = mallinfo2();
    CHECKF("uordblks returns (within 16 KiB) after freeing the 2000-byte blocks",
           c.uordblks <= a.uordblks + 16 * KiB && c.uordblks + 16 * KiB >= a.uordblks,
           "before %zu after %zu", a.uordblks, c.uordblks);

    /* The freed 1 MiB mmapped block raised the dynamic mmap threshold to
     * 4 MiB (TM_DYN_MMAP_MARGIN times its size; glibc: to its size): a
     * 3 MiB block now comes from the heap, a 5 MiB one is mapped. */
    void *mid3 = malloc(3 * MiB);
    CHECKF("malloc(3 MiB) after the 1 MiB block's free: from the heap (threshold 4 MiB)",
           mid3 && !is_mmapped(mid3), "size word 0x%zx", mid3 ? chunk_size_word(mid3) : 0);
    free(mid3);

    /* mallinfo() is mallinfo2() in ints. */
    void *hold = malloc(5 * MiB);
    CHECKF("malloc(5 MiB) is an mmapped chunk", hold && is_mmapped(hold), "size word 0x%zx",
           hold ? chunk_size_word(hold) : 0);
    struct mallinfo2 n2 = mallinfo2();
    struct mallinfo n1 = old_mallinfo();
    CHECK("mallinfo().arena == mallinfo2().arena", (size_t)n1.arena == n2.arena);
    CHECK("mallinfo().ordblks == mallinfo2().ordblks", (size_t)n1.ordblks == n2.ordblks);
    CHECK("mallinfo().hblks == mallinfo2().hblks", (size_t)n1.hblks == n2.hblks);
    CHECK("mallinfo().hblkhd == mallinfo2().hblkhd", (size_t)n1.hblkhd == n2.hblkhd);
    CHECK("mallinfo().uordblks == mallinfo2().uordblks", (size_t)n1.uordblks == n2.uordblks);
    CHECK("mallinfo().fordblks == mallinfo2().fordblks", (size_t)n1.fordblks == n2.fordblks);
    CHECK("mallinfo().fsmblks == mallinfo2().fsmblks", (size_t)n1.fsmblks == n2.fsmblks);
    CHECK("mallinfo().keepcost == mallinfo2().keepcost", (size_t)n1.keepcost == n2.keepcost);
    CHECKF("mallinfo2().hblkhd counts a live 5 MiB block", n2.hblkhd >= 5 * MiB,
           "hblkhd %zu", n2.hblkhd);
    free(hold);

    /* From here on, fix the mmap and trim thresholds at glibc's defaults:
     * freeing the mmapped blocks above raised the dynamic thresholds
     * (to 20 MiB / 40 MiB), which would let later "large" blocks come from a
     * big untrimmed top instead of mmap. */
    CHECK("mallopt(M_MMAP_THRESHOLD, 128 KiB) == 1", mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
    CHECK("mallopt(M_TRIM_THRESHOLD, 128 KiB) == 1", mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
    heap_ok("mallinfo/mallinfo2");
}

/* ======================================================================= */
static void test_malloc_basic(void)
{
    void *z1 = malloc(0), *z2 = malloc(0), *z3 = malloc(0);
    CHECK("malloc(0) returns non-NULL", z1 && z2 && z3);
    CHECK("malloc(0) pointers are unique", z1 != z2 && z2 != z3 && z1 != z3);
    CHECK("malloc(0) is 16-byte aligned", aligned_to(z1, 16) && aligned_to(z2, 16));
    if (z1) {
        size_t u = malloc_usable_size(z1);
        z1 = harness_launder(z1);
        memset(z1, 0x5c, u);   /* all usable bytes of a 0-byte block are writable */
        CHECK("malloc(0) usable bytes writable, neighbour intact",
              z2 && all_bytes(z1, u, 0x5c));
    }
    free(z1);
    free(z2);
    free(z3);

    CHECK("malloc_usable_size(NULL) == 0", malloc_usable_size(NULL) == 0);
    errno = 0;
    free(NULL);
    CHECK("free(NULL) is a no-op", errno == 0);

    /* Every size 0..1100, then sparser up to 600 KiB: aligned, usable >= n. */
    int align_ok = 1, usable_ok = 1, null_ok = 1;
    size_t bad_n = 0, bad_u = 0;
    for (size_t n = 0; n < 600 * KiB; n += n < 1100 ? 1 : n < 70000 ? 997 : 32771) {
        unsigned char *p = malloc(n);
        if (!p) {
            null_ok = 0;
            bad_n = n;
            continue;
        }
        size_t u = malloc_usable_size(p);
        if (!aligned_to(p, 16))
            align_ok = 0, bad_n = n;
        if (u < n)
            usable_ok = 0, bad_n = n, bad_u = u;
        memset(p, 0xee, u);
        free(p);
    }
    CHECKF("malloc(n) non-NULL for n in 0..600 KiB", null_ok, "n=%zu", bad_n);
    CHECKF("malloc(n) 16-byte aligned for n in 0..600 KiB", align_ok, "n=%zu", bad_n);
    CHECKF("malloc_usable_size(malloc(n)) >= n", usable_ok, "n=%zu usable=%zu", bad_n, bad_u);

    /* Neighbours: write every usable byte of many adjacent blocks, check
     * that nobody's bytes were overwritten. */
    enum { NB = 400 };
    static unsigned char *blk[NB];
    static size_t bu[NB];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < NB; i++) {
            if (blk[i] && round > 0 && (rnd() & 1))
                continue;   /* keep some from the previous round */
            if (blk[i])
                free(blk[i]);
            size_t n;
            switch (rnd() % 8) {
            case 0: n = rnd() % 24; break;
            case 1: case 2: n = rnd() % 130; break;
            case 3: case 4: n = rnd() % 1100; break;
            case 5: n = rnd() % 5000; break;
            case 6: n = rnd() % 70000; break;
            default: n = (i % 37 == 0) ? 128 * KiB + rnd() % (600 * KiB) : rnd() % 300; break;
            }
            blk[i] = malloc(n);
            bu[i] = blk[i] ? malloc_usable_size(blk[i]) : 0;
            if (blk[i])
                fill(blk[i], bu[i], (unsigned)i + 1000u * (unsigned)round);
        }
        int ok = 1, bad = -1;
        for (int i = 0; i < NB; i++) {
            if (!blk[i] || bu[i] == 0)
                continue;
            /* The seed that filled it: this round, or a previous one. */
            int r;
            for (r = round; r >= 0; r--)
                if (verify(blk[i], bu[i], (unsigned)i + 1000u * (unsigned)r) == (size_t)-1)
                    break;
            if (r < 0)
                ok = 0, bad = i;
        }
        char name[120];
        snprintf(name, sizeof name, "all usable bytes of %d neighbours writable and intact (round %d)", NB, round);
        CHECKF(name, ok, "block %d (usable %zu) damaged", bad, bad >= 0 ? bu[bad] : 0);
    }
    for (int i = 0; i < NB; i++) {
        free(blk[i]);
        blk[i] = NULL;
    }
    heap_ok("malloc basics");
}

/* ======================================================================= */
static void test_huge(void)
{
    const size_t huge[] = {
        SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX / 2, (size_t)PTRDIFF_MAX + 1,
        SIZE_MAX / 2 + 4096,
    };
    const char *hname[] = {
        "SIZE_MAX", "SIZE_MAX-1", "SIZE_MAX-4095", "SIZE_MAX/2", "PTRDIFF_MAX+1",
        "SIZE_MAX/2+4096",
    };
    char name[160];
    void *live = malloc(100);
    fill(live, 100, 77);
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        size_t s = hide(huge[k]);
        void *p;
#define HUGE_CASE(expr, label)                                                   \
        do {                                                                     \
            errno = 0;                                                           \
            p = (expr);                                                          \
            int e = errno;                                                       \
            snprintf(name, sizeof name, label " returns NULL with ENOMEM", hname[k]); \
            CHECKF(name, p == NULL && e == ENOMEM, "got %p errno %d", p, e);     \
            if (p)                                                               \
                free(p);                                                         \
        } while (0)
        HUGE_CASE(malloc(s), "malloc(%s)");
        HUGE_CASE(calloc(1, s), "calloc(1, %s)");
        HUGE_CASE(calloc(s, 1), "calloc(%s, 1)");
        HUGE_CASE(realloc(NULL, s), "realloc(NULL, %s)");
        HUGE_CASE(memalign(64, s), "memalign(64, %s)");
        HUGE_CASE(memalign(4096, s), "memalign(4096, %s)");
        HUGE_CASE(aligned_alloc(64, s), "aligned_alloc(64, %s)");
        HUGE_CASE(valloc(s), "valloc(%s)");
        HUGE_CASE(pvalloc(s), "pvalloc(%s)");
        HUGE_CASE(reallocarray(NULL, s, 1), "reallocarray(NULL, %s, 1)");
        HUGE_CASE(tide_malloc(s), "tide_malloc(%s)");

        errno = 0;
        p = realloc(live, s);
        int e = errno;
        snprintf(name, sizeof name, "realloc(p, %s) returns NULL with ENOMEM", hname[k]);
        CHECKF(name, p == NULL && e == ENOMEM, "got %p errno %d", p, e);
        snprintf(name, sizeof name, "realloc(p, %s) failure leaves p intact", hname[k]);
        CHECK(name, p == NULL && verify(live, 100, 77) == (size_t)-1);
        if (p)
            live = p;

        void *sentinel = (void *)&name, *q = sentinel;
        int r = posix_memalign(&q, 64, s);
        snprintf(name, sizeof name, "posix_memalign(&q, 64, %s) == ENOMEM, q untouched", hname[k]);
        CHECKF(name, r == ENOMEM && q == sentinel, "returned %d", r);
        if (r == 0)
            free(q);
#undef HUGE_CASE
    }

    /* calloc and reallocarray overflow of nmemb * size. */
    const size_t ov[][2] = {
        { SIZE_MAX / 2 + 1, 2 }, { (size_t)1 << 32, (size_t)1 << 32 }, { SIZE_MAX, SIZE_MAX },
        { 3, SIZE_MAX / 3 + 1 }, { 65537, SIZE_MAX / 65536 }, { 2, SIZE_MAX / 2 + 1 },
    };
    for (size_t k = 0; k < sizeof ov / sizeof ov[0]; k++) {
        size_t a = hide(ov[k][0]), b = hide(ov[k][1]);
        errno = 0;
        void *p = calloc(a, b);
        int e = errno;
        snprintf(name, sizeof name, "calloc(%zu, %zu) overflow -> NULL, ENOMEM", a, b);
        CHECKF(name, p == NULL && e == ENOMEM, "got %p errno %d", p, e);
        free(p);
        errno = 0;
        p = reallocarray(NULL, a, b);
        e = errno;
        snprintf(name, sizeof name, "reallocarray(NULL, %zu, %zu) overflow -> NULL, ENOMEM", a, b);
        CHECKF(name, p == NULL && e == ENOMEM, "got %p errno %d", p, e);
        free(p);
        errno = 0;
        p = reallocarray(live, a, b);
        e = errno;
        snprintf(name, sizeof name, "reallocarray(p, %zu, %zu) overflow -> NULL, ENOMEM, p intact", a, b);
        CHECKF(name, p == NULL && e == ENOMEM && verify(live, 100, 77) == (size_t)-1,
               "got %p errno %d", p, e);
        if (p)
            live = p;
    }
    free(live);

    /* glibc: memalign with an alignment above SIZE_MAX/2+1 fails with EINVAL. */
    errno = 0;
    void *p = memalign(hide(SIZE_MAX), 16);
    CHECKF("memalign(SIZE_MAX, 16) -> NULL, EINVAL (glibc)", p == NULL && errno == EINVAL,
           "got %p errno %d", p, errno);
    free(p);
    errno = 0;
    p = memalign(hide(SIZE_MAX / 2 + 2), 16);
    CHECKF("memalign(SIZE_MAX/2+2, 16) -> NULL, EINVAL (glibc)", p == NULL && errno == EINVAL,
           "got %p errno %d", p, errno);
    free(p);
    errno = 0;
    p = memalign(hide(SIZE_MAX / 2 + 1), 16);
    CHECKF("memalign(2^63, 16) -> NULL, ENOMEM", p == NULL && errno == ENOMEM,
           "got %p errno %d", p, errno);
    free(p);

    /* After all these failures the allocator still works. */
    p = malloc(1000);
    CHECK("malloc works after failed huge requests", p != NULL);
    free(p);
    heap_ok("huge requests");
}

/* ======================================================================= */
/* Follows one block through a chain of realloc sizes checking contents. */
static int realloc_chain(const size_t *sizes, size_t n, unsigned seed, int with_neighbours,
                         char *why, size_t whylen)
{
    size_t old = sizes[0];
    unsigned char *p = malloc(old);
    if (!p && old) {
        snprintf(why, whylen, "malloc(%zu) failed", old);
        return 0;
    }
    fill(p, old, seed);
    void *nb[2] = { NULL, NULL };
    for (size_t k = 1; k < n; k++) {
        size_t nw = sizes[k];
        if (with_neighbours) {   /* pin something right after it */
            free(nb[k & 1]);
            nb[k & 1] = malloc(40 + (k % 5) * 300);
        }
        unsigned char *q = realloc(p, nw);
        if (!q) {
            snprintf(why, whylen, "realloc(%zu -> %zu) returned NULL", old, nw);
            free(nb[0]);
            free(nb[1]);
            return 0;
        }
        if (!aligned_to(q, 16)) {
            snprintf(why, whylen, "realloc(%zu -> %zu) not 16-aligned: %p", old, nw, (void *)q);
            return 0;
        }
        if (malloc_usable_size(q) < nw) {
            snprintf(why, whylen, "realloc(%zu -> %zu) usable %zu", old, nw, malloc_usable_size(q));
            return 0;
        }
        size_t keep = old < nw ? old : nw;
        size_t bad = verify(q, keep, seed);
        if (bad != (size_t)-1) {
            snprintf(why, whylen, "realloc(%zu -> %zu) lost contents at offset %zu", old, nw, bad);
            return 0;
        }
        seed++;
        fill(q, nw, seed);
        p = q;
        old = nw;
    }
    free(p);
    free(nb[0]);
    free(nb[1]);
    return 1;
}

static void test_realloc(void)
{
    /* realloc(NULL, n) is malloc(n). */
    void *p = harness_launder(realloc(NULL, 123));
    CHECK("realloc(NULL, 123) returns a usable block",
          p && aligned_to(p, 16) && malloc_usable_size(p) >= 123);
    if (p)
        fill(p, 123, 1);
    free(p);
    p = realloc(NULL, 0);
    CHECK("realloc(NULL, 0) returns a unique non-NULL block (malloc(0))", p != NULL);
    free(p);

    /* glibc: realloc(p, 0) frees p and returns NULL. */
    p = malloc(100);
    errno = 0;
    void *q = realloc(p, 0);
    CHECKF("realloc(p, 0) returns NULL (glibc)", q == NULL, "got %p", q);
    free(q);
    p = malloc(MiB);
    q = realloc(p, 0);
    CHECKF("realloc(mmapped p, 0) returns NULL (glibc)", q == NULL, "got %p", q);
    free(q);
    /* ... and really frees: no growth over many rounds. */
    tide_thread_cache_flush();
    struct mallinfo2 a = mallinfo2();
    for (int i = 0; i < 20000; i++) {
        void *r = malloc(200 + (size_t)(i % 7) * 100);
        r = realloc(r, 0);
        free(r);
    }
    tide_thread_cache_flush();
    struct mallinfo2 b = mallinfo2();
    CHECKF("realloc(p, 0) frees p (no leak over 20000 rounds)",
           b.uordblks <= a.uordblks + 64 * KiB, "uordblks %zu -> %zu", a.uordblks, b.uordblks);

    char why[200];
    struct {
        const char *name;
        size_t sizes[16];
        size_t n;
    } chains[] = {
        { "tiny/fast sizes", { 1, 8, 16, 24, 25, 40, 56, 72, 100, 120, 128, 64, 9, 1 }, 14 },
        { "small-bin sizes", { 130, 200, 333, 500, 800, 1000, 1008, 1016, 1024, 700, 150 }, 11 },
        { "large-bin sizes", { 1100, 2000, 4000, 8200, 16000, 40000, 100000, 127000, 9000, 1500 }, 10 },
        { "heap to mmapped and back", { 1000, 200000, 300, 600000, 70000, 131072, 131071, 100, 140000 }, 9 },
        { "mmapped growth (mremap)", { 200000, 700000, 2 * MiB, 5 * MiB, 17 * MiB, 40 * MiB, 64 * MiB + 5, 300000, 1000 }, 9 },
        { "mmapped shrink", { 8 * MiB, 4 * MiB, MiB + 1, 500000, 140000, 130000, 127000, 50, 2 * MiB }, 9 },
        { "zigzag", { 10, 100000, 20, 3000000, 30, 1500, 200, 130000, 5, 60, 2000 }, 11 },
    };
    for (size_t c = 0; c < sizeof chains / sizeof chains[0]; c++) {
        for (int nb = 0; nb < 2; nb++) {
            char name[160];
            snprintf(name, sizeof name, "realloc preserves contents: %s%s", chains[c].name,
                     nb ? " (with neighbours)" : "");
            why[0] = '\0';
            int ok = realloc_chain(chains[c].sizes, chains[c].n, (unsigned)c * 50u + (unsigned)nb, nb,
                                   why, sizeof why);
            CHECKF(name, ok, "%s", why);
        }
    }

    /* A random walk over all size classes, with a bunch of live blocks. */
    enum { NW = 64 };
    static unsigned char *w[NW];
    static size_t ws[NW];
    static unsigned wseed[NW];
    int walk_ok = 1;
    char wwhy[200] = "";
    for (int i = 0; i < 6000 && walk_ok; i++) {
        int k = (int)(rnd() % NW);
        size_t nw;
        unsigned r = (unsigned)(rnd() % 100);
        if (r < 40) nw = rnd() % 140;
        else if (r < 75) nw = rnd() % 1100;
        else if (r < 97) nw = rnd() % 100000;
        else nw = 128 * KiB + rnd() % (3 * MiB);
        unsigned char *q2 = realloc(w[k], nw);
        if (nw == 0) {   /* glibc: freed, NULL */
            if (q2 != NULL && w[k] != NULL) {
                walk_ok = 0;
                snprintf(wwhy, sizeof wwhy, "realloc(p, 0) returned %p", (void *)q2);
            }
            if (w[k] == NULL)   /* realloc(NULL, 0) = malloc(0) */
                free(q2);
            w[k] = NULL;
            ws[k] = 0;
            continue;
        }
        if (!q2) {
            walk_ok = 0;
            snprintf(wwhy, sizeof wwhy, "realloc(%zu -> %zu) returned NULL", ws[k], nw);
            break;
        }
        size_t keep = ws[k] < nw ? ws[k] : nw;
        size_t bad = verify(q2, keep, wseed[k]);
        if (bad != (size_t)-1) {
            walk_ok = 0;
            snprintf(wwhy, sizeof wwhy, "step %d: realloc(%zu -> %zu) lost byte %zu", i, ws[k], nw, bad);
        }
        wseed[k] = (unsigned)i * 7u + 3u;
        fill(q2, nw, wseed[k]);
        w[k] = q2;
        ws[k] = nw;
    }
    CHECKF("random realloc walk over 64 blocks preserves contents", walk_ok, "%s", wwhy);
    for (int k = 0; k < NW; k++) {
        if (w[k] && verify(w[k], ws[k], wseed[k]) != (size_t)-1)
            walk_ok = 0;
        free(w[k]);
        w[k] = NULL;
    }
    CHECK("random realloc walk: all blocks intact at the end", walk_ok);

    /* Every small size to every other (moved through the thread's cache,
     * api.c realloc_via_cache, unless it fits): the bytes both hold kept,
     * the usable size enough, errno untouched by a success. */
    int mv_ok = 1;
    char mvwhy[160] = "";
    for (size_t a = 1; a <= 1032 && mv_ok; a += 37) {
        for (size_t b = 1; b <= 1032 && mv_ok; b += 29) {
            unsigned char *m = malloc(a);
            if (!m) {
                mv_ok = 0;
                snprintf(mvwhy, sizeof mvwhy, "malloc(%zu) returned NULL", a);
                break;
            }
            fill(m, a, (unsigned)(a * 1031 + b));
            errno = EDOM;
            unsigned char *r = realloc(m, b);
            int err = errno;
            size_t keep = a < b ? a : b;
            if (!r || err != EDOM || malloc_usable_size(r) < b || verify(r, keep, (unsigned)(a * 1031 + b)) != (size_t)-1) {
                mv_ok = 0;
                snprintf(mvwhy, sizeof mvwhy, "realloc(%zu -> %zu): %p, errno %d, usable %zu", a, b, (void *)r, err,
                         r ? malloc_usable_size(r) : 0);
            }
            free(r ? r : m);
        }
    }
    CHECKF("realloc between small sizes keeps contents and errno", mv_ok, "%s", mvwhy);

    /* realloc of aligned blocks keeps the contents. */
    int al_ok = 1;
    for (size_t al = 32; al <= 64 * KiB; al <<= 1) {
        unsigned char *m = memalign(al, 500);
        if (!m || !aligned_to(m, al)) {
            al_ok = 0;
            break;
        }
        fill(m, 500, (unsigned)al);
        unsigned char *g = realloc(m, 5000);
        if (!g || verify(g, 500, (unsigned)al) != (size_t)-1) {
            al_ok = 0;
            free(g);
            break;
        }
        fill(g, 5000, 9);
        unsigned char *s = realloc(g, 40);
        if (!s || verify(s, 40, 9) != (size_t)-1)
            al_ok = 0;
        free(s);
    }
    CHECK("realloc of memalign'd blocks (32 B..64 KiB alignment) keeps contents", al_ok);
    heap_ok("realloc");
}

/* ======================================================================= */
static void test_calloc(void)
{
    void *a = calloc(0, 0), *b = calloc(0, 10), *c = calloc(10, 0);
    CHECK("calloc(0,0), calloc(0,10), calloc(10,0) return non-NULL", a && b && c);
    CHECK("calloc with zero size returns unique pointers", a != b && b != c && a != c);
    free(a);
    free(b);
    free(c);

    const size_t sizes[] = { 1, 16, 24, 100, 500, 1000, 1032, 2000, 5000, 12000, 16376, 70000, 100000,
                             127 * 1024, 130 * 1024, 200000, MiB, 8 * MiB };
    char name[160];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        int ok = 1;
        for (int rep = 0; rep < 4; rep++) {
            unsigned char *d = malloc(n);
            if (!d) {
                ok = 0;
                break;
            }
            memset(d, 0xab, malloc_usable_size(d));
            free(d);
            unsigned char *z = rep & 1 ? calloc(n, 1) : calloc(1, n);
            if (!z || !all_bytes(z, n, 0))
                ok = 0;
            if (z)
                memset(z, 0xcd, n);
            free(z);
        }
        snprintf(name, sizeof name, "calloc(%zu) zeroed after dirty free of same size", n);
        CHECK(name, ok);
    }

    /* Dirty memory merged into top, then a calloc spanning it. */
    unsigned char *x = malloc(60000), *y = malloc(50000);
    if (x && y) {
        memset(x, 0x77, 60000);
        memset(y, 0x77, 50000);
    }
    free(y);
    free(x);
    unsigned char *z = calloc(1, 110000);
    CHECK("calloc over dirty memory coalesced into top is zeroed", z && all_bytes(z, 110000, 0));
    free(z);

    /* Many dirty blocks of mixed sizes, freed, then callocs. */
    enum { NC = 300 };
    static unsigned char *v[NC];
    static size_t vs[NC];
    for (int i = 0; i < NC; i++) {
        vs[i] = (size_t)(rnd() % (i % 10 == 0 ? 300000 : 3000));
        v[i] = malloc(vs[i]);
        if (v[i])
            memset(v[i], 0xa5, vs[i]);
    }
    for (int i = 0; i < NC; i++)
        free(v[i]);
    int ok = 1;
    for (int i = 0; i < NC; i++) {
        v[i] = calloc(vs[i] / 4 + 1, 4);
        if (!v[i] || !all_bytes(v[i], vs[i] / 4 * 4 + 4, 0))
            ok = 0;
    }
    CHECK("300 callocs of mixed sizes over dirty freed memory are zeroed", ok);
    for (int i = 0; i < NC; i++)
        free(v[i]);
    heap_ok("calloc");
}

/* ======================================================================= */
/* A child: a block freed with a claimed size one byte past its usable size. */
static void free_sized_over(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    void *m = malloc(n);
    if (!m)
        _exit(3);
    free_sized(m, malloc_usable_size(m) + 1);
}

static void test_aligned(void)
{
    enum { MAXLIVE = 3 * 21 * 4 };
    static void *live[MAXLIVE];
    int nl = 0;
    char name[200];
    const size_t ps = page_size();

    for (size_t al = 1; al <= MiB; al <<= 1) {
        const size_t ns[4] = { 1, 100, al + 1, al * 2 > 70000 ? 70000 : al * 2 };
        int m_ok = 1, p_ok = 1, a_ok = 1, u_ok = 1;
        for (int k = 0; k < 4; k++) {
            size_t n = ns[k];
            unsigned char *m = memalign(al, n);
            if (!m || !aligned_to(m, al) || !aligned_to(m, 16))
                m_ok = 0;
            if (m && malloc_usable_size(m) < n)
                u_ok = 0;
            if (m)
                memset(m, 0x3c, malloc_usable_size(m));
            live[nl++] = m;

            void *sentinel = &name, *pm = sentinel;
            int r = posix_memalign(&pm, al, n);
            if (al < sizeof(void *)) {   /* not a multiple of sizeof(void *) */
                if (r != EINVAL || pm != sentinel)
                    p_ok = 0;
                live[nl++] = NULL;
            } else {
                if (r != 0 || !pm || !aligned_to(pm, al))
                    p_ok = 0;
                if (r == 0 && malloc_usable_size(pm) < n)
                    u_ok = 0;
                if (r == 0)
                    memset(pm, 0x3d, malloc_usable_size(pm));
                live[nl++] = r == 0 ? pm : NULL;
            }

            /* C11 wants size to be a multiple of the alignment; glibc 2.36
             * does not require it: try both. */
            size_t an = k & 1 ? (n + al - 1) / al * al : n;
            unsigned char *aa = aligned_alloc(al, an);
            if (!aa || !aligned_to(aa, al))
                a_ok = 0;
            if (aa && malloc_usable_size(aa) < an)
                u_ok = 0;
            if (aa)
                memset(aa, 0x3e, malloc_usable_size(aa));
            live[nl++] = aa;
        }
        snprintf(name, sizeof name, "memalign(%zu, n) aligned", al);
        CHECK(name, m_ok);
        snprintf(name, sizeof name, al < sizeof(void *) ? "posix_memalign(%zu) -> EINVAL, *memptr untouched"
                                                        : "posix_memalign(%zu) aligned", al);
        CHECK(name, p_ok);
        snprintf(name, sizeof name, "aligned_alloc(%zu, n) aligned", al);
        CHECK(name, a_ok);
        snprintf(name, sizeof name, "usable size >= n for alignment %zu", al);
        CHECK(name, u_ok);
        /* Free about half now (interleaving), the rest at the end. */
        for (int i = nl - 12; i < nl; i += 2) {
            free(live[i]);
            live[i] = NULL;
        }
    }
    for (int i = 0; i < nl; i++)
        free(live[i]);
    heap_ok("memalign/posix_memalign/aligned_alloc, all powers of two");

    /* posix_memalign: bad alignments -> EINVAL, *memptr untouched. */
    const size_t bad[] = { 0, 1, 2, 4, 12, 24, 48, 100, 3 * 4096, 4096 + 8, SIZE_MAX, SIZE_MAX / 2 };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        void *sentinel = &name, *pm = sentinel;
        int r = posix_memalign(&pm, hide(bad[k]), 64);
        snprintf(name, sizeof name, "posix_memalign(alignment %zu) -> EINVAL, *memptr untouched", bad[k]);
        CHECKF(name, r == EINVAL && pm == sentinel, "returned %d", r);
        if (r == 0)
            free(pm);
    }
    {
        void *sentinel = &name, *pm = sentinel;
        int r = posix_memalign(&pm, sizeof(void *), 0);
        CHECK("posix_memalign(&p, 8, 0) succeeds", r == 0 && pm != sentinel);
        if (r == 0)
            free(pm);
    }

    /* glibc: memalign rounds a non-power-of-two alignment up to the next
     * power of two. */
    const size_t odd[] = { 3, 24, 48, 100, 1000, 3000, 5000, 12288, 65537 };
    for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
        size_t want = next_pow2(odd[k]);
        void *m = memalign(hide(odd[k]), 200);
        snprintf(name, sizeof name, "memalign(%zu) aligned to %zu (glibc rounds up)", odd[k], want);
        CHECKF(name, m && aligned_to(m, want), "got %p", m);
        free(m);
        /* aligned_alloc follows C17 and glibc >= 2.38 (not 2.36, which
         * treated it as memalign): an alignment that is not a power of two
         * is refused with EINVAL. */
        errno = 0;
        void *aa = aligned_alloc(hide(odd[k]), 200);
        snprintf(name, sizeof name, "aligned_alloc(%zu, 200) = NULL/EINVAL (C17, glibc 2.38)", odd[k]);
        CHECKF(name, aa == NULL && errno == EINVAL, "got %p errno %d", aa, errno);
        free(aa);
    }
    {
        void *m = memalign(hide(0), 100);
        CHECK("memalign(0, 100) works like malloc (glibc)", m && aligned_to(m, 16));
        free(m);
    }

    /* valloc / pvalloc. */
    const size_t vs[] = { 0, 1, 100, 4095, 4096, 4097, 10000, 200000, MiB + 1 };
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) {
        size_t n = vs[k];
        unsigned char *v = valloc(n);
        snprintf(name, sizeof name, "valloc(%zu) page aligned, usable >= n", n);
        CHECK(name, v && aligned_to(v, ps) && malloc_usable_size(v) >= n);
        if (v)
            memset(v, 0x11, malloc_usable_size(v));
        unsigned char *pv = pvalloc(n);
        size_t rounded = (n + ps - 1) / ps * ps;
        if (n == 0) {
            /* glibc 2.36 rounds 0 to a minimal block (its page mask keeps
             * bit 0): only alignment is promised. */
            snprintf(name, sizeof name, "pvalloc(0) page aligned");
            CHECK(name, pv && aligned_to(pv, ps));
        } else {
            snprintf(name, sizeof name, "pvalloc(%zu) page aligned, usable >= %zu", n, rounded);
            CHECKF(name, pv && aligned_to(pv, ps) && malloc_usable_size(pv) >= rounded,
                   "usable %zu", pv ? malloc_usable_size(pv) : 0);
        }
        if (pv)
            memset(pv, 0x22, malloc_usable_size(pv));
        CHECK("valloc block intact after pvalloc block written",
              !v || all_bytes(v, malloc_usable_size(v), 0x11));
        free(v);
        free(pv);
    }

    /* free_sized / free_aligned_sized. */
    int fs_ok = 1;
    for (size_t n = 0; n < 300000; n = n * 3 + 1) {
        void *m = malloc(n);
        if (!m)
            fs_ok = 0;
        free_sized(m, n);
        void *cz = calloc(n, 1);
        if (!cz)
            fs_ok = 0;
        free_sized(cz, n);
    }
    free_sized(NULL, 0);
    CHECK("free_sized(p, n) on malloc/calloc blocks", fs_ok);
    for (size_t al = 16; al <= 64 * KiB; al <<= 2) {
        void *aa = aligned_alloc(al, al * 3);
        free_aligned_sized(aa, al, al * 3);
    }
    free_aligned_sized(NULL, 64, 0);
    CHECK("free_aligned_sized(p, a, n) on aligned_alloc blocks", 1);
    /* The whole usable size is a valid claim; one byte more is not, on
     * the fast path (a cached class) and the slow one (mmapped). */
    int whole_ok = 1;
    for (size_t n = 1; n < 300000; n = n * 3 + 1) {
        void *m = malloc(n);
        size_t u = m ? malloc_usable_size(m) : 0;
        if (!m || u < n)
            whole_ok = 0;
        free_sized(m, u);
        void *again = malloc(n);           /* (the freed block, reused: nothing broke) */
        if (!again || malloc_usable_size(again) < n)
            whole_ok = 0;
        free(again);
    }
    CHECK("free_sized(p, malloc_usable_size(p)) accepted", whole_ok);
    static const size_t over_sizes[] = { 24, 100, 1000, 5000, 300000 };
    for (size_t k = 0; k < sizeof over_sizes / sizeof over_sizes[0]; k++) {
        char name[96];
        snprintf(name, sizeof name, "free_sized(malloc(%zu), usable + 1) aborts", over_sizes[k]);
        CHECK_ABORT(name, free_sized_over, (void *)over_sizes[k],
                    "free_sized(): size does not match the allocation");
    }
    heap_ok("alignment edge cases, valloc, pvalloc, free_sized");
}

/* ======================================================================= */
static void test_free_errno(void)
{
    char name[160];
#define FREE_KEEPS(label, ptr)                                              \
    do {                                                                    \
        void *fp_ = (ptr);                                                  \
        errno = 12345;                                                      \
        free(fp_);                                                          \
        int e_ = errno;                                                     \
        snprintf(name, sizeof name, "free keeps errno: %s", label);         \
        CHECKF(name, e_ == 12345, "errno became %d", e_);                   \
    } while (0)

    FREE_KEEPS("NULL", NULL);
    FREE_KEEPS("small chunk", malloc(24));
    /* Fill the thread cache for one size so the rest go to the fast bins. */
    void *f[40];
    for (int i = 0; i < 40; i++)
        f[i] = malloc(56);
    for (int i = 0; i < 40; i++) {
        errno = 12345;
        free(f[i]);
        if (errno != 12345)
            break;
    }
    CHECK("free keeps errno: 40 fast-size chunks", errno == 12345);
    void *m1 = malloc(2000), *m2 = malloc(2000), *m3 = malloc(2000);
    FREE_KEEPS("2000-byte chunk (unsorted bin)", m1);
    FREE_KEEPS("2000-byte chunk merging backward", m2);
    FREE_KEEPS("2000-byte chunk merging into top", m3);
    FREE_KEEPS("mmapped 1 MiB chunk", malloc(MiB));
    FREE_KEEPS("mmapped 20 MiB chunk", malloc(20 * MiB));
    FREE_KEEPS("memalign(4096) chunk", memalign(4096, 5000));
    FREE_KEEPS("memalign(64 KiB) mmapped chunk", memalign(64 * KiB, 300000));
    void *g = malloc(300000);
    g = realloc(g, 3 * MiB);
    FREE_KEEPS("mremap'd chunk", g);

    /* Trimmed top: a few MiB of heap freed top-down. */
    enum { NT = 40 };
    void *t[NT];
    for (int i = 0; i < NT; i++)
        t[i] = malloc(100000);
    int ok = 1;
    for (int i = NT - 1; i >= 0; i--) {
        errno = 12345;
        free(t[i]);
        if (errno != 12345)
            ok = 0;
    }
    CHECK("free keeps errno: 40 x 100000-byte heap chunks freed top-down (trim)", ok);
    errno = 12345;
    free_sized(malloc(500), 500);
    CHECK("free_sized keeps errno", errno == 12345);
    errno = 12345;
    free_aligned_sized(aligned_alloc(256, 512), 256, 512);
    CHECK("free_aligned_sized keeps errno", errno == 12345);
    errno = 0;
#undef FREE_KEEPS
    heap_ok("free/errno");
}

/* ======================================================================= */
static void test_malloc_stats(void)
{
    void *big = malloc(2 * MiB);
    void *small = malloc(5000);
    char out[4096];
    struct harness_capture cap;
    int started = harness_capture_fd_begin(&cap, STDERR_FILENO) == 0;
    if (started)
        malloc_stats();
    size_t len = started ? harness_capture_fd_end(&cap, out, sizeof out) : 0;
    CHECK("malloc_stats() writes to stderr", len > 0);
    CHECKF("malloc_stats starts with \"Arena 0:\\nsystem bytes     = \"",
           strncmp(out, "Arena 0:\nsystem bytes     = ", 28) == 0, "output:\n%s", out);
    const char *labels[] = { "\nin use bytes     = ", "\nTotal (incl. mmap):\nsystem bytes     = ",
                             "\nmax mmap regions = ", "\nmax mmap bytes   = " };
    for (size_t k = 0; k < 4; k++) {
        char name[120];
        snprintf(name, sizeof name, "malloc_stats output has \"%s\"", labels[k] + 1);
        CHECKF(name, strstr(out, labels[k]) != NULL, "output:\n%s", out);
    }
    unsigned long a_sys = 0, a_use = 0, t_sys = 0, t_use = 0, mm_reg = 0, mm_bytes = 0;
    int n = 0;
    const char *tot = strstr(out, "Total (incl. mmap):");
    if (tot && strncmp(out, "Arena 0:", 8) == 0) {
        n += sscanf(out, "Arena 0:\nsystem bytes = %lu\nin use bytes = %lu", &a_sys, &a_use);
        n += sscanf(tot, "Total (incl. mmap):\nsystem bytes = %lu\nin use bytes = %lu\n"
                         "max mmap regions = %lu\nmax mmap bytes = %lu",
                    &t_sys, &t_use, &mm_reg, &mm_bytes);
    }
    CHECKF("malloc_stats: 6 numbers parsed", n == 6, "parsed %d from:\n%s", n, out);
    CHECKF("malloc_stats: arena 0 in use <= system", a_use <= a_sys, "%lu > %lu", a_use, a_sys);
    CHECKF("malloc_stats: arena 0 in use >= 5000 (a live 5000-byte block)", a_use >= 5000, "%lu", a_use);
    CHECKF("malloc_stats: total system >= arena 0 system + 2 MiB (mmapped block)",
           t_sys >= a_sys + 2 * MiB, "total %lu arena0 %lu", t_sys, a_sys);
    CHECKF("malloc_stats: total in use >= 2 MiB", t_use >= 2 * MiB, "%lu", t_use);
    CHECKF("malloc_stats: max mmap regions >= 1", mm_reg >= 1, "%lu", mm_reg);
    CHECKF("malloc_stats: max mmap bytes >= 2 MiB", mm_bytes >= 2 * MiB, "%lu", mm_bytes);
    free(big);
    free(small);
    heap_ok("malloc_stats");
}

/* ---- a small XML well-formedness checker for malloc_info ---------------- */
static int xml_name_char(int c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* Returns NULL when well formed, else a description of the first problem. */
static const char *xml_check(const char *s, char *err, size_t errlen)
{
    char stack[32][32];
    int depth = 0, roots = 0;
    const char *p = s;
    while (*p) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            p++;
            continue;
        }
        if (*p != '<') {
            snprintf(err, errlen, "text outside tags at offset %td", p - s);
            return err;
        }
        p++;
        int closing = 0;
        if (*p == '/') {
            closing = 1;
            p++;
        }
        char name[32];
        size_t nl = 0;
        if (!xml_name_char((unsigned char)*p, 1)) {
            snprintf(err, errlen, "bad tag name at offset %td", p - s);
            return err;
        }
        while (xml_name_char((unsigned char)*p, 0) && nl < sizeof name - 1)
            name[nl++] = *p++;
        name[nl] = '\0';
        if (closing) {
            if (*p != '>') {
                snprintf(err, errlen, "junk in closing tag </%s> at offset %td", name, p - s);
                return err;
            }
            p++;
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                snprintf(err, errlen, "</%s> does not close <%s>", name, depth ? stack[depth - 1] : "(none)");
                return err;
            }
            depth--;
            continue;
        }
        if (depth == 0 && ++roots > 1) {
            snprintf(err, errlen, "second root element <%s>", name);
            return err;
        }
        for (;;) {   /* attributes */
            int ws = 0;
            while (*p == ' ' || *p == '\n' || *p == '\t')
                p++, ws = 1;
            if (*p == '/' && p[1] == '>') {
                p += 2;
                break;
            }
            if (*p == '>') {
                p++;
                if (depth == 32) {
                    snprintf(err, errlen, "nesting too deep");
                    return err;
                }
                strcpy(stack[depth++], name);
                break;
            }
            if (!ws || !xml_name_char((unsigned char)*p, 1)) {
                snprintf(err, errlen, "bad attribute in <%s> at offset %td", name, p - s);
                return err;
            }
            while (xml_name_char((unsigned char)*p, 0))
                p++;
            if (p[0] != '=' || p[1] != '"') {
                snprintf(err, errlen, "attribute without =\"value\" in <%s> at offset %td", name, p - s);
                return err;
            }
            p += 2;
            while (*p && *p != '"' && *p != '<' && *p != '&')
                p++;
            if (*p != '"') {
                snprintf(err, errlen, "unterminated attribute value in <%s>", name);
                return err;
            }
            p++;
        }
    }
    if (depth != 0) {
        snprintf(err, errlen, "<%s> never closed", stack[depth - 1]);
        return err;
    }
    if (roots != 1) {
        snprintf(err, errlen, "no root element");
        return err;
    }
    return NULL;
}

static void test_malloc_info(void)
{
    void *big = malloc(MiB);
    void *frees[20];
    for (int i = 0; i < 20; i++)
        frees[i] = malloc((size_t)(i % 4) * 700 + 30);
    for (int i = 0; i < 20; i += 2)
        free(frees[i]);

    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    CHECK("open_memstream works", fp != NULL);
    if (!fp)
        return;
    int r = malloc_info(0, fp);
    fclose(fp);
    CHECKF("malloc_info(0, fp) returns 0", r == 0, "returned %d", r);
    CHECK("malloc_info wrote something", buf && len > 0);
    if (buf && len > 0) {
        CHECKF("malloc_info starts with <malloc version=\"1\">",
               strncmp(buf, "<malloc version=\"1\">", 20) == 0, "output:\n%.300s", buf);
        size_t l = len;
        while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' '))
            l--;
        CHECKF("malloc_info ends with </malloc>", l >= 9 && strncmp(buf + l - 9, "</malloc>", 9) == 0,
               "tail: %s", l > 40 ? buf + l - 40 : buf);
        char err[200];
        const char *why = xml_check(buf, err, sizeof err);
        CHECKF("malloc_info output is well-formed XML", why == NULL, "%s\noutput:\n%s", why, buf);
        CHECK("malloc_info has <heap nr=\"0\">", strstr(buf, "<heap nr=\"0\">") != NULL);
        CHECK("malloc_info has <total type=\"fast\"", strstr(buf, "<total type=\"fast\"") != NULL);
        CHECK("malloc_info has <total type=\"rest\"", strstr(buf, "<total type=\"rest\"") != NULL);
        CHECK("malloc_info has <system type=\"current\"", strstr(buf, "<system type=\"current\"") != NULL);
        CHECK("malloc_info has <system type=\"max\"", strstr(buf, "<system type=\"max\"") != NULL);
        CHECK("malloc_info has <aspace type=\"total\"", strstr(buf, "<aspace type=\"total\"") != NULL);
        const char *mm = strstr(buf, "<total type=\"mmap\"");
        unsigned long cnt = 0, sz = 0;
        int got = mm ? sscanf(mm, "<total type=\"mmap\" count=\"%lu\" size=\"%lu\"", &cnt, &sz) : 0;
        CHECKF("malloc_info <total type=\"mmap\" count=\"N\" size=\"S\"/> counts the live 1 MiB block",
               got == 2 && cnt >= 1 && sz >= MiB, "parsed %d count %lu size %lu", got, cnt, sz);
    }
    harness_libc_free(buf);    /* open_memstream: the C library allocated it */

    /* glibc returns EINVAL itself (the man page says -1 and errno). */
    buf = NULL;
    fp = open_memstream(&buf, &len);
    errno = 0;
    r = malloc_info(1, fp);
    int e = errno;
    fclose(fp);
    CHECKF("malloc_info(1, fp) fails with EINVAL", r == EINVAL || (r == -1 && e == EINVAL),
           "returned %d errno %d", r, e);
    harness_libc_free(buf);
    for (int i = 1; i < 20; i += 2)
        free(frees[i]);
    free(big);
    heap_ok("malloc_info");
}

/* ======================================================================= */
static void test_malloc_trim(void)
{
    enum { NTR = 64 };
    static unsigned char *b[NTR];
    for (int i = 0; i < NTR; i++) {
        b[i] = malloc(32 * KiB);
        if (b[i])
            fill(b[i], 32 * KiB, (unsigned)i);
    }
    for (int i = 0; i < NTR; i += 2) {
        free(b[i]);
        b[i] = NULL;
    }
    tide_thread_cache_flush();
    int r = malloc_trim(0);
    CHECKF("malloc_trim(0) returns 1 with 1 MiB of free 32 KiB holes", r == 1, "returned %d", r);
    int ok = 1;
    for (int i = 1; i < NTR; i += 2)
        if (b[i] && verify(b[i], 32 * KiB, (unsigned)i) != (size_t)-1)
            ok = 0;
    CHECK("malloc_trim keeps live blocks' contents", ok);
    for (int i = 0; i < NTR; i += 2) {
        b[i] = malloc(32 * KiB);
        if (b[i])
            fill(b[i], 32 * KiB, (unsigned)i + 500u);
    }
    ok = 1;
    for (int i = 0; i < NTR; i++)
        if (!b[i] || verify(b[i], 32 * KiB, (unsigned)i + (i & 1 ? 0u : 500u)) != (size_t)-1)
            ok = 0;
    CHECK("memory released by malloc_trim is usable again", ok);
    r = malloc_trim(0);
    CHECKF("malloc_trim(0) returns 0 or 1", r == 0 || r == 1, "returned %d", r);
    for (int i = 0; i < NTR; i++)
        free(b[i]);
    r = malloc_trim(hide(SIZE_MAX / 4));
    CHECKF("malloc_trim(huge pad) returns 0 or 1", r == 0 || r == 1, "returned %d", r);
    r = malloc_trim(0);
    CHECKF("malloc_trim(0) after freeing everything returns 0 or 1", r == 0 || r == 1, "returned %d", r);
    void *p = malloc(100000);
    CHECK("malloc works after malloc_trim", p != NULL);
    if (p)
        memset(p, 1, 100000);
    free(p);
    heap_ok("malloc_trim");
}

/* ======================================================================= */
static void small_workload(void)
{
    void *v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = malloc((size_t)(i * 37) % 3000);
        if (v[i])
            memset(v[i], i, (size_t)(i * 37) % 3000);
    }
    for (int i = 0; i < 64; i += 2)
        free(v[i]);
    for (int i = 1; i < 64; i += 2)
        free(v[i]);
}

static void test_mallopt(void)
{
    char name[160];

    /* M_MXFAST: 0..80*sizeof(size_t)/4 = 160 valid, above invalid. */
    int ok = 1, bad = -1;
    for (int v = 0; v <= 160; v++) {
        if (mallopt(M_MXFAST, v) != 1)
            ok = 0, bad = v;
        void *a = malloc((size_t)v), *b = malloc((size_t)v + 8);
        free(a);
        free(b);
    }
    CHECKF("mallopt(M_MXFAST, 0..160) == 1", ok, "failed at %d", bad);
    heap_ok("M_MXFAST changes");
    const int mx_bad[] = { 161, 168, 200, 1000, INT_MAX, -1, -160 };
    for (size_t k = 0; k < sizeof mx_bad / sizeof mx_bad[0]; k++) {
        snprintf(name, sizeof name, "mallopt(M_MXFAST, %d) == 0", mx_bad[k]);
        CHECK(name, mallopt(M_MXFAST, mx_bad[k]) == 0);
    }
    CHECK("mallopt(M_MXFAST, 128) (glibc's default) == 1", mallopt(M_MXFAST, 128) == 1);
    small_workload();
    CHECK("mallopt(M_MXFAST, 0) (the default: none) == 1", mallopt(M_MXFAST, 0) == 1);

    const int trim[] = { 0, 4096, 128 * 1024, INT_MAX, 128 * 1024 };
    for (size_t k = 0; k < sizeof trim / sizeof trim[0]; k++) {
        snprintf(name, sizeof name, "mallopt(M_TRIM_THRESHOLD, %d) == 1", trim[k]);
        CHECK(name, mallopt(M_TRIM_THRESHOLD, trim[k]) == 1);
        small_workload();
    }
    const int pad[] = { 0, 4096, 1 << 20, 128 * 1024 };
    for (size_t k = 0; k < sizeof pad / sizeof pad[0]; k++) {
        snprintf(name, sizeof name, "mallopt(M_TOP_PAD, %d) == 1", pad[k]);
        CHECK(name, mallopt(M_TOP_PAD, pad[k]) == 1);
        small_workload();
    }
    heap_ok("M_TRIM_THRESHOLD/M_TOP_PAD");

    const int thr[] = { 0, 4096, 64 * 1024, 32 * 1024 * 1024, 128 * 1024 };
    for (size_t k = 0; k < sizeof thr / sizeof thr[0]; k++) {
        snprintf(name, sizeof name, "mallopt(M_MMAP_THRESHOLD, %d) == 1", thr[k]);
        CHECK(name, mallopt(M_MMAP_THRESHOLD, thr[k]) == 1);
        small_workload();
        void *p = malloc(300000);
        CHECK("malloc(300000) works under this threshold", p != NULL);
        free(p);
    }
    /* The man page gives 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX) as the upper
     * limit, older glibc returned 0 above it; glibc 2.36 accepts any value
     * and returns 1.  Both are accepted; the allocator must keep working. */
    const int thr_big[] = { 32 * 1024 * 1024 + 1, 64 * 1024 * 1024, INT_MAX, -1 };
    for (size_t k = 0; k < sizeof thr_big / sizeof thr_big[0]; k++) {
        int r = mallopt(M_MMAP_THRESHOLD, thr_big[k]);
        snprintf(name, sizeof name, "mallopt(M_MMAP_THRESHOLD, %d) returns 0 or 1", thr_big[k]);
        CHECKF(name, r == 0 || r == 1, "returned %d", r);
        void *p = malloc(3 * MiB);
        CHECK("malloc(3 MiB) works after a huge M_MMAP_THRESHOLD", p != NULL);
        if (p)
            memset(p, 9, 3 * MiB);
        free(p);
    }
    CHECK("mallopt(M_MMAP_THRESHOLD, 128 KiB) == 1", mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
    heap_ok("M_MMAP_THRESHOLD");

    /* M_MMAP_MAX = 0 disables mmap for large requests. */
    CHECK("mallopt(M_MMAP_MAX, 0) == 1", mallopt(M_MMAP_MAX, 0) == 1);
    void *p = malloc(4 * MiB);
    CHECKF("with M_MMAP_MAX 0, malloc(4 MiB) is not mmapped", p && !is_mmapped(p),
           "size word 0x%zx", p ? chunk_size_word(p) : 0);
    if (p)
        memset(p, 3, 4 * MiB);
    free(p);
    CHECK("mallopt(M_MMAP_MAX, 1) == 1", mallopt(M_MMAP_MAX, 1) == 1);
    CHECK("mallopt(M_MMAP_MAX, 65536) == 1", mallopt(M_MMAP_MAX, 65536) == 1);
    p = malloc(4 * MiB);
    CHECKF("with M_MMAP_MAX 65536, malloc(4 MiB) is mmapped", p && is_mmapped(p),
           "size word 0x%zx", p ? chunk_size_word(p) : 0);
    free(p);
    heap_ok("M_MMAP_MAX");

    /* M_ARENA_TEST / M_ARENA_MAX: glibc ignores values <= 0 and returns 1. */
    const int ar[] = { 1, 8, 0, -1 };
    for (size_t k = 0; k < sizeof ar / sizeof ar[0]; k++) {
        snprintf(name, sizeof name, "mallopt(M_ARENA_TEST, %d) == 1", ar[k]);
        CHECK(name, mallopt(M_ARENA_TEST, ar[k]) == 1);
        snprintf(name, sizeof name, "mallopt(M_ARENA_MAX, %d) == 1", ar[k]);
        CHECK(name, mallopt(M_ARENA_MAX, ar[k]) == 1);
    }

    /* M_PERTURB: allocations (not calloc) filled with ~byte. */
    CHECK("mallopt(M_PERTURB, 0x5a) == 1", mallopt(M_PERTURB, 0x5a) == 1);
    tide_thread_cache_flush();
    unsigned char *q = malloc(3000);
    size_t first_bad = 0;
    while (q && first_bad < 3000 && q[first_bad] == 0xa5)
        first_bad++;
    CHECKF("with M_PERTURB 0x5a, all 3000 bytes of malloc(3000) are 0xa5", q && first_bad == 3000,
           "byte %zu is 0x%02x", first_bad, q && first_bad < 3000 ? q[first_bad] : 0);
    unsigned char *cz = calloc(1, 3000);
    CHECK("with M_PERTURB 0x5a, calloc(1, 3000) is still zeroed", cz && all_bytes(cz, 3000, 0));
    free(q);
    free(cz);
    small_workload();
    CHECK("mallopt(M_PERTURB, 0) == 1", mallopt(M_PERTURB, 0) == 1);

    for (int v = 0; v <= 3; v++) {
        snprintf(name, sizeof name, "mallopt(M_CHECK_ACTION, %d) == 1", v);
        CHECK(name, mallopt(M_CHECK_ACTION, v) == 1);
    }
    small_workload();
    heap_ok("mallopt");
}

/* ======================================================================= */
static void test_tide_prefixed(void)
{
    char name[120];
    void *p = tide_malloc(100);
    CHECK("tide_malloc(100)", p && tide_owns(p) && tide_malloc_usable_size(p) >= 100);
    p = tide_realloc(p, 5000);
    CHECK("tide_realloc(p, 5000)", p && tide_malloc_usable_size(p) >= 5000);
    free(p);   /* the same allocator behind both names */
    unsigned char *c = tide_calloc(10, 10);
    CHECK("tide_calloc(10, 10) zeroed", c && all_bytes(c, 100, 0));
    tide_free(c);
    c = malloc(50);
    tide_free(c);
    p = tide_reallocarray(NULL, 10, 20);
    CHECK("tide_reallocarray(NULL, 10, 20)", p && tide_malloc_usable_size(p) >= 200);
    errno = 0;
    void *q = tide_reallocarray(p, hide(SIZE_MAX / 2), 4);
    CHECK("tide_reallocarray overflow -> NULL, ENOMEM", q == NULL && errno == ENOMEM);
    tide_free(p);
    p = tide_memalign(4096, 10);
    CHECK("tide_memalign(4096, 10)", p && aligned_to(p, 4096));
    tide_free(p);
    void *sentinel = &name;
    p = sentinel;
    CHECK("tide_posix_memalign(&p, 256, 10)", tide_posix_memalign(&p, 256, 10) == 0 && aligned_to(p, 256));
    if (p != sentinel)
        tide_free(p);
    p = sentinel;
    CHECK("tide_posix_memalign(&p, 24, 10) == EINVAL", tide_posix_memalign(&p, 24, 10) == EINVAL && p == sentinel);
    p = tide_aligned_alloc(1024, 2048);
    CHECK("tide_aligned_alloc(1024, 2048)", p && aligned_to(p, 1024));
    tide_free_aligned_sized(p, 1024, 2048);
    p = tide_valloc(10);
    CHECK("tide_valloc(10)", p && aligned_to(p, page_size()));
    tide_free(p);
    p = tide_pvalloc(10);
    CHECK("tide_pvalloc(10)", p && aligned_to(p, page_size()) && tide_malloc_usable_size(p) >= page_size());
    tide_free(p);
    p = tide_malloc(77);
    tide_free_sized(p, 77);
    CHECK("tide_malloc_usable_size(NULL) == 0", tide_malloc_usable_size(NULL) == 0);
    CHECK("tide_mallopt(M_MXFAST, 64) == 1", tide_mallopt(M_MXFAST, 64) == 1);
    CHECK("tide_mallopt(M_MXFAST, 161) == 0", tide_mallopt(M_MXFAST, 161) == 0);
    CHECK("tide_mallopt(M_MXFAST, 0) == 1", tide_mallopt(M_MXFAST, 0) == 1);

    /* Mapped: bigger than the mmap threshold can grow (32 MiB) and than
     * the heap's free memory.  (2 MiB came from the heap's top, as in
     * glibc, when an earlier drain of this test was left to the
     * background thread to release by time: release.h
     * tm_release_solo_drain.)                                         */
    void *big = tide_malloc(64 * MiB);
    struct mallinfo2 m2 = tide_mallinfo2();
    CHECK("tide_mallinfo2() counts the live 64 MiB block", m2.hblkhd >= 64 * MiB && m2.arena == m2.uordblks + m2.fordblks);
    struct mallinfo m1 = tide_mallinfo();
    CHECK("tide_mallinfo() agrees with tide_mallinfo2()", (size_t)m1.hblkhd == m2.hblkhd);
    struct tide_stats st;
    memset(&st, 0xff, sizeof st);
    tide_get_stats(&st);
    CHECKF("tide_get_stats: mmapped_bytes >= 64 MiB and mmapped_chunks >= 1",
           st.mmapped_bytes >= 64 * MiB && st.mmapped_chunks >= 1 && st.mmapped_chunks < 100000,
           "mmapped_bytes %zu chunks %zu", st.mmapped_bytes, st.mmapped_chunks);
    CHECKF("tide_get_stats: system_bytes > 0, in_use_bytes > 0, narenas >= 1",
           st.system_bytes > 0 && st.system_bytes < ((size_t)1 << 40) && st.in_use_bytes > 0 &&
           st.narenas >= 1 && st.narenas < 10000,
           "system %zu in_use %zu narenas %zu", st.system_bytes, st.in_use_bytes, st.narenas);
    tide_free(big);

    char out[2048];
    struct harness_capture cap;
    size_t len = 0;
    if (harness_capture_fd_begin(&cap, STDERR_FILENO) == 0) {
        tide_malloc_stats();
        len = harness_capture_fd_end(&cap, out, sizeof out);
    }
    CHECK("tide_malloc_stats() prints \"Arena 0:\"", len > 0 && strncmp(out, "Arena 0:", 8) == 0);
    char *buf = NULL;
    size_t blen = 0;
    FILE *fp = open_memstream(&buf, &blen);
    int r = fp ? tide_malloc_info(0, fp) : -1;
    if (fp)
        fclose(fp);
    CHECK("tide_malloc_info(0, fp) == 0 and writes <malloc", r == 0 && buf && strncmp(buf, "<malloc", 7) == 0);
    harness_libc_free(buf);    /* open_memstream */
    r = tide_malloc_trim(0);
    CHECK("tide_malloc_trim(0) returns 0 or 1", r == 0 || r == 1);
    long n = tide_check_heap();
    snprintf(name, sizeof name, "tide_check_heap() examines chunks (%ld)", n);
    CHECK(name, n > 0);
    tide_thread_cache_flush();
    heap_ok("tide_ prefixed API");
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_mallinfo();   /* first: wants glibc's default thresholds */
    test_ownership();
    test_malloc_basic();
    test_huge();
    test_realloc();
    test_calloc();
    test_aligned();
    test_free_errno();
    test_malloc_stats();
    test_malloc_info();
    test_malloc_trim();
    test_tide_prefixed();
    test_mallopt();    /* last: changes parameters */
    return harness_finish();
}
