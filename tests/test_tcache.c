/*
 * test_tcache.c - unit tests of the per-thread cache: refill in batches,
 * LIFO hits, per-class limits and the half flush, the tunables that size
 * it, the cache emptied at thread exit, and cross-thread frees travelling
 * through the owner's remote stack back into the owner's cache.
 * Internal state is read through src/tcache.h (static link).
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include "harness.h"
#include "class_list.h"
#include "arena.h"
#include "tcache.h"
#include "tidemalloc.h"

#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)

static size_t cls(size_t req) { return tc_req_index(req); }

static void *t_refill_hit_limits(void *arg)
{
    (void)arg;
    void *first = malloc(100);
    tm_tcache *tc = tm_tls_tcache;
    CHECK("thread has a cache after its first malloc", tc != NULL);
    if (!tc)
        return NULL;
    size_t i = cls(100), lim = tm_tc_limit[i];
    CHECKF("a miss refills a batch (limit/2)", tc->counts[i] == lim / 2, "count %u limit %zu",
           tc->counts[i], lim);
    CHK();
    /* The batch was carved from one chunk: neighbours in memory, handed
     * out in address order (the first one may be up to 31 bytes over). */
    tm_tc_entry *e = tc->entries[i];
    CHECK("batch chunks are adjacent, in address order",
          e && (char *)tc_reveal(e) == (char *)e + 112 && (char *)e - (char *)first >= 112 &&
          (char *)e - (char *)first < 112 + 32);
    void *p = malloc(100);
    free(p);
    CHECK("free then malloc of one class is LIFO", malloc(100) == p);
    free(p);

    /* Fill the class beyond its limit: it flushes half and keeps going. */
    void *blk[200];
    for (int k = 0; k < 200; k++)
        blk[k] = malloc(100);
    for (int k = 0; k < 200; k++) {
        free(blk[k]);
        CHECKF("count never exceeds the thread's limit", tc->counts[i] <= tc_my_limit(tc, i),
               "count %u limit %zu", tc->counts[i], tc_my_limit(tc, i));
    }
    CHECK("class holds something after many frees", tc->counts[i] >= lim / 2);
    CHK();
    free(first);
    tide_thread_cache_flush();
    size_t total = 0;
    for (size_t k = 0; k < TM_TCACHE_BINS; k++)
        total += tc->counts[k];
    CHECK("tide_thread_cache_flush empties every class", total == 0);
    CHK();
    return NULL;
}

/* No background thread while a test looks at remote and class lists: its
 * rounds drain them into the bins (TSan CI twice saw the producer's list
 * empty in test_cross_thread).                                        */
static void bg_pause(void)
{
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    for (int w = 0; w < 400 && atomic_load(&tm_bg_active); w++)
        usleep(5000);
    CHECK("the background thread stopped", !atomic_load(&tm_bg_active));
}
static void bg_resume(void) { mallopt(TIDE_M_BACKGROUND_THREAD, 2); }

/* A refill goes where a single malloc would: into a hole the bins offer
 * before the top.  Alternating blocks, every other one freed, leave
 * 208-byte holes between pinned neighbours; a miss of the 48-byte class
 * must carve its batch out of a hole, not out of the top (a refill that
 * asked the bins for its whole batch at once skipped every hole smaller
 * than the batch, and the heap grew past them: python's peak RSS 8 MiB
 * over glibc's), and hand the pieces out in address order.            */
static void *t_refill_holes(void *arg)
{
    (void)arg;
    bg_pause();           /* its rounds may merge fast chunks into the top */
    free(malloc(40));                        /* the thread's arena */
    tm_arena *av = tm_thread_arena();
    CHECK("the thread has an arena", av != NULL);
    if (!av) {
        bg_resume();
        return NULL;
    }
    CHECK("cache off for the setup", mallopt(TIDE_M_TCACHE_COUNT, 0) == 1);
    /* Use up every free chunk of 48 bytes or more that earlier tests left
     * in the arena: until a malloc comes from the top, none is left. */
    void **used = NULL;
    for (;;) {
        tm_chunk *top0 = av->top;
        void **q = malloc(40);
        *q = used;
        used = q;
        if (mem2chunk(q) == top0)
            break;
    }
    enum { N = 64 };
    void *hole[N], *pin[N];
    for (int k = 0; k < N; k++) {
        hole[k] = malloc(200);               /* chunk 208 */
        pin[k] = malloc(24);                 /* chunk 32  */
    }
    for (int k = 0; k < N; k++)
        free(hole[k]);
    CHECK("cache back on", mallopt(TIDE_M_TCACHE_COUNT, 32) == 1);
    tm_chunk *top = av->top;
    char *lo = (char *)hole[0] - 16, *hi = (char *)pin[N - 1];
    void *p[4];
    for (int k = 0; k < 4; k++)
        p[k] = malloc(40);                   /* chunk 48: one refill */
    CHECK("the refill left the top alone", av->top == top);
    bool in_holes = true, ascending = true;
    for (int k = 0; k < 4; k++) {
        in_holes = in_holes && (char *)p[k] >= lo && (char *)p[k] < hi;
        if (k > 0)
            ascending = ascending && (char *)p[k] > (char *)p[k - 1];
    }
    CHECKF("the batch came out of a hole", in_holes, "%p %p (holes %p..%p)", p[0], p[3],
           (void *)lo, (void *)hi);
    CHECK("its pieces come out in address order, side by side",
          ascending && (char *)p[2] - (char *)p[1] == 48 && (char *)p[3] - (char *)p[2] == 48);
    CHK();
    for (int k = 0; k < 4; k++)
        free(p[k]);
    for (int k = 0; k < N; k++)
        free(pin[k]);
    while (used) {
        void **next = *used;
        free(used);
        used = next;
    }
    bg_resume();
    CHK();
    return NULL;
}

static void *t_tunables(void *arg)
{
    (void)arg;
    CHECK("TIDE_M_TCACHE_COUNT 3", mallopt(TIDE_M_TCACHE_COUNT, 3) == 1);
    bool le3 = true;
    for (size_t k = 0; k < TM_TCACHE_BINS; k++)
        le3 = le3 && tm_tc_limit[k] <= 3;
    CHECK("all class limits <= 3", le3);
    void *b[10];
    for (int k = 0; k < 10; k++)
        b[k] = malloc(40);
    for (int k = 0; k < 10; k++)
        free(b[k]);
    CHECKF("class holds at most 3", tm_tls_tcache->counts[cls(40)] <= 3, "count %u limit %zu", tm_tls_tcache->counts[cls(40)], tc_my_limit(tm_tls_tcache, cls(40)));
    mallopt(TIDE_M_TCACHE_COUNT, 32);

    CHECK("TIDE_M_TCACHE_MAX 64", mallopt(TIDE_M_TCACHE_MAX, 64) == 1);
    CHECK("class of 200 bytes no longer cached", tm_tc_limit[cls(200)] == 0 && tm_tc_limit[cls(64)] > 0);
    void *q = malloc(200);
    free(q);
    CHECK("free of an uncached class goes to the arena", tm_tls_tcache->counts[cls(200)] == 0);
    mallopt(TIDE_M_TCACHE_MAX, 1032);

    CHECK("TIDE_M_TCACHE_BYTES 16 KiB", mallopt(TIDE_M_TCACHE_BYTES, 16384) == 1);
    size_t bytes = 0;
    for (size_t k = 0; k < TM_TCACHE_BINS; k++)
        bytes += (size_t)tm_tc_limit[k] * tm_class_size(k);
    size_t one_each = 0;
    for (size_t k = 0; k < TM_TCACHE_BINS; k++)
        one_each += tm_class_size(k);
    CHECKF("limits fit the byte budget (one chunk per class at least)", bytes <= 16384 + one_each,
           "%zu", bytes);
    CHECK("small classes get more entries than big ones", tm_tc_limit[0] > tm_tc_limit[63]);
    mallopt(TIDE_M_TCACHE_BYTES, 256 * 1024);
    CHECK("TIDE_M_TCACHE_COUNT rejects negatives", mallopt(TIDE_M_TCACHE_COUNT, -1) == 0);
    CHK();
    return NULL;
}

/* A thread fills its cache, exits: the cache goes back to the arenas. */
static void *t_exit_worker(void *arg)
{
    (void)arg;
    void *b[300];
    for (int k = 0; k < 300; k++)
        b[k] = malloc(16 + (size_t)(k % 60) * 16);
    for (int k = 0; k < 300; k++)
        free(b[k]);
    *(size_t *)arg = tm_tcache_cached_bytes();
    return NULL;
}

static void test_thread_exit(void)
{
    struct tide_stats a, b;
    tide_get_stats(&a);
    size_t cached = 0;
    pthread_t t;
    pthread_create(&t, NULL, t_exit_worker, &cached);
    pthread_join(t, NULL);
    tide_get_stats(&b);
    CHECKF("the exiting thread held chunks in its cache", cached > 0, "%zu", cached);
    /* in_use counts cached chunks; after the exit they are free again. */
    CHECKF("thread exit returned its cache to the arenas", b.in_use_bytes <= a.in_use_bytes + 4096,
           "in use %zu -> %zu", a.in_use_bytes, b.in_use_bytes);
    CHK();
}


static bool member(void *p, void **set, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (set[k] == p)
            return true;
    return false;
}

/* Producer/consumer: the consumer's frees reach the producer's arena
 * through its remote stack and come back into the producer's cache. */
static void *volatile handoff[64];
static pthread_barrier_t bar;
static tm_arena *producer_arena;

static void *t_producer(void *arg)
{
    (void)arg;
    free(malloc(64));
    producer_arena = tm_thread_arena();
    for (int k = 0; k < 64; k++)
        handoff[k] = malloc(64);
    tide_thread_cache_flush();
    pthread_barrier_wait(&bar);     /* consumer frees */
    pthread_barrier_wait(&bar);
    uintptr_t w = atomic_load(&producer_arena->remote_cls[cls(64)]);
    /* The 64 the consumer freed, plus what the producer's own flush parked
     * there (own-arena chunks, up to one class limit).                  */
    size_t n = w >> TM_RCLS_SHIFT;
    CHECKF("consumer's frees wait on the producer arena's remote list for their class, all counted",
           w != 0 && n >= 64 && n <= 64u + tm_tc_limit[cls(64)], "word %#lx", (unsigned long)w);
    size_t before = tm_tls_tcache->counts[cls(64)];
    void *on_list[512];
    size_t nl = class_list_members(atomic_load(&producer_arena->remote_cls[cls(64)]), on_list, 512);
    size_t from_consumer = 0;
    for (size_t k = 0; k < nl; k++)
        for (int h = 0; h < 64; h++)
            from_consumer += on_list[k] == handoff[h];
    CHECKF("the list holds the 64 blocks the consumer freed", from_consumer == 64, "%zu of %zu", from_consumer, nl);
    void *p = malloc(64);           /* miss -> takes the remote list, no lock */
    pthread_barrier_wait(&bar);     /* now the consumer may exit (its exit's
                                     * decay tick may sweep our arena's lists) */
    size_t lim = tm_tc_limit[cls(64)];
    CHECK("the remote list was taken whole", atomic_load(&producer_arena->remote_cls[cls(64)]) == 0);
    CHECKF("the whole list became the class, beyond its limit (no walk)",
           before == 0 && tm_tls_tcache->counts[cls(64)] == n - 1 && lim < n - 1,
           "%zu -> %u (limit %zu)", before, tm_tls_tcache->counts[cls(64)], lim);
    CHECK("the installed class passes the heap check (links, keys, count)", tide_check_heap() > 0);
    /* Every entry comes out once, in a consistent state. */
    void *hold[256];
    size_t nh = 0;
    while (tm_tls_tcache->counts[cls(64)] > 0 && nh < 250)
        hold[nh++] = malloc(64);
    CHECKF("n - 1 hits empty the class", nh == n - 1, "%zu of %zu", nh, n - 1);
    for (size_t x = 0; x < nh; x++)
        for (size_t y = x + 1; y < nh; y++)
            CHECK("no entry handed out twice", hold[x] != hold[y]);
    CHK();
    for (size_t k = 0; k < nh; k++)
        free(hold[k]);
    CHECKF("frees beyond the limit trim the class again",
           tm_tls_tcache->counts[cls(64)] <= tc_my_limit(tm_tls_tcache, cls(64)),
           "count %u limit %zu", tm_tls_tcache->counts[cls(64)], tc_my_limit(tm_tls_tcache, cls(64)));
    CHK();
    CHECK("the block was on the list", member(p, on_list, nl));
    free(p);
    CHK();
    return NULL;
}

static void *t_consumer(void *arg)
{
    (void)arg;
    free(malloc(64));
    pthread_barrier_wait(&bar);
    for (int k = 0; k < 64; k++)
        free(handoff[k]);
    tide_thread_cache_flush();      /* push them all out of our cache */
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);     /* the producer took the list */
    return NULL;
}

/* A pure consumer: a thread that frees and never allocates has no arena.
 * Its flushes must still go to the owner's class list (one CAS), not
 * through the owner's lock into the bins (it used to take the first
 * chunk's arena as its own), and a class list holds at most
 * TM_RCLS_LIMITS class limits: the rest goes to the general remote
 * list, whose chunks the owner frees into its bins.                  */
#define PURE_N 600
static void *volatile pure_blocks[PURE_N];
static size_t pure_n;
static bool pure_had_arena;

static void *t_pure_consumer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&bar);
    for (size_t k = 0; k < pure_n; k++)
        free(pure_blocks[k]);
    tide_thread_cache_flush();
    pure_had_arena = tm_thread_arena() != NULL;
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);     /* the producer took the list */
    return NULL;
}

static void *t_pure_producer(void *arg)
{
    size_t n = *(size_t *)arg;
    free(malloc(64));
    tm_arena *av = tm_thread_arena();
    for (size_t k = 0; k < n; k++)
        pure_blocks[k] = malloc(64);
    tide_thread_cache_flush();      /* nothing of ours waits on the list */
    size_t before = atomic_load(&av->remote_cls[cls(64)]) >> TM_RCLS_SHIFT;
    pure_n = n;
    pthread_barrier_wait(&bar);     /* the consumer frees and flushes */
    pthread_barrier_wait(&bar);
    CHECK("the consumer never had an arena (the premise)", !pure_had_arena);
    size_t got = (atomic_load(&av->remote_cls[cls(64)]) >> TM_RCLS_SHIFT) - before;
    size_t bound = tm_tc_limit[cls(64)] * TM_RCLS_LIMITS;
    if (n <= bound - before) {
        CHECKF("every chunk the pure consumer freed waits on the producer's class list", got == n,
               "%zu of %zu (list had %zu)", got, n, before);
    } else {
        CHECKF("the class list stops at its bound", got + before <= bound && got > 0,
               "%zu + %zu, bound %zu", before, got, bound);
        CHECK("the rest waits on the general remote list",
              atomic_load(&av->remote) != NULL || got == n);
    }
    /* The producer takes them back: a miss takes the class list whole.
     * (Before the heap check, which drains the lists into the bins.)  */
    void *on_list[PURE_N + 512];
    size_t nl = class_list_members(atomic_load(&av->remote_cls[cls(64)]), on_list, PURE_N + 512);
    size_t from_consumer = 0;
    for (size_t k = 0; k < nl; k++)
        for (size_t h = 0; h < n; h++)
            from_consumer += on_list[k] == pure_blocks[h];
    CHECKF("the class list holds what the consumer freed there", from_consumer == got,
           "%zu of %zu", from_consumer, got);
    void *p = malloc(64);
    pthread_barrier_wait(&bar);     /* now the consumer may exit */
    CHECK("the producer's next miss hands out a block of the list", member(p, on_list, nl));
    CHECK("the heap is consistent with chunks parked on the lists", tide_check_heap() > 0);
    free(p);
    CHK();
    return NULL;
}

static void test_pure_consumer(size_t n)
{
    bg_pause();
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, t_pure_producer, &n);
    pthread_create(&b, NULL, t_pure_consumer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&bar);
    bg_resume();
    CHK();
}

/* Thread exit: nothing of the thread's own arena stays parked on the
 * arena's class lists (no thread of it may come back for it), so its
 * pages can coalesce and be given back.                                */
static tm_arena *exit_arena;
static void *t_exit_parks(void *arg)
{
    (void)arg;
    void *b[40];
    for (int r = 0; r < 4; r++) {
        for (int k = 0; k < 40; k++)
            b[k] = malloc(16 + (size_t)k * 150);     /* small and medium classes */
        for (int k = 0; k < 40; k++)
            free(b[k]);
    }
    exit_arena = tm_thread_arena();
    return NULL;
}

static void test_exit_no_parked(void)
{
    bg_pause();
    pthread_t t;
    pthread_create(&t, NULL, t_exit_parks, NULL);
    pthread_join(t, NULL);
    size_t parked = 0;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++)
        parked += atomic_load(&exit_arena->remote_cls[i]) >> TM_RCLS_SHIFT;
    CHECKF("an exited thread's arena has nothing parked on its class lists", exit_arena && parked == 0,
           "%zu entries", parked);
    CHECK("heap consistent", tide_check_heap() > 0);
    bg_resume();
    CHK();
}

/* The own stash (tcache.c free_chain, config.h TM_STASH_LIMITS): a flush
 * of the thread's own chunks parks them on its arena's class list, up to
 * TM_STASH_LIMITS class limits, while the arena's chunks in use stay
 * high; once they ebbed below a quarter of their high-water mark (release.h
 * tm_release_ebbed), a flush empties a list that holds more than one
 * limit and parks one limit at most, so that the freed memory can
 * coalesce and be given back.                                         */
static void run_in_thread(void *(*fn)(void *));
enum { STASH_N = 2000 };
static void *stash_blocks[STASH_N];
static void *t_own_stash(void *arg)
{
    (void)arg;
    free(malloc(64));
    tm_arena *own = tm_thread_arena();
    size_t i = cls(64), lim = tm_tc_limit[i];
    /* Ballast that keeps the chunks in use above a quarter of their
     * high-water mark (an arena taken over from an exited thread keeps
     * its mark): blocks of 20000 bytes, not a cached size.  The mark is
     * guarded by the arena lock.                                        */
    tm_arena_enter_owner(own);
    size_t hwm = own->inuse_hwm;
    tm_arena_unlock(own);
    size_t nb = 4 * hwm / 20000 + 400;
    void **ballast = calloc(nb, sizeof *ballast);
    CHECK("ballast array", ballast != NULL);
    if (!ballast)
        return NULL;
    for (size_t k = 0; k < nb; k++)
        ballast[k] = malloc(20000);
    for (int k = 0; k < STASH_N; k++)
        stash_blocks[k] = malloc(64);
    /* Forget the misses: a class that missed may grow (tcache.c
     * grow_limit) to hold all 2000 blocks, or flush halves of a grown
     * limit, too big for the stash, and whether it may grow depends on
     * the background thread's state.  Without a miss it stays at its base
     * and flushes base-sized runs, which is what this looks at.         */
    memset(tm_tls_tcache_own->missed, 0, sizeof tm_tls_tcache_own->missed);
    for (int k = 0; k < STASH_N; k++)
        free(stash_blocks[k]);
    size_t parked = tm_remote_class_count(own, i);
    CHECKF("with the chunks in use high, a flush parks more than one class limit of its own, "
           "and at most TM_STASH_LIMITS", !atomic_load(&own->ebbed) && parked > lim &&
           parked <= TM_STASH_LIMITS * lim, "parked %zu limit %zu ebbed %d", parked, lim,
           (int)atomic_load(&own->ebbed));
    CHECK("heap consistent with own chunks parked", tide_check_heap() > 0);
    /* The ebb: everything but a few blocks back. */
    for (size_t k = 0; k < nb; k++)
        free(ballast[k]);
    free(ballast);
    for (int r = 0; r < 3; r++) {                 /* lock sections: the ticks see the ebb */
        for (int k = 0; k < STASH_N; k++)
            stash_blocks[k] = malloc(64);
        for (int k = 0; k < STASH_N; k++)
            free(stash_blocks[k]);
    }
    parked = tm_remote_class_count(own, i);
    CHECKF("after the ebb, the flushes keep at most one class limit parked",
           atomic_load(&own->ebbed) && parked <= lim, "parked %zu limit %zu ebbed %d", parked, lim,
           (int)atomic_load(&own->ebbed));
    CHECK("heap consistent after the ebb", tide_check_heap() > 0);
    CHK();
    return NULL;
}

static void test_own_stash(void)
{
    bg_pause();
    run_in_thread(t_own_stash);
    bg_resume();
    CHK();
}

static void test_cross_thread(void)
{
    bg_pause();
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, t_producer, NULL);
    pthread_create(&b, NULL, t_consumer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&bar);
    bg_resume();
    CHK();
}

/* Outboxes (tcache.h): a thread with an arena of its own that frees
 * small blocks of another arena does not reuse them - they wait in the
 * class's outbox, malloc never pops it, and they go home when it is
 * full, at a flush and at thread exit; a second free of a block in the
 * outbox is a double free.  Its own blocks go into the class as ever. */
#define OB_N 64
static void *volatile ob_blocks[OB_N];
static tm_arena *ob_owner;

static void ob_double_free(void *arg)
{
    free(arg);          /* in the calling thread's outbox already */
}

static void *t_ob_freer(void *arg)
{
    (void)arg;
    free(malloc(64));                       /* an arena of its own */
    size_t i = cls(64), j = TM_TCACHE_BINS + i;
    tm_tcache *tc = tm_tls_tcache;
    CHECK("the freeing thread has another arena than the owner",
          tc != NULL && tm_thread_arena() != NULL && tm_thread_arena() != ob_owner);
    if (!tc)
        return NULL;
    /* its own block: into the class, reused at once */
    void *mine = malloc(64);
    size_t cached = tc->counts[i], away = tc->counts[j];
    free(mine);
    CHECK("an own block is cached in its class, not sent away",
          tc->counts[i] == cached + 1 && tc->counts[j] == away);
    CHECK("and handed out again by the next malloc", malloc(64) == mine);
    free(mine);
    size_t lim = tc_my_limit(tc, j);
    CHECKF("the outbox of a small class has the class's base limit", lim == tm_tc_limit[i] && lim > 0,
           "%zu vs %u", lim, (unsigned)tm_tc_limit[i]);
    for (int k = 0; k < OB_N; k++)
        free(ob_blocks[k]);
    CHECKF("the owner's blocks wait in the outbox, at most one limit of them",
           tc->counts[j] > 0 && tc->counts[j] <= lim && (OB_N - tc->counts[j]) % lim == 0,
           "%u (limit %zu)", tc->counts[j], lim);
    CHK();
    /* none of them is handed out here */
    void *got[OB_N * 2];
    size_t reused = 0;
    for (int k = 0; k < OB_N * 2; k++) {
        got[k] = malloc(64);
        for (int m = 0; m < OB_N; m++)
            reused += got[k] == ob_blocks[m];
    }
    CHECKF("no block of the owner's arena is reused by the freeing thread", reused == 0, "%zu reused", reused);
    for (int k = 0; k < OB_N * 2; k++)
        free(got[k]);
    CHECK_ABORT("a second free of a block waiting in the outbox is a double free", ob_double_free,
                ob_blocks[OB_N - 1], "free(): double free detected in tcache 2");
    CHK();
    return NULL;                             /* exit: the outbox goes home */
}

static void *t_ob_owner(void *arg)
{
    (void)arg;
    free(malloc(64));
    ob_owner = tm_thread_arena();
    for (int k = 0; k < OB_N; k++)
        ob_blocks[k] = malloc(64);
    tide_thread_cache_flush();
    run_in_thread(t_ob_freer);
    /* Every block came home: the owner gets each back within a few
     * batches of mallocs (its class list, installed on a miss).        */
    bool back[OB_N] = { false };
    void *hold[512];
    size_t nh = 0, nback = 0;
    while (nh < 512 && nback < OB_N) {
        void *p = malloc(64);
        hold[nh++] = p;
        for (int m = 0; m < OB_N; m++)
            if (p == ob_blocks[m] && !back[m]) {
                back[m] = true;
                nback++;
            }
    }
    CHECKF("every block the other thread freed came back to the owner", nback == OB_N,
           "%zu of %d after %zu mallocs", nback, OB_N, nh);
    for (size_t k = 0; k < nh; k++)
        free(hold[k]);
    CHK();
    return NULL;
}

static void test_outbox(void)
{
    bg_pause();
    run_in_thread(t_ob_owner);
    bg_resume();
    CHK();
}

static void run_in_thread(void *(*fn)(void *))
{
    pthread_t t;
    pthread_create(&t, NULL, fn, NULL);
    pthread_join(t, NULL);
}

/* Run with TIDEMALLOC_TCACHE_BYTES / GLIBC_TUNABLES set (see engine.cmake):
 * the environment sized the cache before the first malloc. */
static void test_env(void)
{
    const char *b = getenv("TIDEMALLOC_TCACHE_BYTES");
    if (b) {
        size_t budget = strtoul(b, NULL, 10), bytes = 0;
        for (size_t k = 0; k < TM_TCACHE_BINS; k++)
            bytes += (size_t)tm_tc_limit[k] * tm_class_size(k);
        size_t one_each = 0;
        for (size_t k = 0; k < TM_TCACHE_BINS; k++)
            one_each += tm_class_size(k);
        CHECKF("TIDEMALLOC_TCACHE_BYTES bounds the cache", bytes <= budget + one_each,
               "%zu bytes for a budget of %zu", bytes, budget);
        CHECKF("TIDEMALLOC_TCACHE_BYTES: class 0 limited by its share",
               tm_tc_limit[0] <= (budget / TM_TCACHE_SMALL_BINS) / 32 + 1, "%u", tm_tc_limit[0]);
    }
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "tcache_count=5"))
        CHECKF("glibc.malloc.tcache_count=5", tm_tc_limit[0] == 5, "%u", tm_tc_limit[0]);
    if (t && strstr(t, "tcache_max=100"))
        CHECK("glibc.malloc.tcache_max=100", tm_tc_limit[cls(100)] > 0 && tm_tc_limit[cls(120)] == 0);
}

/* Adaptive limits (tcache.h): a class that overflows grows this thread's
 * limit, within bounds, while idle caches can be reclaimed; mallopt and a
 * reclaim reset it to the base, and a deep drain shrinks a grown cache. */
static void *t_produce(void *arg)
{
    void **b = arg;
    for (int k = 0; k < 400; k++)
        b[k] = malloc(64);
    return NULL;
}

/* A new thread's cache, once the background thread runs (it starts with
 * the process's second thread; up to 2 s): NULL if it has none.       */
static tm_tcache *cache_with_bg(void)
{
    free(malloc(1));
    tm_tcache *tc = tm_tls_tcache;
    CHECK("thread has a cache", tc != NULL);
    for (int k = 0; tc && k < 200 && !atomic_load(&tm_bg_active); k++)
        usleep(10000);
    return tc;
}

static void *t_adaptive(void *arg)
{
    (void)arg;
    tm_tcache *tc = cache_with_bg();
    if (!tc)
        return NULL;
    bool grows = TM_TCACHE_RECLAIM && atomic_load(&tm_bg_active);
    size_t i = cls(64), csize = tm_class_size(i), base = tm_tc_limit[i];
    size_t cap = TM_TCACHE_GROW_CLASS_BYTES / csize;
    if (cap > TM_TCACHE_GROW_COUNT)
        cap = TM_TCACHE_GROW_COUNT;
    enum { N = 400 };
    void *b[N];
    /* A class that only overflows - this thread frees what another one
     * allocated, and never misses there - keeps its limit: holding more
     * would only keep the producer's memory from it.                    */
    pthread_t prod;
    CHECK("producer thread", pthread_create(&prod, NULL, t_produce, b) == 0 && pthread_join(prod, NULL) == 0);
    for (int k = 0; k < N; k++)
        free(b[k]);
    CHECKF("a class that overflows without a miss keeps its limit", tc_my_limit(tc, i) == base &&
           tc->counts[i] <= base, "base %zu limit %zu count %u", base, tc_my_limit(tc, i), tc->counts[i]);
    for (int k = 0; k < N; k++)
        b[k] = malloc(64);
    for (int k = 0; k < N; k++)
        free(b[k]);
    size_t lim = tc_my_limit(tc, i);
    if (grows) {
        CHECKF("a class that misses and overflows grows its limit (within the caps)", lim > base && lim <= cap &&
               tc->counts[i] >= N && tc->counts[i] <= lim, "base %zu limit %zu cap %zu count %u", base, lim, cap, tc->counts[i]);
        uint64_t slow = atomic_load(&tc->slow_ops);
        for (int k = 0; k < N; k++)
            b[k] = malloc(64);
        CHECKF("the next round is all cache hits", atomic_load(&tc->slow_ops) == slow, "%lu slow calls",
               (unsigned long)(atomic_load(&tc->slow_ops) - slow));
        for (int k = 0; k < N; k++)
            free(b[k]);
    } else {
        CHECKF("no growth without a reclaimer", lim == base, "base %zu limit %zu", base, lim);
    }
    size_t sum = 0, base_sum = 0;
    for (size_t k = 0; k < TM_TCACHE_BINS; k++) {
        sum += tc_my_limit(tc, k) * tm_class_size(k);
        base_sum += tm_tc_limit[k] * tm_class_size(k);
    }
    size_t gt = tm_tcache_grow_total();
    CHECKF("the thread's limits stay within their total (tm_tcache_grow_total)",
           sum <= (base_sum > gt ? base_sum : gt) && gt <= TM_TCACHE_GROW_TOTAL_MAX &&
           sum == atomic_load(&tc->limit_bytes), "%zu (tracked %zu, total %zu)", sum,
           (size_t)atomic_load(&tc->limit_bytes), gt);
    CHK();
    CHECK("TIDE_M_TCACHE_COUNT (unchanged value)", mallopt(TIDE_M_TCACHE_COUNT, TM_TCACHE_DEFAULT_COUNT) == 1);
    bool reset = true;
    for (size_t k = 0; k < TM_TCACHE_BINS; k++)
        reset = reset && tc_my_limit(tc, k) == (k < TM_TCACHE_SMALL_BINS ? tm_tc_limit[k] : 0);
    CHECK("mallopt resets every limit to the base (the medium classes': closed)", reset);
    /* A medium request's slow path opens them again, where they may be. */
    size_t med = tc_med_req_index(2000);
    free(malloc(2000));
    bool open = tm_tcache_medium_open();
    CHECKF("a medium class's slow path opens the medium classes (if they may be)",
           tc_my_limit(tc, med) == (open ? tm_tc_limit[med] : 0), "limit %zu open %d",
           tc_my_limit(tc, med), (int)open);
    CHECK("... all of them", !open || tc_my_limit(tc, TM_TCACHE_BINS - 1) == tm_tc_limit[TM_TCACHE_BINS - 1]);
    if (grows) {
        /* A deep drain of the own arena (its cap strict) shrinks a grown
         * cache at its next full class, and stops growth meanwhile. */
        for (int k = 0; k < N; k++)
            b[k] = malloc(64);
        for (int k = 0; k < N; k++)
            free(b[k]);
        CHECK("grown (before the drain)", tc_my_limit(tc, i) > base && tc->counts[i] > base);
        free(malloc(2000));
        CHECK("a medium chunk cached before the drain", tc->counts[med] >= 1 && tc->medium_held);
        tm_arena *own = tm_thread_arena();
        /* A strict cap needs the background thread absent (release.h):
         * the flag is read that way (tcache.c own_drained).            */
        bg_pause();
        atomic_store(&own->drained, true);       /* what the cap check sets in a drain */
        size_t j = cls(200), jbase = tm_tc_limit[j];
        void *c[64];
        for (size_t k = 0; k <= jbase && k < 64; k++)
            c[k] = malloc(200);
        for (size_t k = 0; k <= jbase && k < 64; k++)
            free(c[k]);                          /* overflows class j once */
        CHECKF("a drain sends a grown cache back to the base", tc_my_limit(tc, i) == base &&
               tc->counts[i] <= base && tc_my_limit(tc, j) == jbase,
               "limit %zu count %u (base %zu)", tc_my_limit(tc, i), tc->counts[i], base);
        atomic_store(&own->drained, true);       /* (the flushes above may have rechecked the cap) */
        for (int k = 0; k < N; k++)
            b[k] = malloc(64);
        for (int k = 0; k < N; k++)
            free(b[k]);
        CHECK("and no class grows while it lasts", tc_my_limit(tc, i) == base);
        /* The medium classes close in a drain: a medium request empties
         * them once, and while they stay closed the next ones skip the
         * walk of all 32 (tcache.c tm_tcache_drained_medium).           */
        atomic_store(&own->drained, true);
        free(malloc(2000));
        size_t med_left = 0;
        for (size_t k = TM_TCACHE_SMALL_BINS; k < TM_TCACHE_BINS; k++)
            med_left += tc->counts[k] + tc_my_limit(tc, k);
        CHECKF("a drain closes and empties the medium classes", med_left == 0 && !tc->medium_held,
               "%zu left, held %d", med_left, (int)tc->medium_held);
        free(malloc(2000));
        CHECK("closed, they stay closed and empty", tc->counts[med] == 0 && tc_my_limit(tc, med) == 0);
        atomic_store(&own->drained, false);
        free(malloc(2000));
        CHECK("after the drain a medium request opens them again",
              tc->medium_held && tc_my_limit(tc, med) == tm_tc_limit[med]);
        free(malloc(2000));
        CHECK("... and caches into them", tc->counts[med] >= 1);
        bg_resume();
        free(malloc(20000));                     /* a slow path starts it again */
        for (int k = 0; k < 200 && !atomic_load(&tm_bg_active); k++)
            usleep(10000);
        CHK();
        for (int k = 0; k < N; k++)
            b[k] = malloc(64);
        for (int k = 0; k < N; k++)
            free(b[k]);
        CHECK("grown again", tc_my_limit(tc, i) > base);
        /* Idle now: no allocator call while the reclaimer looks. */
        int waited = 0;
        while ((tc_my_limit(tc, i) != base || tc->counts[i] != 0) && waited < 800) {
            usleep(10000);
            waited++;
        }
        CHECKF("an idle cache is reclaimed and its limits reset", tc_my_limit(tc, i) == base &&
               tc->counts[i] == 0, "after %d ms: limit %zu count %u", waited * 10, tc_my_limit(tc, i),
               tc->counts[i]);
    }
    CHK();
    return NULL;
}

/* The growth total follows the arena's chunks in use (tcache.c
 * tm_tcache_grow_total): 2 MiB for a small program, half the in-use mark
 * where the background thread reclaims idle caches, at most 16 MiB; and
 * the limits do grow past 2 MiB then (wl_swing, wl_mleak: rounds of
 * tens of MiB flushed into the bins and carved out again).            */
static void *t_grow_share(void *arg)
{
    (void)arg;
    tm_tcache *tc = cache_with_bg();
    if (!tc)
        return NULL;
    CHECKF("a small arena's total is TM_TCACHE_GROW_TOTAL or a share of its mark",
           tm_tcache_grow_total() >= TM_TCACHE_GROW_TOTAL && tm_tcache_grow_total() <= TM_TCACHE_GROW_TOTAL_MAX,
           "%zu", tm_tcache_grow_total());
    if (!TM_TCACHE_RECLAIM || !atomic_load(&tm_bg_active)) {
        CHK();
        return NULL;                 /* (no reclaimer: no growth past the base) */
    }
    /* 48 MiB in use (20000-byte blocks, not a cached size): every
     * malloc is a lock section, whose ticks publish the mark.          */
    enum { NB = 48 * 1024 * 1024 / 20000 };
    static void *ballast[NB];
    for (int k = 0; k < NB; k++)
        ballast[k] = malloc(20000);
    tm_arena *own = tm_thread_arena();
    size_t hint = atomic_load(&own->inuse_hint);
    CHECKF("the tick publishes the in-use mark", hint >= (size_t)NB * 20000 / 2, "%zu", hint);
    CHECKF("with a reclaimer, the total is half the mark, at most TM_TCACHE_GROW_TOTAL_MAX",
           tm_tcache_grow_total() == TM_TCACHE_GROW_TOTAL_MAX, "%zu (mark %zu)", tm_tcache_grow_total(), hint);
    /* Rounds over 8 classes of 256..704 B, 2048 blocks each: a miss, then
     * overflows that double each class's limit, within the total.     */
    enum { NC = 8, PER = 2048 };
    static void *b[NC][PER];
    for (int r = 0; r < 2; r++) {
        for (int c = 0; c < NC; c++)
            for (int k = 0; k < PER; k++)
                b[c][k] = malloc(256 + 64 * (size_t)c);
        for (int c = 0; c < NC; c++)
            for (int k = 0; k < PER; k++)
                free(b[c][k]);
    }
    size_t sum = atomic_load(&tc->limit_bytes);
    CHECKF("the limits grew past TM_TCACHE_GROW_TOTAL, within the total", sum > TM_TCACHE_GROW_TOTAL &&
           sum <= tm_tcache_grow_total(), "%zu of %zu", sum, tm_tcache_grow_total());
    uint64_t slow = atomic_load(&tc->slow_ops);
    for (int k = 0; k < PER; k++)
        b[0][k] = malloc(256);
    CHECKF("a grown class serves the next round from the cache", atomic_load(&tc->slow_ops) == slow,
           "%lu slow calls", (unsigned long)(atomic_load(&tc->slow_ops) - slow));
    for (int k = 0; k < PER; k++)
        free(b[0][k]);
    for (int k = 0; k < NB; k++)
        free(ballast[k]);
    CHECK("heap consistent", tide_check_heap() > 0);
    CHK();
    return NULL;
}

/* The class arithmetic (arena.h, tcache.h) against a plain search over
 * the class sizes, for every size and request it is defined on.       */
static void test_class_formulas(void)
{
    size_t bad = 0;
    for (size_t k = 1; k < TM_TCACHE_BINS; k++)
        bad += tm_class_size(k) <= tm_class_size(k - 1) || (tm_class_size(k) & 15);
    CHECK("class sizes grow, multiples of 16", bad == 0);
    CHECK("last class is TM_TCACHE_MED_MAX", tm_class_size(TM_TCACHE_BINS - 1) == TM_TCACHE_MED_MAX);
    size_t bad_ceil = 0, bad_exact = 0, bad_free = 0, bad_req = 0;
    for (size_t v = 0; v <= TM_TCACHE_MED_MAX + 64; v++) {
        size_t ceil = TM_TCACHE_BINS, exact = TM_TCACHE_BINS;
        for (size_t k = 0; k < TM_TCACHE_BINS; k++) {
            if (ceil == TM_TCACHE_BINS && tm_class_size(k) >= v)
                ceil = k;
            if (tm_class_size(k) == v)
                exact = k;
        }
        if (v >= TM_MINSIZE && v <= TM_TCACHE_MED_MAX && tm_class_ceil(v) != ceil)
            bad_ceil++;
        if (tm_class_exact(v) != exact)
            bad_exact++;
        /* free's fast path: sizes are multiples of 16 (and 0 < 32) */
        if ((v & 15) == 0 && (tc_free_index(v) < TM_TCACHE_BINS ? tc_free_index(v) : TM_TCACHE_BINS) != exact)
            bad_free++;
    }
    for (size_t n = 0; n <= TM_TCACHE_MED_MAX_REQ; n++) {
        size_t want = tm_class_ceil(request2size(n));
        size_t got = n <= TM_TCACHE_MAX_REQ ? tc_req_index(n) : tc_med_req_index(n);
        bad_req += got != want;
    }
    CHECK("tm_class_ceil = smallest class >= size", bad_ceil == 0);
    CHECK("tm_class_exact = the class of exactly that size, or none", bad_exact == 0);
    CHECK("tc_free_index agrees with tm_class_exact", bad_free == 0);
    CHECK("request classes = tm_class_ceil(request2size(n)) up to the medium maximum", bad_req == 0);
    CHECK("TM_TCACHE_MED_MAX_REQ is the largest request of the last class",
          request2size(TM_TCACHE_MED_MAX_REQ) == TM_TCACHE_MED_MAX &&
          request2size(TM_TCACHE_MED_MAX_REQ + 1) > TM_TCACHE_MED_MAX);
}

/* Series of one size after another (glibc's bench-malloc-simple): N
 * blocks of 16 B allocated and freed, again and again, then of 32 B, ...
 * 512 B.  Each size's cache class grows (a single-threaded process may:
 * tcache.c may_hold_more) and what it cannot hold is parked on the
 * arena's class list (free_chain's stash); neither is any use to the next
 * size.  A refill that would grow the heap lets go of both first
 * (tm_tcache_refill): the heap grows by about the largest series, not
 * by their sum (1.76 MiB before, for 0.84 MiB at most live).  Runs while
 * the process has one thread.                                        */
static void test_series_reuse(void)
{
    enum { N = 1600 };
    static void *p[N];
    tm_arena *av = &tm_main_arena;
    free(malloc(1));
    size_t sys0 = av->system_mem, live_max = 0;
    for (size_t s = 16; s <= 512; s *= 2) {
        for (int r = 0; r < 20; r++) {
            for (int k = 0; k < N; k++) {
                p[k] = malloc(s);
                memset(p[k], 0x5a, s);
            }
            for (int k = 0; k < N; k++)
                free(p[k]);
        }
        if (N * request2size(s) > live_max)
            live_max = N * request2size(s);
    }
    size_t grew = av->system_mem - sys0;
    CHECKF("series of sizes: the heap grows by the largest, not their sum",
           grew <= live_max + TM_TCACHE_DEFAULT_BYTES, "grew %zu KiB, largest series %zu KiB",
           grew / 1024, live_max / 1024);
    CHK();
}

/* A refill that cannot be served without growing the heap first lets go
 * of a grown cache (shrink: the limits back to the base, which closes the
 * medium classes).  When the refill is of a medium class, that class is
 * open again once the refill is done: the pieces it pushes are within
 * its limit, and their frees stay on the fast path (a closed class sent
 * each of them to the slow path to be reopened).  Main thread, one
 * thread in the process (a cache may grow without the background thread
 * then).                                                               */
static void test_refill_shrink_medium(void)
{
    enum { N = 1000, M = 20000 };
    static void *p[N], *q[M];
    tm_tcache *tc = tm_tls_tcache;
    CHECK("main thread has a cache", tc != NULL);
    if (!tc)
        return;
    /* Live memory, so that neither the cache's flush nor the frees
     * below make a deep drain (which closes the medium classes anyway). */
    enum { L = 64 };
    static void *live[L];
    for (int k = 0; k < L; k++)
        live[k] = malloc(64 << 10);
    for (int r = 0; r < 4; r++) {
        for (int k = 0; k < N; k++)
            p[k] = malloc(64);
        for (int k = 0; k < N; k++)
            free(p[k]);
    }
    CHECKF("rounds of 1000 x 64 B grow the cache", tc->grown, "limit %zu", tc_my_limit(tc, cls(64)));
    size_t i = tc_med_req_index(2000);
    int n = 0;
    while (n < M && tc->grown)
        q[n++] = malloc(2000);
    CHECKF("a medium refill that needed the heap to grow shrank the cache", !tc->grown, "%d blocks", n);
    CHECKF("the refilled medium class is open after the shrink", tc_my_limit(tc, i) > 0 &&
           tc->counts[i] <= tc_my_limit(tc, i), "limit %zu count %u", tc_my_limit(tc, i), tc->counts[i]);
    for (int k = 0; k < n; k++)
        free(q[k]);
    for (int k = 0; k < L; k++)
        free(live[k]);
    CHK();
}

/* A realloc between two small classes moves through the cache (api.c
 * realloc_via_cache): the new block is the head of the new class, the
 * old one goes to the head of its own, and neither leaves the cache -
 * no lock, no bins.  With the cache off (tcache_count 0) the same
 * realloc stays in place, as in glibc: a move would be two trips
 * through the arena.                                                  */
static void *t_realloc_moves(void *arg)
{
    (void)arg;
    free(malloc(1));                          /* (the thread's cache) */
    tm_tcache *tc = tm_tls_tcache;
    if (!CHECK("realloc moves: the thread has a cache", tc != NULL))
        return NULL;
    char *x = malloc(200), *y = malloc(100);
    memset(x, 0x3c, 200);
    free(y);                                  /* the head of 100's class */
    unsigned c200 = tc->counts[cls(200)], c100 = tc->counts[cls(100)];
    char *z = realloc(x, 100);
    CHECKF("a shrink to another small class takes the new class's head", z == y, "%p, head was %p",
           (void *)z, (void *)y);
    CHECKF("... and caches the old block", tc->entries[cls(200)] == (tm_tc_entry *)x &&
           tc->counts[cls(200)] == c200 + 1 && tc->counts[cls(100)] == c100 - 1,
           "head %p, counts %u -> %u, %u -> %u", (void *)tc->entries[cls(200)], c200,
           tc->counts[cls(200)], c100, tc->counts[cls(100)]);
    int same = 1;
    for (int k = 0; k < 100; k++)
        same &= z[k] == 0x3c;
    CHECK("... with the bytes both hold", same);
    char *w = realloc(z, 200);                /* and back: x again */
    CHECKF("a growth to another small class takes the new class's head", w == x, "%p, expected %p",
           (void *)w, (void *)x);
    free(w);
    CHK();

    CHECK("realloc moves: the cache can be turned off", mallopt(TIDE_M_TCACHE_COUNT, 0) == 1);
    x = malloc(200);
    z = realloc(x, 100);
    CHECKF("with the cache off a shrink stays in place", z == x, "%p -> %p", (void *)x, (void *)z);
    free(z);
    mallopt(TIDE_M_TCACHE_COUNT, TM_TCACHE_DEFAULT_COUNT);
    CHK();
    return NULL;
}

int main(void)
{
    test_class_formulas();
    free(malloc(1));
    test_env();
    if (getenv("TIDEMALLOC_TCACHE_BYTES") || getenv("GLIBC_TUNABLES"))
        return harness_finish();
    test_series_reuse();
    test_refill_shrink_medium();
    run_in_thread(t_refill_hit_limits);
    run_in_thread(t_tunables);
    run_in_thread(t_refill_holes);
    test_thread_exit();
    test_cross_thread();
    test_pure_consumer(64);
    test_pure_consumer(PURE_N);
    test_exit_no_parked();
    test_own_stash();
    test_outbox();
    run_in_thread(t_adaptive);
    run_in_thread(t_grow_share);
    run_in_thread(t_realloc_moves);
    return harness_finish();
}
