/*
 * control.h - the allocator's life cycle and its knobs: initialization,
 * per-thread setup and exit, fork, mallopt, malloc_trim over all arenas,
 * and the background release thread.  Called from the API layer only.
 */
#ifndef TM_CONTROL_H
#define TM_CONTROL_H

#include "internal.h"
#include "tcache.h"

extern _Atomic int tm_initialized TM_HIDDEN;
TM_HIDDEN void tm_init_slow(void);
static inline void tm_ensure_init(void)
{
    if (unlikely(!atomic_load_explicit(&tm_initialized, memory_order_acquire)))
        tm_init_slow();
}

/* First slow-path call of a thread: its cache, and its exit hook (which
 * flushes the cache and detaches the thread from its arena).  Must be
 * called with no lock held: registering the hook may allocate.        */
TM_HIDDEN void tm_thread_setup_slow(void);
static inline void tm_thread_setup(void)
{
    if (unlikely(tm_tls_tcache_state == 0))
        tm_thread_setup_slow();
}

/* mallopt (consolidates the main arena first, as glibc does). */
TM_HIDDEN int tm_ctl_mallopt(int param, int value);
/* malloc_trim: 1 if memory was given back. */
TM_HIDDEN int tm_ctl_trim(size_t pad);

/* An API slow path that created free memory or a thread: may start the
 * background release thread (no lock held).                          */
TM_HIDDEN void tm_bg_maybe_start(void);
/* Failed starts of the background thread (pthread_create refused):
 * each is followed by TM_BG_RETRY_MS without another try.            */
extern _Atomic unsigned long tm_bg_start_failures TM_HIDDEN;
TM_HIDDEN void tm_bg_set(int mode);
/* Before a call the kernel refuses in a multi-threaded process (api.c's
 * unshare and setns): stop the background thread if it runs, and let
 * no swing start it again (control.c). */
TM_HIDDEN void tm_ctl_single_thread(void);
/* Has the process confined itself with seccomp since it started (control.c)? */
TM_HIDDEN bool tm_ctl_self_sandboxed(void);

#endif
