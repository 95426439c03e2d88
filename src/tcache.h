/*
 * tcache.h - the per-thread cache: the lock-free, atomic-free front of
 * malloc and free for chunks up to 16 KiB (64 small classes by 16 bytes
 * up to 1040, 32 medium ones, 8 per doubling: config.h).
 *
 * One singly linked LIFO list per size class (chunk size 32 + 16*i).  A
 * cached chunk stays "in use" as far as its arena knows; its first two
 * words hold the protected next link and a key that marks it as cached:
 *
 *   mem -> +---------------------------------+
 *          | next ^ (&next >> 12)  (safe-linking)
 *          | the entry's key      (its slot's and address's: double-free marker)
 *          +---------------------------------+
 *
 * A miss first takes back, without a lock, the chunks of its class that
 * other threads freed into this thread's arena (the arena's per-class
 * remote list), else refills a batch carved from one chunk under one
 * arena lock.  A full class flushes half of itself: chunks of the own
 * arena under its lock, others pushed on their arena's remote list.
 *
 * Outboxes: small foreign frees go home.  A chunk of a small class
 * (<= 1040 bytes) from another thread's arena freed here is not cached
 * for reuse by this thread: it goes into its class's outbox, which
 * malloc never pops, and when the outbox is full (its class's base
 * limit) the outbox goes home whole through free_chain (one CAS per run
 * on the owning arena's class list, where the owner takes it back on a
 * miss).  Reusing another thread's small chunk put this thread's writes
 * on cache lines that the owner's neighbouring blocks share:
 * cache_scratch's workers each reused the 8-byte block the main thread
 * handed them, two of which shared a line: 4.6x glibc's time (mimalloc
 * frees to the owning page for the same reason).  Medium chunks (1 KiB
 * and more) share at most their first and last line, and sending them
 * home made wl_rptest 16 % slower (most of its blocks are medium, and a
 * medium class's batch is 1-3 chunks): they are cached as before.  The
 * free fast path tells "foreign" exactly, by the chunk's arena (the A
 * bit, else its sub-heap's header) against the thread's (tc->home).
 * (A key that needed no load, the sub-heap's 64 MiB slot, also sent a
 * thread's own chunks of its other sub-heaps to the outbox: test_quiet
 * optout-mt's parked threads kept 8 MiB more resident.)
 *
 *   free(p), small class i:  key(p) == home ?  class i  :  outbox i --full--> home
 *   malloc:                  class i only
 *
 * Shared state: a cache is used by its thread, and emptied by the
 * background thread when the owner has been idle (below).  The per-class
 * base limits tm_tc_limit[] change when any thread calls mallopt, which
 * also resets every cache's own limits to them: all relaxed atomics, and
 * a function that must see one value reads the limit once
 * (tm_tcache_put_full).  tm_tcache_key is written once, at
 * initialization, before it is published.
 *
 * Adaptive limits.  The base (tcache_bytes / 64 per class, at most
 * tcache_count) suits most programs; one that frees a few hundred blocks
 * of a size and then allocates them again (glibc's bench-malloc-simple,
 * espresso) would flush half the class to the arena and refill it on
 * every round.  A class that is full when a block comes back, and that
 * has missed in this thread (the thread allocates there too: the
 * round trip through the arena is the waste), doubles this thread's
 * limit instead, up to 1 MiB or 4096 chunks, 2 MiB for all classes of
 * the thread (config.h).  Growth needs the background thread, which
 * takes idle caches back (and then resets the limits), so that parked
 * threads do not keep grown caches for ever - or a process of one thread.
 * No growth while the thread's arena has drained deeply (the program is
 * giving its memory back), or, without the background thread, while its
 * chunks in use have ebbed; a grown cache that meets either goes back to
 * the base at once: cached chunks pin their pages.
 *
 * Reclaiming idle caches.  A thread that parks keeps its cache, and 256
 * parked threads would keep 64 MiB.  The background thread takes the
 * contents of a cache whose owner made no slow-path call between two of
 * its looks, with an asymmetric handshake that keeps the owner's hot
 * path free of atomic read-modify-writes and fences:
 *
 *   owner (any cache access)           reclaimer
 *     busy = 1                           steal = 1
 *     compiler barrier                   membarrier()   (a full fence on
 *     if (steal) -> slow path: wait                      every running thread)
 *     ... use the cache ...              if (busy) { steal = 0; skip }
 *     busy = 0 (release)                 take everything; steal = 0 (release)
 *
 * membarrier orders the owner's `busy = 1` before its load of `steal`
 * as if the owner had fenced: either the reclaimer sees busy, or the
 * owner sees steal.  Where membarrier is unavailable, and in
 * ThreadSanitizer builds (which cannot see it), caches are not
 * reclaimed and the handshake compiles away.
 */
#ifndef TM_TCACHE_H
#define TM_TCACHE_H

#include "internal.h"
#include "arena.h"
#include "owner.h"
#include "meta.h"
#include "heap.h"

/* Slots of a cache: a class and an outbox per class. */
#define TM_TC_SLOTS (2 * TM_TCACHE_BINS)

typedef struct tm_tc_entry {
    uintptr_t next;        /* protected pointer to the next entry's mem */
    uintptr_t key;         /* the cache's key while cached              */
} tm_tc_entry;

typedef struct tm_tcache {
    _Atomic int busy;                /* owner inside a cache access           */
    _Atomic int steal;               /* reclaimer at work                      */
    _Atomic int reclaimed;           /* emptied while idle; owner not back yet */
    _Atomic uint64_t slow_ops;       /* owner's slow-path entries              */
    /* Where the last refill's chunk lay (owner.h): free's first
     * ownership test and the flush walks', on the line the handshake
     * touches anyway.  (malloc's hit path trusts its head: below.)    */
    tm_own_range own;
    /* Slots 0..TM_TCACHE_BINS-1 are the classes; slot TM_TCACHE_BINS + i
     * is class i's outbox (below).  counts[], limits[] and entries[]
     * cover both.                                                     */
    uint16_t counts[TM_TC_SLOTS];
    /* This thread's limit per class: the global base (tm_tc_limit), grown
     * where the class overflowed (tm_tcache_put_full), reset to the base
     * by mallopt (any thread: relaxed atomics, growth by CAS) and when
     * an idle cache is reclaimed.                                      */
    _Atomic uint16_t limits[TM_TC_SLOTS];
    _Atomic size_t limit_bytes;      /* sum of limits[i] * chunk size        */
    bool grown;                      /* owner's: some limit grew since the last drain */
    /* Owner's: class i ever missed (a refill) in this thread - one bit
     * per class.  Growth needs it: a class that only overflows (a thread
     * that frees what others allocate) gains nothing from holding more;
     * sticky, since a drain's shrink and regrowth within one burst of
     * frees must not wait for the next miss (1600 x 512 B rounds: 22 %
     * more instructions with a bit cleared at every flush).            */
    uint64_t missed[(TM_TCACHE_BINS + 63) / 64];
    bool medium_held;                /* owner's: medium limits opened since the last close */
    tm_tc_entry *entries[TM_TC_SLOTS];
    /* Each slot's chain value (below): the head's check, and what its
     * next push stores in the pushed entry.  Owner's, like entries[].  */
    uintptr_t chain[TM_TC_SLOTS];
    /* Owner's: the thread's own arena as last seen (set up, a refill, an
     * outbox overflow), NULL while it has none.  A copy, as the fast
     * path cannot call into arena.c: a stale one sends a chunk to the
     * other slot, both of which are correct.                           */
    const struct tm_arena *home;
    /* Registry of all caches (reclaimer's walk), guarded by its lock. */
    struct tm_tcache *reg_next, *reg_prev;
    uint64_t seen_ops;               /* slow_ops at the reclaimer's last look  */
    bool candidate;                  /* reclaimer's scratch                    */
} tm_tcache;

#if defined(__SANITIZE_THREAD__)
#define TM_TCACHE_RECLAIM 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TM_TCACHE_RECLAIM 0
#endif
#endif
#ifndef TM_TCACHE_RECLAIM
#define TM_TCACHE_RECLAIM 1
#endif

/* The owner's side of the handshake: tc_busy() before touching the cache,
 * tc_stolen() true means "go to the slow path", tc_idle() when done.  */
static inline void tc_busy(tm_tcache *tc)
{
#if TM_TCACHE_RECLAIM
    atomic_store_explicit(&tc->busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
#else
    (void)tc;
#endif
}
static inline bool tc_stolen(tm_tcache *tc)
{
#if TM_TCACHE_RECLAIM
    return atomic_load_explicit(&tc->steal, memory_order_acquire) != 0;
#else
    (void)tc;
    return false;
#endif
}
static inline void tc_idle(tm_tcache *tc)
{
#if TM_TCACHE_RECLAIM
    atomic_store_explicit(&tc->busy, 0, memory_order_release);
#else
    (void)tc;
#endif
}

/* Thread state: NULL cache and state 0 = not yet set up; state 2 = no
 * cache (being set up, disabled, or the thread is exiting).
 * Two views of the thread's cache: tm_tls_tcache_own is the cache, used
 * by the slow paths; tm_tls_tcache is what the fast paths (api.c) see:
 * the same cache, or NULL while the allocation-site profiler is on
 * (prof.h), so that every call takes a slow path where the sampling
 * countdown lives - the fast paths themselves know nothing of it.      */
extern __thread tm_tcache *tm_tls_tcache __attribute__((tls_model("initial-exec"))) TM_HIDDEN;
extern __thread tm_tcache *tm_tls_tcache_own __attribute__((tls_model("initial-exec"))) TM_HIDDEN;
extern __thread uint8_t tm_tls_tcache_state __attribute__((tls_model("initial-exec"))) TM_HIDDEN;
extern uintptr_t tm_tcache_key TM_HIDDEN;
/* Per-class limits (0 = class not cached), from tcache_count/max/bytes. */
extern _Atomic uint16_t tm_tc_limit[TM_TCACHE_BINS] TM_HIDDEN;
static inline size_t tc_limit(size_t i)
{
    return atomic_load_explicit(&tm_tc_limit[i], memory_order_relaxed);
}
/* Are the medium classes open to the calling thread (tcache.c)? */
TM_HIDDEN bool tm_tcache_medium_open(void);
TM_HIDDEN size_t tm_tcache_medium_limit(struct tm_tcache *tc, size_t i);
/* The slow paths' limit of class i for the calling thread's frees and
 * refills: the base, but 0 for a medium class while the medium classes
 * are closed.  A medium class found open has its limits in tc set (the
 * fast paths see them), tcache.c.                                     */
static inline size_t tc_slow_limit(struct tm_tcache *tc, size_t i)
{
    if (i < TM_TCACHE_SMALL_BINS)
        return tc_limit(i);
    return tm_tcache_medium_limit(tc, i);
}
/* The calling thread's limit of class i (>= 1 iff tc_limit(i) >= 1). */
static inline size_t tc_my_limit(const tm_tcache *tc, size_t i)
{
    return atomic_load_explicit(&tc->limits[i], memory_order_relaxed);
}

/* free's fast path: the slot of chunk p (size word raw) of class i:
 * the class, or its outbox if the class is small and the chunk's arena
 * is not the thread's home.  The arena as arena_for_chunk, from the
 * size word already loaded (a sub-heap's header for a non-main chunk). */
static TM_INLINE size_t tc_free_slot(const tm_tcache *tc, const tm_chunk *p, size_t raw, size_t i)
{
    const tm_arena *av = (raw & TM_NON_MAIN) ? heap_for_ptr(p)->ar : &tm_main_arena;
    return av == tc->home || i >= TM_TCACHE_SMALL_BINS ? i : i + TM_TCACHE_BINS;
}

static inline tm_tc_entry *tc_reveal(const tm_tc_entry *e)
{
    return (tm_tc_entry *)tm_protect_ptr(&e->next, e->next);
}
static inline void tc_link(tm_tc_entry *e, tm_tc_entry *next)
{
    e->next = tm_protect_ptr(&e->next, (uintptr_t)next);
}

/* ---- prefetch hints on class lists ---------------------------------------
 * A thread that installs a class list (tcache.c rekey_list) walks it by
 * its links, and each entry was written last by the thread that freed
 * it, on another core: a miss per entry, each waiting for the one before
 * (the link is in the missing line).  wl_prodcons: ~200 cycles an entry
 * (rdtsc around the walk; a read-only walk first took the same, and the
 * walk after it ~50), tm_tcache_refill 27 % of the run's samples.  So
 * the freeing thread, which builds the run (tcache.c free_chain) while
 * its entries are in its own cache, writes into each entry's third word
 * (the chunk's usable bytes 16..23: every class has 24 or more) the
 * address of the entry TC_HINT_DIST places further down the run, and
 * the walk prefetches it: up to TC_HINT_DIST misses in flight instead of
 * one.  (wl_prodcons, medians of 11 interleaved runs against none: 4
 * places 0.85x the time, 2 places 0.96x, 6 0.91x, 8 0.97x - the runs
 * are short, tcache.c tc_run; on a quieter machine 4 places 0.67x, 8
 * 0.77x.)
 *
 *   run:   e0 -> e1 -> e2 -> e3 -> e4 -> e5 -> ...   (links: checked, followed)
 *           \________ hint ________/^                (hints: prefetched only)
 *
 * A hint is never dereferenced, only prefetched (which cannot fault), so
 * a forged one costs a wasted prefetch at worst and needs no check.  It
 * is stored mangled like a link (tm_protect_ptr): a use-after-free read
 * of a parked entry learns no heap address from it.  The last
 * TC_HINT_DIST entries of a run hold 0 (nothing to prefetch).          */
#define TC_HINT_DIST 4u
static inline void tc_hint_set(tm_tc_entry *e, const void *ahead)
{
    uintptr_t *w = (uintptr_t *)e + 2;
    *w = tm_protect_ptr(w, (uintptr_t)ahead);
}
static inline const void *tc_hint(const tm_tc_entry *e)
{
    const uintptr_t *w = (const uintptr_t *)e + 2;
    return (const void *)tm_protect_ptr(w, *w);
}
/* (TM_INLINE, not plain inline: gcc 12 counts a function whose only
 * effect is a prefetch as pure and deletes the call, prefetch and all -
 * the first version of this helper compiled to nothing.)             */
static TM_INLINE void tc_hint_prefetch(const tm_tc_entry *e)
{
    const char *ahead = tc_hint(e);
    if (ahead) {
        __builtin_prefetch(ahead - TM_HDR, 1);    /* its header (the line before, at a line's start) */
        __builtin_prefetch(ahead, 1);             /* its link and key */
    }
}
/* Class of a request (n <= TM_TCACHE_MAX_REQ): same as csize_index(request2size(n)). */
static inline size_t tc_req_index(size_t n)
{
    /* request2size(n) = max(32, (n + 8 + 15) & ~15); class = size/16 - 2.
     * Branch-free: (n + 7) >> 4 is the class + 1, except that requests of
     * 0..8 bytes give 0 and belong to class 0 as well.                   */
    size_t i = (n + 7) >> 4;
    return i - (i != 0);
}
/* Class of a request above the small classes (TM_TCACHE_MAX_REQ < n <=
 * TM_TCACHE_MED_MAX_REQ): the medium class of request2size(n).        */
static inline size_t tc_med_req_index(size_t n)
{
    return tm_class_ceil_med(n + TM_SIZE_SZ);   /* (the class sizes are multiples of 16) */
}
/* The fast paths' class of a request: small or medium, TM_TCACHE_BINS
 * above the medium classes (malloc and calloc share it).              */
static TM_INLINE size_t tc_req_class(size_t n)
{
    if (likely(n <= TM_TCACHE_MAX_REQ))
        return tc_req_index(n);
    return n <= TM_TCACHE_MED_MAX_REQ ? tc_med_req_index(n) : TM_TCACHE_BINS;
}
/* The class of a chunk of csize bytes, TM_TCACHE_BINS if it has none. */
static inline size_t tc_csize_index(size_t csize) { return tm_class_exact(csize); }
/* free's fast path: the class of a chunk of csize bytes, >=
 * TM_TCACHE_BINS if it has none: the small classes' shift first (huge
 * for sizes < 32), the medium classes' test only above them.          */
static inline size_t tc_free_index(size_t csize)
{
    size_t i = (csize - TM_MINSIZE) >> 4;
    return likely(i < TM_TCACHE_SMALL_BINS) ? i : tm_class_exact_med(csize);
}

/* ---- keys in a chunk's second word: a chain per slot -----------------------
 * A slot's list is chained by a keyed hash (TIDE_CHECKS; without the
 * checks every key is the bare tm_tcache_key, the double-free marker):
 *
 *   tc->chain[j] = H(head) = H(slot j, head, head's link word, head's key)
 *   head's key   = H(second entry)      (the chain value below it)
 *   ...
 *   last's key   = chain0(j)            (the empty slot's value)
 *
 *   H(slot, e, link, below) = tm_tcache_key ^ bits 37..63 of
 *                             ((e ^ slot ^ link) * tm_sec.tag_mul + below)
 *   (slot: the list head's address, tc_slot_id)
 *
 * Push: e's key = chain[j], chain[j] = H(e).  Pop: the head must give
 * chain[j], which then becomes its key (the chain below it).  So the
 * trusted value in the cache structure commits to every entry of the
 * list, its address, its link and its order, under a multiplier in the
 * read-only secret page:
 *  - a link changed by a use-after-free write (XOR with two known
 *    addresses, no secret needed) fails at the pop of the entry that
 *    holds it, before it is followed - so the head, which came from a
 *    verified link or from free, is always a chunk of ours and the hit
 *    path reads it without an ownership test;
 *  - an entry's words read while it was cached and written back later
 *    verify only where the chain still has that value: not after the
 *    list changed under them.  Bound to its slot and address alone, an
 *    entry's key was the same at any depth: b -> a -> c with a's link
 *    turned to b, malloc handed out b, the program wrote back into b the
 *    key it had read from b while b was cached, and b came out a second
 *    time after a (misuse tcache_cycle_own_key);
 *  - no entry's address is the attacker's choice: the head is trusted
 *    and every other entry's address is pinned by the link above it.
 *    Per-entry keys that bound slot (the head's address) and entry by
 *    XOR alone, with nothing pinned, let the key of e in slot s serve
 *    as the key of e ^ s ^ s' in slot s' - for two classes' heads 16
 *    bytes apart, e ^ 16, inside e's own chunk (misuse
 *    tcache_slot_collision).  Slot, entry and link meet by XOR before
 *    the multiply, the chain value below is added after it, so trading
 *    a changed link for a changed key needs the multiplier.  A forged
 *    entry passes with probability 2^-27.
 * Keys stay in the marked format (tm_tcache_key with bits 0..26 free,
 * bit 27 clear), one masked compare: the slow paths' test of a double
 * free (the fast path's without the checks; with them a cached chunk's
 * header is CACHED, chunk.h, and the fast path requires INUSE).  An entry parked on a class list or the general remote stack
 * holds that list's parked key instead (arena.h tm_park_key:
 * tm_sec.parked, which is tm_tcache_key with bit 27 set, salted by the
 * arena and the list); a thread that installs a class list as its
 * class re-chains it (tcache.c rekey_list).  Every walk over a slot
 * (flushes, the reclaimer, the heap checker) follows the chain down from
 * chain[j].  Every path that hands a chunk out, or moves it off a cache
 * or a list, rewrites or clears the key word: a chunk in the program's
 * hands never carries a key (the slow paths rely on it to call a marked
 * chunk a double free), and every way in or out of the program's hands
 * flips the header between INUSE and CACHED (tc_push, tc_unlink_head;
 * entries moved between lists keep CACHED: tc_push_moved).            */
#define TC_KEY_PARKED ((uintptr_t)1 << 27)           /* parked, not cached */
#define TC_KEY_VAR (TC_KEY_PARKED | (TC_KEY_PARKED - 1)) /* bits 0..27: a chain value, or a parked key's salt and list */
/* A slot's identity in its chain's hashes: its list head's address
 * (never 0: chain_check's "no chain"). */
static inline uintptr_t tc_slot_id(const struct tm_tcache *tc, size_t j)
{
    return (uintptr_t)&tc->entries[j];
}
/* The chain value of entry e (link word `link`, key `below`) in the slot
 * `slot` (tc_slot_id). */
static TM_INLINE uintptr_t tc_chain_of(uintptr_t slot, const void *e, uintptr_t link, uintptr_t below)
{
#if TIDE_CHECKS
    uintptr_t x = ((uintptr_t)e ^ slot ^ link) * (uintptr_t)tm_sec.tag_mul + below;
    return tm_tcache_key ^ (x >> 37);       /* bits 0..26 */
#else
    (void)slot, (void)e, (void)link, (void)below;
    return tm_tcache_key;
#endif
}
static TM_INLINE uintptr_t tc_chain_entry(uintptr_t slot, const struct tm_tc_entry *e)
{
    return tc_chain_of(slot, e, e->next, e->key);
}
/* The chain value of slot j while it is empty. */
static inline uintptr_t tc_chain0(const struct tm_tcache *tc, size_t j)
{
#if TIDE_CHECKS
    return tm_tcache_key ^ ((tc_slot_id(tc, j) >> 3) & ((uintptr_t)TC_KEY_PARKED - 1));   /* (bits 0..26) */
#else
    (void)tc, (void)j;
    return tm_tcache_key;
#endif
}
/* e, the head of slot j, holds its place in the chain. */
static TM_INLINE bool tc_head_ok(const struct tm_tcache *tc, const struct tm_tc_entry *e, size_t j)
{
    return !TIDE_CHECKS || tc_chain_entry(tc_slot_id(tc, j), e) == tc->chain[j];
}
static inline bool tc_key_marked(const tm_tc_entry *e) { return ((e->key ^ tm_tcache_key) & ~TC_KEY_VAR) == 0; }
/* Marked, and parked on a list (bit 27, arena.h tm_park_key) rather than cached. */
static inline bool tc_key_parked(const tm_tc_entry *e) { return tc_key_marked(e) && (e->key & TC_KEY_PARKED); }
static inline void tc_key_park(void *mem, uintptr_t key) { ((tm_tc_entry *)mem)->key = key; }

/* free's fast path: is chunk p (the header of the pointer given; an
 * address, not yet a pointer, as the pointer given may be NULL) aligned
 * and inside one of our heaps, so that its header may be read?  The
 * cache's own range first (owner.h), then the global tests.  The chunk, not the
 * pointer: a pointer at a heap's first byte has its header outside,
 * where nothing need be mapped (the hole before a randomized brk heap).
 * Anything else takes the slow path, which tells the rest.           */
static TM_INLINE bool tc_free_owned(const tm_tcache *tc, uintptr_t p, bool *home)
{
#if TIDE_CHECKS
    /* *home: p lay in the cache's own range, so its arena is tc->home's
     * (tcache.c track_range) and free needs no outbox test (tc_free_slot). */
    *home = likely(tm_own_range_aligned(&tc->own, p));
    return *home || tm_own_fast_in_heaps(p);
#else
    (void)tc;
    *home = false;
    return aligned_ok(p);
#endif
}
/* The same without a cache (malloc_usable_size): the global tests.  (A
 * cache pointer that may be NULL cost free's path an instruction.)   */
static TM_INLINE bool tc_given_owned(uintptr_t p)
{
#if TIDE_CHECKS
    return tm_own_fast_in_heaps(p);
#else
    return aligned_ok(p);
#endif
}

/* The slow paths' pop test of the head e of class i: ours, aligned, its
 * header intact, in use and of class i (the hit path does not look at
 * headers), and its place in the chain.                               */
static TM_INLINE void tc_check_entry(const tm_tcache *tc, const tm_tc_entry *e, size_t i)
{
    if (unlikely(!aligned_ok((uintptr_t)e)))
        tm_corrupt("malloc(): unaligned tcache chunk detected", e);
    if (unlikely(!tm_entry_hdr_ok(e, i)))
        tm_corrupt("malloc(): corrupted tcache link", e);
    if (unlikely(!tc_head_ok(tc, e, i))) {
        /* A changed link fails here, at the entry that holds it; glibc
         * names one that leads to a misaligned address when it gets
         * there, and so do we.                                         */
        tm_tc_entry *next = tc_reveal(e);
        if (!aligned_ok((uintptr_t)next))
            tm_corrupt("malloc(): unaligned tcache chunk detected", next);
        tm_corrupt("malloc(): corrupted tcache link", e);
    }
}

/* Take the head e of slot i off (verified): its link is the next head,
 * its key the chain below it. */
static TM_INLINE void tc_unlink_head(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    tm_tc_entry *next = tc_reveal(e);
    /* The next pop of the class reads next's words: start that load now
     * (entries another thread freed are in its cache, not ours).       */
    __builtin_prefetch(next, 1);
    tc->entries[i] = next;
    tc->counts[i]--;
#if TIDE_CHECKS
    tc->chain[i] = e->key;
#endif
    e->key = 0;
    hdr_flip_cached(mem2chunk(e));    /* CACHED -> INUSE: the program's */
}

static TM_INLINE void *tc_pop(tm_tcache *tc, size_t i)
{
    tm_tc_entry *e = tc->entries[i];
    TM_ASSERT(tc->counts[i] > 0);
    tc_check_entry(tc, e, i);
    tc_unlink_head(tc, e, i);
    return e;
}

/* Push e, CACHED already (an entry moved from a list), onto slot i. */
static inline void tc_push_moved(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    uintptr_t link = tm_protect_ptr(&e->next, (uintptr_t)tc->entries[i]);
    uintptr_t below = tc->chain[i];
    e->next = link;
    /* (a relaxed atomic store, a plain mov: gcc 12 otherwise packs the
     * two words into one SSE store, 2 instructions more) */
    __atomic_store_n(&e->key, below, __ATOMIC_RELAXED);
#if TIDE_CHECKS
    tc->chain[i] = tc_chain_of(tc_slot_id(tc, i), e, link, below);
#endif
    tc->entries[i] = e;
    tc->counts[i]++;
}
/* Push e, INUSE (from the program, or carved or taken from a bin), onto
 * slot i: its header becomes CACHED (chunk.h hdr_flip_cached). */
static inline void tc_push(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    hdr_flip_cached(mem2chunk(e));
    tc_push_moved(tc, e, i);
}

/* Initialization: the key marking cached chunks (random). */
TM_HIDDEN void tm_tcache_init_key(void);
/* Set up the calling thread's cache if that was never tried: returns true
 * if this call did the setting up (whether a cache could be had or not). */
TM_HIDDEN bool tm_tcache_thread_init(void);
/* A miss in the class of chunk size nb: refill; the memory or NULL. */
/* The hot paths: a cache hit inside the reclaim handshake, nothing else.
 * NULL / false: go to the slow path (empty or full class, or a reclaim
 * at work).                                                           */
static TM_INLINE void *tc_try_pop(tm_tcache *tc, size_t i)
{
    void *mem = NULL;
    tc_busy(tc);
    tm_tc_entry *e = tc->entries[i];
    /* The head is trusted to be ours: pushed by free, or the link of an
     * entry whose chain value verified (above), so no ownership test
     * before its words are read; the chain, not the header (verified
     * when the chunk entered the cache, by free's fast path or written by
     * carve or a bin under the lock, and again wherever it leaves the
     * program's hands or goes back to an arena).  Every other pop
     * (tc_pop: refills, installed lists, the slow path) checks all.  */
    if (likely(!tc_stolen(tc) && e != NULL && tc_head_ok(tc, e, i))) {
        tc_unlink_head(tc, e, i);
        mem = e;
    }
    tc_idle(tc);
    return mem;
}
/* w: e's size word as free read it (tc_push's flip without a reload). */
static TM_INLINE bool tc_try_push(tm_tcache *tc, tm_tc_entry *e, size_t i, size_t w)
{
    bool done = false;
    tc_busy(tc);
    /* Without the checks: e already at the head of its class, a double
     * free whose key was wiped after the first (the slow path names it).
     * With them e's header said INUSE, which no cached chunk's does.   */
    if (likely(!tc_stolen(tc) && tc->counts[i] < tc_my_limit(tc, i) && (TIDE_CHECKS || e != tc->entries[i]))) {
        hdr_flip_cached_from(mem2chunk(e), w);
        tc_push_moved(tc, e, i);
        done = true;
    }
    tc_idle(tc);
    return done;
}

TM_HIDDEN void *tm_tcache_refill(tm_tcache *tc, size_t nb);
/* Free e, of class i and not marked, from a slow path (cache entered):
 * into class i's outbox if it belongs to another arena than the
 * thread's (an outbox that is full goes home first): true.  False: it
 * is the thread's own (home updated), for the class.                 */
TM_HIDDEN bool tm_tcache_put_away(tm_tcache *tc, tm_tc_entry *e, size_t i);
/* Free e into class i, which has `count >= limit` entries. */
TM_HIDDEN void tm_tcache_put_full(tm_tcache *tc, tm_tc_entry *e, size_t i);
TM_HIDDEN TM_NOINLINE void tm_tcache_double_free_check(tm_tcache *tc, tm_tc_entry *e, size_t i);
TM_HIDDEN void tm_tcache_recompute_limits(void);
/* What the calling thread's limits may grow to in all (config.h). */
TM_HIDDEN size_t tm_tcache_grow_total(void);
/* Slow paths, cache entered: the medium classes emptied if they are
 * closed (tm_tcache_medium_open).                                    */
TM_HIDDEN void tm_tcache_drained_medium(tm_tcache *tc);
/* Slow paths: enter the calling thread's cache (waiting out a reclaim in
 * progress, counting the slow-path call) and leave it.                 */
TM_HIDDEN void tm_tcache_enter_slow(tm_tcache *tc);
static inline void tc_enter(tm_tcache *tc)
{
    tc_busy(tc);
    tm_tcache_enter_slow(tc);
}
static inline void tc_leave(tm_tcache *tc) { tc_idle(tc); }

/* Background thread: take the contents of caches whose owners made no
 * slow-path call since the previous look, back into their arenas.
 * Returns true while some cache may still hold memory (look again).   */
TM_HIDDEN bool tm_tcache_reclaim_idle(void);
/* Background thread start: can caches be reclaimed (membarrier)? */
TM_HIDDEN bool tm_tcache_reclaim_init(void);

/* Fork: the registry is consistent in the child (no reclaim in flight). */
TM_HIDDEN void tm_tcache_fork_lock(void);
TM_HIDDEN void tm_tcache_fork_unlock(void);
TM_HIDDEN void tm_tcache_fork_child(void);

/* Empty the calling thread's cache and stop caching (thread exit). */
TM_HIDDEN void tm_tcache_flush_all(void);
/* Empty the calling thread's cache but keep using it. */
TM_HIDDEN void tm_tcache_flush_keep(void);
/* Bytes held by the calling thread's cache. */
TM_HIDDEN size_t tm_tcache_cached_bytes(void);
/* Caches of all threads and the bytes they hold (an estimate, see
 * tcache.c); false if the bytes are not known (ThreadSanitizer build). */
TM_HIDDEN bool tm_tcache_all_cached(size_t *ncaches, size_t *bytes);

#endif
