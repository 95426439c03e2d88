/*
 * lock.h - the arena lock: a three-state futex mutex (0 free, 1 locked,
 * 2 locked with waiters).  Chosen over pthread_mutex_t because it is one
 * int, never allocates, can be re-initialised in a fork child by a plain
 * store, and the uncontended path is one CAS and one exchange.
 */
#ifndef TM_LOCK_H
#define TM_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct { _Atomic int v; } tm_lock;

#define TM_LOCK_INIT { 0 }

void tm_lock_wait(tm_lock *l);   /* slow path, lock.c */
void tm_lock_wake(tm_lock *l);

static inline bool tm_lock_try(tm_lock *l)
{
    int expect = 0;
    return atomic_compare_exchange_strong_explicit(&l->v, &expect, 1,
                                                   memory_order_acquire, memory_order_relaxed);
}

static inline void tm_lock_acquire(tm_lock *l)
{
    if (__builtin_expect(!tm_lock_try(l), 0))
        tm_lock_wait(l);
}

static inline void tm_lock_release(tm_lock *l)
{
    if (__builtin_expect(atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2, 0))
        tm_lock_wake(l);
}

/* Only for a fork child, where no other thread exists any more. */
static inline void tm_lock_reinit(tm_lock *l) { atomic_store_explicit(&l->v, 0, memory_order_relaxed); }

/*
 * tm_event - wakes one sleeper (the background release thread) when work
 * appears, at the cost of one load for the threads that make the work:
 *
 *   sleeper:  g = tm_event_prepare(e);   look for work;  none: tm_event_wait(e, g, -1)
 *   worker:   make work visible;  tm_event_poke(e);
 *
 * prepare announces the sleeper (seq_cst store) before it looks; poke
 * loads the announcement (seq_cst) after the work is visible: either the
 * sleeper's look finds the work, or the poke sees the announcement and
 * bumps the generation, so the wait returns at once.  A sleeper that
 * found work and sleeps with a timeout withdraws (tm_event_withdraw) so
 * that busy workers do not pay for wake-ups nobody needs.
 */
typedef struct {
    _Atomic unsigned gen;
    _Atomic int waiting;
} tm_event;

void tm_event_signal(tm_event *e);                     /* lock.c */
void tm_event_kick(tm_event *e);                       /* wake even if not waiting */
void tm_event_wait(tm_event *e, unsigned gen, long timeout_ms);   /* -1: no timeout */

static inline unsigned tm_event_prepare(tm_event *e)
{
    atomic_store_explicit(&e->waiting, 1, memory_order_seq_cst);
    return atomic_load_explicit(&e->gen, memory_order_seq_cst);
}
static inline void tm_event_withdraw(tm_event *e)
{
    atomic_store_explicit(&e->waiting, 0, memory_order_relaxed);
}
static inline void tm_event_poke(tm_event *e)
{
    if (__builtin_expect(atomic_load_explicit(&e->waiting, memory_order_seq_cst) != 0, 0))
        tm_event_signal(e);
}

#endif
