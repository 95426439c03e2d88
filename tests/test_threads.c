/*
 * test_threads.c - multithreaded behaviour of the allocator.
 *
 *  1. stress: 8 threads, random sizes from 0 bytes to 2 MiB (so tcache,
 *     fastbin/smallbin/largebin sizes and mmapped chunks), malloc / calloc /
 *     memalign / posix_memalign / aligned_alloc / realloc, cross-thread frees
 *     through a shared exchange array (atomic_exchange), every block's content
 *     verified before it is freed; the main thread runs tide_check_heap()
 *     and tide_get_stats() concurrently.
 *  2. churn: 3000 short-lived threads (a third detached, a tenth that only
 *     free), each handing blocks to later threads through an exchange array.
 *  3. owners that exit first: producer threads allocate and exit while
 *     consumer threads free their blocks, and blocks of joined threads freed
 *     by newer threads.
 *  4. pthread_key destructors that verify/free, allocate and free again, and
 *     re-arm themselves (a second destructor round), in threads that did and
 *     threads that never did allocate before.
 *  5. tide_thread_cache_flush(): concurrently with allocation, before a
 *     thread's first allocation, repeatedly; then cached_bytes goes to 0.
 *  Finally tide_check_heap() and tide_get_stats() sanity: arenas within the
 *  default limit, in-use bytes back near the starting value.
 *
 * A watchdog (alarm) fails the test if it deadlocks.
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
static atomic_long n_bad_content;   /* verification failures         */
static atomic_long n_bad_alloc;     /* NULL results, misalignment      */
static atomic_long n_bad_zero;      /* calloc memory not zero          */

static void report(atomic_long *ctr, const char *what, const void *p, size_t n)
{
    if (atomic_fetch_add(ctr, 1) < 8) {
        char buf[200];
        snprintf(buf, sizeof buf, "  %s: block %p size %zu\n", what, p, n);
        mt_say(buf);
    }
}

static size_t pick_size(mt_rng *r)
{
    unsigned c = (unsigned)(mt_next(r) % 1000);
    if (c < 600)
        return mt_range(r, MT_HDR, 256);
    if (c < 850)
        return mt_range(r, 257, 1100);
    if (c < 975)
        return mt_range(r, 1101, 64 * 1024);
    if (c < 995)                                   /* around the 128 KiB threshold */
        return mt_range(r, 64 * 1024, 256 * 1024);
    return mt_range(r, 256 * 1024, 2 * 1024 * 1024);  /* mmapped */
}

/* Allocate n (>= MT_HDR) bytes by one of the allocation functions, check
 * alignment (and zeroing for calloc), and fill it. */
static void *alloc_block(mt_rng *r, size_t *np, uint64_t seed)
{
    size_t n = *np;
    unsigned how = (unsigned)(mt_next(r) % 100);
    size_t align = 16;
    void *p = NULL;
    if (how < 82) {
        p = malloc(n);
    } else if (how < 90) {
        p = calloc(1, n);
        if (p && !mt_is_zero(p, n))
            report(&n_bad_zero, "calloc memory not zeroed", p, n);
    } else if (how < 94) {
        align = (size_t)1 << mt_range(r, 4, 12);
        p = memalign(align, n);
    } else if (how < 97) {
        align = (size_t)1 << mt_range(r, 3, 13);
        if (posix_memalign(&p, align, n) != 0)
            p = NULL;
    } else {
        align = (size_t)1 << mt_range(r, 4, 10);
        n = (n + align - 1) & ~(align - 1);
        *np = n;
        p = aligned_alloc(align, n);
    }
    if (!p) {
        report(&n_bad_alloc, "allocation returned NULL", p, n);
        return NULL;
    }
    if (((uintptr_t)p & (align - 1)) != 0)
        report(&n_bad_alloc, "misaligned block", p, align);
    mt_fill(p, n, seed);
    return p;
}

static void check_and_free(void *p)
{
    size_t n;
    if (!mt_verify(p, &n))
        report(&n_bad_content, "corrupted block (cross-thread)", p, n);
    free(p);
}

/* ---- 1. stress ---------------------------------------------------------------- */
#define NSTRESS       8
#define NSLOTS        2048
#define LOCAL         64
#define STRESS_ITERS  150000
/* Operations per stress thread: STRESS_ITERS, or TIDE_TEST_STRESS_ITERS from
 * the environment (the TSan build sets it: 8 threads x 150000 operations
 * take minutes there). */
static long stress_iters = STRESS_ITERS;

static _Atomic(void *) xslots[NSLOTS];
static atomic_int stress_running;

struct local_blk {
    void *p;
    size_t n;
    uint64_t seed;
};

static void local_check(struct local_blk *b)
{
    if (!b->p)
        return;
    int ok = b->n < MT_HDR ? mt_verify_tiny(b->p, b->n, b->seed) : mt_verify(b->p, NULL);
    if (!ok)
        report(&n_bad_content, "corrupted block (owner)", b->p, b->n);
}

static void *stress_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 1000 + id);
    struct local_blk loc[LOCAL];
    memset(loc, 0, sizeof loc);
    uint64_t seq = id << 40;

    for (long it = 0; it < stress_iters; it++) {
        unsigned op = (unsigned)(mt_next(&r) % 100);
        if (op < 40) {                         /* publish, free what was there */
            size_t n = pick_size(&r);
            void *p = alloc_block(&r, &n, ++seq);
            if (!p)
                continue;
            void *old = atomic_exchange(&xslots[mt_next(&r) % NSLOTS], p);
            if (!old)
                continue;
            if (mt_next(&r) % 5 == 0) {         /* realloc someone else's block */
                size_t on;
                struct mt_hdr h;
                memcpy(&h, old, sizeof h);
                on = (size_t)h.size;
                size_t nn = pick_size(&r);
                void *q = realloc(old, nn);
                if (!q) {
                    report(&n_bad_alloc, "realloc returned NULL", old, nn);
                    check_and_free(old);
                    continue;
                }
                struct mt_hdr h2;
                memcpy(&h2, q, sizeof h2);
                if (h2.size != h.size || h2.seed != h.seed ||
                    !mt_verify_prefix(q, on, h.seed, nn < on ? nn : on))
                    report(&n_bad_content, "realloc lost content (cross-thread)", q, nn);
                free(q);
            } else {
                check_and_free(old);
            }
        } else if (op < 80) {                  /* replace a private block */
            struct local_blk *b = &loc[mt_next(&r) % LOCAL];
            local_check(b);
            free(b->p);
            b->p = NULL;
            if (mt_next(&r) % 10 == 0) {
                b->n = (size_t)(mt_next(&r) % MT_HDR);   /* 0..15 bytes */
                b->seed = ++seq;
                b->p = malloc(b->n);
                if (!b->p) {
                    report(&n_bad_alloc, "malloc(tiny) returned NULL", NULL, b->n);
                    continue;
                }
                mt_fill_tiny(b->p, b->n, b->seed);
            } else {
                b->n = pick_size(&r);
                b->seed = ++seq;
                b->p = alloc_block(&r, &b->n, b->seed);
            }
        } else if (op < 95) {                  /* realloc a private block */
            struct local_blk *b = &loc[mt_next(&r) % LOCAL];
            if (!b->p || b->n < MT_HDR)
                continue;
            size_t nn = pick_size(&r);
            void *q = realloc(b->p, nn);
            if (!q) {
                report(&n_bad_alloc, "realloc returned NULL", b->p, nn);
                continue;
            }
            struct mt_hdr h;
            memcpy(&h, q, sizeof h);
            if (h.size != b->n || h.seed != b->seed ||
                !mt_verify_prefix(q, b->n, b->seed, nn < b->n ? nn : b->n))
                report(&n_bad_content, "realloc lost content", q, nn);
            b->p = q;
            b->n = nn;
            b->seed = ++seq;
            mt_fill(q, nn, b->seed);
        } else {                               /* burst of equal small blocks */
            void *burst[32];
            size_t n = mt_range(&r, MT_HDR, 600);
            int k;
            for (k = 0; k < 32; k++) {
                burst[k] = malloc(n);
                if (!burst[k]) {
                    report(&n_bad_alloc, "malloc returned NULL", NULL, n);
                    break;
                }
                mt_fill(burst[k], n, seq + (uint64_t)k);
            }
            for (int j = 1; j < k; j += 2)       /* odd ones first, then the rest */
                check_and_free(burst[j]);
            for (int j = (k - 1) & ~1; j >= 0; j -= 2)
                check_and_free(burst[j]);
            seq += 32;
        }
    }
    for (int i = 0; i < LOCAL; i++) {
        local_check(&loc[i]);
        free(loc[i].p);
    }
    atomic_fetch_sub(&stress_running, 1);
    return NULL;
}

static void drain(_Atomic(void *) *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *p = atomic_exchange(&slots[i], NULL);
        if (p)
            check_and_free(p);
    }
}

static void test_stress(void)
{
    pthread_t th[NSTRESS];
    atomic_store(&stress_running, NSTRESS);
    for (uintptr_t i = 0; i < NSTRESS; i++)
        CHECK("stress: pthread_create", pthread_create(&th[i], NULL, stress_thread, (void *)i) == 0);

    /* Meanwhile: concurrent heap checks and statistics. */
    long checks = 0, max_chunks = 0;
    while (atomic_load(&stress_running) > 0) {
        long c = tide_check_heap();
        if (c > max_chunks)
            max_chunks = c;
        struct tide_stats st;
        tide_get_stats(&st);
        checks++;
        mt_sleep_ms(20);
    }
    for (int i = 0; i < NSTRESS; i++)
        pthread_join(th[i], NULL);
    printf("stress: %d threads x %ld ops, %ld concurrent heap checks (max %ld chunks)\n",
           NSTRESS, stress_iters, checks, max_chunks);
    CHECKF("stress: tide_check_heap() during the run saw chunks", checks == 0 || max_chunks > 0,
           "max %ld", max_chunks);
    CHECK("stress: heap consistent with live cross-thread blocks", tide_check_heap() >= 0);
    drain(xslots, NSLOTS);
    CHECK("stress: heap consistent after draining", tide_check_heap() >= 0);
}

/* ---- 2. thread churn ------------------------------------------------------------ */
/* Threads created by the churn stage: CHURN_TOTAL, or TIDE_TEST_CHURN_THREADS
 * from the environment (the TSan build uses fewer: thread creation is slow
 * there). */
#define CHURN_TOTAL 3000
static uintptr_t churn_total = CHURN_TOTAL;
#define CHURN_WAVE  24
#define CSLOTS      256

static _Atomic(void *) cslots[CSLOTS];
static atomic_int churn_detached_done;
static atomic_int churn_ran;

static void *churn_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 77 + id);
    if (id % 10 == 3) {
        /* Never allocates: only frees blocks of (possibly dead) threads. */
        for (int k = 0; k < 8; k++) {
            void *old = atomic_exchange(&cslots[mt_next(&r) % CSLOTS], NULL);
            if (old)
                check_and_free(old);
        }
    } else {
        void *mine[24];
        int nm = 20 + (int)(id % 5);
        for (int k = 0; k < nm; k++) {
            size_t n = (k == 0 && id % 50 == 0) ? 300 * 1024 : mt_range(&r, MT_HDR, 2000);
            mine[k] = malloc(n);
            if (!mine[k]) {
                report(&n_bad_alloc, "churn: malloc returned NULL", NULL, n);
                continue;
            }
            mt_fill(mine[k], n, (id << 8) + (uint64_t)k);
        }
        for (int k = 0; k < nm; k++) {
            if (!mine[k])
                continue;
            if (k % 4 == 0) {          /* hand over: some later thread frees it */
                void *old = atomic_exchange(&cslots[mt_next(&r) % CSLOTS], mine[k]);
                if (old)
                    check_and_free(old);
            } else {
                check_and_free(mine[k]);
            }
        }
    }
    atomic_fetch_add(&churn_ran, 1);
    if (id % 3 == 1)
        atomic_fetch_add(&churn_detached_done, 1);
    return NULL;
}

static int create_retry(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    for (int tries = 0; tries < 200; tries++) {
        int e = pthread_create(t, a, fn, arg);
        if (e == 0)
            return 0;
        if (e != EAGAIN)
            return e;
        mt_sleep_ms(5);
    }
    return EAGAIN;
}

static void test_churn(void)
{
    pthread_attr_t det;
    pthread_attr_init(&det);
    pthread_attr_setdetachstate(&det, PTHREAD_CREATE_DETACHED);
    int create_failures = 0, ndetached = 0;
    /* Threads that are not the churn's (a sanitizer's own, say) stay. */
    int before = mt_nthreads();
    if (before < 1 + mt_extra_threads())
        before = 1 + mt_extra_threads();
    for (uintptr_t base = 0; base < churn_total; base += CHURN_WAVE) {
        pthread_t th[CHURN_WAVE];
        int joinable[CHURN_WAVE];
        for (uintptr_t i = 0; i < CHURN_WAVE; i++) {
            uintptr_t id = base + i;
            int detached = (id % 3 == 1);
            joinable[i] = 0;
            if (create_retry(&th[i], detached ? &det : NULL, churn_thread, (void *)id) != 0) {
                create_failures++;
                continue;
            }
            if (detached)
                ndetached++;
            else
                joinable[i] = 1;
        }
        for (int i = 0; i < CHURN_WAVE; i++)
            if (joinable[i])
                pthread_join(th[i], NULL);
    }
    pthread_attr_destroy(&det);
    while (atomic_load(&churn_detached_done) < ndetached)
        mt_sleep_ms(2);
    mt_wait_threads_at_most(before);
    CHECKF("churn: every thread could be created", create_failures == 0, "%d failed", create_failures);
    CHECKF("churn: every thread ran", atomic_load(&churn_ran) == (int)churn_total - create_failures,
           "%d of %d", atomic_load(&churn_ran), (int)churn_total - create_failures);
    CHECK("churn: heap consistent with blocks of dead threads", tide_check_heap() >= 0);
    drain(cslots, CSLOTS);
    CHECK("churn: heap consistent after draining", tide_check_heap() >= 0);
    printf("churn: %d threads (%d detached)\n", (int)churn_total, ndetached);
}

/* ---- 3. threads that exit while others still free their memory ------------- */
#define XQ        512
#define PROD_N    150
#define HELD_PER  100

static _Atomic(void *) xq[XQ];
static atomic_int producers_finished;
static void *held[4 * HELD_PER];

static void *producer(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 5000 + id);
    for (int k = 0; k < PROD_N; k++) {
        size_t n = pick_size(&r);
        void *p = alloc_block(&r, &n, (id << 16) + (uint64_t)k);
        if (!p)
            continue;
        size_t start = (size_t)(mt_next(&r) % XQ);
        int placed = 0;
        for (size_t j = 0; j < XQ && !placed; j++) {
            void *expect = NULL;
            placed = atomic_compare_exchange_strong(&xq[(start + j) % XQ], &expect, p);
        }
        if (!placed)
            check_and_free(p);
    }
    return NULL;                         /* exits; its blocks live on */
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        int done = atomic_load(&producers_finished);
        int got = 0;
        for (size_t i = 0; i < XQ; i++) {
            void *p = atomic_exchange(&xq[i], NULL);
            if (p) {
                check_and_free(p);
                got++;
            }
        }
        if (done && !got)
            break;
        if (!got)
            sched_yield();
    }
    return NULL;
}

static void *held_producer(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 9000 + id);
    for (int k = 0; k < HELD_PER; k++) {
        size_t n = pick_size(&r);
        held[id * HELD_PER + (uintptr_t)k] = alloc_block(&r, &n, (id << 20) + (uint64_t)k);
    }
    return NULL;
}

static void *held_freer(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    /* Free another producer's quarter, in reverse order. */
    uintptr_t victim = (id + 1) % 4;
    for (int k = HELD_PER - 1; k >= 0; k--) {
        void *p = held[victim * HELD_PER + (uintptr_t)k];
        held[victim * HELD_PER + (uintptr_t)k] = NULL;
        if (p)
            check_and_free(p);
    }
    return NULL;
}

static void test_exit_before_free(void)
{
    pthread_t cons[2], prod[4];
    for (uintptr_t i = 0; i < 2; i++)
        CHECK("exit-first: create consumer", pthread_create(&cons[i], NULL, consumer, NULL) == 0);
    for (uintptr_t round = 0; round < 40; round++) {
        for (uintptr_t i = 0; i < 4; i++)
            CHECK("exit-first: create producer",
                  create_retry(&prod[i], NULL, producer, (void *)(round * 4 + i)) == 0);
        for (int i = 0; i < 4; i++)
            pthread_join(prod[i], NULL);
    }
    atomic_store(&producers_finished, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(cons[i], NULL);
    drain(xq, XQ);
    CHECK("exit-first: heap consistent after consumers", tide_check_heap() >= 0);

    /* Producers exit and are joined before anybody frees their blocks. */
    for (uintptr_t i = 0; i < 4; i++)
        CHECK("exit-first: create held producer",
              pthread_create(&prod[i], NULL, held_producer, (void *)i) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(prod[i], NULL);
    CHECK("exit-first: heap consistent while owners are dead", tide_check_heap() >= 0);
    for (uintptr_t i = 0; i < 4; i++)
        CHECK("exit-first: create freer", pthread_create(&prod[i], NULL, held_freer, (void *)i) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(prod[i], NULL);
    int left = 0;
    for (size_t i = 0; i < 4 * HELD_PER; i++)
        if (held[i]) {
            left++;
            check_and_free(held[i]);
        }
    CHECKF("exit-first: all held blocks freed by other threads", left == 0, "%d left", left);
    CHECK("exit-first: heap consistent at the end", tide_check_heap() >= 0);
}

/* ---- 4. pthread_key destructors that allocate ---------------------------------- */
#define TSD_THREADS 200
#define TSD_MAGIC_STATIC 0x5354415449435354ull
#define TSD_MAGIC_HEAP   0x4845415048454150ull

struct tsd {
    uint64_t magic;
    int round;
    void *blk;
};

static pthread_key_t tsd_key;
static atomic_int tsd_calls;
static void *tsd_leftover[TSD_THREADS * 2];
static atomic_int tsd_nleft;
static struct tsd tsd_static[TSD_THREADS];

static void tsd_destructor(void *v)
{
    struct tsd *t = v;
    atomic_fetch_add(&tsd_calls, 1);
    if (t->magic != TSD_MAGIC_STATIC && t->magic != TSD_MAGIC_HEAP) {
        report(&n_bad_content, "tsd: destructor got a corrupted value", t, sizeof *t);
        return;
    }
    if (t->blk)
        check_and_free(t->blk);
    /* Allocate and free in the middle of thread exit. */
    static const size_t sizes[] = { 1, 24, 200, 1000, 5000, 70000, 300000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i] < MT_HDR ? MT_HDR : sizes[i];
        void *p = malloc(n);
        if (!p) {
            report(&n_bad_alloc, "tsd: malloc in destructor returned NULL", NULL, n);
            continue;
        }
        mt_fill(p, n, 0xD0 + i);
        void *q = calloc(3, n);
        if (q && !mt_is_zero(q, 3 * n))
            report(&n_bad_zero, "tsd: calloc in destructor not zeroed", q, 3 * n);
        free(q);
        check_and_free(p);
    }
    /* Something that outlives the thread, freed by main. */
    void *keep = malloc(100);
    if (keep) {
        mt_fill(keep, 100, 0xEE);
        int idx = atomic_fetch_add(&tsd_nleft, 1);
        if (idx < TSD_THREADS * 2)
            tsd_leftover[idx] = keep;
        else
            free(keep);
    }
    int round = t->round;
    if (t->magic == TSD_MAGIC_HEAP)
        free(t);
    if (round == 0) {                      /* re-arm: a second destructor round */
        struct tsd *n = malloc(sizeof *n);
        if (n) {
            n->magic = TSD_MAGIC_HEAP;
            n->round = 1;
            n->blk = malloc(500);
            if (n->blk)
                mt_fill(n->blk, 500, 0xAB);
            pthread_setspecific(tsd_key, n);
        }
    }
}

static void *tsd_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    if (id % 2 == 0) {
        /* Allocates normally, so the thread has a cache and an arena. */
        void *tmp[20];
        for (int i = 0; i < 20; i++)
            tmp[i] = malloc(16 + (size_t)i * 40);
        for (int i = 0; i < 20; i += 2)
            free(tmp[i]);
        for (int i = 1; i < 20; i += 2)
            free(tmp[i]);
        struct tsd *t = malloc(sizeof *t);
        if (!t)
            return NULL;
        t->magic = TSD_MAGIC_HEAP;
        t->round = 0;
        t->blk = malloc(700);
        if (t->blk)
            mt_fill(t->blk, 700, id);
        pthread_setspecific(tsd_key, t);
    } else {
        /* Never allocates before the destructor runs. */
        struct tsd *t = &tsd_static[id];
        t->magic = TSD_MAGIC_STATIC;
        t->round = 0;
        t->blk = NULL;
        pthread_setspecific(tsd_key, t);
    }
    return NULL;
}

static void test_tsd_destructors(void)
{
    CHECK("tsd: pthread_key_create", pthread_key_create(&tsd_key, tsd_destructor) == 0);
    pthread_attr_t det;
    pthread_attr_init(&det);
    pthread_attr_setdetachstate(&det, PTHREAD_CREATE_DETACHED);
    for (uintptr_t base = 0; base < TSD_THREADS; base += 4) {
        pthread_t th[4];
        for (uintptr_t i = 0; i < 4; i++) {
            uintptr_t id = base + i;
            /* the last of every 4 is detached */
            CHECK("tsd: pthread_create",
                  create_retry(&th[i], i == 3 ? &det : NULL, tsd_thread, (void *)id) == 0);
        }
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
    }
    pthread_attr_destroy(&det);
    mt_wait_single_threaded();
    CHECKF("tsd: every destructor ran twice", atomic_load(&tsd_calls) == 2 * TSD_THREADS,
           "%d calls, expected %d", atomic_load(&tsd_calls), 2 * TSD_THREADS);
    int nleft = atomic_load(&tsd_nleft);
    CHECKF("tsd: every destructor round left a block", nleft == 2 * TSD_THREADS, "%d", nleft);
    CHECK("tsd: heap consistent with blocks from destructors", tide_check_heap() >= 0);
    int bad = 0;
    for (int i = 0; i < nleft && i < TSD_THREADS * 2; i++) {
        size_t n;
        if (!mt_verify(tsd_leftover[i], &n) || n != 100)
            bad++;
        free(tsd_leftover[i]);
    }
    CHECKF("tsd: blocks allocated in destructors intact", bad == 0, "%d bad", bad);
    pthread_key_delete(tsd_key);
    CHECK("tsd: heap consistent at the end", tide_check_heap() >= 0);
}

/* ---- 5. tide_thread_cache_flush() ------------------------------------------------- */
static void *flush_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    tide_thread_cache_flush();            /* before the thread's first allocation */
    tide_thread_cache_flush();
    if (id == 0)
        return NULL;                      /* a thread that only flushes */
    mt_rng r;
    mt_seed(&r, 333 + id);
    void *keep[32] = { 0 };
    for (int it = 0; it < 20000; it++) {
        int k = (int)(mt_next(&r) % 32);
        if (keep[k])
            check_and_free(keep[k]);
        size_t n = mt_range(&r, MT_HDR, it % 100 == 0 ? 200000 : 1500);
        keep[k] = malloc(n);
        if (keep[k])
            mt_fill(keep[k], n, (uint64_t)it);
        else
            report(&n_bad_alloc, "flush: malloc returned NULL", NULL, n);
        if (it % 500 == 0)
            tide_thread_cache_flush();
        if (it % 5000 == 1) {
            tide_thread_cache_flush();
            tide_thread_cache_flush();
        }
    }
    for (int k = 0; k < 32; k++)
        if (keep[k])
            check_and_free(keep[k]);
    tide_thread_cache_flush();
    return NULL;
}

static void test_cache_flush(void)
{
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK("flush: pthread_create", pthread_create(&th[i], NULL, flush_thread, (void *)i) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    mt_wait_single_threaded();
    CHECK("flush: heap consistent after concurrent flushes", tide_check_heap() >= 0);

    /* Only the main thread is left: fill its cache, then flush it. */
    tide_thread_cache_flush();
    struct tide_stats s0, s1, s2;
    tide_get_stats(&s0);
    static const size_t sizes[] = { 24, 100, 500 };
    void *blk[3][7];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 7; j++)
            blk[i][j] = malloc(sizes[i]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 7; j++)
            free(blk[i][j]);
    tide_get_stats(&s1);
    CHECKF("flush: freeing small blocks fills the thread cache",
           s1.cached_bytes > s0.cached_bytes,
           "cached_bytes %zu before, %zu after 21 frees", s0.cached_bytes, s1.cached_bytes);
    tide_thread_cache_flush();
    tide_get_stats(&s2);
    CHECKF("flush: no cached bytes left once the only thread flushed", s2.cached_bytes == 0,
           "cached_bytes %zu (was %zu)", s2.cached_bytes, s1.cached_bytes);
    CHECK("flush: heap consistent after flush", tide_check_heap() >= 0);
}

/* ------------------------------------------------------------------------------- */
int main(void)
{
    mt_watchdog(200, "test_threads");
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *iters = getenv("TIDE_TEST_STRESS_ITERS");
    if (iters && atol(iters) > 0)
        stress_iters = atol(iters);
    const char *churn = getenv("TIDE_TEST_CHURN_THREADS");
    if (churn && atol(churn) > 0)
        churn_total = (uintptr_t)atol(churn);
    printf("test_threads: %ld cpus\n", mt_ncpus());

    tide_thread_cache_flush();
    struct tide_stats base;
    tide_get_stats(&base);

    mt_stage = 1;
    test_stress();
    mt_stage = 2;
    test_churn();
    mt_stage = 3;
    test_exit_before_free();
    mt_stage = 4;
    test_tsd_destructors();
    mt_stage = 5;
    test_cache_flush();
    mt_stage = 6;

    CHECKF("no block was corrupted", atomic_load(&n_bad_content) == 0, "%ld corrupted",
           (long)atomic_load(&n_bad_content));
    CHECKF("no allocation failed or was misaligned", atomic_load(&n_bad_alloc) == 0, "%ld bad",
           (long)atomic_load(&n_bad_alloc));
    CHECKF("calloc always zeroed", atomic_load(&n_bad_zero) == 0, "%ld not zeroed",
           (long)atomic_load(&n_bad_zero));

    mt_wait_single_threaded();
    tide_thread_cache_flush();
    long chunks = tide_check_heap();
    CHECKF("final tide_check_heap()", chunks >= 0, "%ld", chunks);
    struct tide_stats st;
    tide_get_stats(&st);
    long limit = 8 * mt_ncpus();
    printf("stats: narenas %zu, nheaps %zu, in_use %zu (start %zu), mmapped %zu chunks/%zu bytes, "
           "system %zu, free %zu, cached %zu\n",
           st.narenas, st.nheaps, st.in_use_bytes, base.in_use_bytes, st.mmapped_chunks,
           st.mmapped_bytes, st.system_bytes, st.free_bytes, st.cached_bytes);
    CHECKF("stats: at least one arena", st.narenas >= 1, "narenas %zu", st.narenas);
    CHECKF("stats: arenas within the default limit (8 x cpus)", st.narenas <= (size_t)limit,
           "narenas %zu, limit %ld", st.narenas, limit);
    CHECKF("stats: in-use bytes back near the start after everything was freed",
           st.in_use_bytes <= base.in_use_bytes + 2u * 1024 * 1024,
           "in_use %zu, at start %zu", st.in_use_bytes, base.in_use_bytes);
    CHECKF("stats: no mmapped chunk left behind",
           st.mmapped_bytes <= base.mmapped_bytes + 1024u * 1024,
           "mmapped %zu bytes in %zu chunks, at start %zu bytes in %zu chunks",
           st.mmapped_bytes, st.mmapped_chunks, base.mmapped_bytes, base.mmapped_chunks);
    CHECKF("stats: nothing cached after the final flush", st.cached_bytes == 0, "cached %zu",
           st.cached_bytes);
    return harness_finish();
}
