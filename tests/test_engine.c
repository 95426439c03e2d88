/*
 * test_engine.c - unit tests of chunk and bin operations.
 *
 * Each scenario drives the public API in a way that puts chunks in a known
 * place (fast bin, unsorted, small or large bin, top, a sub-heap), then
 * looks at the arena's internal state through src/internal.h to verify the
 * engine did what ptmalloc's design says, and runs tide_check_heap() after
 * every step.  The thread cache is off (TIDE_M_TCACHE_COUNT 0) so frees
 * reach the bins directly.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include "harness.h"
#include "arena.h"
#include "bins.h"
#include "engine.h"
#include "heap.h"
#include "internal.h"
#include "release.h"
#include "sysmem.h"
#include "tidemalloc.h"

#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)

/* Each scenario runs in a thread of its own that stays alive until the end,
 * so it gets a fresh arena (only a top chunk): addresses are predictable. */
static tm_arena *main_av(void) { return tm_thread_arena(); }

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static sem_t step_done;
static void *scenario_main(void *fn)
{
    free(malloc(1));                     /* attach to a new arena */
    ((void (*)(void))fn)();
    sem_post(&step_done);
    pthread_mutex_lock(&done_mu);        /* park until main() is finished */
    pthread_mutex_unlock(&done_mu);
    return NULL;
}
static pthread_t parked[16];
static int nparked;
static void run_fresh(void (*fn)(void))
{
    pthread_create(&parked[nparked++], NULL, scenario_main, (void *)fn);
    sem_wait(&step_done);                /* scenarios run one at a time */
}

static bool in_bin(tm_arena *av, unsigned i, void *mem)
{
    tm_chunk *b = bin_at(av, i), *c = mem2chunk(mem);
    for (tm_chunk *p = b->fd; p != b; p = p->fd)
        if (p == c)
            return true;
    return false;
}

static void test_geometry(void)
{
    CHECK("request2size(0) = MINSIZE", request2size(0) == 32);
    CHECK("request2size(24) = 32", request2size(24) == 32);
    CHECK("request2size(25) = 48", request2size(25) == 48);
    CHECK("request2size(1000) = 1008", request2size(1000) == 1008);
    CHECK("smallbin 32 -> 2", smallbin_index(32) == 2);
    CHECK("smallbin 1008 -> 63", smallbin_index(1008) == 63);
    CHECK("first large bin is 64", largebin_index(1024) == 64);
    CHECK("last large bin is 126", largebin_index((size_t)1 << 40) == 126);
    unsigned prev = 64, distinct = 1;
    bool mono = true;
    for (size_t s = 1024; s < (64u << 20); s += 16) {
        unsigned i = largebin_index(s);
        if (i < prev)
            mono = false;
        if (i != prev)
            distinct++;
        prev = i;
    }
    CHECK("large bin index is monotone", mono);
    CHECK("63 large bins", distinct == 63);
    CHECK("64-byte spacing below 3 KiB", largebin_index(2048) + 1 == largebin_index(2112));
    CHECK("fastbin index", fastbin_index(32) == 0 && fastbin_index(176) == 9);
    CHECK("max_fast is 128 (main: glibc's default, for these tests)", TM_P(max_fast) == 128);
    /* chunk.h accessors */
    char buf[256] __attribute__((aligned(16)));
    memset(buf, 0, sizeof buf);
    tm_chunk *c = (tm_chunk *)buf;
    set_head(c, 64 | TM_PREV_INUSE);
    set_head(chunk_at(c, 64), 48 | TM_PREV_INUSE);
    CHECK("chunksize masks bits", chunksize(c) == 64 && prev_inuse(c));
    CHECK("inuse() reads next P bit", inuse(c));
    clear_inuse(c);
    set_foot(c, 64);
    CHECK("clear_inuse / footer", !inuse(c) && chunk_at(c, 64)->prev_size == 64 && prev_chunk(chunk_at(c, 64)) == c);
    CHECK("usable size", chunk_usable(c) == 56);
}

static void test_fastbins(void)
{
    void *a = malloc(40), *g1 = malloc(40), *b = malloc(40), *g2 = malloc(40);
    free(a);
    free(b);
    unsigned fi = fastbin_index(request2size(40));
    CHECK("freed small chunk goes to its fast bin (LIFO head)", main_av()->fastbins[fi] == mem2chunk(b));
    CHECK("have_fastchunks set", main_av()->have_fastchunks);
    CHECK("fast chunk stays in use in the boundary tags", inuse(mem2chunk(b)));
    CHK();
    CHECK("fast bin is LIFO (1)", malloc(40) == b);
    CHECK("fast bin is LIFO (2)", malloc(40) == a);
    CHK();
    free(a); free(b); free(g1); free(g2);
    CHK();
}

static void test_unsorted_small_large(void)
{
    tm_arena *av = main_av();
    void *guard0 = malloc(3000);
    void *x = malloc(200), *g1 = malloc(3000), *y = malloc(200), *g2 = malloc(3000);
    (void)guard0;
    free(x);
    free(y);
    CHECK("non-fast free goes to the unsorted bin", in_bin(av, 1, x) && in_bin(av, 1, y));
    CHK();
    /* A large request sorts the unsorted bin into small bins. */
    void *big = malloc(5000);
    unsigned si = smallbin_index(request2size(200));
    CHECK("unsorted chunks sorted into their small bin", in_bin(av, si, x) && in_bin(av, si, y));
    CHECK("binmap marks the small bin", bin_marked(av, si));
    CHK();
    void *r = malloc(200);
    CHECK("small request served exactly from its bin", r == x || r == y);
    CHK();

    /* Large bin: three sizes in one bin, sorted, best fit. */
    /* Guards of 3000 bytes: no leftover small chunk can serve them, so
     * each comes from top right after its neighbour. */
    void *c1 = malloc(2000 - 8), *h1 = malloc(3000);
    void *c2 = malloc(2016 - 8), *h2 = malloc(3000);
    void *c3 = malloc(2032 - 8), *h3 = malloc(3000);
    unsigned li = largebin_index(2000);
    CHECK("test sizes share one large bin", li == largebin_index(2016) && li == largebin_index(2032));
    free(c2); free(c1); free(c3);
    void *big2 = malloc(6000);           /* sorts them */
    tm_chunk *b = bin_at(av, li);
    CHECK("large bin sorted by size, largest first",
          b->fd == mem2chunk(c3) && b->fd->fd == mem2chunk(c2) && b->fd->fd->fd == mem2chunk(c1));
    CHECK("nextsize ring links the three sizes",
          mem2chunk(c3)->fd_nextsize == mem2chunk(c2) && mem2chunk(c1)->fd_nextsize == mem2chunk(c3));
    CHK();
    void *bf = malloc(2008 - 8);         /* needs 2008 -> best fit is 2016 */
    CHECK("best fit: smallest chunk that fits", bf == c2);
    CHK();
    free(bf); free(big2); free(h1); free(h2); free(h3); free(r); free(big);
    free(g1); free(g2); free(guard0);
    CHK();
}

/* A large bin of many distinct sizes: the nextsize walks (bins.c) start
 * from the end nearer the size sought, so inserts and best fits near
 * either end and in the middle must give what one walk from the top or
 * the bottom gives: a bin in decreasing size order, one ring leader per
 * size, and the smallest chunk that fits. */
#define LB_N 42
#define LB_BASE 46080           /* bin 120: 45056 .. 65535 */
static void test_largebin_walks(void)
{
    tm_arena *av = main_av();
    size_t sizes[LB_N];
    void *blk[LB_N], *guard[LB_N];
    bool taken[LB_N];
    for (int k = 0; k < LB_N; k++) {
        /* 40 distinct sizes 384 B apart; two of them twice (same-size groups) */
        int j = k < 40 ? k : (k == 40 ? 10 : 31);
        sizes[k] = LB_BASE + 384 * (size_t)j;
        blk[k] = malloc(sizes[k] - 8);
        guard[k] = malloc(3000);
        taken[k] = false;
        CHECK("test chunk has the size asked", blk[k] && chunksize(mem2chunk(blk[k])) == sizes[k]);
    }
    unsigned li = largebin_index(sizes[0]);
    CHECK("test sizes share one large bin", li == largebin_index(sizes[39]));
    uint32_t x = 12345;
    int order[LB_N];
    for (int k = 0; k < LB_N; k++)
        order[k] = k;
    for (int k = LB_N - 1; k > 0; k--) {
        x = x * 1103515245u + 12345u;
        int r = (int)((x >> 8) % (uint32_t)(k + 1));
        int t = order[k]; order[k] = order[r]; order[r] = t;
    }
    for (int k = 0; k < LB_N; k++)
        free(blk[order[k]]);
    void *sorter = malloc(100000);       /* no fit: sorts the unsorted bin, then top */
    CHK();
    tm_chunk *b = bin_at(av, li);
    int n = 0, leaders = 0;
    bool ordered = true, ring = true;
    size_t last = SIZE_MAX;
    for (tm_chunk *p = b->fd; p != b; p = p->fd) {
        size_t sz = chunksize(p);
        if (sz > last)
            ordered = false;
        if (sz != last) {
            leaders++;
            /* a leader: its fd_nextsize is the next smaller leader (or the first) */
            tm_chunk *nx = p->fd_nextsize;
            if (!nx || nx->bk_nextsize != p || (nx != b->fd && chunksize(nx) >= sz))
                ring = false;
        } else if (p->fd_nextsize != NULL) {
            ring = false;
        }
        last = sz;
        n++;
    }
    CHECK("all 42 chunks in the large bin", n == LB_N);
    CHECK("large bin in decreasing size order", ordered);
    CHECK("one ring leader per distinct size, ring consistent", leaders == 40 && ring);
    /* Best fits near the bottom, the top, exact, between, the pairs. */
    static const size_t want[] = {LB_BASE + 384 * 39 - 200, LB_BASE + 384 * 38, LB_BASE, LB_BASE + 100,
                                  50000, 56000, LB_BASE + 3840, LB_BASE + 384 * 31, LB_BASE + 3840,
                                  LB_BASE + 384 * 31, 60000, 47000, LB_BASE + 384 * 20 + 16, 52000, 58000};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        size_t nb = request2size(want[w] - 8);
        size_t best = SIZE_MAX;       /* (every request below has a fit) */
        for (int k = 0; k < LB_N; k++)
            if (!taken[k] && sizes[k] >= nb && sizes[k] < best)
                best = sizes[k];
        void *m = malloc(want[w] - 8);
        int hit = -1;
        for (int k = 0; k < LB_N; k++)
            if (!taken[k] && m == blk[k])
                hit = k;
        CHECKF("best fit from either end: the smallest chunk that fits", hit >= 0 && sizes[hit] == best,
               "request of %zu: got %p (size %zu), want size %zu", nb, m, hit < 0 ? 0 : sizes[hit], best);
        if (hit >= 0)
            taken[hit] = true;
        CHK();
    }
    for (int k = 0; k < LB_N; k++) {
        if (taken[k])
            free(blk[k]);
        free(guard[k]);
    }
    free(sorter);
    CHK();
}

static void test_last_remainder(void)
{
    void *big = malloc(8000), *guard = malloc(100);
    free(big);
    void *s = malloc(1000);               /* large request: sorts; splits the 8000 chunk */
    void *a = malloc(100), *b2 = malloc(100), *c = malloc(100);
    CHECK("small requests split the last remainder in address order",
          (char *)b2 == (char *)a + 112 && (char *)c == (char *)b2 + 112);
    CHECK("first split served from the freed chunk", s == big);
    CHK();
    free(a); free(b2); free(c); free(s); free(guard);
    CHK();
}

static void test_consolidate(void)
{
    tm_arena *av = main_av();
    void *p[20];                          /* 20 x 112 = 2240 bytes of fast chunks */
    for (int i = 0; i < 20; i++)
        p[i] = malloc(100);
    void *guard = malloc(100);
    for (int i = 0; i < 20; i++)
        free(p[i]);
    CHECK("frees went to a fast bin", av->have_fastchunks);
    void *big = malloc(2000);             /* large request consolidates */
    bool empty = true;
    for (unsigned i = 0; i < TM_NFASTBINS; i++)
        empty = empty && av->fastbins[i] == NULL;
    CHECK("large request empties the fast bins", empty && !av->have_fastchunks);
    /* (the arena's very first chunk, a freed 32-byte one, may lead the run) */
    CHECK("coalesced run of fast chunks serves the request",
          (char *)big <= (char *)p[0] && (char *)big >= (char *)p[0] - 32);
    CHK();
    free(big); free(guard);
    CHK();
}

/* Runs of fast neighbours consolidated into one chunk, listed by their
 * fast bin in address order (each grows backwards) and with two fast
 * bins interleaved (bins.c, consolidation's runs; test_free_batch: the
 * cache's flush, merged by the same passes).  The heap checker
 * after each.                                                        */
static void test_consolidate_runs(void)
{
    void *p[24];
    /* reverse order: the fast bin lists the run in address order */
    for (int i = 0; i < 24; i++)
        p[i] = malloc(100);
    void *guard = malloc(100);
    for (int i = 23; i >= 0; i--)
        free(p[i]);
    void *big = malloc(2400);             /* consolidates: 24 x 112 = 2688 */
    CHECK("run freed backwards coalesces into one chunk",
          (char *)big <= (char *)p[0] && (char *)big >= (char *)p[0] - 32);
    CHK();
    free(big);
    CHK();
    /* two sizes interleaved: two fast bins, the run alternates between them */
    for (int i = 0; i < 24; i++)
        p[i] = malloc(i % 2 ? 40 : 100);
    void *guard2 = malloc(100);
    for (int i = 0; i < 24; i++)
        free(p[i]);
    big = malloc(1800);                   /* 12 x 112 + 12 x 48 = 1920 */
    CHECK("interleaved sizes coalesce into one chunk",
          (char *)big <= (char *)p[0] && (char *)big >= (char *)p[0] - 32 - 2688);
    CHK();
    free(big);
    CHK();
    free(guard); free(guard2);
    CHK();
}

/* Consolidation grows each pending fast chunk into its whole run (bins.c,
 * two passes): runs that mix fast chunks of several bins with a chunk
 * waiting in a bin, that end at top, and that the fast bins list in no
 * particular order.  A fresh arena lays the blocks out side by side:
 *
 *   U0 | A0 A1 | U1 | B0 B1 X B2 | U2 | C0 C1 | top
 *
 * U in use, A/B/C fast (48 or 112 bytes), X a 608-byte chunk freed first
 * (the unsorted bin).  Expected: A0+A1 and B0+B1+X+B2 as single free
 * chunks at the unsorted bin's head, C0+C1 part of top, fast bins
 * empty, P cleared before U1 and U2, the heap checker content.       */
static void test_consolidate_mixed(void)
{
    tm_arena *av = main_av();
    enum { U0, A0, A1, U1, B0, B1, X, B2, U2, C0, C1, N };
    static const size_t req[N] = { 100, 100, 40, 100, 40, 100, 600, 40, 100, 100, 40 };
    void *m[N];
    for (int i = 0; i < N; i++)
        m[i] = malloc(req[i]);
    bool adjacent = true;
    for (int i = 1; i < N; i++)
        adjacent = adjacent && (char *)m[i] == (char *)m[i - 1] + request2size(req[i - 1]);
    CHECK("consolidate_mixed: the blocks lie side by side", adjacent);
    CHECK("consolidate_mixed: C1 ends at top",
          chunk_at(mem2chunk(m[C1]), request2size(req[C1])) == av->top);
    free(m[X]);
    static const int order[] = { B2, A1, C1, B0, A0, B1, C0 };
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        free(m[order[k]]);
    CHECK("consolidate_mixed: the small blocks went to fast bins", av->have_fastchunks);
    CHK();
    tm_arena_enter_owner(av);
    tm_bins_consolidate(av);
    bool empty = !av->have_fastchunks && av->fast_bytes == 0;
    for (unsigned i = 0; i < TM_NFASTBINS; i++)
        empty = empty && av->fastbins[i] == NULL;
    CHECK("consolidate_mixed: the fast bins are empty", empty);
    tm_chunk *a = mem2chunk(m[A0]), *b = mem2chunk(m[B0]);
    size_t asize = request2size(req[A0]) + request2size(req[A1]);
    size_t bsize = request2size(req[B0]) + request2size(req[B1]) + request2size(req[X]) +
                   request2size(req[B2]);
    tm_chunk *u = unsorted_bin(av);
    CHECK("consolidate_mixed: A0+A1 one free chunk in the unsorted bin",
          chunksize(a) == asize && in_bin(av, 1, m[A0]) && !inuse(a) &&
          !prev_inuse(mem2chunk(m[U1])) && mem2chunk(m[U1])->prev_size == asize);
    CHECK("consolidate_mixed: B0+B1+X+B2 one free chunk in the unsorted bin (X absorbed)",
          chunksize(b) == bsize && in_bin(av, 1, m[B0]) && !in_bin(av, 1, m[X]) &&
          !prev_inuse(mem2chunk(m[U2])) && mem2chunk(m[U2])->prev_size == bsize);
    /* (the arena's first chunk, a freed 32-byte one before U0, joins them) */
    int others = 0;
    for (tm_chunk *c = u->fd; c != u; c = c->fd)
        others += c != a && c != b && (char *)c >= (char *)mem2chunk(m[U0]);
    CHECK("consolidate_mixed: no other chunk of the blocks in the unsorted bin", others == 0);
    CHECK("consolidate_mixed: C0+C1 joined top", av->top == mem2chunk(m[C0]));
    CHECK("consolidate_mixed: the runs carry no pending mark",
          !(size_word(a) & TM_SAMPLED) && !(size_word(b) & TM_SAMPLED) &&
          !(size_word(av->top) & TM_SAMPLED));
    tm_arena_leave(av);
    CHK();
    free(m[U0]); free(m[U1]); free(m[U2]);
    CHK();
}

/* A fast chunk linked twice into the fast bins (a forged link: the
 * list runs p -> q -> p -> ...): consolidation's first pass meets p
 * marked pending already and names it, instead of linking it into its
 * pending list a second time.                                        */
static void sc_fast_twice(void *arg)
{
    (void)arg;
    tm_arena *av = main_av();
    void *p = malloc(100), *q = malloc(100), *guard = malloc(100);
    (void)guard;
    free(p);
    free(q);                             /* fast bin: q -> p */
    tm_arena_enter_owner(av);
    fastbin_link(mem2chunk(p), mem2chunk(q));   /* p -> q: a cycle */
    tm_bins_consolidate(av);
    tm_arena_leave(av);
    _exit(0);
}
static void test_consolidate_twice(void)
{
    CHECK_ABORT("consolidate: a chunk twice in the fast bins is named", sc_fast_twice, NULL,
                "malloc_consolidate(): chunk twice in the fast bins");
}

/* Under the strict cap (a deep drain, no background thread) fast frees
 * consolidate the fast bins once they hold more than TM_FAST_BYTES_MAX;
 * they look once per 2^TM_FAST_CAP_STEP_SHIFT bytes beyond it, not at
 * every free.  Loose (no deep drain), the fast chunks stay.  The deep
 * drain is made by raising the arena's high-water mark of other bytes. */
static void fast_burst(tm_arena *av, bool deep, size_t *fast_after)
{
    enum { N = 11000 };                   /* 11000 x 112 B: 1.17 MiB > TM_FAST_BYTES_MAX */
    static void *q[N];
    for (int i = 0; i < N; i++)
        q[i] = malloc(100);
    void *guard = malloc(100);
    if (deep) {
        tm_arena_enter_owner(av);
        av->other_hwm = (size_t)1 << 40;
        tm_arena_leave(av);
    }
    for (int i = 0; i < N; i++)
        free(q[i]);
    tm_arena_enter_owner(av);                 /* (fast_bytes: the arena lock's) */
    *fast_after = av->fast_bytes;
    tm_arena_leave(av);
    CHK();
    free(guard);
    tm_arena_enter_owner(av);
    tm_bins_consolidate(av);
    av->other_hwm = tm_release_other(av);
    tm_arena_leave(av);
    CHK();
}
static void test_strict_fast(void)
{
    tm_arena *av = main_av();
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    for (int w = 0; w < 500 && atomic_load(&tm_bg_active); w++)
        usleep(10000);
    CHECK("background thread gone", !atomic_load(&tm_bg_active));
    size_t loose, strict;
    fast_burst(av, false, &loose);
    CHECK("loose: the fast chunks stay in the fast bins", loose > TM_FAST_BYTES_MAX);
    fast_burst(av, true, &strict);
    CHECK("strict: fast frees consolidated the fast bins past the bound",
          strict <= TM_FAST_BYTES_MAX);
}

/* The flush's batch (tm_int_free_pend / tm_int_free_settle): chunks
 * above the fast sizes, pending in address order and then backwards,
 * merged at the settle; then a batch of every other chunk (runs of one,
 * between chunks in use), then the rest, which merges with both sides;
 * a fresh arena, so that they lie side by side.                       */
/* A block as a cache flush hands it to the arena: its header CACHED
 * (chunk.h), as every cache or list entry's is. */
static void pend_cached(tm_arena *av, void *m, tm_pending *l)
{
    hdr_flip_cached(mem2chunk(m));
    tm_int_free_pend(av, mem2chunk(m), l);
}

static void test_free_batch(void)
{
    tm_arena *av = main_av();
    const size_t sz = request2size(300);
    void *q[16];
    for (int i = 0; i < 16; i++)
        q[i] = malloc(300);
    void *guard3 = malloc(100);
    bool adjacent = true;
    for (int i = 1; i < 16; i++)
        adjacent = adjacent && (char *)q[i] == (char *)q[i - 1] + sz;
    CHECK("a fresh arena's chunks lie side by side", adjacent);
    size_t inuse0 = av->inuse;
    tm_pending l;
    tm_arena_enter_owner(av);
    tm_int_free_begin(av, &l);
    for (int i = 0; i < 8; i++)
        pend_cached(av, q[i], &l);
    for (int i = 15; i >= 8; i--)
        pend_cached(av, q[i], &l);
    CHECK("pending: the neighbour after the batch sees it free", !prev_inuse(mem2chunk(guard3)) &&
          mem2chunk(guard3)->prev_size == sz);
    tm_int_free_settle(av, &l);
    tm_chunk *u = unsorted_bin(av)->fd;
    CHECK("settled: one free chunk of the whole batch at the unsorted head",
          u == mem2chunk(q[0]) && chunksize(u) == 16 * sz);
    CHECK("settled: its header verifies as free", chunk_hdr_ok(u, TM_ST_FREE) && tm_pending_empty(&l));
    CHECK("settled: the chunks are no longer in use", av->inuse == inuse0 - 16 * sz);
    tm_arena_leave(av);
    CHK();

    for (int i = 0; i < 16; i++)
        q[i] = malloc(300);
    adjacent = true;
    for (int i = 1; i < 16; i++)
        adjacent = adjacent && (char *)q[i] == (char *)q[i - 1] + sz;
    CHECK("the batch's memory comes back side by side", adjacent && q[0] == chunk2mem(u));
    tm_arena_enter_owner(av);
    tm_int_free_begin(av, &l);
    for (int i = 0; i < 16; i += 2)
        pend_cached(av, q[i], &l);
    tm_int_free_settle(av, &l);
    int runs = 0;
    for (tm_chunk *c = unsorted_bin(av)->fd; c != unsorted_bin(av); c = c->fd)
        runs += chunksize(c) == sz && ((char *)chunk2mem(c) - (char *)q[0]) % (2 * sz) == 0;
    CHECK("every other chunk: eight runs of one", runs == 8);
    tm_arena_leave(av);
    CHK();
    tm_arena_enter_owner(av);
    tm_int_free_begin(av, &l);
    for (int i = 1; i < 16; i += 2)
        pend_cached(av, q[i], &l);
    tm_int_free_settle(av, &l);
    u = unsorted_bin(av)->fd;
    CHECK("the rest: merged with the free chunks on both sides into one",
          u == mem2chunk(q[0]) && chunksize(u) == 16 * sz);
    tm_arena_leave(av);
    CHK();
    free(guard3);
    CHK();
}

static void test_top_trim(void)
{
    tm_arena *av = main_av();
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    size_t before = av->system_mem;
    void *p = malloc(8 << 20);
    CHECK("large block below the mmap threshold comes from the heap", !chunk_is_mmapped(mem2chunk(p)));
    CHECKF("heap grew", av->system_mem >= before + (7 << 20), "%zu -> %zu", before, av->system_mem);
    CHK();
    free(p);
    CHECK("top trimmed back after a big free", av->system_mem < before + (1 << 20));
    CHK();
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    void *m = malloc(1 << 20);
    CHECK("mmapped chunk above the threshold", chunk_is_mmapped(mem2chunk(m)));
    CHECK("mmapped chunk page-aligned mapping", ((uintptr_t)mem2chunk(m) & 4095) == 0);
    free(m);
    CHK();
}

static void *sub_heap_thread(void *arg)
{
    (void)arg;
    void *keep = malloc(64);
    tm_arena *av = tm_thread_arena();
    CHECK("a second thread gets a non-main arena", av != NULL && av != &tm_main_arena);
    CHECK("its chunks carry the A bit", chunk_non_main(mem2chunk(keep)));
    CHECK("heap_for_ptr finds the arena", heap_for_ptr(mem2chunk(keep))->ar == av);
    enum { N = 90 };
    void *blk[N];
    for (int i = 0; i < N; i++)
        blk[i] = malloc(1 << 20);         /* 90 MiB > one 64 MiB sub-heap */
    CHECK("arena spans several sub-heaps", av->nheaps >= 2);
    CHK();
    for (int i = N - 1; i >= 0; i--)
        free(blk[i]);
    CHECK("emptied sub-heaps are deleted", av->nheaps == 1);
    CHK();
    free(keep);
    return NULL;
}

static void test_sub_heaps(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    pthread_t t;
    pthread_create(&t, NULL, sub_heap_thread, NULL);
    pthread_join(t, NULL);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    CHK();
}

/* Unsorted chunks of TM_RELEASE_MIN and more wait in a list of their own
 * (bins[TM_UNSORTED_BIG]), the smaller ones in bins[1] (bins.h): the
 * release walks read the big list and never pass the small chunks,
 * malloc's scan reads both.                                           */
static void test_unsorted_lists(void)
{
    tm_arena *av = main_av();
    mallopt(TIDE_M_DECAY_MS, -1);          /* nothing released but by malloc_trim */
    enum { N = 64 };
    void *small[N], *guard[N], *lead = malloc(64);   /* (small[0]'s neighbour before) */
    for (int k = 0; k < N; k++) {
        small[k] = malloc(200 + 16 * (k % 8));
        guard[k] = malloc(64);             /* keeps each small chunk apart */
    }
    void *mid = malloc(9000), *gm = malloc(64);
    void *big = malloc(40000), *gb = malloc(64);
    memset(big, 0x5a, 40000);
    /* (the report's stream, opened now: an allocation after the frees
     * would sort the unsorted chunks before malloc_info sees them)     */
    static char info[1 << 16];
    FILE *fp = fmemopen(info, sizeof info - 1, "w");
    setvbuf(fp, NULL, _IONBF, 0);
    for (int k = 0; k < N; k++)
        free(small[k]);
    free(mid);
    free(big);
    bool all_small = true;
    for (int k = 0; k < N; k++) {
        bool ok = in_bin(av, 1, small[k]) && !in_bin(av, TM_UNSORTED_BIG, small[k]);
        if (!ok)
            fprintf(stderr, "small[%d] %p (guard %p) not in bins[1]\n", k, small[k], guard[k]);
        all_small = all_small && ok;
    }
    CHECK("small chunks wait in bins[1]", all_small);
    CHECK("a 9000 B chunk waits in bins[1]", in_bin(av, 1, mid));
    CHECK("a 40000 B chunk waits in the big list only",
          in_bin(av, TM_UNSORTED_BIG, big) && !in_bin(av, 1, big));
    CHK();
    /* malloc_info: the two lists are one <unsorted> row, as glibc's
     * one unsorted bin (stats.c); a static buffer, unbuffered.         */
    malloc_info(0, fp);
    fclose(fp);
    int spanning = 0, big_rows = 0;
    for (char *r = strstr(info, "<unsorted "); r; r = strstr(r + 1, "<unsorted ")) {
        size_t from, to, total, count;
        if (sscanf(r, "<unsorted from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"", &from, &to, &total,
                   &count) != 4)
            continue;
        if (to >= 40000)
            big_rows++;
        if (from <= 264 && to >= 40000 && count >= N)
            spanning++;
    }
    CHECKF("malloc_info: one <unsorted> row holds both lists", spanning == 1 && big_rows == 1,
           "%d spanning, %d reaching 40000 B", spanning, big_rows);
    /* malloc's scan reads the big list (first): the exact fit is there */
    void *again = malloc(40000);
    CHECK("exact fit taken from the big unsorted list", again == big);
    CHECK("the big list is empty again", bin_at(av, TM_UNSORTED_BIG)->fd == bin_at(av, TM_UNSORTED_BIG));
    CHK();
    free(again);
    CHECK("freed again: back in the big list", in_bin(av, TM_UNSORTED_BIG, big));
    /* malloc_trim's purge releases its interior; the small chunks stay
     * where they were, unsorted in bins[1]                             */
    size_t rel0 = av->released;
    CHECK("malloc_trim(0) releases", malloc_trim(0) == 1);
    CHECKF("the big chunk's interior released", av->released >= rel0 + 32768 &&
           chunk_released(mem2chunk(big)) >= 32768, "released %zu -> %zu", rel0, av->released);
    all_small = true;
    for (int k = 0; k < N; k++)
        all_small = all_small && in_bin(av, 1, small[k]);
    CHECK("the small chunks are still unsorted in bins[1]", all_small);
    CHK();
    for (int k = 0; k < N; k++)
        free(guard[k]);
    free(lead);
    free(gm);
    free(gb);
    CHK();
    mallopt(TIDE_M_DECAY_MS, 1000);
}

static void test_release(void)
{
    tm_arena *av = main_av();
    mallopt(TIDE_M_DECAY_MS, 0);          /* release at once */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    void *a = malloc(4 << 20), *pin = malloc(100);
    memset(a, 0x5a, 4 << 20);
    long rss0 = harness_vm_rss_kb();
    size_t rel0 = av->released;
    free(a);                               /* pinned by `pin`: cannot be trimmed */
    long rss1 = harness_vm_rss_kb();
    CHECKF("pinned free chunk's pages released", av->released >= rel0 + (4u << 20) - 8192,
           "released %zu -> %zu", rel0, av->released);
    CHECKF("RSS dropped by ~4 MiB", rss0 - rss1 > 3500, "rss %ld -> %ld kB", rss0, rss1);
    CHK();
    char *z = calloc(1, 3 << 20);          /* comes from the released chunk */
    bool zero = true;
    for (size_t i = 0; i < (3u << 20); i++)
        zero = zero && z[i] == 0;
    CHECK("calloc from released pages reads zero", zero);
    CHECK("released chunk reused", z == a);
    CHK();
    free(z);
    free(pin);
    mallopt(TIDE_M_DECAY_MS, -1);          /* never */
    void *b = malloc(4 << 20), *pin2 = malloc(100);
    memset(b, 1, 4 << 20);
    size_t rel1 = av->released;
    free(b);
    CHECK("decay -1: nothing released", av->released == rel1);
    CHECK("malloc_trim releases it", malloc_trim(0) == 1 && av->released >= rel1 + (4u << 20) - 8192);
    CHK();
    free(pin2);
    mallopt(TIDE_M_DECAY_MS, 1000);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    CHK();
}

/* The main arena gives its top back with a negative brk. */
static void test_main_arena_trim(void)
{
    tm_arena *av = &tm_main_arena;
    CHECK("main thread uses the main arena", tm_thread_arena() == av);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    size_t before = av->system_mem;
    void *p = malloc(16 << 20);
    CHECK("main heap grew by brk", av->system_mem >= before + (16 << 20) &&
                                   av->last_heap->kind == TM_SEG_BRK);
    CHK();
    free(p);
    CHECKF("brk trimmed after the free", av->system_mem < before + (1 << 20), "%zu -> %zu",
           before, av->system_mem);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    CHK();
}

static void test_memalign_realloc(void)
{
    for (size_t al = 32; al <= 65536; al *= 2) {
        void *p = memalign(al, 300);
        CHECK("memalign alignment", ((uintptr_t)p & (al - 1)) == 0);
        CHK();
        free(p);
    }
    /* realloc grows in place into the next free chunk and into top. */
    void *a = malloc(500), *b = malloc(500), *guard = malloc(100);
    free(b);
    void *a2 = realloc(a, 900);
    CHECK("realloc grows into the next free chunk", a2 == a);
    CHK();
    free(guard);
    void *t = malloc(200);
    void *t2 = realloc(t, 20000);         /* t is the last chunk before top */
    CHECK("realloc grows into top in place", t2 == t);
    CHK();
    free(t2); free(a2);
    CHK();
}

/* A chunk merged backward into its free predecessor leaves its header
 * inside the merged chunk: retired (chunk.h retire_hdr), one fixed word
 * with nothing of the in-use header left, which every path names.  The
 * merged chunk is free memory, which any allocation may take (stdio's,
 * the harness's): the children set it up again themselves.           */
static char *retired_setup(char **c, size_t *live)
{
    /* (holes of earlier scenarios first: the tries that do not lie side
     * by side stay allocated, until the blocks come from top) */
    for (int k = 0; k < 64; k++) {
        char *a = malloc(200), *b = malloc(200);
        *c = malloc(200);
        if (b == a + chunksize(mem2chunk(a)) && *c == b + chunksize(mem2chunk(b))) {
            if (live)
                *live = size_word(mem2chunk(b));   /* b's in-use header, while it is live */
            free(a);
            free(b);                           /* merges backward into a */
            return b;
        }
    }
    return NULL;
}
#if TIDE_CHECKS
static void retired_free(void *arg)
{
    char *c, *b = retired_setup(&c, NULL);
    (void)arg;
    if (b)
        free(b);
}
static void retired_realloc(void *arg)
{
    char *c, *b = retired_setup(&c, NULL);
    (void)arg;
    if (b)
        (void)!realloc(b, 10);
}
#endif
static void test_retired(void)
{
    size_t live = 0;
    char *c, *b = retired_setup(&c, &live);
    CHECK("three adjacent chunks", b != NULL);
    if (!b)
        return;
    tm_chunk *pb = mem2chunk(b);
    size_t w = size_word(pb);                  /* (before any other allocation) */
    int st = hdr_state(pb);
    bool inuse_ok = hdr_ok(pb, w, TM_ST_INUSE);
    size_t usable = malloc_usable_size(b);
#if TIDE_CHECKS
    CHECKF("the absorbed header is the retired word", (w & ~(size_t)TM_PREV_INUSE) == TM_RETIRED_WORD, "%#zx", w);
    CHECK("read as FREE, never in use", st == TM_ST_FREE && !inuse_ok);
    CHECKF("malloc_usable_size of it: 0, as of any free chunk", usable == 0, "%zu", usable);
    /* The in-use header replayed (written back over the retired word):
     * it verifies, and only the next chunk's P bit tells (api.c
     * fast_given); malloc_usable_size answers 0 all the same.  Free and
     * realloc of it abort: misuse double_free/merged_backward_replayed,
     * realloc/replayed. */
    set_size_word(pb, live);
    CHECK("a replayed in-use header verifies", hdr_ok(pb, live, TM_ST_INUSE));
    CHECK("its successor's P bit says free", !inuse(pb));
    usable = malloc_usable_size(b);
    CHECKF("malloc_usable_size of a replayed header: 0", usable == 0, "%zu", usable);
    set_size_word(pb, w);                      /* retired again, for the checker */
#else
    (void)w, (void)st, (void)inuse_ok, (void)usable, (void)live;
#endif
    CHK();
    free(c);
    CHK();
}
/* The misuses of a retired header, each in a forked child of the main
 * thread once the scenario threads are gone (under TSan a fork from a
 * second thread of a process with threads gave children that died
 * without a word). */
static void test_retired_children(void)
{
#if TIDE_CHECKS
    int ws = harness_run_child(retired_free, NULL);
    CHECKF("free of a retired header: a double free", WIFSIGNALED(ws) && WTERMSIG(ws) == SIGABRT &&
           strstr(harness_child_output, "free(): double free detected"), "%#x: %s", (unsigned)ws,
           harness_child_output);
    ws = harness_run_child(retired_realloc, NULL);
    CHECKF("realloc of a retired header: a free chunk", WIFSIGNALED(ws) && WTERMSIG(ws) == SIGABRT &&
           strstr(harness_child_output, "realloc(): invalid pointer (chunk is free)"), "%#x: %s",
           (unsigned)ws, harness_child_output);
#endif
}

int main(void)
{
    CHECK("tcache can be disabled", mallopt(TIDE_M_TCACHE_COUNT, 0) == 1);
    /* The fast bins are off by default (config.h); these tests drive them. */
    CHECK("default max_fast: no fast bins", TM_P(max_fast) == TM_MINSIZE / 2);
    CHECK("M_MXFAST 128 turns them on", mallopt(M_MXFAST, 128) == 1);
    free(malloc(1));
    tide_thread_cache_flush();
    test_geometry();
    sem_init(&step_done, 0, 0);
    pthread_mutex_lock(&done_mu);
    run_fresh(test_fastbins);
    run_fresh(test_unsorted_small_large);
    run_fresh(test_largebin_walks);
    run_fresh(test_last_remainder);
    run_fresh(test_consolidate);
    run_fresh(test_consolidate_runs);
    run_fresh(test_consolidate_mixed);
    run_fresh(test_consolidate_twice);
    run_fresh(test_strict_fast);
    run_fresh(test_free_batch);
    run_fresh(test_top_trim);
    run_fresh(test_unsorted_lists);
    run_fresh(test_release);
    run_fresh(test_memalign_realloc);
    run_fresh(test_retired);
    pthread_mutex_unlock(&done_mu);
    for (int i = 0; i < nparked; i++)
        pthread_join(parked[i], NULL);
    test_sub_heaps();
    test_main_arena_trim();
    test_retired_children();
    CHK();
    return harness_finish();
}
