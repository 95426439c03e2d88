/* tcache.c - slow paths of the per-thread cache (see tcache.h). */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bins.h"
#include "engine.h"
#include "heap.h"
#include "os.h"
#include "sysmem.h"
#include "tcache.h"

__thread tm_tcache *tm_tls_tcache __attribute__((tls_model("initial-exec")));
__thread uint8_t tm_tls_tcache_state __attribute__((tls_model("initial-exec")));
uintptr_t tm_tcache_key;
_Atomic uint16_t tm_tc_limit[TM_TCACHE_BINS];

/* Registry of every thread's cache, for the reclaimer.  Lock order: arena
 * locks before reg_lock (the fork handler); nobody takes an arena lock
 * while holding reg_lock.                                               */
static tm_lock reg_lock = TM_LOCK_INIT;
static tm_tcache *reg_head;
static _Atomic bool reclaim_ok;   /* membarrier registered (background thread) */

/* In the fork window the forking thread holds reg_lock (tm_tcache_fork_lock)
 * and passes it, as it passes the arena locks (arena.h).              */
static void reg_acquire(void)
{
    if (!tm_arena_fork_holder())
        tm_lock_acquire(&reg_lock);
}
static void reg_release(void)
{
    if (!tm_arena_fork_holder())
        tm_lock_release(&reg_lock);
}

static void reg_add(tm_tcache *tc)
{
    reg_acquire();
    tc->reg_prev = NULL;
    tc->reg_next = reg_head;
    if (reg_head)
        reg_head->reg_prev = tc;
    reg_head = tc;
    reg_release();
}

static void reg_remove(tm_tcache *tc)
{
    reg_acquire();
    if (tc->reg_prev)
        tc->reg_prev->reg_next = tc->reg_next;
    else
        reg_head = tc->reg_next;
    if (tc->reg_next)
        tc->reg_next->reg_prev = tc->reg_prev;
    reg_release();
}

/* limit(class) = min(tcache_count, share of the byte budget), >= 1 when
 * counts are on; classes above tcache_max are not cached.               */
void tm_tcache_recompute_limits(void)
{
    size_t share = TM_P(tcache_bytes) / TM_TCACHE_BINS;
    size_t count = TM_P(tcache_count), max_req = TM_P(tcache_max_req);
    /* M_PERTURB and the strong mode want every allocation and free seen. */
    bool perturb = TM_P(perturb) != 0 || TM_P(harden) != 0;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        size_t csize = TM_MINSIZE + 16 * i;
        size_t lim = 0;
        if (count > 0 && max_req > 0 && i <= tc_req_index(max_req)) {
            lim = share / csize;
            if (lim < 1)
                lim = 1;
            if (lim > count)
                lim = count;
        }
        if (perturb)
            lim = 0;
        atomic_store_explicit(&tm_tc_limit[i], (uint16_t)lim, memory_order_relaxed);
    }
}

void tm_tcache_init_key(void)
{
    tm_tcache_key = tm_os_random() | 1;   /* odd: never a valid pointer */
}

bool tm_tcache_thread_init(void)
{
    if (tm_tls_tcache_state != 0)
        return false;
    tm_tls_tcache_state = 2;     /* guards against re-entry while we allocate */
    size_t nb = request2size(sizeof(tm_tcache));
    tm_arena *av = tm_arena_enter();
    void *mem = tm_int_malloc(av, nb, NULL);
    tm_arena_leave(av);
    if (!mem)
        return true;             /* no cache for this thread; still correct */
    memset(mem, 0, sizeof(tm_tcache));
    reg_add(mem);
    tm_tls_tcache = mem;
    tm_tls_tcache_state = 1;
    tm_event_poke(&tm_bg_event);     /* one more cache to watch */
    return true;
}

static void push_run(tm_arena *av, tm_chunk *head, tm_chunk *tail, size_t i)
{
    if (i < TM_TCACHE_BINS)
        tm_remote_push_class(av, i, head, tail);
    else
        tm_remote_push(av, head, tail);
}

/* Free a chain of n cached entries of class i (TM_TCACHE_BINS: not a
 * cached class) to their arenas.  Chunks of the calling thread's own arena
 * are freed under its lock; chunks of other arenas are pushed, a run at a
 * time, with one CAS on that arena's remote list for class i, where a
 * thread of that arena takes them back into its cache without a lock: a
 * consumer never waits for a producer, and the objects skip the bins.   */
static void free_chain(tm_tc_entry *e, size_t n, size_t i)
{
    tm_arena *own = tm_thread_arena();
    bool own_locked = false;
    tm_arena *cur = NULL;
    tm_chunk *run_head = NULL, *run_tail = NULL;
    while (n--) {
        tm_tc_entry *next = n ? tc_reveal(e) : NULL;
        e->key = 0;
        tm_chunk *p = mem2chunk(e);
        tm_arena *av = arena_for_chunk(p);
        if (av == own || own == NULL) {
            if (!own_locked) {
                own = av;
                tm_arena_enter_owner(own);
                own_locked = true;
            }
            tm_int_free(av, p);
        } else {
            if (av != cur && run_head) {
                push_run(cur, run_head, run_tail, i);
                run_head = NULL;
            }
            cur = av;
            p->fd = NULL;
            if (run_head)
                run_tail->fd = p;
            else
                run_head = p;
            run_tail = p;
        }
        e = next;
    }
    if (run_head)
        push_run(cur, run_head, run_tail, i);
    if (own_locked)
        tm_arena_leave(own);
}

/* Class i is full: keep its newest half (hot in cache), flush the rest,
 * then cache e.                                                          */
void tm_tcache_put_full(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    size_t lim = tc_limit(i);      /* once: another thread's mallopt may change it */
    if (lim == 0 || tc->counts[i] == 0) {
        /* Class not cached any more (another thread's mallopt changed the
         * limits after our caller looked): straight to the arena.       */
        e->key = 0;
        free_chain(e, 1, TM_TCACHE_BINS);
        return;
    }
    size_t keep = lim / 2;
    if (keep > tc->counts[i])      /* the limit was raised since the caller looked */
        keep = tc->counts[i];
    tm_tc_entry *cut = tc->entries[i], *rest;
    if (keep == 0) {
        rest = cut;
        tc->entries[i] = NULL;
    } else {
        for (size_t k = 1; k < keep; k++)
            cut = tc_reveal(cut);
        rest = tc_reveal(cut);
        tc_link(cut, NULL);
    }
    size_t nflush = tc->counts[i] - keep;
    tc->counts[i] = (uint16_t)keep;
    free_chain(rest, nflush, i);
    tc_push(tc, e, i);
}

/* Cut the in-use chunk c (from tm_int_malloc) into pieces of nb bytes:
 * all but the last go into class i; the last, which also takes the
 * split's leftover (< 32 bytes), is returned.                           */
static void *carve(tm_tcache *tc, tm_chunk *c, size_t nb, size_t i)
{
    size_t total = chunksize(c);
    size_t bits = size_word(c) & (TM_PREV_INUSE | TM_NON_MAIN);
    size_t abit = size_word(c) & TM_NON_MAIN;
    size_t n = total / nb;
    char *p = (char *)c;
    for (size_t k = 0; k + 1 < n; k++) {
        set_head((tm_chunk *)p, nb | bits);
        tc_push(tc, chunk2mem((tm_chunk *)p), i);
        bits = TM_PREV_INUSE | abit;
        p += nb;
    }
    set_head((tm_chunk *)p, (size_t)((char *)c + total - p) | bits);
    return chunk2mem((tm_chunk *)p);
}

/* Move up to the class limit from list p into class i; return the first
 * chunk's memory; the rest (if any) becomes the class's spill list.     */
static void *take_list(tm_tcache *tc, tm_chunk *p, size_t i)
{
    void *first = chunk2mem(p);
    p = p->fd;
    size_t lim = tc_limit(i);
    while (p && tc->counts[i] < lim) {
        tm_chunk *next = p->fd;
        tc_push(tc, chunk2mem(p), i);
        p = next;
    }
    tc->spill[i] = p;
    return first;
}

/* The class's spill, else the chunks other threads freed into our arena's
 * class-i remote list (one exchange, no lock).                          */
static void *take_remote_class(tm_tcache *tc, tm_arena *own, size_t i)
{
    if (tc->spill[i])
        return take_list(tc, tc->spill[i], i);
    tm_chunk *p = tm_remote_take_class(own, i);
    return p ? take_list(tc, p, i) : NULL;
}

/* A miss in class i.  First the class's remote list (no lock).  Else a
 * batch from the arena under one lock: chunks of exactly nb waiting in a
 * fast or small bin come first; the rest is carved from one chunk of the
 * needed total (one trip through the bins, and the new chunks lie side
 * by side).                                                            */
void *tm_tcache_refill(tm_tcache *tc, size_t nb)
{
    size_t i = tc_csize_index(nb);
    void *m0 = take_remote_class(tc, tm_thread_arena(), i);
    if (m0)
        return m0;
    size_t want = tc_limit(i) / 2 + 1;
    tm_arena *av = tm_arena_enter();
    void *first = NULL;
    size_t got = 0;
    while (got < want && tm_bins_has_exact(av, nb)) {
        void *m = tm_int_malloc(av, nb, NULL);
        if (!m)
            break;
        if (!first)
            first = m;
        else
            tc_push(tc, m, i);
        got++;
    }
    size_t need = want - got;
    if (need > 0) {
        size_t bytes = need * nb;
        void *m = NULL;
        if (need > 1 && bytes < TM_P(mmap_threshold))
            m = tm_int_malloc(av, bytes, NULL);
        if (m && !chunk_is_mmapped(mem2chunk(m))) {
            m = carve(tc, mem2chunk(m), nb, i);
        } else if (!m) {
            m = tm_int_malloc(av, nb, NULL);
        }
        if (m) {
            if (!first)
                first = m;
            else {
                /* first is exact; m may be a little bigger: cache it in its class. */
                size_t j = tc_csize_index(chunksize(mem2chunk(m)));
                if (!chunk_is_mmapped(mem2chunk(m)) && j < TM_TCACHE_BINS && tc->counts[j] < tc_limit(j))
                    tc_push(tc, m, j);
                else if (chunk_is_mmapped(mem2chunk(m)))
                    tm_munmap_chunk(mem2chunk(m));
                else
                    tm_int_free(av, mem2chunk(m));
            }
        }
    }
    tm_arena_leave(av);
    return first;
}

/* e carries the cache key: it is cached already, or its user data happens
 * to hold the key (astronomically unlikely).  Look before crying wolf.  */
void tm_tcache_double_free_check(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    size_t n = 0;
    for (tm_tc_entry *t = tc->entries[i]; t; t = tc_reveal(t)) {
        if (unlikely(n++ >= TM_TCACHE_COUNT_MAX))
            tm_corrupt("free(): too many chunks detected in tcache", e);
        if (unlikely(!aligned_ok((uintptr_t)t)))
            tm_corrupt("free(): unaligned chunk detected in tcache 2", t);
        if (t == e)
            tm_corrupt("free(): double free detected in tcache 2", e);
    }
}

static void flush_classes(tm_tcache *tc)
{
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        for (;;) {
            if (tc->counts[i])
                free_chain(tc->entries[i], tc->counts[i], i);
            tc->entries[i] = NULL;
            tc->counts[i] = 0;
            tm_chunk *p = tc->spill[i];
            if (!p)
                break;
            /* Spilled chunks become cache entries (at most 65535 at a time)
             * so that one path frees everything.                         */
            while (p && tc->counts[i] < TM_TCACHE_COUNT_MAX) {
                tm_chunk *next = p->fd;
                tc_push(tc, chunk2mem(p), i);
                p = next;
            }
            tc->spill[i] = p;
        }
    }
}

void tm_tcache_flush_all(void)
{
    tm_tcache *tc = tm_tls_tcache;
    tm_tls_tcache = NULL;
    tm_tls_tcache_state = 2;
    if (!tc)
        return;
    reg_remove(tc);                  /* out of the reclaimer's reach */
    flush_classes(tc);
    tm_chunk *p = mem2chunk(tc);
    tm_arena *av = arena_for_chunk(p);
    tm_arena_enter_owner(av);
    tm_int_free(av, p);
    tm_arena_leave(av);
}

void tm_tcache_flush_keep(void)
{
    tm_tcache *tc = tm_tls_tcache;
    if (tc) {
        tc_enter(tc);
        flush_classes(tc);
        tc_leave(tc);
    }
}

size_t tm_tcache_cached_bytes(void)
{
    tm_tcache *tc = tm_tls_tcache;
    size_t b = 0;
    if (!tc)
        return 0;
    tc_enter(tc);
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        b += (size_t)tc->counts[i] * (TM_MINSIZE + 16 * i);
        for (tm_chunk *p = tc->spill[i]; p; p = p->fd)
            b += TM_MINSIZE + 16 * i;
    }
    tc_leave(tc);
    return b;
}

/* ---- reclaiming idle caches (see tcache.h) -------------------------------- */
void tm_tcache_enter_slow(tm_tcache *tc)
{
#if TM_TCACHE_RECLAIM
    while (unlikely(tc_stolen(tc))) {
        /* A reclaim is emptying this cache right now: let it finish. */
        tc_idle(tc);
        while (tc_stolen(tc))
            sched_yield();
        tc_busy(tc);
    }
    atomic_store_explicit(&tc->slow_ops, atomic_load_explicit(&tc->slow_ops, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&tc->reclaimed, memory_order_relaxed))) {
        /* Back after a reclaim: the background thread watches us again. */
        atomic_store_explicit(&tc->reclaimed, 0, memory_order_relaxed);
        tm_event_poke(&tm_bg_event);
    }
#else
    (void)tc;
#endif
}

bool tm_tcache_reclaim_init(void)
{
#if TM_TCACHE_RECLAIM
    reclaim_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
    return reclaim_ok;
}

/* Move every entry and spilled chunk of tc onto *list (linked via fd). */
static void take_all(tm_tcache *tc, tm_chunk **list)
{
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        tm_tc_entry *e = tc->entries[i];
        for (size_t n = tc->counts[i]; n > 0 && e; n--) {
            tm_tc_entry *next = n > 1 ? tc_reveal(e) : NULL;
            e->key = 0;
            tm_chunk *p = mem2chunk(e);
            p->fd = *list;
            *list = p;
            e = next;
        }
        tc->entries[i] = NULL;
        tc->counts[i] = 0;
        tm_chunk *p = tc->spill[i];
        while (p) {
            tm_chunk *next = p->fd;
            p->fd = *list;
            *list = p;
            p = next;
        }
        tc->spill[i] = NULL;
    }
}

bool tm_tcache_reclaim_idle(void)
{
    if (!reclaim_ok)
        return false;
    bool pending = false, any = false;
    tm_chunk *list = NULL;
    reg_acquire();
    for (tm_tcache *tc = reg_head; tc; tc = tc->reg_next) {
        tc->candidate = false;
        if (atomic_load_explicit(&tc->reclaimed, memory_order_relaxed))
            continue;                         /* empty, owner not back yet */
        uint64_t ops = atomic_load_explicit(&tc->slow_ops, memory_order_relaxed);
        if (ops != tc->seen_ops) {            /* active since the last look */
            tc->seen_ops = ops;
            pending = true;
            continue;
        }
        atomic_store_explicit(&tc->steal, 1, memory_order_seq_cst);
        tc->candidate = any = true;
    }
    if (any) {
        /* Every owner that was not inside a cache access now sees steal. */
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        for (tm_tcache *tc = reg_head; tc; tc = tc->reg_next) {
            if (!tc->candidate)
                continue;
            tc->candidate = false;
            if (atomic_load_explicit(&tc->busy, memory_order_acquire)) {
                pending = true;               /* caught in the act: later */
            } else {
                take_all(tc, &list);
                atomic_store_explicit(&tc->reclaimed, 1, memory_order_relaxed);
            }
            atomic_store_explicit(&tc->steal, 0, memory_order_release);
        }
    }
    reg_release();
    tm_arena_free_chunks(list);       /* back to the arenas */
    return pending;
}

/* Called after tm_arenas_fork_lock, before tm_arenas_fork_unlock. */
void tm_tcache_fork_lock(void)
{
    tm_lock_acquire(&reg_lock);
}

void tm_tcache_fork_unlock(void)
{
    tm_lock_release(&reg_lock);
}

/* Only the forking thread survives: the registry holds its cache alone
 * (the other threads' caches stay allocated, unreachable, as in glibc). */
void tm_tcache_fork_child(void)
{
    tm_lock_reinit(&reg_lock);
    tm_tcache *tc = tm_tls_tcache;
    reg_head = tc;
    if (tc) {
        tc->reg_next = tc->reg_prev = NULL;
        atomic_store_explicit(&tc->steal, 0, memory_order_relaxed);
        atomic_store_explicit(&tc->busy, 0, memory_order_relaxed);
    }
    reclaim_ok = false;              /* re-registered when a thread starts */
}
