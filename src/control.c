/*
 * control.c - initialization, threads, fork, mallopt, malloc_trim and the
 * background release thread (see control.h).
 *
 * Initialization is lazy (the first malloc/free of the process) and runs
 * once under init_lock: page size and CPU count (tm_fix), the tunables,
 * the cache key, the main arena, the thread-exit key; then it publishes
 * tm_initialized with a release store.  Only after that, with no lock
 * held, does it register the fork handlers (pthread_atfork may allocate).
 *
 * Fork: prepare locks every arena (tm_arenas_fork_lock); other atfork
 * handlers that run while they are held may still allocate from the
 * forking thread (arena.h).  The child re-initialises the locks, marks
 * every other thread's arena free, and forgets the background thread
 * (threads do not survive fork; it is restarted on demand).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include "arena.h"
#include "bins.h"
#include "control.h"
#include "engine.h"
#include "os.h"
#include "tunables.h"

_Atomic int tm_initialized;

static tm_lock init_lock = TM_LOCK_INIT;
static pthread_key_t exit_key;
static bool exit_key_ok;

static void thread_exit_hook(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

void tm_init_slow(void)
{
    tm_lock_acquire(&init_lock);
    if (atomic_load_explicit(&tm_initialized, memory_order_relaxed)) {
        tm_lock_release(&init_lock);
        return;
    }
    tm_os_init();
    tm_tunables_init();
    tm_tcache_init_key();
    tm_arenas_init();
    /* pthread_key_create does not allocate; keys are a static table. */
    exit_key_ok = pthread_key_create(&exit_key, thread_exit_hook) == 0;
    atomic_store_explicit(&tm_initialized, 1, memory_order_release);
    tm_lock_release(&init_lock);
    /* May allocate (and so re-enter malloc, which is ready now). */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- threads -------------------------------------------------------------- */
void tm_thread_setup_slow(void)
{
    if (!tm_tcache_thread_init())
        return;
    /* With no lock held: for keys beyond the first 32 glibc allocates the
     * second-level table here, which re-enters malloc (this thread's
     * state is no longer 0, so it goes straight to an arena).          */
    if (exit_key_ok)
        pthread_setspecific(exit_key, (void *)1);
}

static void thread_exit_hook(void *arg)
{
    (void)arg;
    tm_tcache_flush_all();
    tm_arena_detach_thread();
}

/* ---- fork ----------------------------------------------------------------- */
static _Atomic int bg_running;

static void fork_prepare(void)
{
    if (atomic_load(&tm_initialized))
        tm_arenas_fork_lock();
}

static void fork_parent(void)
{
    if (atomic_load(&tm_initialized))
        tm_arenas_fork_unlock();
}

static void fork_child(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    tm_arenas_fork_child();
    atomic_store(&bg_running, 0);   /* threads do not survive fork */
}

/* ---- mallopt, malloc_trim ----------------------------------------------- */
int tm_ctl_mallopt(int param, int value)
{
    tm_arena_enter_owner(&tm_main_arena);
    tm_bins_consolidate(&tm_main_arena);
    int r = tm_tunable_set(param, value);
    tm_arena_unlock(&tm_main_arena);
    return r;
}

struct trim_arg { size_t pad; int result; };
static void trim_one(tm_arena *av, void *arg)
{
    struct trim_arg *t = arg;
    if (tm_int_trim(av, t->pad))
        t->result = 1;
}

int tm_ctl_trim(size_t pad)
{
    tm_tcache_flush_keep();   /* the caller's cached chunks can be trimmed too */
    struct trim_arg t = { pad, 0 };
    tm_for_each_arena(trim_one, &t);
    return t.result;
}

/* ---- the background release thread --------------------------------------- */
static _Atomic int bg_wanted;
static pthread_t bg_thread;

static void *bg_main(void *arg)
{
    (void)arg;
    /* No signal is ever delivered to this thread: the program's handlers
     * run on its own threads, as they would without tidemalloc.        */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (atomic_load(&bg_wanted)) {
        long decay = TM_P(decay_ms);
        long ms = decay > 0 ? decay / 4 : 100;
        if (ms < 10)
            ms = 10;
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        if (decay >= 0)
            tm_arenas_decay(tm_os_now_ms());
    }
    atomic_store(&bg_running, 0);
    return NULL;
}

void tm_bg_set(int mode)
{
    atomic_store(&bg_wanted, mode != 0);
}

void tm_bg_maybe_start(void)
{
    if (!atomic_load_explicit(&bg_wanted, memory_order_relaxed) ||
        atomic_load_explicit(&bg_running, memory_order_relaxed))
        return;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&bg_running, &expect, 1))
        return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&bg_thread, &attr, bg_main, NULL) != 0)
        atomic_store(&bg_running, 0);
    pthread_attr_destroy(&attr);
}
