/*
 * test_tunables.c - environment tunables (MALLOC_*_ variables, GLIBC_TUNABLES,
 * TIDEMALLOC_*).  CTest runs this program several times with different
 * environments (tests/threads.cmake); the first argument says what to check:
 *
 *   basic               a mixed single- and multi-threaded workload works and
 *                       the heap is consistent (used with malformed values:
 *                       they must be read without crashing)
 *   perturb P           MALLOC_PERTURB_=P semantics: memory from malloc (not
 *                       calloc) reads P ^ 0xff - fresh from the top chunk,
 *                       mmapped, and reused from a bin; memory freed into a
 *                       bin reads P; calloc memory is still zero
 *   mmapmax0            MALLOC_MMAP_MAX_=0: 1-16 MiB blocks still work (from
 *                       the heap) and mmapped_chunks stays 0
 *   mmap4096 [nocache]  mmap threshold 4096: 8 KiB blocks become mmapped chunks
 *                       (mmapped_chunks rises); with "nocache" also
 *                       tcache_count=0: freed small blocks are not cached
 *   toppad N            MALLOC_TOP_PAD_=N: the heap grows by at least N bytes
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((size_t)1 << 20)

static struct tide_stats stats(void)
{
    struct tide_stats st;
    tide_get_stats(&st);
    return st;
}

/* ---- basic ---------------------------------------------------------------------------- */
static long wl_bad;

static void wl_report(long *bad, const char *what, const void *p, size_t n)
{
    if ((*bad)++ < 5) {
        char buf[200];
        snprintf(buf, sizeof buf, "  workload: %s: %p size %zu\n", what, p, n);
        mt_say(buf);
    }
}

static void *workload(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 17 + id);
    void *blk[64] = { 0 };
    size_t len[64] = { 0 };
    long bad = 0;
    for (int it = 0; it < 20000; it++) {
        int k = (int)(mt_next(&r) % 64);
        if (blk[k]) {
            if (!mt_verify(blk[k], NULL))
                wl_report(&bad, "block corrupted", blk[k], len[k]);
            if (it % 7 == 0) {
                size_t nn = mt_range(&r, MT_HDR, 5000);
                void *q = realloc(blk[k], nn);
                if (!q) {
                    wl_report(&bad, "realloc returned NULL", blk[k], nn);
                } else {
                    if (!mt_verify_prefix(q, len[k], ((struct mt_hdr *)q)->seed,
                                          nn < len[k] ? nn : len[k]))
                        wl_report(&bad, "realloc lost content", q, nn);
                    blk[k] = q;
                }
            }
            free(blk[k]);
            blk[k] = NULL;
        }
        unsigned c = (unsigned)(mt_next(&r) % 100);
        size_t n = c < 90 ? mt_range(&r, MT_HDR, 1200)
                 : c < 99 ? mt_range(&r, 1200, 100000)
                          : mt_range(&r, 100000, 3 * MiB);
        void *p;
        if (it % 11 == 0) {
            p = calloc(1, n);
            if (p && !mt_is_zero(p, n))
                wl_report(&bad, "calloc memory not zeroed", p, n);
        } else if (it % 13 == 0) {
            p = memalign(256, n);
            if (p && ((uintptr_t)p & 255))
                wl_report(&bad, "memalign(256) misaligned", p, n);
        } else {
            p = malloc(n);
        }
        if (!p) {
            wl_report(&bad, "allocation returned NULL", p, n);
            continue;
        }
        mt_fill(p, n, (uint64_t)it);
        blk[k] = p;
        len[k] = n;
    }
    for (int k = 0; k < 64; k++) {
        if (blk[k] && !mt_verify(blk[k], NULL))
            wl_report(&bad, "block corrupted at the end", blk[k], len[k]);
        free(blk[k]);
    }
    __atomic_fetch_add(&wl_bad, bad, __ATOMIC_RELAXED);
    return NULL;
}

static void run_basic(void)
{
    void *z = malloc(0);
    CHECK("malloc(0) gives a unique pointer or NULL, and free accepts it", 1);
    free(z);
    free(NULL);
    workload((void *)0);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        CHECK("pthread_create", pthread_create(&t[i], NULL, workload, (void *)(i + 1)) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECKF("workload: allocations succeed, contents intact", wl_bad == 0, "%ld bad", wl_bad);
    CHECK("tide_check_heap", tide_check_heap() >= 0);
    struct tide_stats st = stats();
    CHECKF("stats sane: at least one arena", st.narenas >= 1, "narenas %zu", st.narenas);
}

/* ---- perturb ---------------------------------------------------------------------------- */
static size_t count_not(const unsigned char *b, size_t from, size_t to, unsigned char v)
{
    size_t bad = 0;
    for (size_t i = from; i < to; i++)
        bad += b[i] != v;
    return bad;
}

static void run_perturb(int p)
{
    const unsigned char onalloc = (unsigned char)(p ^ 0xff), onfree = (unsigned char)p;
    /* Keep freed pages resident, so the freed-memory check below is not
     * defeated by pages given back (a tidemalloc parameter; glibc ignores it). */
    mallopt(TIDE_M_DECAY_MS, -1);

    /* Fresh blocks of sizes not allocated before: from the top chunk or mmap. */
    static const size_t sz[] = { 40, 136, 520, 1000, 3000, 20000, 100000, 300000, 2 * MiB };
    enum { NS = sizeof sz / sizeof sz[0] };
    void *fresh[NS];
    for (int i = 0; i < NS; i++) {
        fresh[i] = malloc(sz[i]);
        if (!CHECK("perturb: malloc", fresh[i] != NULL))
            continue;
        size_t bad = count_not(fresh[i], 0, sz[i], onalloc);
        CHECKF("perturb: fresh malloc memory reads perturb ^ 0xff", bad == 0,
               "malloc(%zu): %zu of %zu bytes are not 0x%02x (first byte 0x%02x)", sz[i], bad, sz[i],
               onalloc, ((unsigned char *)fresh[i])[0]);
    }
    void *c1 = calloc(1, 5000), *c2 = calloc(1, 300000), *c3 = calloc(100, 3);
    CHECK("perturb: calloc memory is still zero", c1 && c2 && c3 && mt_is_zero(c1, 5000) &&
                                                   mt_is_zero(c2, 300000) && mt_is_zero(c3, 300));

    /* A 64 KiB block (far above any thread-cache size) freed between two
     * guards goes to a bin: it reads `perturb` apart from the bin links. */
    const size_t M = 64 * 1024;
    void *g1 = malloc(200);
    unsigned char *m = malloc(M);
    void *g2 = malloc(200);
    if (CHECK("perturb: malloc 64 KiB", g1 && m && g2)) {
        memset(m, 0x11, M);
        free(m);
        unsigned char *view = harness_launder(m);
        size_t bad = count_not(view, 64, M - 64, onfree);
        CHECKF("perturb: freed memory reads the perturb byte", bad == 0,
               "%zu of %zu bytes are not 0x%02x", bad, M - 128, onfree);
        unsigned char *m2 = malloc(M);
        if (CHECK("perturb: malloc 64 KiB again", m2 != NULL)) {
            bad = count_not(m2, 0, M, onalloc);
            CHECKF("perturb: reused block reads perturb ^ 0xff", bad == 0,
                   "%zu of %zu bytes are not 0x%02x", bad, M, onalloc);
            free(m2);
        }
    }
    free(g1);
    free(g2);
    free(c1);
    free(c2);
    free(c3);
    for (int i = 0; i < NS; i++)
        free(fresh[i]);
    CHECK("perturb: tide_check_heap", tide_check_heap() >= 0);
}

/* ---- mmapmax0 ------------------------------------------------------------------------------ */
static void *mm0_thread(void *arg)
{
    long *bad = arg;
    void *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = malloc(MiB);
        if (!p[i])
            (*bad)++;
        else
            mt_fill(p[i], MiB, (uint64_t)i);
    }
    for (int i = 0; i < 3; i++)
        if (p[i]) {
            if (!mt_verify(p[i], NULL))
                (*bad)++;
            free(p[i]);
        }
    return NULL;
}

static void run_mmapmax0(void)
{
    size_t base = stats().mmapped_chunks;
    CHECKF("mmapmax0: no mmapped chunk at start", base == 0, "%zu", base);
    void *a = malloc(MiB);
    CHECK("mmapmax0: malloc(1 MiB) works", a != NULL);
    if (a)
        mt_fill(a, MiB, 1);
    CHECKF("mmapmax0: malloc(1 MiB) is not mmapped", stats().mmapped_chunks == 0, "%zu",
           stats().mmapped_chunks);
    void *b = malloc(16 * MiB);
    CHECK("mmapmax0: malloc(16 MiB) works", b != NULL);
    if (b)
        mt_fill(b, 16 * MiB, 2);
    void *c = calloc(1, 4 * MiB);
    CHECK("mmapmax0: calloc(4 MiB) works and is zeroed", c && mt_is_zero(c, 4 * MiB));
    void *d = memalign(65536, MiB);
    CHECK("mmapmax0: memalign(64 KiB, 1 MiB) works", d && ((uintptr_t)d & 65535) == 0);
    void *e = NULL;
    CHECK("mmapmax0: posix_memalign(4096, 2 MiB) works", posix_memalign(&e, 4096, 2 * MiB) == 0);
    void *f = malloc(MiB);
    if (f) {
        mt_fill(f, MiB, 3);
        void *g = realloc(f, 8 * MiB);
        CHECK("mmapmax0: realloc 1 -> 8 MiB keeps the content", g && mt_verify(g, NULL));
        f = g ? g : f;
    }
    long tbad = 0;
    pthread_t t;
    if (CHECK("mmapmax0: pthread_create", pthread_create(&t, NULL, mm0_thread, &tbad) == 0))
        pthread_join(t, NULL);
    CHECKF("mmapmax0: a thread's 1 MiB blocks work", tbad == 0, "%ld bad", tbad);
    struct tide_stats st = stats();
    CHECKF("mmapmax0: mmapped_chunks stays 0", st.mmapped_chunks == 0, "%zu chunks, %zu bytes",
           st.mmapped_chunks, st.mmapped_bytes);
    CHECK("mmapmax0: contents intact", (!a || mt_verify(a, NULL)) && (!b || mt_verify(b, NULL)));
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
    CHECK("mmapmax0: tide_check_heap", tide_check_heap() >= 0);
}

/* ---- mmap4096 ------------------------------------------------------------------------------- */
static void run_mmap4096(int nocache)
{
    enum { N = 256 };
    void *p[N];
    size_t before = stats().mmapped_chunks;
    for (int i = 0; i < N; i++) {
        p[i] = malloc(8192);
        if (p[i])
            mt_fill(p[i], 8192, (uint64_t)i);
    }
    struct tide_stats st = stats();
    CHECKF("mmap threshold 4096: 8 KiB blocks are mmapped", st.mmapped_chunks > before,
           "mmapped_chunks %zu before, %zu after %d x malloc(8 KiB)", before, st.mmapped_chunks, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        if (!p[i] || !mt_verify(p[i], NULL))
            bad++;
        free(p[i]);
    }
    CHECKF("mmap threshold 4096: blocks intact", bad == 0, "%d bad", bad);
    st = stats();
    CHECKF("mmap threshold 4096: mmapped chunks released by free", st.mmapped_chunks <= before,
           "%zu, before %zu", st.mmapped_chunks, before);
    if (nocache) {
        tide_thread_cache_flush();
        void *q[21];
        for (int i = 0; i < 21; i++)
            q[i] = malloc(i < 7 ? 24 : i < 14 ? 100 : 500);
        for (int i = 0; i < 21; i++)
            free(q[i]);
        st = stats();
        CHECKF("tcache_count=0: freed small blocks are not cached", st.cached_bytes == 0,
               "cached_bytes %zu", st.cached_bytes);
    }
    CHECK("mmap threshold 4096: tide_check_heap", tide_check_heap() >= 0);
}

/* ---- toppad ---------------------------------------------------------------------------------- */
static void run_toppad(size_t pad)
{
    void *p = malloc(100);
    struct tide_stats st = stats();
    CHECKF("top pad: the heap grew by at least the pad", st.system_bytes >= pad,
           "system_bytes %zu, MALLOC_TOP_PAD_ %zu", st.system_bytes, pad);
    free(p);
    run_basic();
}

int main(int argc, char **argv)
{
    mt_watchdog(100, "test_tunables");
    const char *mode = argc > 1 ? argv[1] : "basic";
    printf("test_tunables %s:", mode);
    static const char *vars[] = { "MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "MALLOC_MMAP_THRESHOLD_",
                                  "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                                  "MALLOC_PERTURB_", "MALLOC_CHECK_", "GLIBC_TUNABLES",
                                  "TIDEMALLOC_DECAY_MS", "TIDEMALLOC_BACKGROUND_THREAD" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v)
            printf(" %s=%.60s%s", vars[i], v, strlen(v) > 60 ? "..." : "");
    }
    printf("\n");
    fflush(stdout);

    if (strcmp(mode, "perturb") == 0 && argc > 2)
        run_perturb(atoi(argv[2]) & 0xff);
    else if (strcmp(mode, "mmapmax0") == 0)
        run_mmapmax0();
    else if (strcmp(mode, "mmap4096") == 0)
        run_mmap4096(argc > 2 && strcmp(argv[2], "nocache") == 0);
    else if (strcmp(mode, "toppad") == 0 && argc > 2)
        run_toppad((size_t)strtoull(argv[2], NULL, 10));
    else if (strcmp(mode, "basic") == 0)
        run_basic();
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    if (strcmp(mode, "basic") != 0 && strcmp(mode, "toppad") != 0)
        run_basic();
    return harness_finish();
}
