/* lock.c - slow paths of the futex lock (see lock.h). */
#include "lock.h"
#include <linux/futex.h>
#include <sys/syscall.h>
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
