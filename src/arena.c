/*
 * arena.c - arena selection, thread attach/detach, initialization, fork.
 *
 * A thread keeps its arena in TLS (initial-exec, so dlopen of a library
 * that uses tidemalloc works).  The first thread to allocate uses the
 * main arena.  Others take, in order: an arena from the free list (arenas
 * whose threads all exited), a new arena while fewer than the limit exist,
 * or an existing arena that is not locked right now.  A thread that finds
 * its own arena locked moves to a new arena if the limit allows.
 *
 * Locks:  tm_list_lock guards the arena ring, the free list, `attached`
 *         and narenas.  Order: tm_list_lock before any arena lock.
 * Fork:   prepare takes tm_list_lock and every arena lock (ring order);
 *         the parent releases them; the child re-initialises them and
 *         rebuilds the free list, since only the forking thread survives.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include "internal.h"

tm_arena tm_main_arena;
tm_lock tm_list_lock = TM_LOCK_INIT;
_Atomic int tm_initialized;

static tm_lock init_lock = TM_LOCK_INIT;
static tm_arena *free_list;
static size_t narenas = 1;
static tm_arena *next_to_use = &tm_main_arena;
static pthread_key_t exit_key;
static bool exit_key_ok;

static __thread tm_arena *tls_arena __attribute__((tls_model("initial-exec")));
static __thread bool tls_exiting __attribute__((tls_model("initial-exec")));

static void thread_exit_hook(void *arg);

void tm_init_slow(void)
{
    tm_lock_acquire(&init_lock);
    if (atomic_load(&tm_initialized)) {
        tm_lock_release(&init_lock);
        return;
    }
    tm_os_init();
    tm_mp.ncpus = tm_os_ncpus();
    tm_tunables_init();
    tm_arena_init(&tm_main_arena);
    tm_main_arena.next = &tm_main_arena;
    tm_main_arena.index = 0;
    tm_main_arena.attached = 1;
    tls_arena = &tm_main_arena;
    /* pthread_key_create does not allocate; keys are a static table. */
    exit_key_ok = pthread_key_create(&exit_key, thread_exit_hook) == 0;
    atomic_store_explicit(&tm_initialized, 1, memory_order_release);
    tm_lock_release(&init_lock);
    /* May allocate (and so re-enter malloc, which is ready now). */
    pthread_atfork(tm_fork_prepare, tm_fork_parent, tm_fork_child);
}

/* Make sure the thread-exit hook runs for this thread. */
void tm_thread_register_exit(void *value)
{
    if (exit_key_ok)
        pthread_setspecific(exit_key, value);
}

size_t tm_arena_count(void)
{
    tm_lock_acquire(&tm_list_lock);
    size_t n = narenas;
    tm_lock_release(&tm_list_lock);
    return n;
}

static size_t arena_limit(void)
{
    if (tm_mp.arena_max)
        return tm_mp.arena_max;
    size_t n = tm_mp.ncpus * TM_ARENAS_PER_CPU;
    return n > tm_mp.arena_test ? n : tm_mp.arena_test;
}

/* A new arena in its own first sub-heap (header, arena, then top). */
static tm_arena *new_arena(void)
{
    size_t need = sizeof(tm_heap) + sizeof(tm_arena) + TM_ALIGNMENT + TM_MINSIZE;
    tm_heap *h = tm_heap_new(need, tm_mp.top_pad);
    if (!h)
        h = tm_heap_new(need, 0);
    if (!h)
        return NULL;
    tm_arena *av = (tm_arena *)(h + 1);
    memset(av, 0, sizeof *av);
    tm_arena_init(av);
    h->ar = av;
    av->last_heap = h;
    av->nheaps = 1;
    av->system_mem = av->max_system_mem = h->size;
    tm_chunk *top = heap_first_chunk(h);
    set_head(top, (size_t)(heap_end(h) - (char *)top) | TM_PREV_INUSE);
    av->top = top;
    av->top_clean = (char *)top;
    return av;
}

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
    tm_lock_acquire(&tm_list_lock);
    tm_arena *av = take_free_locked();
    if (av) {
        attach_locked(av);
        tm_lock_release(&tm_list_lock);
        tm_lock_acquire(&av->lock);
        return av;
    }
    if (narenas < arena_limit()) {
        narenas++;
        tm_lock_release(&tm_list_lock);
        av = new_arena();
        tm_lock_acquire(&tm_list_lock);
        if (av) {
            av->index = (unsigned)(narenas - 1);
            av->next = tm_main_arena.next;
            atomic_thread_fence(memory_order_release);
            tm_main_arena.next = av;
            attach_locked(av);
            tm_lock_release(&tm_list_lock);
            tm_lock_acquire(&av->lock);
            return av;
        }
        narenas--;
    }
    /* At the limit: the first arena, round robin, that is free right now;
     * else wait for the next one in turn.                                */
    tm_arena *start = next_to_use, *cand = start;
    av = NULL;
    do {
        if (cand != avoid && tm_lock_try(&cand->lock)) {
            av = cand;
            break;
        }
        cand = cand->next;
    } while (cand != start);
    if (!av) {
        av = start == avoid && start->next != start ? start->next : start;
        next_to_use = av->next;
        if (av->attached == 0)
            unlink_from_free_list(av);
        attach_locked(av);
        tm_lock_release(&tm_list_lock);
        tm_lock_acquire(&av->lock);
        return av;
    }
    next_to_use = av->next;
    if (av->attached == 0)
        unlink_from_free_list(av);
    attach_locked(av);
    tm_lock_release(&tm_list_lock);
    return av;
}

void tm_remote_push_list(_Atomic(tm_chunk *) *list, tm_chunk *head, tm_chunk *tail)
{
    tm_chunk *old = atomic_load_explicit(list, memory_order_relaxed);
    do {
        tail->fd = old;
    } while (!atomic_compare_exchange_weak_explicit(list, &old, head, memory_order_release,
                                                    memory_order_relaxed));
}

/* Everything other threads left for this arena goes back into its bins
 * (stats, checker, trim, and the periodic sweep of idle arenas).       */
void tm_remote_drain_all(tm_arena *av)
{
    tm_remote_drain(av);
    if (!atomic_load_explicit(&av->remote_cls_any, memory_order_relaxed) ||
        !atomic_exchange_explicit(&av->remote_cls_any, 0, memory_order_seq_cst))
        return;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        if (!atomic_load_explicit(&av->remote_cls[i], memory_order_acquire))
            continue;
        tm_chunk *p = atomic_exchange_explicit(&av->remote_cls[i], NULL, memory_order_acquire);
        while (p) {
            tm_chunk *next = p->fd;
            tm_int_free(av, p);
            p = next;
        }
    }
}

void tm_remote_drain_slow(tm_arena *av)
{
    /* Taking the whole stack at once: no ABA problem with many pushers. */
    tm_chunk *p = atomic_exchange_explicit(&av->remote, NULL, memory_order_acquire);
    while (p) {
        tm_chunk *next = p->fd;
        tm_int_free(av, p);
        p = next;
    }
}

/* tm_arena_get's drain: chunks another thread freed go straight into the
 * calling thread's cache where their class has room (the producer of a
 * producer/consumer pair gets its objects back without a trip through
 * the bins); the rest are freed into the arena.                        */
static void drain_to_cache(tm_arena *av)
{
    tm_chunk *p = atomic_exchange_explicit(&av->remote, NULL, memory_order_acquire);
    while (p) {
        tm_chunk *next = p->fd;
        if (!tm_tcache_take(p))
            tm_int_free(av, p);
        p = next;
    }
}
static inline void drain_get(tm_arena *av)
{
    if (unlikely(atomic_load_explicit(&av->remote, memory_order_relaxed) != NULL))
        drain_to_cache(av);
}

static tm_arena *arena_get_slow(tm_arena *av);

tm_arena *tm_arena_get(void)
{
    tm_ensure_init();
    tm_arena *av = tls_arena;
    if (likely(av != NULL && tm_lock_try(&av->lock))) {
        drain_get(av);
        return av;
    }
    av = arena_get_slow(av);
    drain_get(av);
    return av;
}

static tm_arena *arena_get_slow(tm_arena *av)
{
    if (likely(av != NULL)) {
        /* Contended: if other threads share this arena, move to a new or
         * free one if one can be had.  A thread alone on its arena only
         * meets brief contention (another thread's realloc, a sweep):
         * moving would just multiply arenas and their free memory.     */
        if (!tls_exiting && av->attached > 1) {
            tm_lock_acquire(&tm_list_lock);
            bool room = free_list != NULL || narenas < arena_limit();
            tm_lock_release(&tm_list_lock);
            if (room) {
                av = arena_get2(av);
                tm_thread_register_exit((void *)1);
                return av;
            }
        }
        tm_lock_acquire(&av->lock);
        return av;
    }
    /* First arena of this thread: make sure its exit detaches it, even if
     * it never gets a thread cache.  (pthread_setspecific of one of the
     * first keys does not allocate.)                                    */
    av = arena_get2(NULL);
    tm_thread_register_exit((void *)1);
    return av;
}

/* An allocation failed in av (unlocked now): try one other arena. */
tm_arena *tm_arena_retry(tm_arena *av)
{
    if (av != &tm_main_arena) {
        tm_lock_acquire(&tm_main_arena.lock);
        return &tm_main_arena;
    }
    tm_lock_acquire(&tm_list_lock);
    tm_arena *other = av->next;
    tm_lock_release(&tm_list_lock);
    if (other == av)
        return NULL;
    tm_lock_acquire(&other->lock);
    return other;
}

tm_arena *tm_thread_arena(void) { return tls_arena; }

/* Visit every arena, one at a time, with its lock held and the frees other
 * threads left for it drained (statistics, checker, trim).  fn may drop
 * and retake the lock.                                                  */
void tm_for_each_arena(void (*fn)(tm_arena *, void *), void *arg)
{
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_acquire(&av->lock);
        tm_remote_drain_all(av);
        fn(av, arg);
        tm_lock_release(&av->lock);
        tm_lock_acquire(&tm_list_lock);
        av = av->next;
        tm_lock_release(&tm_list_lock);
    } while (av != &tm_main_arena);
}

/* Thread exit: drop this thread's reference to its arena.  The arena
 * stays in tls_arena so that later destructors can still allocate. */
void tm_arena_thread_exit(void)
{
    tm_arena *av = tls_arena;
    if (!av || tls_exiting)
        return;
    tls_exiting = true;
    tm_lock_acquire(&tm_list_lock);
    if (av->attached > 0 && --av->attached == 0) {
        av->next_free = free_list;
        free_list = av;
    }
    tm_lock_release(&tm_list_lock);
}

static void thread_exit_hook(void *arg)
{
    (void)arg;
    tm_tcache_flush_all();
    tm_arena_thread_exit();
}

/* ---- fork --------------------------------------------------------------- */
void tm_fork_prepare(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    tm_lock_acquire(&tm_list_lock);
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_acquire(&av->lock);
        av = av->next;
    } while (av != &tm_main_arena);
}

void tm_fork_parent(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_release(&av->lock);
        av = av->next;
    } while (av != &tm_main_arena);
    tm_lock_release(&tm_list_lock);
}

void tm_fork_child(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    free_list = NULL;
    tm_arena *av = &tm_main_arena;
    do {
        tm_lock_reinit(&av->lock);
        av->next_free = NULL;
        if (av == tls_arena && !tls_exiting) {
            av->attached = 1;
        } else {
            av->attached = 0;
            av->next_free = free_list;
            free_list = av;
        }
        av = av->next;
    } while (av != &tm_main_arena);
    tm_lock_reinit(&tm_list_lock);
    tm_release_fork_child();   /* the forking thread's cache is intact */
}
