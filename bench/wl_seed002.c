/*
 * wl_seed002 - the "seed 002" scenario: a NoSQL-like server whose memory is
 * handed back to malloc but never reaches the operating system.
 *
 * Modelled after the incident report (a database-like NoSQL system on
 * glibc ptmalloc2): the program's own bookkeeping says little is live, yet
 * VmRSS stays at the peak.  The server has THREADS worker threads and four
 * users of malloc, each with the allocation pattern of the report:
 *
 *  pool    a global pool that takes 2 MiB blocks from malloc, carves them
 *          into 64 KiB units and never gives a block back while the server
 *          runs (hash tables / B-trees take their pages from it);
 *  p64     a pool of 64 KiB blocks taken one at a time from malloc and
 *          likewise kept; requests for more than 64 KiB go straight to
 *          malloc, so each request does  malloc 64K, malloc 100K, malloc 64K,
 *          free 100K  - the freed 100 KiB hole is later split by the next
 *          64 KiB malloc, leaving a 36 KiB fragment no 64 KiB request can use;
 *  values  long-lived values of 72..192 KiB (most do not fit such holes),
 *          replaced at random;
 *  cache   a cache of long-lived 2 MiB blocks, replaced one at a time
 *          (free one, then malloc a new one);
 *  net     the network layer: malloc(2 MiB) per request, freed when the
 *          request completes (this is what makes ptmalloc raise its mmap
 *          threshold to 2 MiB + 4 KiB, so all the 2 MiB blocks above end up
 *          in the heaps instead of in mmaps).
 *
 * Load phase: REQUESTS requests per thread; during the first half the
 * tables grow (the working set ramps up to its peak, about 1.3 GiB at the
 * default scale, 200 MiB with --quick), then they are replaced at random.
 * Reported: time_s (load phase), ops = requests, ops_per_s = requests/s.
 *
 * Drain: the server drops almost everything.  Survivors are picked among
 * all live blocks sorted by address, at evenly spaced byte positions, so
 * that about 5 % of the bytes (a few dozen blocks) stay live, spread over
 * the whole heap.  Then the server idles, the worker threads alive; times
 * are counted from the last free of the drain:
 *   rss_drain_kb  VmRSS right after the drain
 *   rss_1s_kb     VmRSS after the short idle time (1 s; 0.2 s with --quick)
 *   rss_2s_kb     VmRSS after the middle idle time (2 s; 0.5 s with --quick)
 *   rss_5s_kb     VmRSS after the long idle time (5 s; 1 s with --quick)
 *   rss_trim_kb   VmRSS after malloc_trim(0) (called after the idle time),
 *                 or n/a if the allocator serving malloc has no malloc_trim
 *   live_bytes    bytes still allocated by the program; ratio_drain,
 *                 ratio_1s, ratio_2s, ratio_5s and ratio_trim are the RSS
 *                 figures divided by it.
 *   idle_allocs   malloc calls made during the idle time (all threads).
 * The idle phase (--idle MODE) is one of
 *   quiet  (default) nobody calls the allocator: every worker thread parks
 *          in pthread_cond_wait, the main thread sleeps (nanosleep) and reads
 *          VmRSS with open/read into a stack buffer.  What an allocator gives
 *          back here it gives back on its own (a background thread, a timer),
 *          not because the program happened to call it;
 *   cache  every worker thread does ~10 small (24..480 B) malloc/free pairs
 *          per second; each size was allocated and freed by that thread
 *          right before the drain ended, so these are thread-cache hits in
 *          allocators that have a thread cache (a mostly idle server whose
 *          threads still touch a few small objects);
 *   tick   the main thread does a 256 B and a 64 KiB malloc/free every
 *          10 ms (the 64 KiB block is past every thread cache and reaches
 *          the arena each time; this drives an allocator's amortized
 *          release and was the only idle mode before quiet and cache).
 *
 * Options: --quick, --threads N, --scale X (memory), --requests N (per
 * thread), --idle-short S, --idle-mid S, --idle-long S,
 * --idle quiet|cache|tick.
 * Every block is stamped on every page and verified before it is freed.
 *
 * With -DSEED002_NO_MAIN the file provides seed002_main() only (the demo
 * program links it in and re-executes itself under LD_PRELOAD).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)
#define KIB ((size_t)1 << 10)
#define BLOCK_2M (2 * MIB)
#define UNIT (64 * KIB)
#define UNITS_PER_BLOCK (BLOCK_2M / UNIT)
#define TMP_VALUE (100 * KIB)
#define PAGE 4096

enum idle_mode { IDLE_QUIET, IDLE_CACHE, IDLE_TICK };
static const char *idle_name[] = { "quiet", "cache", "tick" };

enum kind { K_POOL, K_P64, K_VALUE, K_CACHE };
static const char *kind_name[] = { "pool block", "64K block", "value", "cache block" };

/* One block obtained from malloc and still held by the program. */
struct rec {
    void *p;
    size_t size;
    uint64_t tag;
    int kind;
    int keep;
};

/* A 64 KiB unit carved from a pool block. */
struct unit { void *p; uint64_t tag; };

struct worker {
    pthread_t th;
    int id;
    rng_t rng;
    uint64_t tag;
    struct unit *units;  size_t nunits;    /* table of pool units        */
    struct rec **p64;    size_t np64;      /* 64K blocks in use          */
    struct rec *vals;    size_t nvals;     /* long-lived values          */
    uint64_t allocs;
    uint64_t idle_allocs;          /* malloc calls while idle (--idle cache) */
};

static struct cfg {
    int threads;
    double scale;
    long requests;                 /* per thread */
    double idle_short, idle_mid, idle_long;
    int idle_mode;                 /* IDLE_* */
    size_t units, p64, vals, cache;  /* capacities (per thread, cache global) */
} cfg;

static struct worker *workers;
static pthread_barrier_t bar;
static atomic_ullong live_bytes, peak_live;

static struct {
    pthread_mutex_t mu;
    struct rec *blocks; size_t nblocks, capblocks;
    void **free_units;  size_t nfree;
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

static struct {
    pthread_mutex_t mu;
    struct rec *all; size_t nall, capall;     /* every 64K block ever taken */
    struct rec **free; size_t nfree;
} p64pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

static struct {
    pthread_mutex_t mu;
    struct rec *slot; size_t n;
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* End of the idle phase: the workers park (or tick) until stop is set. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
} idle = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
static atomic_int idle_stop;

/* ---- malloc wrappers with accounting and stamping ---------------------- */
static void live_add(size_t n)
{
    unsigned long long v = atomic_fetch_add(&live_bytes, n) + n;
    unsigned long long pk = atomic_load(&peak_live);
    while (v > pk && !atomic_compare_exchange_weak(&peak_live, &pk, v))
        ;
}

static void *xmalloc(struct worker *w, size_t n, uint64_t tag)
{
    void *p = malloc(n);
    if (!p)
        bench_fail("malloc(%zu) returned NULL", n);
    stamp_block(p, n, tag, PAGE);
    live_add(n);
    if (w)
        w->allocs++;
    return p;
}

static void xfree(void *p, size_t n, uint64_t tag, const char *what)
{
    if (!stamp_ok(p, n, tag, PAGE))
        bench_fail("%s %p (%zu bytes) corrupted before free", what, p, n);
    free(p);
    atomic_fetch_sub(&live_bytes, n);
}

static uint64_t next_tag(struct worker *w) { return ((uint64_t)(w->id + 1) << 48) | w->tag++; }

/* ---- the global 2 MiB-block pool --------------------------------------- */
static void *pool_get(struct worker *w)
{
    pthread_mutex_lock(&pool.mu);
    if (pool.nfree == 0) {
        if (pool.nblocks == pool.capblocks)
            bench_fail("pool bookkeeping overflow");
        struct rec *b = &pool.blocks[pool.nblocks++];
        b->kind = K_POOL;
        b->size = BLOCK_2M;
        b->tag = next_tag(w);
        b->p = xmalloc(w, BLOCK_2M, b->tag);
        for (size_t i = UNITS_PER_BLOCK; i-- > 0;)
            pool.free_units[pool.nfree++] = (char *)b->p + i * UNIT;
    }
    void *u = pool.free_units[--pool.nfree];
    pthread_mutex_unlock(&pool.mu);
    return u;
}

static void pool_put(void *u)
{
    pthread_mutex_lock(&pool.mu);
    pool.free_units[pool.nfree++] = u;
    pthread_mutex_unlock(&pool.mu);
}

/* ---- the 64 KiB-block pool ---------------------------------------------- */
static struct rec *p64_get(struct worker *w)
{
    pthread_mutex_lock(&p64pool.mu);
    struct rec *r;
    if (p64pool.nfree) {
        r = p64pool.free[--p64pool.nfree];
        pthread_mutex_unlock(&p64pool.mu);
        if (!stamp_ok(r->p, r->size, r->tag, PAGE))
            bench_fail("pooled 64K block %p corrupted", r->p);
        r->tag = next_tag(w);
        stamp_block(r->p, r->size, r->tag, PAGE);
        return r;
    }
    if (p64pool.nall == p64pool.capall)
        bench_fail("64K pool bookkeeping overflow");
    r = &p64pool.all[p64pool.nall++];
    pthread_mutex_unlock(&p64pool.mu);
    r->kind = K_P64;
    r->size = UNIT;
    r->tag = next_tag(w);
    r->p = xmalloc(w, UNIT, r->tag);
    return r;
}

static void p64_put(struct rec *r)
{
    if (!stamp_ok(r->p, r->size, r->tag, PAGE))
        bench_fail("64K block %p corrupted", r->p);
    pthread_mutex_lock(&p64pool.mu);
    p64pool.free[p64pool.nfree++] = r;
    pthread_mutex_unlock(&p64pool.mu);
}

/* ---- one request --------------------------------------------------------- */
/* Slot to use in a table of capacity cap that ramps up to full during the
 * first half of the load: the next empty slot while the table is growing,
 * otherwise a random occupied one.  *filled counts the occupied slots.     */
static size_t pick_slot(struct worker *w, size_t cap, size_t *filled, long i, int *fresh)
{
    double prog = (double)(i + 1) / ((double)cfg.requests / 2.0);
    size_t active = prog >= 1.0 ? cap : (size_t)((double)cap * prog) + 1;
    if (active > cap)
        active = cap;
    if (*filled < active) {
        *fresh = 1;
        return (*filled)++;
    }
    *fresh = 0;
    return (size_t)(rng_next(&w->rng) % *filled);
}

static void cache_op(struct worker *w, long i)
{
    double prog = (double)(i + 1) / ((double)cfg.requests / 2.0);
    size_t active = prog >= 1.0 ? cfg.cache : (size_t)((double)cfg.cache * prog) + 1;
    if (active > cfg.cache)
        active = cfg.cache;
    pthread_mutex_lock(&cache.mu);
    struct rec *r;
    if (cache.n < active) {
        r = &cache.slot[cache.n++];
    } else {
        r = &cache.slot[rng_next(&w->rng) % cache.n];
        xfree(r->p, r->size, r->tag, "cache block");     /* free one ... */
    }
    r->kind = K_CACHE;
    r->size = BLOCK_2M;
    r->tag = next_tag(w);
    r->p = xmalloc(w, BLOCK_2M, r->tag);                  /* ... then malloc a new one */
    pthread_mutex_unlock(&cache.mu);
}

static void place_p64(struct worker *w, struct rec *r, long i)
{
    int fresh;
    size_t s = pick_slot(w, cfg.p64, &w->np64, i, &fresh);
    if (!fresh)
        p64_put(w->p64[s]);
    w->p64[s] = r;
}

static void request(struct worker *w, long i)
{
    /* network layer: a 2 MiB buffer for the request */
    uint64_t net_tag = next_tag(w);
    void *net = xmalloc(w, BLOCK_2M, net_tag);

    /* a page for a data structure, from the 2 MiB-block pool */
    int fresh;
    size_t s = pick_slot(w, cfg.units, &w->nunits, i, &fresh);
    struct unit *u = &w->units[s];
    if (!fresh) {
        if (!stamp_ok(u->p, UNIT, u->tag, PAGE))
            bench_fail("pool unit %p corrupted", u->p);
        pool_put(u->p);
    }
    u->p = pool_get(w);
    u->tag = next_tag(w);
    stamp_block(u->p, UNIT, u->tag, PAGE);

    /* 64K, 100K, 64K; the 100K request value is freed when done */
    struct rec *a = p64_get(w);
    uint64_t vt = next_tag(w);
    void *v = xmalloc(w, TMP_VALUE, vt);
    struct rec *b = p64_get(w);
    place_p64(w, a, i);
    place_p64(w, b, i);
    xfree(v, TMP_VALUE, vt, "request value");

    /* every other request stores a long-lived value of 72..192 KiB */
    if (i % 2 == 0) {
        s = pick_slot(w, cfg.vals, &w->nvals, i, &fresh);
        struct rec *r = &w->vals[s];
        if (!fresh)
            xfree(r->p, r->size, r->tag, "value");
        r->kind = K_VALUE;
        r->size = (size_t)rng_range(&w->rng, 72 * KIB, 192 * KIB);
        r->tag = next_tag(w);
        r->p = xmalloc(w, r->size, r->tag);
    }

    /* every 4th request replaces a cache block */
    if (i % 4 == 1)
        cache_op(w, i);

    xfree(net, BLOCK_2M, net_tag, "network buffer");
}

/* ---- idle (worker side) --------------------------------------------------- */
/* --idle cache: the small sizes each worker allocates while idle. */
static const size_t cache_sizes[] = { 24, 64, 200, 480 };
#define NCACHE_SIZES (sizeof cache_sizes / sizeof cache_sizes[0])
#define CACHE_PERIOD_S 0.1        /* one malloc/free pair per 100 ms */

static void small_pair(struct worker *w, size_t n)
{
    uint64_t tag = next_tag(w);
    void *p = malloc(n);
    if (!p)
        bench_fail("malloc(%zu) failed while idle", n);
    stamp_block(p, n, tag, 8);
    if (!stamp_ok(p, n, tag, 8))
        bench_fail("idle block %p (%zu bytes) corrupted", p, n);
    free(p);
}

static void worker_idle(struct worker *w)
{
    if (cfg.idle_mode == IDLE_CACHE) {
        for (size_t k = 0; !atomic_load(&idle_stop); k++) {
            sleep_s(CACHE_PERIOD_S);
            small_pair(w, cache_sizes[k % NCACHE_SIZES]);
            w->idle_allocs++;
        }
        return;
    }
    /* quiet and tick: parked, no allocator call at all */
    pthread_mutex_lock(&idle.mu);
    while (!idle.stop)
        pthread_cond_wait(&idle.cv, &idle.mu);
    pthread_mutex_unlock(&idle.mu);
}

/* ---- worker thread ------------------------------------------------------- */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&bar);                 /* B0: start */
    for (long i = 0; i < cfg.requests; i++)
        request(w, i);
    pthread_barrier_wait(&bar);                 /* B1: load done */
    pthread_barrier_wait(&bar);                 /* B2: survivors chosen */
    /* drain: drop the unit table (units live in pool blocks), free what
     * this thread holds except the survivors */
    for (size_t k = 0; k < w->nunits; k++)
        if (!stamp_ok(w->units[k].p, UNIT, w->units[k].tag, PAGE))
            bench_fail("pool unit %p corrupted at drain", w->units[k].p);
    w->nunits = 0;
    for (size_t k = 0; k < w->np64; k++) {
        struct rec *r = w->p64[k];
        if (!r->keep) {
            xfree(r->p, r->size, r->tag, "64K block");
            r->p = NULL;
        }
    }
    for (size_t k = 0; k < w->nvals; k++) {
        struct rec *r = &w->vals[k];
        if (!r->keep) {
            xfree(r->p, r->size, r->tag, "value");
            r->p = NULL;
        }
    }
    /* --idle cache: put one block of each idle size into this thread's
     * cache now, so the idle-time calls are cache hits */
    if (cfg.idle_mode == IDLE_CACHE)
        for (size_t k = 0; k < NCACHE_SIZES; k++)
            small_pair(w, cache_sizes[k]);
    pthread_barrier_wait(&bar);                 /* B3: drained */
    worker_idle(w);                             /* until the main thread is done */
    return NULL;
}

/* ---- survivors ------------------------------------------------------------ */
static int by_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(struct rec *const *)a)->p;
    uintptr_t y = (uintptr_t)(*(struct rec *const *)b)->p;
    return x < y ? -1 : x > y;
}

/* Collects every live block (pointers into the bookkeeping arrays). */
static size_t collect(struct rec **out)
{
    size_t n = 0;
    for (size_t i = 0; i < pool.nblocks; i++)
        if (pool.blocks[i].p) out[n++] = &pool.blocks[i];
    for (size_t i = 0; i < p64pool.nall; i++)
        if (p64pool.all[i].p) out[n++] = &p64pool.all[i];
    for (int t = 0; t < cfg.threads; t++)
        for (size_t i = 0; i < workers[t].nvals; i++)
            if (workers[t].vals[i].p) out[n++] = &workers[t].vals[i];
    for (size_t i = 0; i < cache.n; i++)
        if (cache.slot[i].p) out[n++] = &cache.slot[i];
    return n;
}

/* Marks survivors at evenly spaced byte positions of the address-sorted
 * list so that about keep_frac of the bytes stay live.  A position falls
 * into a block with a probability proportional to its size, so the number
 * of positions is keep_frac * total / (size-weighted mean size).          */
static size_t choose_survivors(struct rec **all, size_t n, double keep_frac, size_t *nkeep)
{
    qsort(all, n, sizeof *all, by_addr);
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)all[i]->size;
        sum2 += (double)all[i]->size * (double)all[i]->size;
    }
    size_t k = (size_t)(keep_frac * sum * sum / sum2 + 0.5);
    if (k < 4) k = 4;
    if (k > n) k = n;
    double step = sum / (double)k, next = step / 2, cum = 0;
    size_t kept = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        double end = cum + (double)all[i]->size;
        if (next < end) {
            all[i]->keep = 1;
            kept++;
            bytes += all[i]->size;
            while (next < end)
                next += step;
        }
        cum = end;
    }
    *nkeep = kept;
    return bytes;
}

/* ---- idle (main thread) --------------------------------------------------- */
/* Sleeps until t_end; --idle tick: with a 256 B and a 64 KiB malloc/free
 * every 10 ms.  Otherwise nanosleep only: no allocator call.             */
static void idle_until(double t_end, rng_t *r, uint64_t *n_allocs)
{
    while (now_s() < t_end) {
        if (cfg.idle_mode == IDLE_TICK) {
            uint64_t t1 = rng_next(r), t2 = rng_next(r);
            void *a = malloc(256);
            void *b = malloc(UNIT);
            if (!a || !b)
                bench_fail("malloc failed while idle");
            stamp_block(a, 256, t1, 64);
            stamp_block(b, UNIT, t2, PAGE);
            if (!stamp_ok(a, 256, t1, 64) || !stamp_ok(b, UNIT, t2, PAGE))
                bench_fail("housekeeping block corrupted");
            free(b);
            free(a);
            *n_allocs += 2;
            double left = t_end - now_s();
            sleep_s(left < 0.01 ? left : 0.01);
        } else {
            sleep_s(t_end - now_s());
        }
    }
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p)
        bench_fail("out of memory for the bookkeeping");
    return p;
}

static double kb_ratio(long kb, size_t live)
{
    return live ? (double)kb * 1024.0 / (double)live : 0.0;
}

int seed002_main(int argc, char **argv)
{
    bench_set_name("seed002");
    int quick = bench_quick(argc, argv);
    const char *a;
    cfg.threads = (a = bench_arg(argc, argv, "--threads")) ? atoi(a) : 8;
    cfg.scale = (a = bench_arg(argc, argv, "--scale")) ? atof(a) : (quick ? 0.15 : 1.0);
    cfg.requests = (a = bench_arg(argc, argv, "--requests")) ? atol(a) : (quick ? 600 : 3000);
    cfg.idle_short = (a = bench_arg(argc, argv, "--idle-short")) ? atof(a) : (quick ? 0.2 : 1.0);
    cfg.idle_mid = (a = bench_arg(argc, argv, "--idle-mid")) ? atof(a) : (quick ? 0.5 : 2.0);
    cfg.idle_long = (a = bench_arg(argc, argv, "--idle-long")) ? atof(a) : (quick ? 1.0 : 5.0);
    cfg.idle_mode = IDLE_QUIET;
    if ((a = bench_arg(argc, argv, "--idle"))) {
        int m;
        for (m = 0; m < 3 && strcmp(a, idle_name[m]) != 0; m++)
            ;
        if (m == 3)
            bench_fail("--idle %s: expected quiet, cache or tick", a);
        cfg.idle_mode = m;
    }
    if (cfg.threads < 1 || cfg.threads > 256 || cfg.scale <= 0 || cfg.requests < 8)
        bench_fail("bad option (threads 1..256, scale > 0, requests >= 8)");
    if (!(cfg.idle_short >= 0 && cfg.idle_short <= cfg.idle_mid && cfg.idle_mid <= cfg.idle_long))
        bench_fail("bad option (0 <= idle-short <= idle-mid <= idle-long)");
    /* capacities at scale 1 with 8 threads: pool 512 MiB, 64K blocks
     * 256 MiB, values ~260 MiB, cache 320 MiB (+ requests in flight) */
    double per_thread = cfg.scale * 8.0 / cfg.threads;
    cfg.units = (size_t)(1024 * per_thread) + 1;
    cfg.p64 = (size_t)(512 * per_thread) + 2;
    cfg.vals = (size_t)(256 * per_thread) + 1;
    cfg.cache = (size_t)(160 * cfg.scale) + 1;

    size_t T = (size_t)cfg.threads;
    pool.capblocks = (T * (cfg.units + 1)) / UNITS_PER_BLOCK + 2;
    pool.blocks = xcalloc(pool.capblocks, sizeof *pool.blocks);
    pool.free_units = xcalloc(pool.capblocks * UNITS_PER_BLOCK, sizeof *pool.free_units);
    p64pool.capall = T * (cfg.p64 + 2) + 4;
    p64pool.all = xcalloc(p64pool.capall, sizeof *p64pool.all);
    p64pool.free = xcalloc(p64pool.capall, sizeof *p64pool.free);
    cache.slot = xcalloc(cfg.cache, sizeof *cache.slot);
    workers = xcalloc(T, sizeof *workers);
    for (size_t t = 0; t < T; t++) {
        struct worker *w = &workers[t];
        w->id = (int)t;
        rng_seed(&w->rng, 0x5EED002 + t);
        w->units = xcalloc(cfg.units, sizeof *w->units);
        w->p64 = xcalloc(cfg.p64, sizeof *w->p64);
        w->vals = xcalloc(cfg.vals, sizeof *w->vals);
    }
    size_t maxrec = pool.capblocks + p64pool.capall + T * cfg.vals + cfg.cache;
    struct rec **all = xcalloc(maxrec, sizeof *all);
    long base_rss = status_kb("VmRSS");

    pthread_barrier_init(&bar, NULL, (unsigned)T + 1);
    for (size_t t = 0; t < T; t++)
        if (pthread_create(&workers[t].th, NULL, worker_main, &workers[t]))
            bench_fail("pthread_create failed");

    /* ---- load ---- */
    double t0 = now_s();
    pthread_barrier_wait(&bar);                 /* B0 */
    pthread_barrier_wait(&bar);                 /* B1 */
    double t_load = now_s() - t0;
    long requests = cfg.requests * (long)T;
    uint64_t allocs = 0;
    for (size_t t = 0; t < T; t++)
        allocs += workers[t].allocs;
    long rss_load = status_kb("VmRSS");
    unsigned long long live_load = atomic_load(&live_bytes);

    /* ---- drain ---- */
    size_t nrec = collect(all);
    size_t nkeep;
    size_t keep_bytes = choose_survivors(all, nrec, 0.05, &nkeep);
    pthread_barrier_wait(&bar);                 /* B2: workers drain their tables */
    pthread_barrier_wait(&bar);                 /* B3 */
    /* the pools and the cache are dropped: pool units are gone with the
     * workers' tables, so the pool keeps only the survivor blocks */
    for (size_t i = 0; i < pool.nblocks; i++) {
        struct rec *r = &pool.blocks[i];
        if (!r->p)
            continue;
        if (r->keep) {
            /* its units carry their own stamps (verified by the workers);
             * stamp the whole block again so it can be checked at the end */
            stamp_block(r->p, r->size, r->tag, PAGE);
        } else {
            free(r->p);
            atomic_fetch_sub(&live_bytes, r->size);
            r->p = NULL;
        }
    }
    pool.nfree = 0;
    for (size_t i = 0; i < p64pool.nfree; i++) {
        struct rec *r = p64pool.free[i];
        if (r->p && !r->keep) {
            xfree(r->p, r->size, r->tag, kind_name[r->kind]);
            r->p = NULL;
        }
    }
    p64pool.nfree = 0;
    for (size_t i = 0; i < cache.n; i++) {
        struct rec *r = &cache.slot[i];
        if (r->p && !r->keep) {
            xfree(r->p, r->size, r->tag, kind_name[r->kind]);
            r->p = NULL;
        }
    }
    double t_drained = now_s();
    long rss_drain = status_kb("VmRSS");
    unsigned long long live = atomic_load(&live_bytes);
    if (live != keep_bytes)
        bench_fail("bookkeeping: %llu bytes live after the drain, %zu expected",
                   live, keep_bytes);

    /* ---- idle ---- */
    rng_t ir;
    rng_seed(&ir, 77);
    uint64_t idle_allocs = 0;
    idle_until(t_drained + cfg.idle_short, &ir, &idle_allocs);
    long rss_1s = status_kb("VmRSS");
    idle_until(t_drained + cfg.idle_mid, &ir, &idle_allocs);
    long rss_2s = status_kb("VmRSS");
    idle_until(t_drained + cfg.idle_long, &ir, &idle_allocs);
    long rss_5s = status_kb("VmRSS");
    /* malloc_trim with the worker threads still alive (as before the idle
     * modes existed); cache mode: they stop their small pairs first */
    atomic_store(&idle_stop, 1);
    long rss_trim = -1;
    if (alloc_trim())
        rss_trim = status_kb("VmRSS");
    pthread_mutex_lock(&idle.mu);
    idle.stop = 1;
    pthread_cond_broadcast(&idle.cv);
    pthread_mutex_unlock(&idle.mu);
    for (size_t t = 0; t < T; t++) {
        pthread_join(workers[t].th, NULL);
        idle_allocs += workers[t].idle_allocs;
    }

    /* ---- the survivors are verified and freed; bookkeeping released ---- */
    size_t kinds[4] = { 0, 0, 0, 0 };
    nrec = collect(all);
    if (nrec != nkeep)
        bench_fail("bookkeeping: %zu blocks left, %zu survivors chosen", nrec, nkeep);
    for (size_t i = 0; i < nrec; i++) {
        kinds[all[i]->kind]++;
        xfree(all[i]->p, all[i]->size, all[i]->tag, kind_name[all[i]->kind]);
        all[i]->p = NULL;
    }
    for (size_t t = 0; t < T; t++) {
        free(workers[t].units);
        free(workers[t].p64);
        free(workers[t].vals);
    }
    free(workers);
    free(all);
    free(cache.slot);
    free(p64pool.all);
    free(p64pool.free);
    free(pool.blocks);
    free(pool.free_units);
    pthread_barrier_destroy(&bar);

    char trim_s[32], trim_r[32];
    if (rss_trim >= 0) {
        snprintf(trim_s, sizeof trim_s, "%ld", rss_trim);
        snprintf(trim_r, sizeof trim_r, "%.2f", kb_ratio(rss_trim, live));
    } else {
        snprintf(trim_s, sizeof trim_s, "n/a");
        snprintf(trim_r, sizeof trim_r, "n/a");
    }
    bench_result(t_load, (uint64_t)requests,
                 "unit=requests threads=%d scale=%.3g allocs=%llu base_rss_kb=%ld "
                 "peak_live_bytes=%llu live_load_bytes=%llu rss_load_kb=%ld "
                 "live_bytes=%llu kept_blocks=%zu kept_mix=%zu/%zu/%zu/%zu "
                 "rss_drain_kb=%ld rss_1s_kb=%ld rss_2s_kb=%ld rss_5s_kb=%ld rss_trim_kb=%s "
                 "ratio_drain=%.2f ratio_1s=%.2f ratio_2s=%.2f ratio_5s=%.2f ratio_trim=%s "
                 "idle=%s idle_short_s=%g idle_mid_s=%g idle_long_s=%g idle_allocs=%llu",
                 cfg.threads, cfg.scale, (unsigned long long)allocs, base_rss,
                 (unsigned long long)atomic_load(&peak_live), live_load, rss_load,
                 live, nkeep, kinds[K_POOL], kinds[K_P64], kinds[K_VALUE], kinds[K_CACHE],
                 rss_drain, rss_1s, rss_2s, rss_5s, trim_s,
                 kb_ratio(rss_drain, live), kb_ratio(rss_1s, live), kb_ratio(rss_2s, live),
                 kb_ratio(rss_5s, live), trim_r, idle_name[cfg.idle_mode], cfg.idle_short,
                 cfg.idle_mid, cfg.idle_long, (unsigned long long)idle_allocs);
    return 0;
}

#ifndef SEED002_NO_MAIN
int main(int argc, char **argv)
{
    return seed002_main(argc, argv);
}
#endif
