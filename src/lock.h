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

#endif
