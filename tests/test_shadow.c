/*
 * test_shadow.c - randomized allocation sequences checked against a shadow
 * model.
 *
 *   test_shadow [VARIANT [OPS_PER_SEED [SEED...]]]
 *
 * VARIANT selects allocator parameters set before the run:
 *   default   nothing changed
 *   fast      mallopt(M_MXFAST, 128)          - fast bins on (glibc's default; off by default)
 *   mmap      mallopt(M_MMAP_THRESHOLD, 8192) - most blocks mmapped
 *   trim      mallopt(M_TRIM_THRESHOLD, 4096), M_TOP_PAD 0 - trims often
 *   perturb   mallopt(M_PERTURB, 0xa5)
 *   notcache  mallopt(TIDE_M_TCACHE_COUNT, 0) - no per-thread cache
 * OPS_PER_SEED defaults to TIDE_TEST_SHADOW_OPS from the environment, else
 * 50000 (the TSan build sets 20000), and there are 4 seeds by default; SEEDs can
 * be given on the command line or one in the SHADOW_SEED environment
 * variable.  Each seed is printed so a failure can be replayed.
 *
 * Every live block is in the shadow table with its requested size, alignment
 * and a per-block pattern seed; each byte holds a position-dependent pattern.
 * The pattern is verified before free and realloc, realloc must preserve
 * min(old, new) bytes, calloc must return zeros, every allocation must be
 * aligned (16 bytes, or the requested alignment) with usable size >= the
 * request, and periodically all live blocks are sorted by address to check
 * that none overlap and all contents are verified.  tide_check_heap() runs
 * after every operation for the first 20000 operations of the run, then every
 * 64 operations.
 */
#define _GNU_SOURCE 1
#include "harness.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidemalloc.h"

void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#define NSLOTS 2048
#define CHECK_EVERY_OP_UNTIL 20000
#define CHECK_PERIOD 64
#define OVERLAP_PERIOD 2048
#define FULL_VERIFY_PERIOD 16384

enum kind { K_MALLOC, K_CALLOC, K_MEMALIGN, K_POSIX_MEMALIGN, K_ALIGNED_ALLOC, K_REALLOC_NULL };
static const char *const kind_name[] = { "malloc", "calloc", "memalign", "posix_memalign",
                                         "aligned_alloc", "realloc(NULL)" };

struct slot {
    unsigned char *p;
    size_t size;      /* requested size                           */
    size_t align;     /* requested alignment (0 = plain malloc)    */
    uint64_t seed;    /* pattern seed                              */
    int kind;
};

static struct slot slots[NSLOTS];
static uint64_t rng;
static unsigned long long total_ops;
static int failed_seed;   /* first failure in this seed: stop it */

static uint64_t next_rand(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rand_below(uint64_t n)
{
    return n ? next_rand() % n : 0;
}
/* Log-uniform in [lo, hi). */
static size_t rand_log(size_t lo, size_t hi)
{
    int bl = 63 - __builtin_clzll(lo), bh = 63 - __builtin_clzll(hi);
    int b = bl + (int)rand_below((uint64_t)(bh - bl + 1));
    size_t a = (size_t)1 << b, z = a << 1;
    if (a < lo) a = lo;
    if (z > hi) z = hi;
    return a + (size_t)rand_below(z - a);
}

static size_t rand_size(void)
{
    unsigned r = (unsigned)rand_below(1000);
    if (r < 400) return (size_t)rand_below(65);              /* 0..64       */
    if (r < 750) return 64 + (size_t)rand_below(961);        /* 64..1024    */
    if (r < 995) return rand_log(1024, 128 * 1024);          /* 1K..128K    */
    return rand_log(128 * 1024, 4 * 1024 * 1024);             /* 128K..4M    */
}

static size_t rand_align(void)
{
    unsigned r = (unsigned)rand_below(100);
    if (r < 60) return (size_t)16 << rand_below(4);          /* 16..128     */
    if (r < 95) return (size_t)256 << rand_below(8);         /* 256..32K    */
    return (size_t)65536 << rand_below(5);                   /* 64K..1M     */
}

/* ---- the pattern --------------------------------------------------------- */
#define PK 0x9e3779b97f4a7c15ull
static inline uint64_t pword(uint64_t seed, size_t j)
{
    return seed ^ ((uint64_t)j * PK) ^ ((uint64_t)j >> 7);
}
static inline unsigned char pbyte(uint64_t seed, size_t i)
{
    return (unsigned char)(pword(seed, i >> 3) >> ((i & 7) * 8));
}

/* Fills bytes [from, to) of a 16-aligned block. */
static void pfill(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
    size_t i = from;
    while (i < to && (i & 7))
        p[i] = pbyte(seed, i), i++;
    uint64_t *w = (uint64_t *)(void *)p;
    for (; i + 8 <= to; i += 8)
        w[i >> 3] = pword(seed, i >> 3);
    for (; i < to; i++)
        p[i] = pbyte(seed, i);
}

/* First byte of [0, n) that does not match, or SIZE_MAX. */
static size_t pcheck(const unsigned char *p, size_t n, uint64_t seed)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (w[i >> 3] != pword(seed, i >> 3))
            break;
    for (; i < n; i++)
        if (p[i] != pbyte(seed, i))
            return i;
    return SIZE_MAX;
}

static size_t zcheck(const unsigned char *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (w[i >> 3] != 0)
            break;
    for (; i < n; i++)
        if (p[i] != 0)
            return i;
    return SIZE_MAX;
}

/* ---- failure reporting ---------------------------------------------------- */
static uint64_t cur_seed;
static const char *cur_variant;

static void fail(const char *what, int k, const char *fmt, ...) HARNESS_PRINTF(3, 4);
static void fail(const char *what, int k, const char *fmt, ...)
{
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char name[200];
    snprintf(name, sizeof name, "[%s seed %" PRIu64 " op %llu] %s", cur_variant, cur_seed,
             total_ops, what);
    CHECKF(name, 0, "slot %d: %s", k, detail);
    failed_seed = 1;
}

static int check_fresh(int k, const unsigned char *p, size_t size, size_t align, const char *how)
{
    if (!p) {
        fail("allocation failed", k, "%s(size %zu, align %zu) returned NULL", how, size, align);
        return 0;
    }
    size_t a = align > 16 ? align : 16;
    if ((uintptr_t)p & (a - 1)) {
        fail("misaligned block", k, "%s(size %zu, align %zu) returned %p", how, size, align, (const void *)p);
        return 0;
    }
    size_t u = malloc_usable_size((void *)p);
    if (u < size) {
        fail("usable size too small", k, "%s(size %zu) usable %zu", how, size, u);
        return 0;
    }
    return 1;
}

static int verify_slot(int k, const char *when)
{
    struct slot *s = &slots[k];
    size_t bad = pcheck(s->p, s->size, s->seed);
    if (bad != SIZE_MAX) {
        fail("block contents damaged", k,
             "%s: %s block %p size %zu: byte %zu is 0x%02x, expected 0x%02x", when,
             kind_name[s->kind], (void *)s->p, s->size, bad, s->p[bad], pbyte(s->seed, bad));
        return 0;
    }
    return 1;
}

/* ---- operations ------------------------------------------------------------ */
static void do_alloc(int k)
{
    struct slot *s = &slots[k];
    size_t size = rand_size();
    size_t align = 0;
    unsigned r = (unsigned)rand_below(100);
    int kind = r < 50 ? K_MALLOC : r < 65 ? K_CALLOC : r < 75 ? K_MEMALIGN
             : r < 85 ? K_POSIX_MEMALIGN : r < 95 ? K_ALIGNED_ALLOC : K_REALLOC_NULL;
    unsigned char *p = NULL;
    switch (kind) {
    case K_MALLOC:
        p = malloc(size);
        break;
    case K_CALLOC: {
        size_t n = size, m = 1;
        if (size % 8 == 0 && size && (next_rand() & 1))
            n = size / 8, m = 8;
        p = calloc(n, m);
        if (p && zcheck(p, size) != SIZE_MAX) {
            fail("calloc memory not zeroed", k, "calloc(%zu, %zu) = %p: byte %zu nonzero", n, m,
                 (void *)p, zcheck(p, size));
            return;
        }
        break;
    }
    case K_MEMALIGN:
        align = rand_align();
        p = memalign(align, size);
        break;
    case K_POSIX_MEMALIGN: {
        align = rand_below(4) == 0 ? 8 : rand_align();
        void *q = NULL;
        int rc = posix_memalign(&q, align, size);
        if (rc != 0) {
            fail("posix_memalign failed", k, "posix_memalign(%zu, %zu) returned %d", align, size, rc);
            return;
        }
        p = q;
        break;
    }
    case K_ALIGNED_ALLOC:
        align = rand_align();
        size = (size + align - 1) / align * align;   /* C11: a multiple */
        if (size > 8u * 1024 * 1024)
            size = align;
        p = aligned_alloc(align, size);
        break;
    default:
        p = realloc(NULL, size);
        break;
    }
    if (!check_fresh(k, p, size, align, kind_name[kind]))
        return;
    s->p = p;
    s->size = size;
    s->align = align;
    s->kind = kind;
    s->seed = next_rand();
    pfill(p, 0, size, s->seed);
}

static void do_free(int k)
{
    struct slot *s = &slots[k];
    if (!verify_slot(k, "before free"))
        return;
    unsigned r = (unsigned)rand_below(10);
    if (r == 0)
        free_sized(s->p, s->size);
    else if (r == 1 && (s->kind == K_ALIGNED_ALLOC || s->kind == K_MEMALIGN))
        free_aligned_sized(s->p, s->align, s->size);
    else
        free(s->p);
    s->p = NULL;
}

static void do_realloc(int k)
{
    struct slot *s = &slots[k];
    if (!verify_slot(k, "before realloc"))
        return;
    size_t nsize = rand_below(8) == 0 ? s->size + rand_below(64) : rand_size();
    unsigned char *q = realloc(s->p, nsize);
    if (nsize == 0) {
        /* glibc: realloc(p, 0) frees p and returns NULL. */
        if (q != NULL) {
            fail("realloc(p, 0) did not return NULL", k, "returned %p", (void *)q);
            free(q);
        }
        s->p = NULL;
        return;
    }
    if (!check_fresh(k, q, nsize, 0, "realloc"))
        return;
    size_t keep = s->size < nsize ? s->size : nsize;
    size_t bad = pcheck(q, keep, s->seed);
    if (bad != SIZE_MAX) {
        fail("realloc lost contents", k, "realloc(%p, %zu -> %zu) = %p: byte %zu is 0x%02x, expected 0x%02x",
             (void *)s->p, s->size, nsize, (void *)q, bad, q[bad], pbyte(s->seed, bad));
        return;
    }
    if (nsize > s->size)
        pfill(q, s->size, nsize, s->seed);
    s->p = q;
    s->size = nsize;
    s->kind = K_MALLOC;
    s->align = 0;
}

/* ---- whole-table checks ---------------------------------------------------- */
struct range {
    uintptr_t lo, hi;
    int k;
};
static struct range ranges[NSLOTS];

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void check_overlap(void)
{
    int n = 0;
    for (int k = 0; k < NSLOTS; k++) {
        if (!slots[k].p)
            continue;
        size_t u = malloc_usable_size(slots[k].p);
        if (u < slots[k].size) {
            fail("usable size shrank", k, "size %zu usable %zu", slots[k].size, u);
            return;
        }
        ranges[n].lo = (uintptr_t)slots[k].p;
        ranges[n].hi = (uintptr_t)slots[k].p + (u ? u : 1);
        ranges[n].k = k;
        n++;
    }
    qsort(ranges, (size_t)n, sizeof ranges[0], cmp_range);
    for (int i = 1; i < n; i++) {
        if (ranges[i].lo < ranges[i - 1].hi) {
            fail("live blocks overlap", ranges[i].k, "[%#lx, %#lx) (slot %d) and [%#lx, %#lx)",
                 (unsigned long)ranges[i - 1].lo, (unsigned long)ranges[i - 1].hi, ranges[i - 1].k,
                 (unsigned long)ranges[i].lo, (unsigned long)ranges[i].hi);
            return;
        }
    }
}

static void verify_all(const char *when)
{
    for (int k = 0; k < NSLOTS && !failed_seed; k++)
        if (slots[k].p)
            verify_slot(k, when);
}

static void heap_check(void)
{
    long n = tide_check_heap();
    if (n <= 0)
        fail("tide_check_heap() <= 0", -1, "returned %ld", n);
}

/* ---- a run --------------------------------------------------------------- */
static void run_seed(uint64_t seed, unsigned long ops)
{
    cur_seed = seed;
    rng = seed;
    failed_seed = 0;
    memset(slots, 0, sizeof slots);
    unsigned long long f0 = (unsigned long long)harness_failed;
    printf("seed %" PRIu64 ": %lu ops\n", seed, ops);
    fflush(stdout);

    for (unsigned long i = 0; i < ops && !failed_seed; i++) {
        int k = (int)rand_below(NSLOTS);
        total_ops++;
        if (!slots[k].p)
            do_alloc(k);
        else if (rand_below(100) < 55)
            do_free(k);
        else
            do_realloc(k);
        if (failed_seed)
            break;
        if (total_ops <= CHECK_EVERY_OP_UNTIL || total_ops % CHECK_PERIOD == 0)
            heap_check();
        if (i % OVERLAP_PERIOD == OVERLAP_PERIOD - 1)
            check_overlap();
        if (i % FULL_VERIFY_PERIOD == FULL_VERIFY_PERIOD - 1)
            verify_all("periodic verification");
    }
    if (!failed_seed) {
        check_overlap();
        verify_all("final verification");
    }
    if (!failed_seed) {   /* tear down in random order */
        for (int k = 0; k < NSLOTS; k++) {
            int j = (int)rand_below(NSLOTS);
            if (slots[j].p)
                do_free(j);
        }
        for (int k = 0; k < NSLOTS && !failed_seed; k++)
            if (slots[k].p)
                do_free(k);
        heap_check();
    }
    char name[160];
    snprintf(name, sizeof name, "[%s] seed %" PRIu64 ": %lu random operations match the shadow model",
             cur_variant, seed, ops);
    CHECK(name, !failed_seed && (unsigned long long)harness_failed == f0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *variant = argc > 1 ? argv[1] : "default";
    /* ops per seed: argv[2], else TIDE_TEST_SHADOW_OPS (set smaller under
     * TSan, where every access is slow: CI's time budget), else 50000. */
    const char *ops_env = getenv("TIDE_TEST_SHADOW_OPS");
    unsigned long ops = argc > 2 ? strtoul(argv[2], NULL, 0)
                      : ops_env ? strtoul(ops_env, NULL, 0) : 0;
    if (ops == 0 && argc <= 2)
        ops = 50000;
    cur_variant = variant;

    if (strcmp(variant, "default") == 0) {
    } else if (strcmp(variant, "fast") == 0) {
        CHECK("mallopt(M_MXFAST, 128) == 1", mallopt(M_MXFAST, 128) == 1);
    } else if (strcmp(variant, "mmap") == 0) {
        CHECK("mallopt(M_MMAP_THRESHOLD, 8192) == 1", mallopt(M_MMAP_THRESHOLD, 8192) == 1);
    } else if (strcmp(variant, "trim") == 0) {
        CHECK("mallopt(M_TRIM_THRESHOLD, 4096) == 1", mallopt(M_TRIM_THRESHOLD, 4096) == 1);
        CHECK("mallopt(M_TOP_PAD, 0) == 1", mallopt(M_TOP_PAD, 0) == 1);
    } else if (strcmp(variant, "perturb") == 0) {
        CHECK("mallopt(M_PERTURB, 0xa5) == 1", mallopt(M_PERTURB, 0xa5) == 1);
    } else if (strcmp(variant, "notcache") == 0) {
        CHECK("mallopt(TIDE_M_TCACHE_COUNT, 0) == 1", mallopt(TIDE_M_TCACHE_COUNT, 0) == 1);
        tide_thread_cache_flush();
    } else {
        fprintf(stderr, "unknown variant '%s' (default fast mmap trim perturb notcache)\n", variant);
        return 2;
    }

    uint64_t seeds[16];
    int nseeds = 0;
    for (int i = 3; i < argc && nseeds < 16; i++)
        seeds[nseeds++] = strtoull(argv[i], NULL, 0);
    const char *env = getenv("SHADOW_SEED");
    if (nseeds == 0 && env && *env)
        seeds[nseeds++] = strtoull(env, NULL, 0);
    if (nseeds == 0) {
        const uint64_t defaults[4] = { 1, 20240607, 0xc0ffee, 987654321 };
        for (int i = 0; i < 4; i++)
            seeds[nseeds++] = defaults[i];
    }
    printf("test_shadow variant %s\n", variant);
    for (int i = 0; i < nseeds; i++)
        run_seed(seeds[i], ops);
    return harness_finish();
}
