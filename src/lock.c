/* lock.c - slow paths of the futex lock (see lock.h). */
#include "lock.h"
#include <linux/futex.h>
#include <sys/syscall.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

void tm_lock_wait(tm_lock *l)
{
    /* Spin briefly: arena critical sections are short. */
    for (int i = 0; i < 100; i++) {
        if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 && tm_lock_try(l))
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    /* Announce a waiter (state 2) and sleep until the holder wakes us. */
    int c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
    while (c != 0) {
        syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
        c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
    }
}

void tm_lock_wake(tm_lock *l)
{
    syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void tm_event_signal(tm_event *e)
{
    if (atomic_exchange_explicit(&e->waiting, 0, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&e->gen, 1, memory_order_seq_cst);
        syscall(SYS_futex, &e->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
}

void tm_event_wait(tm_event *e, unsigned gen, long timeout_ms)
{
    struct timespec ts, *tp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    /* Returns at once if the generation moved since prepare. */
    syscall(SYS_futex, &e->gen, FUTEX_WAIT_PRIVATE, gen, tp, NULL, 0);
}

void tm_event_kick(tm_event *e)
{
    atomic_store_explicit(&e->waiting, 0, memory_order_seq_cst);
    atomic_fetch_add_explicit(&e->gen, 1, memory_order_seq_cst);
    syscall(SYS_futex, &e->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
