/*
 * api.c - the public entry points: malloc, free, calloc, realloc, the
 * aligned allocators, and the tide_ introspection calls.
 *
 * Layering (internal.h): api -> control (init, thread setup) -> tcache
 * (inline hit paths) -> arena (enter/leave) -> engine -> sysmem (mmapped
 * chunks) -> ... -> os.
 *
 * Hot path budget: malloc and free of a cached size class are one TLS
 * load, a bounds test, a list pop/push and a counter update - no lock, no
 * atomic.  Everything else is in the out-of-line *_slow functions.
 *
 * Allocation-site profiling (prof.h) adds nothing to the hot paths: when
 * it is on, tm_tls_tcache is NULL in every thread, so every call comes
 * here to a slow path, which counts the bytes and uses the thread's cache
 * through tm_tls_tcache_own.  The slow paths pay one test of
 * tm_fix.profiling (malloc, calloc and memalign of large blocks,
 * realloc) or of the chunk's S bit (free).
 *
 * Every function is defined once as tide_<name> and exported under both
 * names (an alias), so programs can call tidemalloc explicitly beside the
 * system allocator.  The __libc_* names are exported too: some programs
 * call them directly, and providing them keeps a static link from pulling
 * glibc's malloc.o in (duplicate symbols).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <string.h>
#include "arena.h"
#include "control.h"
#include "engine.h"
#include "family.h"
#include "harden.h"
#include "heap.h"
#include "observe.h"
#include "os.h"
#include "owner.h"
#include "prof.h"
#include "sysmem.h"
#include "tcache.h"
#include "tidemalloc.h"

static TM_NOINLINE void *malloc_slow(size_t n);
static TM_NOINLINE void free_slow(void *mem);
static TM_NOINLINE void free_full(tm_tcache *tc, tm_tc_entry *e, size_t i);
static TM_NOINLINE void free_big(tm_chunk *p, size_t size);

/* ---- malloc ------------------------------------------------------------- */
TM_EXPORT void *tide_malloc(size_t n)
{
    tm_tcache *tc = tm_tls_tcache;
    if (likely(tc != NULL)) {
        /* tc_req_class spelled out: its "none" test costs the small
         * classes 2 instructions a pair here (pair_cost 117 -> 119).    */
        size_t i;
        if (likely(n <= TM_TCACHE_MAX_REQ))
            i = tc_req_index(n);
        else if (n <= TM_TCACHE_MED_MAX_REQ)
            i = tc_med_req_index(n);     /* (empty while the medium classes are closed) */
        else
            return malloc_slow(n);
        void *mem = tc_try_pop(tc, i);
        if (likely(mem != NULL))
            return mem;
    }
    return malloc_slow(n);
}

/* Serve a request from the thread's arena (not the cache), or from one
 * other arena if that one is out of memory.  alignment 0: a chunk of nb
 * bytes, and *z receives the range known to read as zero (for calloc);
 * else memalign(alignment, bytes).                                     */
static void *arena_alloc(size_t nb, size_t alignment, size_t bytes, tm_zrange *z)
{
    tm_thread_setup();
    tm_arena *av = tm_arena_enter();
    if (unlikely(tm_harden_on()))
        tm_harden_drain(av);             /* quarantine over its bounds: evict */
    for (int attempt = 0;; attempt++) {
        void *mem = alignment ? tm_int_memalign(av, alignment, bytes) : tm_int_malloc(av, nb, z);
        tm_arena_leave(av);
        if (likely(mem != NULL)) {
            tm_bg_maybe_start();
            return mem;
        }
        if (attempt > 0 || !(av = tm_arena_retry(av))) {
            errno = ENOMEM;
            return NULL;
        }
    }
}

/* Class i is a medium class that is cached, yet closed to this thread
 * now (tc_slow_limit gave 0): let go of what the medium classes hold
 * (tcache.c, tm_tcache_drained_medium).                               */
static void medium_closed(tm_tcache *tc, size_t i)
{
    if (tc && i >= TM_TCACHE_SMALL_BINS && i < TM_TCACHE_BINS && tc_limit(i)) {
        tc_enter(tc);
        tm_tcache_drained_medium(tc);
        tc_leave(tc);
    }
}

/* A single-threaded process whose arena drains, swings or churns wants
 * the background thread (internal.h tm_solo_bg_wanted, release.h): a
 * program that frees its memory and goes quiet makes its last calls in
 * free, so free's slow paths start it too, after the free, with no lock
 * held and the cache left (pthread_create may call malloc).           */
static inline void solo_bg_start(void)
{
    if (unlikely(atomic_load_explicit(&tm_solo_bg_wanted, memory_order_relaxed)))
        tm_bg_maybe_start();
}

/* malloc after tm_ensure_init: the thread's cache, else an arena. */
static inline void *malloc_any(size_t n)
{
    if (unlikely(n > TM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t nb = request2size(n);
    tm_thread_setup();
    tm_obs_tick();
    tm_tcache *tc = tm_tls_tcache_own;
    size_t i = nb <= TM_TCACHE_MED_MAX ? tm_class_ceil(nb) : TM_TCACHE_BINS;
    size_t lim = tc && i < TM_TCACHE_BINS ? tc_slow_limit(tc, i) : 0;
    if (!lim) {
        medium_closed(tc, i);
    } else {
        tc_enter(tc);
        /* (a medium request is served at its class's size) */
        void *mem = tc->entries[i] ? tc_pop(tc, i) : tm_tcache_refill(tc, tm_class_size(i));
        tc_leave(tc);
        if (mem) {
            /* (a draining or swinging single-threaded process served
             * from its cache never reaches arena_alloc: release.h)     */
            solo_bg_start();
            return mem;
        }
    }
    return arena_alloc(nb, 0, 0, NULL);
}

/* Profiling: every malloc comes here.  A cache hit as on the fast path
 * (no slow-path accounting), else the full path; then the countdown.  */
static TM_NOINLINE void *malloc_profiled(size_t n)
{
    tm_tcache *tc = tm_tls_tcache_own;
    void *mem = NULL;
    if (tc && n <= TM_TCACHE_MAX_REQ)
        mem = tc_try_pop(tc, tc_req_index(n));
    if (!mem)
        mem = malloc_any(n);
    tm_prof_alloc(mem, n);
    return mem;
}

static TM_NOINLINE void *malloc_slow(size_t n)
{
    tm_ensure_init();
    if (unlikely(tm_fix.profiling))
        return malloc_profiled(n);
    return malloc_any(n);
}

/* ---- free --------------------------------------------------------------- */
/* The fast paths' test of a pointer the program gives back (free,
 * free_sized, malloc_usable_size), whose chunk's ownership the caller
 * tested (`owned`: reads no memory): a chunk of our heaps whose header is
 * intact and in use, without the bits in `excl` (M, and S for free), not
 * cached or parked, and (with the checks) recorded as in use by the next
 * chunk's P bit.  Its size word in *raw.  False: the slow path, which
 * tells every misuse apart.  No call, so no registers to save.
 *
 * The P bit: a chunk in a bin, or merged backward into its free
 * predecessor, has its successor's P clear, whatever its own header
 * says.  That header may be a replay: the in-use word, read while the
 * chunk was live and written back after its free, verifies (it was the
 * allocator's own), and without this test the chunk would be cached
 * while it lies in a bin (misuse double_free/binned_replayed).  The
 * verified size keeps the read inside the heap.  (A chunk in a fast bin
 * keeps P set: its header replayed, it is cached, and the bin's next
 * pop names it - misuse double_free/fast_replayed.)                   */
static TM_INLINE bool fast_given(void *mem, bool owned, size_t excl, size_t *raw)
{
    /* NULL: with the checks, never owned (its chunk, 16 bytes below 0,
     * is at the top of the address space, in no heap), so the ownership
     * test rejects it and a NULL test would be one more compare and
     * branch on every free.                                            */
    if (!likely((TIDE_CHECKS || mem != NULL) && owned))
        return false;
    tm_chunk *p = mem2chunk(mem);
    *raw = size_word_split(p);        /* (no stall after a cache's flip: chunk.h) */
    /* A cached or parked chunk fails the INUSE test (its header says
     * CACHED, chunk.h); without the checks only its key says so.     */
    return likely((*raw & excl) == 0 && hdr_ok(p, *raw, TM_ST_INUSE) &&
                  (TIDE_CHECKS || !tc_key_marked((tm_tc_entry *)mem)) &&
                  (!TIDE_CHECKS || prev_inuse_byte(chunk_at(p, word_size(*raw)))));
}

/* free_fast (below) once the pointer's chunk is known to be ours:
 * `home` (a constant at each call) whether it lay in the cache's own
 * range, so that the range test's answer is not tested a second time. */
static TM_INLINE bool free_fast_owned(tm_tcache *tc, void *mem, size_t claimed, bool home)
{
    size_t raw;
    if (likely(fast_given(mem, true, TM_IS_MMAPPED | TM_SAMPLED, &raw) &&
               claimed <= word_size(raw) - TM_SIZE_SZ)) {
        size_t i = tc_free_index(word_size(raw));
        tm_tc_entry *e = mem;
        if (unlikely(i >= TM_TCACHE_BINS)) {
            free_big(mem2chunk(mem), word_size(raw));   /* no class: the arena */
            return true;
        }
        size_t j = home ? i : tc_free_slot(tc, mem2chunk(mem), raw, i);
        if (likely(tc_try_push(tc, e, j, raw)))
            return true;
        /* (a closed medium class: the arena) */
        if (j >= TM_TCACHE_BINS || tc_my_limit(tc, j) != 0) {
            free_full(tc, e, j);
            return true;
        }
    }
    return false;
}
/* free's fast path, shared with free_sized: fast_given, then a cached
 * size class with room (a medium class has none while closed), or its
 * outbox for a chunk of another arena (tcache.h): push, nothing else.
 * `claimed`: the size the caller says the block has (free_sized), 0 for
 * free; more than the chunk holds goes to the slow path, which names
 * it.  True: done.                                                    */
static TM_INLINE bool free_fast(void *mem, size_t claimed)
{
    tm_tcache *tc = tm_tls_tcache;
    if (unlikely(tc == NULL))
        return false;
    bool home;
    bool owned = tc_free_owned(tc, (uintptr_t)mem - TM_HDR, &home);
    if (likely(home))
        return free_fast_owned(tc, mem, claimed, true);
    return owned && free_fast_owned(tc, mem, claimed, false);
}

TM_EXPORT void tide_free(void *mem)
{
    if (!free_fast(mem, 0))
        free_slow(mem);
}

/* The chunk's header, verified (TIDE_CHECKS) for a chunk in a heap of
 * ours: returns its size; aborts naming what is wrong, `who` being
 * "free" or "realloc".  Double frees of chunks in a bin, a fast bin, a
 * cache or a remote/spill list are told apart here.                   */
static size_t verified_size(tm_chunk *p, const char *msg_corrupt, const char *msg_free, const char *msg_cached,
                            const char *msg_top, const char *msg_parked, const char *msg_next_free)
{
    size_t w = size_word(p);
#if TIDE_CHECKS
    if (unlikely(!hdr_ok(p, w, TM_ST_INUSE))) {
        int st = hdr_state(p);
        if (st == TM_ST_CACHED)
            tm_corrupt(tc_key_parked(chunk2mem(p)) ? msg_parked : msg_cached, chunk2mem(p));
        if (st == TM_ST_FREE || st == TM_ST_FAST)
            tm_corrupt(msg_free, chunk2mem(p));
        if (st == TM_ST_TOP)
            tm_corrupt(msg_top, chunk2mem(p));
        tm_corrupt(msg_corrupt, chunk2mem(p));
    }
    if (unlikely(tc_key_marked(chunk2mem(p)) && tc_key_parked(chunk2mem(p))))
        tm_corrupt(msg_parked, chunk2mem(p));
    /* An in-use header over a chunk its successor records as free: a
     * replayed header (fast_given).  The verified size bounds the read,
     * the verified M bit keeps it off a mapped chunk (realloc), which
     * has no successor.                                              */
    if (unlikely(!(w & TM_IS_MMAPPED) && !prev_inuse(chunk_at(p, word_size(w)))))
        tm_corrupt(msg_next_free, chunk2mem(p));
#else
    (void)msg_corrupt, (void)msg_free, (void)msg_cached, (void)msg_top, (void)msg_parked, (void)msg_next_free;
#endif
    return word_size(w);
}

/* A pointer the program gives back (free, realloc, malloc_usable_size),
 * before any of its memory is read: aligned, else abort with
 * `misaligned`; ours (TIDE_CHECKS), else abort with `foreign`.  Returns
 * TM_OWN_HEAP or TM_OWN_MMAP: what the registry says (without the
 * checks: what the header says).                                       */
static int given_pointer(void *mem, const char *misaligned, const char *foreign)
{
    tm_chunk *p = mem2chunk(mem);
    if (unlikely(misaligned_chunk(p)))
        tm_corrupt(misaligned, mem);
#if TIDE_CHECKS
    int own = tm_own_classify(p);
    if (unlikely(own == TM_OWN_NONE))
        tm_corrupt(foreign, mem);
    return own;
#else
    (void)foreign;
    return chunk_is_mmapped(p) ? TM_OWN_MMAP : TM_OWN_HEAP;
#endif
}

/* Cache e in class i (limit lim) from a slow path, cache entered. */
static inline void cache_put(tm_tcache *tc, tm_tc_entry *e, size_t i, size_t lim)
{
    if (unlikely(e == tc->entries[i]))   /* cached, its key wiped since */
        tm_corrupt("free(): double free detected", e);
    if (tc->counts[i] < lim)
        tc_push(tc, e, i);
    else
        tm_tcache_put_full(tc, e, i);
}

/* free's arena part, for a chunk whose header was verified (`size` is
 * its own): the strong mode's quarantine, else the chunk's arena - or,
 * if that is another thread's arena and busy, its remote stack, which
 * its holder empties.                                                */
static void free_in_arena(tm_chunk *p, size_t size)
{
    tm_arena *av = arena_for_chunk(p);
    if (unlikely(tm_harden_on())) {      /* strong mode: poison, quarantine */
        tm_arena_enter_owner(av);
        tm_harden_free(av, p);
        tm_arena_leave(av);
        return;
    }
    if (!tm_arena_try_enter(av)) {
        if (av != tm_thread_arena()) {
            /* Another thread's arena, busy: leave the chunk to its holder. */
            hdr_flip_cached(p);      /* out of the program's hands */
            tc_key_park(chunk2mem(p), tm_park_key(av, TM_PARK_STACK));
            tm_remote_push(av, p, p);
            return;
        }
        tm_arena_enter_owner(av);
    }
    tm_int_free_verified(av, p, size);
    tm_arena_leave(av);
    solo_bg_start();
}

static TM_NOINLINE void free_slow(void *mem)
{
    if (!mem)
        return;
    int saved_errno = errno;         /* free never changes errno */
    tm_chunk *p = mem2chunk(mem);
    bool mapped = given_pointer(mem, "free(): invalid pointer",
                                "free(): invalid pointer (not a chunk of this heap)") == TM_OWN_MMAP;
    /* (a registry entry whose header lost M: the unmap path names it) */
    if (unlikely(TIDE_CHECKS && !mapped && chunk_is_mmapped(p)))
        tm_corrupt(hdr_retired(size_word(p)) ? "free(): double free detected" : "free(): corrupted chunk header",
                   mem);
    /* S is outside the checksum (chunk.h): a forged one finds no record. */
    if (unlikely(chunk_is_sampled(p)))
        tm_prof_forget(p, "free(): invalid size");
    if (mapped) {
        tm_munmap_chunk_dyn(p);      /* validates the header (against the registry) */
        errno = saved_errno;
        return;
    }
    size_t size = verified_size(p, "free(): corrupted chunk header", "free(): double free detected",
                                "free(): double free detected in tcache 2",
                                "double free or corruption (top)",
                                "free(): double free detected (remote list)",
                                "double free or corruption (!prev)");
    if (unlikely((uintptr_t)p > (uintptr_t)-size))
        tm_corrupt("free(): invalid pointer", mem);
    if (unlikely(size < TM_MINSIZE || !aligned_ok(size)))
        tm_corrupt("free(): invalid size", mem);
    tm_ensure_init();
    tm_thread_setup();
    tm_obs_tick();

    tm_tcache *tc = tm_tls_tcache_own;
    size_t i = tc_csize_index(size);
    size_t lim = tc && i < TM_TCACHE_BINS ? tc_slow_limit(tc, i) : 0;   /* read once */
    tm_tc_entry *e = mem;
    if (tc && lim) {
        /* Profiling sends every free here: one with room in its class
         * needs no more than the fast path does.                       */
        if (unlikely(tm_fix.profiling) && !tc_key_marked(e) &&
            tc_try_push(tc, e, tc_free_slot(tc, p, size_word(p), i), size_word(p))) {
            errno = saved_errno;
            return;
        }
        tc_enter(tc);
        if (unlikely(tc_key_marked(e)))
            tm_tcache_double_free_check(tc, e, i);
        if (!tm_tcache_put_away(tc, e, i))     /* another arena's: its outbox */
            cache_put(tc, e, i, lim);
        tc_leave(tc);
        solo_bg_start();
        errno = saved_errno;
        return;
    }
    if (unlikely(tc_key_marked(e) && !tc_key_parked(e)))
        tm_corrupt("free(): double free detected", mem);   /* in some thread's cache */
    free_in_arena(p, size);              /* the header verified_size checked */
    /* After the free: its double-free checks saw the caches as they were. */
    if (!lim)
        medium_closed(tc, i);
    errno = saved_errno;
}

/* The fast path verified p (ours, aligned, an intact in-use header -
 * neither cached nor parked - without M or S, its successor's P set)
 * and its size has no cache class (above 16 KiB, or a medium size that
 * is no class's): the arena, without free_slow's second round of the
 * same checks (ownership, the header's checksum and state, the mapped
 * and sampled bits; ~100 of the 940 instructions of a malloc/free pair
 * of 100 KB, bench/pair_cost.py).  As free_slow's arena path.        */
static TM_NOINLINE void free_big(tm_chunk *p, size_t size)
{
    int saved_errno = errno;             /* free never changes errno */
    tm_obs_tick();
    free_in_arena(p, size);
    errno = saved_errno;
}

/* The fast path verified e (ours, aligned, an intact in-use header of a
 * cached class, neither cached nor parked) and found no room in slot
 * j, class i or its outbox (or a reclaim in progress): the cache's slow
 * half, without free_slow's second round of the same checks
 * (ownership, the header's checksum, the mapped and sampled bits: about
 * 90 instructions at every free that overflows its class; jq overflows
 * 70 k of its 82 k frees).  A closed medium class (no limit) takes
 * free_slow's arena path.                                             */
static TM_NOINLINE void free_full(tm_tcache *tc, tm_tc_entry *e, size_t j)
{
    int saved_errno = errno;                /* free never changes errno */
    size_t i = j;
    if (j >= TM_TCACHE_BINS) {
        i = j - TM_TCACHE_BINS;
        tm_obs_tick();
        tc_enter(tc);
        bool away = tm_tcache_put_away(tc, e, i);
        tc_leave(tc);
        if (away) {
            errno = saved_errno;
            return;
        }
    }
    size_t lim = tc_slow_limit(tc, i);      /* read once */
    if (!lim) {
        free_slow(e);
        errno = saved_errno;
        return;
    }
    if (j == i)
        tm_obs_tick();
    tc_enter(tc);
    cache_put(tc, e, i, lim);
    tc_leave(tc);
    solo_bg_start();
    errno = saved_errno;
}

/* ---- calloc ------------------------------------------------------------- */
TM_EXPORT void *tide_calloc(size_t nmemb, size_t size)
{
    size_t bytes;
    if (unlikely(__builtin_mul_overflow(nmemb, size, &bytes))) {
        errno = ENOMEM;
        return NULL;
    }
    tm_tcache *tc = tm_tls_tcache;
    size_t i = tc_req_class(bytes);
    if (likely(tc != NULL && i < TM_TCACHE_BINS)) {
        void *mem = tc_try_pop(tc, i);
        if (mem)
            return memset(mem, 0, chunk_usable(mem2chunk(mem)));
    }
    tm_ensure_init();
    if (unlikely(bytes > TM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    if (bytes <= TM_TCACHE_MAX_REQ) {
        void *mem = malloc_slow(bytes);
        return mem ? memset(mem, 0, chunk_usable(mem2chunk(mem))) : NULL;
    }
    tm_zrange z;
    void *mem = arena_alloc(request2size(bytes), 0, 0, &z);
    if (!mem)
        return NULL;
    if (unlikely(tm_fix.profiling))
        tm_prof_alloc(mem, bytes);
    tm_chunk *p = mem2chunk(mem);
    if (chunk_is_mmapped(p)) {           /* fresh pages are zero */
        if (unlikely(TM_P(perturb)))
            memset(mem, 0, chunk_usable(p));
        return mem;
    }
    char *m = mem, *end = m + chunk_usable(p), *lo = z.lo, *hi = z.hi;
    if (TM_P(perturb) || !lo || lo >= hi || lo < m || hi > end) {
        memset(m, 0, (size_t)(end - m));
    } else {
        /* [lo, hi) is known zero (fresh from the system or released). */
        memset(m, 0, (size_t)(lo - m));
        memset(hi, 0, (size_t)(end - hi));
    }
    return mem;
}

/* ---- realloc ------------------------------------------------------------ */
/* Does a realloc of a chunk of oldsize bytes (verified, not mapped) to n
 * bytes move between two small cached classes of a thread that has a
 * cache?  Such a move goes through the cache (realloc_via_cache), not
 * the arena: the lock, the split or the merge, and the bins cost ~380
 * instructions a call there (tm_int_realloc alone), which python
 * (PYTHONMALLOC=malloc) paid on every string it shrank after formatting
 * (120 k reallocs of <= 256 bytes in bench's python, 98 % of them
 * shrinks by 64..127 bytes).  A copy of at most 1 KiB is cheaper than
 * that; glibc splits in place under its lock, jemalloc and mimalloc copy
 * to the new size class.                                              */
static inline bool small_move(size_t oldsize, size_t n)
{
    const tm_tcache *tc = tm_tls_tcache;
    /* (both classes cached in this thread: a limit of 0 - tcache_count 0,
     * a lower tcache_max, M_PERTURB, the strong mode - would make the
     * move two trips through the arena instead of one) */
    return n <= TM_TCACHE_MAX_REQ && oldsize <= request2size(TM_TCACHE_MAX_REQ) && tc != NULL &&
           tc_my_limit(tc, tc_req_index(n)) != 0 && tc_my_limit(tc, tc_free_index(oldsize)) != 0;
}

/* The move: a block of the new class (the cache's, or a refill), the
 * bytes both hold, the old block freed (to the cache).  NULL when no
 * block could be had: the caller goes on in place, as glibc would (a
 * shrink never fails), with errno as it was.                        */
static TM_NOINLINE void *realloc_via_cache(void *mem, size_t oldsize, size_t n)
{
    int saved = errno;
    void *nm = tide_malloc(n);
    if (unlikely(nm == NULL)) {
        errno = saved;
        return NULL;
    }
    size_t keep = oldsize - TM_SIZE_SZ;   /* (an in-use chunk's usable bytes) */
    memcpy(nm, mem, keep < n ? keep : n);
    tide_free(mem);
    return nm;
}

TM_EXPORT void *tide_realloc(void *mem, size_t n)
{
    if (mem == NULL)
        return tide_malloc(n);
    if (n == 0) {                        /* glibc: realloc(p, 0) frees p */
        tide_free(mem);
        return NULL;
    }
    if (unlikely(n > TM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    tm_chunk *p = mem2chunk(mem);
    int own = given_pointer(mem, "realloc(): invalid pointer",
                            "realloc(): invalid pointer (not a chunk of this heap)");
#if TIDE_CHECKS
    if (unlikely((own == TM_OWN_MMAP) != chunk_is_mmapped(p)))
        tm_corrupt(hdr_retired(size_word(p)) ? "realloc(): invalid pointer (chunk is free)"
                                             : "realloc(): corrupted chunk header", mem);
#else
    (void)own;
#endif
    size_t oldsize = verified_size(p, "realloc(): corrupted chunk header",
                                   "realloc(): invalid pointer (chunk is free)",
                                   "realloc(): invalid pointer (chunk is free)",
                                   "realloc(): invalid pointer",
                                   "realloc(): invalid pointer (chunk is free)",
                                   "realloc(): invalid pointer (chunk is free)");
    /* The key only now: the header verified, the chunk is real and its
     * second word readable (a pointer at the brk heap's end has its
     * header inside the heap and that word beyond it).                */
    if (unlikely(TIDE_CHECKS && tc_key_marked(mem)))
        tm_corrupt("realloc(): invalid pointer (chunk is free)", mem);
    if (unlikely((uintptr_t)p > (uintptr_t)-oldsize))
        tm_corrupt("realloc(): invalid pointer", mem);
    tm_ensure_init();
    size_t nb = request2size(n);

    /* Profiling: a sampled block, or a sample due, moves (malloc samples,
     * free forgets); everything else is counted and stays in place.  */
    if (unlikely(chunk_is_sampled(p) || tm_fix.profiling)) {
        if (!tm_fix.profiling)
            tm_corrupt("realloc(): invalid old size", mem);
        if (chunk_is_sampled(p) || tm_prof_realloc_due(n)) {
            void *nm = tide_malloc(n);
            if (nm) {
                size_t keep = chunk_usable(p) < n ? chunk_usable(p) : n;
                memcpy(nm, mem, keep);
                tide_free(mem);
            }
            return nm;
        }
    }

    if (chunk_is_mmapped(p)) {
        tm_chunk *np = tm_mremap_chunk(p, nb);
        if (np)
            return chunk2mem(np);
        if (oldsize - TM_HDR >= nb - TM_SIZE_SZ)
            return mem;                  /* still fits: keep it */
        void *nm = tide_malloc(n);
        if (!nm)
            return NULL;
        memcpy(nm, mem, oldsize - TM_HDR);
        tm_munmap_chunk_dyn(p);
        return nm;
    }

    tm_arena *av = arena_for_chunk(p);
    if (unlikely(tm_harden_on())) {
        /* Strong mode: a new block, so the old one goes through free's
         * poison and quarantine; a quarantined one is no block at all. */
        tm_arena_enter_owner(av);
        bool freed = tm_harden_quarantined(av, p);
        tm_arena_leave(av);
        if (unlikely(freed))
            tm_corrupt("realloc(): invalid pointer (chunk is free)", mem);
        void *nm = tide_malloc(n);
        if (nm) {
            memcpy(nm, mem, oldsize - TM_SIZE_SZ < n ? oldsize - TM_SIZE_SZ : n);
            tide_free(mem);
        }
        return nm;
    }

    /* Same size class and it fits: nothing to do. */
    if (oldsize >= nb && oldsize - nb < TM_MINSIZE)
        return mem;

    if (small_move(oldsize, n)) {
        void *nm = realloc_via_cache(mem, oldsize, n);
        if (nm)
            return nm;
    }

    tm_arena_enter_owner(av);
    void *nm = tm_int_realloc(av, p, oldsize, nb);
    tm_arena_leave(av);
    if (nm)
        return nm;
    /* That arena is full: any arena will do. */
    nm = tide_malloc(n);
    if (nm) {
        memcpy(nm, mem, oldsize - TM_SIZE_SZ);
        tide_free(mem);
    }
    return nm;
}

TM_EXPORT void *tide_reallocarray(void *mem, size_t nmemb, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return tide_realloc(mem, bytes);
}

/* ---- aligned allocation ------------------------------------------------- */
static void *memalign_impl(size_t alignment, size_t bytes)
{
    if (alignment <= TM_ALIGNMENT)
        return tide_malloc(bytes);
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment & (alignment - 1))     /* glibc rounds up to a power of two */
        alignment = (size_t)1 << (64 - __builtin_clzl(alignment));
    /* The engine asks for bytes + alignment + MINSIZE: refuse what cannot
     * be represented (alignment 2^63 exceeds any valid request).       */
    if (alignment > TM_MAX_REQUEST - TM_MINSIZE || bytes > TM_MAX_REQUEST - TM_MINSIZE - alignment) {
        errno = ENOMEM;
        return NULL;
    }
    tm_ensure_init();
    void *mem = arena_alloc(0, alignment, bytes, NULL);
    if (unlikely(tm_fix.profiling))
        tm_prof_alloc(mem, bytes);
    return mem;
}

TM_EXPORT void *tide_memalign(size_t alignment, size_t bytes)
{
    return memalign_impl(alignment, bytes);
}

TM_EXPORT int tide_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || alignment == 0 ||
        ((alignment / sizeof(void *)) & (alignment / sizeof(void *) - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *mem = memalign_impl(alignment, size);
    if (!mem) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = mem;
    return 0;
}

/* C11: the alignment must be a power of two (glibc >= 2.38 rejects others
 * with EINVAL, as do we).                                               */
TM_EXPORT void *tide_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return memalign_impl(alignment, size);
}

TM_EXPORT void *tide_valloc(size_t size)
{
    tm_ensure_init();
    return memalign_impl(tm_fix.pagesize, size);
}

TM_EXPORT void *tide_pvalloc(size_t size)
{
    tm_ensure_init();
    size_t ps = tm_fix.pagesize;
    if (size > SIZE_MAX - ps) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign_impl(ps, align_up(size, ps));
}

static TM_NOINLINE size_t usable_size_slow(void *mem);

/* The fast path as free's (fast_given, which with the checks tests the
 * next chunk's P bit; without them, it is tested here).  Anything else,
 * including every misuse, takes the slow path, which classifies the
 * pointer exactly.                                                    */
TM_EXPORT size_t tide_malloc_usable_size(void *mem)
{
    size_t raw;
    /* (No cache's range: the global tests.  A size below the smallest
     * chunk's is a zero word that verified by chance - 2^-16 for each
     * address of a sub-heap's untouched reserve - not a chunk.)      */
    if (likely(fast_given(mem, tc_given_owned((uintptr_t)mem - TM_HDR), TM_IS_MMAPPED, &raw) &&
               word_size(raw) >= TM_MINSIZE &&
               (TIDE_CHECKS || inuse(mem2chunk(mem)))))
        return word_size(raw) - TM_SIZE_SZ;
    return usable_size_slow(mem);
}

static TM_NOINLINE size_t usable_size_slow(void *mem)
{
    if (!mem)
        return 0;
    tm_chunk *p = mem2chunk(mem);
    int own = given_pointer(mem, "malloc_usable_size(): invalid pointer",
                            "malloc_usable_size(): invalid pointer (not a chunk of this heap)");
#if TIDE_CHECKS
    int st = hdr_state(p);
    if (unlikely(st < 0 || ((own == TM_OWN_MMAP) != chunk_is_mmapped(p) && !hdr_retired(size_word(p))) ||
                 (st != TM_ST_INUSE && own == TM_OWN_MMAP)))
        tm_corrupt("malloc_usable_size(): corrupted chunk header", mem);
    if (st != TM_ST_INUSE)
        return 0;                    /* free: glibc says 0 */
#else
    (void)own;
#endif
    if (chunk_is_mmapped(p))
        return chunksize(p) - TM_HDR;
    if (inuse(p))
        return chunksize(p) - TM_SIZE_SZ;
    return 0;
}

/* C23.  The size is a promise, not needed by a boundary-tag allocator;
 * one that does not fit the chunk is a bug worth stopping on.           */
TM_EXPORT void tide_free_sized(void *mem, size_t size)
{
    if (likely(free_fast(mem, size)))
        return;
    if (mem && unlikely(size > tide_malloc_usable_size(mem)))
        tm_corrupt("free_sized(): size does not match the allocation", mem);
    free_slow(mem);
}

TM_EXPORT void tide_free_aligned_sized(void *mem, size_t alignment, size_t size)
{
    if (mem && unlikely(((uintptr_t)mem & (alignment - 1)) != 0))
        tm_corrupt("free_aligned_sized(): pointer does not have that alignment", mem);
    tide_free_sized(mem, size);
}

/* ---- tidemalloc's own calls --------------------------------------------- */
TM_EXPORT int tide_profile_dump(const char *prefix)
{
    tm_ensure_init();
    return tm_prof_dump(prefix);
}

TM_EXPORT void tide_thread_cache_flush(void)
{
    tm_ensure_init();
    tm_tcache_flush_keep();
}

/* kind: 1 = mmap-like calls, 2 = brk growth, 3 = brk shrinking, 4 = the
 * statistics channel's pages (os.h). */
TM_EXPORT void tide_fault_inject(int kind, long after)
{
    tm_os_fault_inject(kind, after);
}

/* ---- one-thread-only system calls ----------------------------------------
 * The kernel refuses unshare(CLONE_NEWUSER) (and CLONE_THREAD, _SIGHAND,
 * _VM, which it implies) and setns into a user or mount namespace with
 * EINVAL in a process of more than one thread, setns into a time
 * namespace with EUSERS.  The background thread can run in a program
 * that never created one (a swinging single-threaded program,
 * control.c): these two stand in for libc's wrappers, which are the bare
 * system calls, and stop it first (errno as the call leaves it).     */
static void one_thread_wanted(void)
{
    int saved = errno;
    tm_ctl_single_thread();
    errno = saved;
}

TM_EXPORT int unshare(int flags)
{
    if (flags & (CLONE_NEWUSER | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM))
        one_thread_wanted();
    return tm_os_unshare(flags);
}

TM_EXPORT int setns(int fd, int nstype)
{
    if (nstype == 0 || (nstype & (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWTIME)))   /* (0: whatever fd is) */
        one_thread_wanted();
    return tm_os_setns(fd, nstype);
}

/* ---- seccomp ---------------------------------------------------------------
 * Page release batches its ranges into one process_madvise (os.c), a
 * system call glibc's malloc never makes: a seccomp filter that allows
 * glibc's calls may kill the process for it (sshd's pre-auth sandbox
 * sets no_new_privs, then installs its filter, both through prctl).
 * This stands in for libc's prctl, which is the bare system call, and
 * turns the batching off before either takes effect.  (Not under a
 * sanitizer, whose runtime has a prctl of its own: os.c never batches
 * there.)                                                             */
#if !defined(TM_SANITIZER_INTERPOSES)
TM_EXPORT int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    if (option == PR_SET_SECCOMP || option == PR_SET_NO_NEW_PRIVS)
        tm_os_release_batch_off();
    return tm_os_prctl(option, a2, a3, a4, a5);
}
#endif

/* The glibc names (family.h); those no system header declares first. */
void free_sized(void *, size_t);
void free_aligned_sized(void *, size_t, size_t);
void cfree(void *);
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);
#define TM_ALIAS_ONE(name, target) TM_ALIAS(name, target);
TM_FAMILY_API(TM_ALIAS_ONE)
