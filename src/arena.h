/*
 * arena.h - which arena serves a thread, and the one way in and out of an
 * arena: tm_arena_enter*() returns it locked, with the frees other threads
 * left for it taken in; tm_arena_leave() runs the decay tick and unlocks.
 *
 * A thread keeps its arena in TLS (initial-exec, so dlopen of a library
 * that uses tidemalloc works).  The first thread to allocate uses the main
 * arena.  Others take, in order: an arena from the free list (arenas whose
 * threads all exited), a new arena while fewer than the limit exist, or an
 * existing arena that is not locked right now.  A thread that finds its
 * shared arena locked moves to a free or new arena if the limit allows.
 *
 * Remote frees.  A thread freeing chunks of an arena it cannot lock at once
 * pushes them on one of the arena's lock-free stacks instead of waiting:
 *   remote          single chunks (free() of a non-cached size) and runs
 *                   flushed from a class whose cache limit is 0; taken
 *                   back into the bins by whoever next enters the arena;
 *   remote_cls[i]   runs of class i flushed from other threads' caches, in
 *                   the cache's entry format with the count in the word; a
 *                   thread of this arena whose cache misses in class i
 *                   takes the whole list with one exchange and no lock and
 *                   installs it as its class i as it is (no walk).
 * Pushers use a CAS (a pre-linked run in one CAS); consumers take a whole
 * stack with an acquire exchange, so there is no ABA problem.
 * Waiting chunks count as in use until drained.
 *
 * Locks.  tm_list_lock guards the ring, the free list, `attached` and the
 * arena count; order: tm_list_lock before any arena lock.  Fork: the
 * prepare handler takes tm_list_lock and every arena lock; until the parent
 * or child handler releases them, the forking thread passes every lock
 * check without waiting (it holds them all), so other atfork handlers that
 * run in between may allocate, whenever they were registered.
 */
#ifndef TM_ARENA_H
#define TM_ARENA_H

#include "internal.h"
#include "owner.h"

/* Set up the main arena and adopt the calling thread (initialization). */
TM_HIDDEN void tm_arenas_init(void);

/* The calling thread's arena, locked; chooses one on first use. */
TM_HIDDEN tm_arena *tm_arena_enter(void);
/* A given arena (a chunk's owner), locked, waiting if needed. */
TM_HIDDEN void tm_arena_enter_owner(tm_arena *av);
/* The same, unless someone holds it right now (then false, not locked). */
TM_HIDDEN bool tm_arena_try_enter(tm_arena *av);
/* Unlock after the decay tick (every 32nd call looks at the clock). */
TM_HIDDEN void tm_arena_leave(tm_arena *av);
/* Unlock without the tick (introspection). */
TM_HIDDEN void tm_arena_unlock(tm_arena *av);
/* An allocation failed in av (left already): one other arena, entered,
 * or NULL.                                                             */
TM_HIDDEN tm_arena *tm_arena_retry(tm_arena *av);

TM_HIDDEN tm_arena *tm_thread_arena(void);
/* The calling thread is the only one attached to its arena av. */
TM_HIDDEN bool tm_arena_sole_user(tm_arena *av);
/* Everything other threads, and own flushes, left on av's remote and class
 * lists into its bins (av entered); true if there was anything. */
TM_HIDDEN bool tm_arena_drain_all(tm_arena *av);
TM_HIDDEN void tm_arena_detach_thread(void);          /* thread exit */
TM_HIDDEN size_t tm_arena_count(void);

/* Visit every arena, one at a time, entered and with every remote list
 * drained into its bins (statistics, checker, trim).  fn may leave and
 * re-enter the arena.                                                  */
TM_HIDDEN void tm_for_each_arena(void (*fn)(tm_arena *, void *), void *arg);
/* The same for observers (the statistics channel, the at-exit report):
 * each arena locked in turn, nothing drained or changed - looking must
 * not change what the allocator does next (chunks waiting on remote
 * lists count as in use).  fn must not leave the arena.               */
TM_HIDDEN void tm_for_each_arena_observe(void (*fn)(tm_arena *, void *), void *arg);

/* Free a list of in-use chunks linked through fd, of any arenas (each run
 * of same-arena chunks under one enter/leave).                        */
TM_HIDDEN void tm_arena_free_chunks(tm_chunk *list);

/* The calling thread ran the fork prepare handler and holds every lock
 * (other modules' locks taken in that window use it to pass too).     */
TM_HIDDEN bool tm_arena_fork_holder(void);

/* ---- thread-cache size classes (config.h) ------------------------------
 * Here, below the cache, because the class lists (next) and the checks
 * of their entries need them too.                                      */
static inline size_t tm_class_size(size_t i)
{
    if (i < TM_TCACHE_SMALL_BINS)
        return TM_MINSIZE + 16 * i;
    size_t m = i - TM_TCACHE_SMALL_BINS, k = 10 + (m >> 3);
    return ((size_t)1 << k) + (((m & 7) + 1) << (k - 3));
}
/* The medium classes: for v in (2^k, 2^(k+1)], with s = k - 3 (the step
 * of the 8 classes of that doubling), class 64 + 8(k - 10) + j has size
 * 2^k + (j + 1) 2^s, which folds into  i = 8s - 1 + size >> s.  So the
 * smallest class >= v is  8s + ((v - 1) >> s),  and a size is a class's
 * own iff it is a multiple of 2^s.  Both use the hot paths (tcache.h). */
_Static_assert(TM_TCACHE_SMALL_BINS == 64 && TM_MINSIZE + 16 * 63 == 1040 &&
               TM_TCACHE_MED_BINS % 8 == 0 &&
               TM_TCACHE_MED_MAX == (size_t)1 << (10 + TM_TCACHE_MED_BINS / 8),
               "the class formulas below assume these classes");
/* The smallest medium class whose size is >= v (1040 < v <= TM_TCACHE_MED_MAX;
 * v need not be a multiple of 16: the class sizes are).               */
static inline size_t tm_class_ceil_med(size_t v)
{
    unsigned s = 60u - (unsigned)__builtin_clzl(v - 1);     /* v - 1 in [2^(s+3), 2^(s+4)) */
    return 8 * (size_t)s + ((v - 1) >> s);
}
/* The smallest class whose size is >= nb (TM_MINSIZE <= nb <= TM_TCACHE_MED_MAX). */
static inline size_t tm_class_ceil(size_t nb)
{
    if (nb <= TM_MINSIZE + 16 * (TM_TCACHE_SMALL_BINS - 1))
        return (nb - TM_MINSIZE + 15) >> 4;
    return tm_class_ceil_med(nb);
}
/* The medium class of a chunk of exactly csize bytes; TM_TCACHE_BINS if
 * none (any csize).                                                    */
static inline size_t tm_class_exact_med(size_t csize)
{
    if (csize - 1041 >= TM_TCACHE_MED_MAX - 1040)    /* csize not in (1040, TM_TCACHE_MED_MAX] */
        return TM_TCACHE_BINS;
    unsigned s = 60u - (unsigned)__builtin_clzl(csize - 1);
    size_t q = csize >> s;
    return q << s == csize ? 8 * (size_t)s - 1 + q : TM_TCACHE_BINS;
}
/* The class of a chunk of exactly csize bytes; TM_TCACHE_BINS if none. */
static inline size_t tm_class_exact(size_t csize)
{
    if (csize - TM_MINSIZE <= 16 * (TM_TCACHE_SMALL_BINS - 1))
        return (csize & 15) ? TM_TCACHE_BINS : (csize - TM_MINSIZE) >> 4;
    return tm_class_exact_med(csize);
}

/* ---- remote frees ---------------------------------------------------------- */
TM_HIDDEN void tm_remote_push(tm_arena *av, tm_chunk *head, tm_chunk *tail);

/* Class lists (remote_cls[i]) hold thread-cache entries, not chunks: user
 * pointers whose first word is the safe-linked (tm_protect_ptr) pointer to
 * the next entry and whose second word holds the list's parked key
 * (tm_park_key: free calls any key a double free, tcache.h).  The list
 * word is  (count << 48) | head:  a run of n entries is pushed with one
 * CAS (its tail linked to the old head inside the loop), and the taker
 * gets head and count with one exchange; it re-keys the entries to its
 * cache's key in one walk (tcache.c rekey_list), since a cache's hit
 * path takes only its own key.  x86-64 user pointers fit in 47 bits.   */
#define TM_RCLS_SHIFT 48
#define TM_RCLS_MAXN  0xffffu
typedef struct {
    void *head;      /* NULL-terminated through the protected links */
    size_t n;        /* entries on it                               */
} tm_rlist;
/* Push the run head..tail (n entries, linked; tail's link is set here).
 * False (nothing pushed): the list would exceed `max` (at most
 * TM_RCLS_MAXN) entries or the pointer does not fit the word; the caller
 * frees another way.                                                   */
TM_HIDDEN bool tm_remote_push_class(tm_arena *av, size_t i, void *head, void *tail, size_t n,
                                    size_t max);
/* ---- parked keys ------------------------------------------------------------
 * An entry parked on a list - class list i of arena av, or av's general
 * remote stack (slot TM_PARK_STACK) - holds that list's parked key in its
 * second word: tm_sec.parked (bit 27 set: parked, not cached) with the
 * arena's number in bits 2..17 and the slot's in bits 19..26, the layout
 * of a cache's keys (tcache.h), so that free's "marked" test covers them
 * all.  Whoever takes entries off a list requires that list's key
 * exactly: a link redirected by XOR (two known addresses, no secret) to
 * an entry parked on another list - another arena's, another class's -
 * is refused, where one key for all lists let the entry be taken twice,
 * once from each list.                                                 */
#define TM_PARK_STACK 255u
_Static_assert(TM_TCACHE_BINS < TM_PARK_STACK, "a class list's slot fits bits 19..26 of a parked key, apart from the stack's");
static inline uintptr_t tm_park_key(const tm_arena *av, size_t slot)
{
    return tm_sec.parked ^ ((uintptr_t)av->park_salt << 2) ^ ((uintptr_t)slot << 19);
}

/* Chunks parked on the general remote stack carry its parked key in their
 * second word (bk), which every way off the stack clears (tm_int_free).  A chunk
 * taken off it must be ours, aligned, intact, in
 * use and hold av's stack key (TIDE_CHECKS): a link is checked before it is followed. */
static inline void tm_remote_check(const tm_arena *av, const tm_chunk *p, size_t i)
{
    if (unlikely(misaligned_chunk(p)))
        tm_corrupt("malloc(): corrupted remote list link", p);
#if TIDE_CHECKS
    if (unlikely(!tm_own_in_heaps((uintptr_t)p)))
        tm_corrupt("malloc(): corrupted remote list link", p);
    size_t w = size_word(p);
    if (unlikely((i < TM_TCACHE_BINS && word_size(w) != tm_class_size(i)) ||
                 (w & TM_IS_MMAPPED) || !hdr_ok(p, w, TM_ST_CACHED) ||
                 (uintptr_t)p->bk != tm_park_key(av, TM_PARK_STACK)))
        tm_corrupt("malloc(): corrupted remote list link", p);
#else
    (void)av, (void)i;
#endif
}

/* A cache-format entry (thread cache or class list) of class i about to
 * be used: in our heaps and its header intact, in use, of the class
 * (TIDE_CHECKS; the caller has checked its alignment).                */
static TM_INLINE bool tm_entry_hdr_ok(const void *e, size_t i)
{
#if TIDE_CHECKS
    if (unlikely(!tm_own_in_heaps((uintptr_t)e - TM_HDR)))   /* (e may be NULL) */
        return false;
    const tm_chunk *p = mem2chunk(e);
    size_t w = size_word(p);
    return (w & (TM_SIZE_MASK | TM_IS_MMAPPED)) == tm_class_size(i) && hdr_ok(p, w, TM_ST_CACHED);
#else
    (void)e, (void)i;
    return true;
#endif
}

/* An entry taken off a class list by anything but a cache install (the
 * drains into the bins, arena.c): ours, aligned, intact, in use, of class
 * i and holding av's class-i parked key (TIDE_CHECKS).  An installed
 * list's entries are checked by the installing walk (tcache.c rekey_list). */
static inline void tm_rentry_check(const tm_arena *av, const void *e, size_t i)
{
    if (unlikely(!aligned_ok((uintptr_t)e) || !tm_entry_hdr_ok(e, i) ||
                 (TIDE_CHECKS && ((const uintptr_t *)e)[1] != tm_park_key(av, i))))
        tm_corrupt("malloc(): corrupted remote list link", e);
}

/* Entries on the class-i list right now (a hint: it may change at once). */
static inline size_t tm_remote_class_count(tm_arena *av, size_t i)
{
    return atomic_load_explicit(&av->remote_cls[i], memory_order_relaxed) >> TM_RCLS_SHIFT;
}
/* Take the whole class-i list (no lock needed). */
static inline tm_rlist tm_remote_take_class(tm_arena *av, size_t i)
{
    tm_rlist l = { NULL, 0 };
    if (av && atomic_load_explicit(&av->remote_cls[i], memory_order_relaxed)) {
        uintptr_t w = atomic_exchange_explicit(&av->remote_cls[i], 0, memory_order_acquire);
        l.head = (void *)(w & (((uintptr_t)1 << TM_RCLS_SHIFT) - 1));
        l.n = w >> TM_RCLS_SHIFT;
    }
    return l;
}

/* ---- page release: decay ---------------------------------------------------- */
/* Purge every arena (waiting for its lock) of what has been free for the
 * decay time; returns the earliest time (ms) at which more becomes due,
 * or UINT64_MAX if nothing is waiting.  (The background thread.)       */
TM_HIDDEN uint64_t tm_arenas_decay(uint64_t now);

/* ---- fork ------------------------------------------------------------------ */
TM_HIDDEN void tm_arenas_fork_lock(void);
TM_HIDDEN void tm_arenas_fork_unlock(void);
TM_HIDDEN void tm_arenas_fork_child(void);

#endif
