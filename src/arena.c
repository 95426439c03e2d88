/* arena.c - arena selection, enter/leave, remote frees, decay (see arena.h). */
#define _GNU_SOURCE
#include "arena.h"
#include "bins.h"
#include "heap.h"
#include "engine.h"
#include "os.h"
#include "sysmem.h"
#include <sys/single_threaded.h>

static tm_lock list_lock = TM_LOCK_INIT;
static tm_arena *free_list;          /* list lock */
static size_t narenas = 1;           /* list lock; mirrored in tm_narenas */
static tm_arena *next_to_use;        /* list lock */
static _Atomic uint64_t next_sweep;  /* when a decay tick next sweeps the other arenas */

static __thread tm_arena *tls_arena __attribute__((tls_model("initial-exec")));
static __thread bool tls_exiting __attribute__((tls_model("initial-exec")));
/* This thread ran the fork prepare handler and holds every lock. */
static __thread bool tls_fork_holder __attribute__((tls_model("initial-exec")));

/* ---- locks (every arena lock operation goes through these) ---------------
 * While the process has one thread (glibc's __libc_single_threaded: set
 * to false by pthread_create before the new thread exists, and never
 * back while threads may exist), the lock word is taken and given back
 * with plain relaxed stores instead of a CAS and an exchange: nobody else
 * can hold it or wait on it, and the word is in the same state either way,
 * so the process is consistent when it becomes multi-threaded (no thread
 * is created from inside the allocator with an arena lock held).  glibc
 * skips its arena lock the same way.  Single-threaded programs (gcc's
 * passes, python, perl, sqlite, jq) take an arena lock on every refill,
 * flush and uncached free.                                             */
static inline bool one_thread(void) { return __libc_single_threaded != 0; }
static inline bool lock_try(tm_lock *l)
{
    if (unlikely(tls_fork_holder))
        return true;
    if (one_thread()) {
        if (atomic_load_explicit(&l->v, memory_order_relaxed) != 0)
            return false;
        atomic_store_explicit(&l->v, 1, memory_order_relaxed);
        return true;
    }
    return tm_lock_try(l);
}
static inline void lock_acquire(tm_lock *l)
{
    if (unlikely(!lock_try(l)))
        tm_lock_wait(l);
}
static inline void lock_release(tm_lock *l)
{
    if (unlikely(tls_fork_holder))
        return;
    if (one_thread()) {
        atomic_store_explicit(&l->v, 0, memory_order_relaxed);
        return;
    }
    tm_lock_release(l);
}

static inline tm_arena *ring_next(tm_arena *av)
{
    return atomic_load_explicit(&av->next, memory_order_acquire);
}

void tm_arenas_init(void)
{
    tm_bins_init(&tm_main_arena);
    atomic_store_explicit(&tm_main_arena.next, &tm_main_arena, memory_order_relaxed);
    tm_main_arena.attached = 1;
    next_to_use = &tm_main_arena;
    tls_arena = &tm_main_arena;
}

size_t tm_arena_count(void)
{
    lock_acquire(&list_lock);
    size_t n = narenas;
    lock_release(&list_lock);
    return n;
}

static size_t arena_limit(void)
{
    size_t max = TM_P(arena_max);
    if (max)
        return max;
    size_t n = tm_fix.ncpus * TM_ARENAS_PER_CPU, test = TM_P(arena_test);
    return n > test ? n : test;
}

/* ---- remote frees --------------------------------------------------------- */
static void push_list(_Atomic(tm_chunk *) *list, tm_chunk *head, tm_chunk *tail)
{
    tm_chunk *old = atomic_load_explicit(list, memory_order_relaxed);
    do {
        tail->fd = old;
    } while (!atomic_compare_exchange_weak_explicit(list, &old, head, memory_order_seq_cst,
                                                    memory_order_relaxed));
    /* Chunks waiting here are free memory nobody may come back for: the
     * background thread (if asleep with nothing to do) takes them in.   */
    tm_event_poke(&tm_bg_event);
}

void tm_remote_push(tm_arena *av, tm_chunk *head, tm_chunk *tail)
{
    push_list(&av->remote, head, tail);
}

bool tm_remote_push_class(tm_arena *av, size_t i, void *head, void *tail, size_t n, size_t max)
{
    if (max > TM_RCLS_MAXN)
        max = TM_RCLS_MAXN;
    const uintptr_t mask = ((uintptr_t)1 << TM_RCLS_SHIFT) - 1;
    if (unlikely(((uintptr_t)head & ~mask) != 0))
        return false;
    _Atomic uintptr_t *list = &av->remote_cls[i];
    uintptr_t old = atomic_load_explicit(list, memory_order_relaxed), w;
    do {
        size_t have = old >> TM_RCLS_SHIFT;
        if (have + n > max)
            return false;
        /* The cache's link format (tcache.h tc_link): protected pointer. */
        uintptr_t *slot = tail;
        *slot = tm_protect_ptr(slot, old & mask);
        w = ((uintptr_t)(have + n) << TM_RCLS_SHIFT) | (uintptr_t)head;
    } while (!atomic_compare_exchange_weak_explicit(list, &old, w, memory_order_seq_cst,
                                                    memory_order_relaxed));
    tm_event_poke(&tm_bg_event);
    /* After the push, seq_cst: a drainer that clears the flag before
     * scanning either sees this push or sees the flag set again.       */
    atomic_store_explicit(&av->remote_cls_any, 1, memory_order_seq_cst);
    return true;
}

/* Chunks off the lists into the bins go in a cache flush's two passes
 * (engine.h tm_int_free_pend): each checked and made pending as it
 * comes off its list, then every run of neighbours merged once, at the
 * settle.  One at a time (tm_int_free), a chunk freed next to the one
 * before it took that one out of its bin again to merge: a drain of a
 * busy class list is mostly such neighbours.                         */

/* A class list (av entered) onto pend.  (Its entries' keys, the second
 * word, go with the pending link or the fast bin's NULL written there.) */
static void free_class_list(tm_arena *av, tm_rlist l, size_t i, tm_pending *pend)
{
    uintptr_t *e = l.head;
    for (size_t k = 0; k < l.n && e; k++) {
        tm_rentry_check(av, e, i);
        uintptr_t *next = (uintptr_t *)tm_protect_ptr(e, e[0]);
        tm_int_free_pend(av, mem2chunk(e), pend);
        e = next;
    }
}

/* The general remote stack's chain (av entered) onto pend. */
static void free_list_chain(tm_arena *av, tm_chunk *p, tm_pending *pend)
{
    while (p) {
        tm_remote_check(av, p, TM_TCACHE_BINS);
        tm_chunk *next = p->fd;
        tm_int_free_pend(av, p, pend);
        p = next;
    }
}

void tm_arena_free_chunks(tm_chunk *list)
{
    while (list) {
        tm_arena *av = arena_for_chunk(list);
        tm_arena_enter_owner(av);
        tm_pending pend;
        tm_int_free_begin(av, &pend);
        while (list && arena_for_chunk(list) == av) {
            tm_chunk *next = list->fd;
            tm_int_free_pend(av, list, &pend);
            list = next;
        }
        tm_int_free_settle(av, &pend);
        tm_arena_leave(av);
    }
}

/* The general remote stack onto pend (av entered): true if it held any. */
static inline bool drain_stack(tm_arena *av, tm_pending *pend)
{
    if (likely(atomic_load_explicit(&av->remote, memory_order_relaxed) == NULL))
        return false;
    tm_chunk *list = atomic_exchange_explicit(&av->remote, NULL, memory_order_acquire);
    free_list_chain(av, list, pend);
    return list != NULL;
}

/* The general remote stack into the bins (av entered). */
static inline bool drain(tm_arena *av)
{
    if (likely(atomic_load_explicit(&av->remote, memory_order_relaxed) == NULL))
        return false;
    tm_pending pend;
    tm_int_free_begin(av, &pend);
    bool any = drain_stack(av, &pend);
    tm_int_free_settle(av, &pend);
    return any;
}

/* Everything other threads left for this arena, class lists included:
 * true if there was anything. */
static bool drain_all(tm_arena *av)
{
    tm_pending pend;
    tm_int_free_begin(av, &pend);
    bool any = drain_stack(av, &pend);
    if (atomic_load_explicit(&av->remote_cls_any, memory_order_relaxed) &&
        atomic_exchange_explicit(&av->remote_cls_any, 0, memory_order_seq_cst)) {
        for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
            tm_rlist l = tm_remote_take_class(av, i);
            any = any || l.head != NULL;
            free_class_list(av, l, i, &pend);
        }
    }
    tm_int_free_settle(av, &pend);
    return any;
}

/* ---- choosing an arena ------------------------------------------------------ */
/* Switch the calling thread to `av` (list lock held). */
static void attach_locked(tm_arena *av)
{
    tm_arena *old = tls_arena;
    if (old == av && !tls_exiting)
        return;                  /* stays where it is: no new reference */
    av->attached++;
    if (old && old != av && !tls_exiting) {
        if (--old->attached == 0) {
            old->next_free = free_list;
            free_list = old;
        }
    }
    tls_arena = av;
}

static tm_arena *take_free_locked(void)
{
    tm_arena *av = free_list;
    if (av) {
        free_list = av->next_free;
        av->next_free = NULL;
    }
    return av;
}

static void unlink_from_free_list(tm_arena *av)
{
    for (tm_arena **pp = &free_list; *pp; pp = &(*pp)->next_free)
        if (*pp == av) {
            *pp = av->next_free;
            av->next_free = NULL;
            return;
        }
}

/* Find an arena for a thread that has none, or whose arena is busy
 * (avoid != NULL).  Returns it locked.                                   */
static tm_arena *arena_get2(tm_arena *avoid)
{
    lock_acquire(&list_lock);
    tm_arena *av = take_free_locked();
    if (av) {
        attach_locked(av);
        lock_release(&list_lock);
        lock_acquire(&av->lock);
        return av;
    }
    if (narenas < arena_limit() && !tls_fork_holder) {
        narenas++;
        lock_release(&list_lock);
        av = tm_sys_new_arena();
        lock_acquire(&list_lock);
        if (av) {
            static uint16_t salts;      /* (list lock) */
            av->park_salt = ++salts;    /* before the arena is published */
            atomic_store_explicit(&tm_narenas, narenas, memory_order_relaxed);
            atomic_store_explicit(&av->next, ring_next(&tm_main_arena), memory_order_relaxed);
            atomic_store_explicit(&tm_main_arena.next, av, memory_order_release);
            attach_locked(av);
            lock_release(&list_lock);
            lock_acquire(&av->lock);
            return av;
        }
        narenas--;
    }
    /* At the limit: the first arena, round robin, that is free right now;
     * else wait for the next one in turn.                                */
    tm_arena *start = next_to_use, *cand = start;
    av = NULL;
    do {
        if (cand != avoid && lock_try(&cand->lock)) {
            av = cand;
            break;
        }
        cand = ring_next(cand);
    } while (cand != start);
    bool locked = av != NULL;
    if (!av)
        av = start == avoid && ring_next(start) != start ? ring_next(start) : start;
    next_to_use = ring_next(av);
    if (av->attached == 0)
        unlink_from_free_list(av);
    attach_locked(av);
    lock_release(&list_lock);
    if (!locked)
        lock_acquire(&av->lock);
    return av;
}

static TM_NOINLINE tm_arena *arena_enter_slow(tm_arena *av)
{
    if (likely(av != NULL)) {
        /* Contended: if other threads share this arena, move to a new or
         * free one if one can be had.  A thread alone on its arena only
         * meets brief contention (another thread's realloc, a sweep):
         * moving would just multiply arenas and their free memory.     */
        if (!tls_exiting) {
            lock_acquire(&list_lock);
            bool move = av->attached > 1 && (free_list != NULL || narenas < arena_limit());
            lock_release(&list_lock);
            if (move)
                return arena_get2(av);
        }
        lock_acquire(&av->lock);
        return av;
    }
    return arena_get2(NULL);
}

tm_arena *tm_arena_enter(void)
{
    tm_arena *av = tls_arena;
    if (unlikely(av == NULL || !lock_try(&av->lock)))
        av = arena_enter_slow(av);
    drain(av);
    return av;
}

void tm_arena_enter_owner(tm_arena *av)
{
    lock_acquire(&av->lock);
    drain(av);
}

bool tm_arena_try_enter(tm_arena *av)
{
    if (!lock_try(&av->lock))
        return false;
    drain(av);
    return true;
}

void tm_arena_unlock(tm_arena *av)
{
    lock_release(&av->lock);
}

tm_arena *tm_arena_retry(tm_arena *av)
{
    if (av != &tm_main_arena) {
        tm_arena_enter_owner(&tm_main_arena);
        return &tm_main_arena;
    }
    tm_arena *other = ring_next(av);
    if (other == av)
        return NULL;
    tm_arena_enter_owner(other);
    return other;
}

tm_arena *tm_thread_arena(void) { return tls_arena; }
bool tm_arena_drain_all(tm_arena *av) { return drain_all(av); }
bool tm_arena_fork_holder(void) { return tls_fork_holder; }

void tm_for_each_arena(void (*fn)(tm_arena *, void *), void *arg)
{
    tm_arena *av = &tm_main_arena;
    do {
        tm_arena_enter_owner(av);
        drain_all(av);
        fn(av, arg);
        tm_arena_unlock(av);
        av = ring_next(av);
    } while (av != &tm_main_arena);
}

void tm_for_each_arena_observe(void (*fn)(tm_arena *, void *), void *arg)
{
    tm_arena *av = &tm_main_arena;
    do {
        lock_acquire(&av->lock);
        fn(av, arg);
        lock_release(&av->lock);
        av = ring_next(av);
    } while (av != &tm_main_arena);
}

/* Thread exit: drop this thread's reference to its arena.  The arena
 * stays in tls_arena so that later destructors can still allocate. */
bool tm_arena_sole_user(tm_arena *av)
{
    lock_acquire(&list_lock);
    bool sole = av->attached <= 1;
    lock_release(&list_lock);
    return sole;
}

void tm_arena_detach_thread(void)
{
    tm_arena *av = tls_arena;
    if (!av || tls_exiting)
        return;
    tls_exiting = true;
    lock_acquire(&list_lock);
    if (av->attached > 0 && --av->attached == 0) {
        av->next_free = free_list;
        free_list = av;
    }
    lock_release(&list_lock);
}

/* ---- decay ------------------------------------------------------------------ */
static uint64_t decay_step(long decay)
{
    uint64_t step = decay >= 0 ? (uint64_t)decay / 4 : 250;
    return step ? step : 1;
}

/* Release what has been free for the decay time, or for
 * TM_BUSY_DECAY_MULT times it while the arena is busy (av entered,
 * decay >= 0); *oldest as tm_bins_purge.                              */
static void purge(tm_arena *av, uint64_t now, long decay, uint64_t *oldest)
{
    av->next_purge = now + decay_step(decay);
    /* The top has not grown for the decay time: its churn is over
     * (sysmem.h, sysmem.c trim_deferred). */
    if (unlikely(av->trim_by_decay) && av->top_stamp <= now - (uint64_t)decay)
        av->trim_by_decay = false;
    /* Busy or quiet (config.h TM_BUSY_DECAY_MULT): the lock sections of
     * the last window of at least a quarter decay.  A window is closed
     * only by a purge that comes a whole quarter after its start: purges
     * milliseconds apart (the background thread's pass, another arena's
     * sweep, this arena's tick) would see no sections and call a busy
     * arena quiet.  Its callers read the clock before they took the
     * lock, so `now` may be behind busy_since.                        */
    uint64_t span = now > av->busy_since ? now - av->busy_since : 0;
    if (span >= decay_step(decay)) {
        uint32_t ops = av->purge_ops - av->busy_ops;
        av->busy = (uint64_t)ops * 1000 >= (uint64_t)TM_BUSY_RATE * span;
        av->busy_ops = av->purge_ops;
        av->busy_since = now;
    }
    uint64_t age = (uint64_t)decay;
    if (av->busy)
        age *= TM_BUSY_DECAY_MULT;
    tm_bins_purge(av, now > age ? now - age : 0, TM_P(top_pad), oldest);
}

/* A slow-path tick: purge av if its time has come. */
static void purge_if_due(tm_arena *av, uint64_t now, long decay)
{
    if (now < av->next_purge)
        return;
    purge(av, now, decay, NULL);
    /* The high-water mark that makes the cap strict after a deep drain
     * follows an active program's working set down (1/8 of the gap per
     * tick); a quiet program makes no ticks and keeps it.              */
    size_t other = tm_release_other(av);
    if (av->other_hwm > other)
        av->other_hwm -= (av->other_hwm - other) / 8;
    if (av->inuse_hwm > av->inuse)
        av->inuse_hwm -= (av->inuse_hwm - av->inuse) / 8;
}

/* Every 32nd leave: purge this arena if due, and now and then sweep the
 * *other* arenas (trylock only, so no lock-order problem): an arena whose
 * threads went quiet would otherwise keep its free pages forever.       */
static TM_NOINLINE void tick_slow(tm_arena *av)
{
    /* The in-use high-water mark and the ebb (release.h): here, not at
     * every free, where they cost python 1 % more instructions.       */
    if (av->inuse > av->inuse_hwm)
        av->inuse_hwm = av->inuse;
    bool ebbed = tm_release_ebbed(av);
    if (ebbed != atomic_load_explicit(&av->ebbed, memory_order_relaxed))
        atomic_store_explicit(&av->ebbed, ebbed, memory_order_relaxed);
    if (unlikely(!av->swing_armed) && !av->swinging && av->inuse >= av->inuse_hwm / 2) {
        /* The working set is (back) up: after a counted drain, the arena
         * swings (release.h); else the next drain may count.          */
        if (av->swing_drains >= TM_SWING_DRAINS) {
            av->swinging = true;
            atomic_store_explicit(&tm_solo_bg_wanted, true, memory_order_relaxed);
        } else {
            tm_release_swing_arm(av);
        }
    }
    uint64_t now = tm_os_now_ms();
    long decay = TM_P(decay_ms);
    if (decay >= 0 && now >= av->next_purge)
        drain_all(av);           /* own chunks parked on the class lists, too */
    if (decay >= 0)
        purge_if_due(av, now, decay);
    /* (after the purge's decay of the mark: the caches see the mark as it is) */
    atomic_store_explicit(&av->inuse_hint, av->inuse_hwm, memory_order_relaxed);
    uint64_t due = atomic_load_explicit(&next_sweep, memory_order_relaxed);
    if (now < due ||
        !atomic_compare_exchange_strong(&next_sweep, &due, now + decay_step(decay)))
        return;
    for (tm_arena *o = ring_next(av); o != av; o = ring_next(o)) {
        if (lock_try(&o->lock)) {
            drain_all(o);
            if (decay >= 0)
                purge_if_due(o, now, decay);
            lock_release(&o->lock);
        }
    }
}

void tm_arena_leave(tm_arena *av)
{
    if (unlikely((++av->purge_ops & 31) == 0))
        tick_slow(av);
    /* A single-threaded process drains its arena: the caller's slow path
     * starts the background thread once the lock is let go (release.h).
     * Its own arena only: a fork child freeing the blocks of its
     * parent's other threads, whose arenas it inherited, is not
     * draining a working set of its own.                              */
    if (unlikely(tm_release_solo_drain(av)) && av == tls_arena)
        atomic_store_explicit(&tm_solo_bg_wanted, true, memory_order_relaxed);
    lock_release(&av->lock);
}

uint64_t tm_arenas_decay(uint64_t now)
{
    long decay = TM_P(decay_ms);
    uint64_t oldest = UINT64_MAX;
    tm_arena *av = &tm_main_arena;
    do {
        tm_arena_enter_owner(av);
        drain_all(av);
        if (decay >= 0) {
            /* Small freed blocks held in fast bins can only become
             * releasable runs once consolidated.                        */
            if (av->fast_bytes >= TM_RELEASE_MIN)
                tm_bins_consolidate(av);
            uint64_t o;
            purge(av, now, decay, &o);
            if (o < oldest)
                oldest = o;
        }
        tm_arena_unlock(av);
        av = ring_next(av);
    } while (av != &tm_main_arena);
    return oldest == UINT64_MAX ? UINT64_MAX : oldest + (uint64_t)decay;
}

/* ---- fork ------------------------------------------------------------------- */
void tm_arenas_fork_lock(void)
{
    tm_lock_acquire(&list_lock);
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_acquire(&av->lock);
        av = ring_next(av);
    } while (av != &tm_main_arena);
    tls_fork_holder = true;
}

void tm_arenas_fork_unlock(void)
{
    tls_fork_holder = false;
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_release(&av->lock);
        av = ring_next(av);
    } while (av != &tm_main_arena);
    tm_lock_release(&list_lock);
}

/* Only the forking thread survives: every lock is free again, and every
 * arena but its own is free for the taking.                              */
void tm_arenas_fork_child(void)
{
    tls_fork_holder = false;
    free_list = NULL;
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_reinit(&av->lock);
        av->next_free = NULL;
        av->swinging = false;        /* (release.h) the child's own rounds count */
        av->swing_drains = 0;
        av->swing_armed = false;
        av->solo_released = 0;       /* (release.h tm_release_solo_note) */
        /* and its own drains (release.h tm_release_solo_drain): measured
         * from what it inherited, not from the parent's mark.           */
        av->inuse_hwm = av->inuse;
        if (av == tls_arena && !tls_exiting) {
            av->attached = 1;
        } else {
            av->attached = 0;
            av->next_free = free_list;
            free_list = av;
        }
        av = ring_next(av);
    } while (av != &tm_main_arena);
    tm_lock_reinit(&list_lock);
}
