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
 * Fork: prepare locks every arena (tm_arenas_fork_lock) and the cache
 * registry (and the metadata slots, meta.h); other atfork handlers that run while they are held may still
 * allocate from the forking thread (arena.h).  The child re-initialises
 * the locks, marks every other thread's arena free, keeps its own cache
 * alone in the registry, and forgets the background thread (threads do
 * not survive fork): the child is single-threaded, and gets one again
 * only if it creates a thread itself.
 *
 * The background release thread (docs/design.md §7):
 *   - started lazily, with no lock held, on the first slow path of a
 *     process's *second* thread (mode auto, the default), or of a
 *     single-threaded process whose arena swings or whose top churns
 *     (release.h, sysmem.h), or on any slow path when forced on
 *     (TIDEMALLOC_BACKGROUND_THREAD=1); never with mode off (0).  Before
 *     unshare or setns calls that need one thread (api.c) it is stopped,
 *     and swings start it no more (tm_ctl_single_thread);
 *   - each round: drains every arena's remote lists, purges what has been
 *     free for decay_ms, and empties the caches of threads that made no
 *     slow-path call since the previous round (tcache.h);
 *   - then sleeps until the next piece of free memory becomes due, or,
 *     when there is none and no cache holds anything, on tm_bg_event with
 *     no timeout: a process with nothing to give back is never woken;
 *   - blocks every signal, is detached (never delays exit), and exits when
 *     the mode is set to off or tm_ctl_single_thread asks it to.
 * Without it, the cap on resident free memory (release.h) still bounds
 * what a quiet process keeps: see docs/design.md §7.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include "arena.h"
#include "bins.h"
#include "control.h"
#include "engine.h"
#include "harden.h"
#include "meta.h"
#include "observe.h"
#include "os.h"
#include "owner.h"
#include "thp.h"
#include "prof.h"
#include "tidemalloc.h"
#include "tunables.h"

__attribute__((used)) _Atomic int tm_initialized;   /* (used: dlopen.c's assembly reads it) */

static tm_lock init_lock = TM_LOCK_INIT;
static pthread_key_t exit_key;
static bool exit_key_ok;

static void thread_exit_hook(void *arg);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

/* The keys of the hardening checks (chunk.h): before any header is
 * written, then sealed read-only where the page size allows.  Never
 * re-keyed (a fork child keeps its parent's headers and keys).        */
static void init_secrets(void)
{
    struct tm_secrets *s = &tm_secret_page.s;
    s->hdr_a = tm_os_random();
    s->hdr_b = tm_os_random();
    s->link = tm_os_random() & ~(uint64_t)TM_ALIGN_MASK;   /* keeps links' alignment checkable */
    s->parked = tm_os_random() | ((uint64_t)1 << 27);   /* bit 27: the cache key is this without it */
    s->tag_mul = tm_os_random() | 1;
    do
        s->cached = tm_os_random() & TM_CKS_MASK;
    while (s->cached == 0);
    if (tm_fix.pagesize == sizeof tm_secret_page)
        tm_os_protect_ro(&tm_secret_page, sizeof tm_secret_page);
}

/* The seccomp mode and no_new_privs at initialization (-1: unknown).
 * Written under init_lock before tm_initialized is published (release);
 * read only after a thread has seen it (tm_ensure_init's acquire).     */
static int seccomp_mode0 = -1, nnp0 = -1;

/* Has the process confined itself with seccomp since it started (since
 * tidemalloc initialized; a fork child inherits its parent's start)?
 * Strict mode; a filter where there was none at start; a filter with
 * no_new_privs set since start (what an unprivileged program does to
 * install one: sshd's pre-auth child, tor, browsers' sandboxes); or a
 * status that cannot be read (such sandboxes refuse open).  A filter
 * that was there at start - a container runtime's, systemd's, with or
 * without no_new_privs (a Kubernetes pod without privilege escalation)
 * - is the program's environment, not a confinement it chose: false.
 * A second filter added under an inherited no_new_privs goes unseen.
 * (A /proc read: ask once.) */
bool tm_ctl_self_sandboxed(void)
{
    int mode, nnp;
    if (!tm_os_seccomp_now(&mode, &nnp))
        return true;
    if (mode == 1)
        return true;
    if (mode != 2)
        return false;
    if (seccomp_mode0 == 0)
        return true;
    if (seccomp_mode0 < 0)               /* (prctl refused at start) */
        return nnp != 0;
    return nnp0 == 0 && nnp != 0;
}

void tm_init_slow(void)
{
    tm_lock_acquire(&init_lock);
    if (atomic_load_explicit(&tm_initialized, memory_order_relaxed)) {
        tm_lock_release(&init_lock);
        return;
    }
    tm_os_init();
    tm_os_seccomp_start(&seccomp_mode0, &nnp0);
    if (seccomp_mode0 != 0 || nnp0 != 0)   /* (a filter, or the way open to one: os.c) */
        tm_os_release_batch_off();
    init_secrets();
    tm_tunables_init();
    tm_thp_init();
    tm_obs_init();
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
static _Atomic unsigned threads_seen;   /* threads that have called in */
/* Threads that called in and whose exit hook will run (exit_key set),
 * still alive: when the last of them leaves, the background thread goes
 * too (thread_exit_hook).  A thread is one of them while its exit_key
 * value is set.                                                        */
static _Atomic unsigned threads_live;
/* This thread is running its exit hook: it starts no background thread
 * and is not counted again. */
static __thread bool thread_leaving;
static TM_NOINLINE void bg_stop_and_wait(void);

void tm_thread_setup_slow(void)
{
    if (!tm_tcache_thread_init())
        return;
    if (atomic_fetch_add_explicit(&threads_seen, 1, memory_order_relaxed) >= 1)
        atomic_store_explicit(&tm_multi_threaded, true, memory_order_relaxed);
    /* With no lock held: for keys beyond the first 32 glibc allocates the
     * second-level table here, which re-enters malloc (this thread's
     * state is no longer 0, so it goes straight to an arena).          */
    if (exit_key_ok && !thread_leaving && pthread_getspecific(exit_key) == NULL &&
        pthread_setspecific(exit_key, (void *)1) == 0)
        atomic_fetch_add_explicit(&threads_live, 1, memory_order_relaxed);
    tm_bg_maybe_start();
}

/* A thread leaves (pthread_exit, or its start routine returned).  If it
 * is the last one that ever called in, the background thread stops now,
 * before this one is gone: glibc ends the process when its last thread
 * exits - it counts threads, ours included - so with ours sleeping on,
 * a program whose last thread called pthread_exit (its main thread
 * after starting and joining workers, or a fork child's only thread)
 * never exited, and since ours blocks every signal and the others were
 * gone, not even SIGTERM ended it (found with CPython's test_threading:
 * a fork from a thread, a thread in the child, the child hung).  Left
 * waiting: a thread that never called in, which glibc keeps the process
 * alive for anyway; if it calls in later, the thread starts again.    */
static void thread_exit_hook(void *arg)
{
    (void)arg;
    thread_leaving = true;
    tm_tcache_flush_all();
    tm_arena_detach_thread();
    /* (glibc calls the hook only for a thread whose value is set: counted) */
    if (atomic_fetch_sub_explicit(&threads_live, 1, memory_order_acq_rel) == 1)
        bg_stop_and_wait();
}

/* ---- fork ----------------------------------------------------------------- */
/* After a failed start, not again before this clock (ms): a sandbox
 * that forbids clone made every slow path try (a stack mmap, the
 * failing clone, the unmap), and since swings start the thread from the
 * cache's refill path too, that is most slow paths of such a process. */
static _Atomic uint64_t bg_retry_at;
/* The running thread's kernel id (0 before it set it, and once it left). */
static _Atomic int bg_tid;
/* tm_ctl_single_thread asks the running thread to exit. */
static _Atomic bool bg_stop;
/* The program made a one-thread-only call (api.c): a swing, which is all
 * that starts the thread in a process of one thread, starts it no more. */
static _Atomic bool single_wanted;

static void fork_prepare(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    tm_arenas_fork_lock();
    tm_tcache_fork_lock();
    tm_prof_fork_prepare();
    tm_own_fork_lock();
    tm_meta_fork_lock();
}

static void fork_parent(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    tm_meta_fork_unlock();
    tm_own_fork_unlock();
    tm_prof_fork_parent();
    tm_tcache_fork_unlock();
    tm_arenas_fork_unlock();
}

static void fork_child(void)
{
    if (!atomic_load(&tm_initialized))
        return;
    tm_meta_fork_child();
    tm_own_fork_child();
    tm_prof_fork_child();
    tm_tcache_fork_child();
    tm_arenas_fork_child();
    /* Threads do not survive fork: no background thread, one thread. */
    atomic_store(&tm_bg_active, false);
    atomic_store(&bg_tid, 0);
    atomic_store(&bg_stop, false);
    atomic_store(&bg_retry_at, 0);
    /* The forking thread, if it was counted (its cache set up: the
     * first slow path, tm_thread_setup_slow).  One that forked before
     * its first allocation was not, and counted as 1 here, its child's
     * first malloc counted it again as a second thread: every such
     * child was "multi-threaded" and started the background thread
     * (test_release's first child).                                   */
    atomic_store(&threads_seen, tm_tls_tcache_state != 0 ? 1 : 0);
    atomic_store(&threads_live, exit_key_ok && pthread_getspecific(exit_key) ? 1 : 0);   /* the forking thread */
    atomic_store(&tm_multi_threaded, false);
    atomic_store(&tm_solo_bg_wanted, false);   /* the child's own drains decide (release.h) */
    atomic_store(&tm_bg_event.waiting, 0);
    tm_obs_fork_child();
}

/* ---- mallopt, malloc_trim ----------------------------------------------- */
int tm_ctl_mallopt(int param, int value)
{
    tm_arena_enter_owner(&tm_main_arena);
    tm_bins_consolidate(&tm_main_arena);
    int r = tm_tunable_set(param, value);
    tm_arena_unlock(&tm_main_arena);
    if (param == M_TIDE_HARDEN && r) {
        if (value)
            tm_tcache_flush_keep();      /* this thread's cached chunks: no bypass */
        else
            tm_harden_flush_all();       /* nothing evicts any more: empty them */
    }
    tm_bg_maybe_start();             /* no lock held now */
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
static bool bg_allowed(void)
{
    int mode = TM_P(background);
    return mode == TM_BG_ON ||
           (mode == TM_BG_AUTO && (atomic_load_explicit(&threads_seen, memory_order_relaxed) >= 2 ||
                                   (atomic_load_explicit(&tm_solo_bg_wanted, memory_order_relaxed) &&
                                    !atomic_load_explicit(&single_wanted, memory_order_relaxed))));
}

static void *bg_main(void *arg)
{
    (void)arg;
    /* No signal is ever delivered to this thread: the program's handlers
     * run on its own threads, as they would without tidemalloc.        */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    tm_os_prctl(PR_SET_NAME, (unsigned long)"tidemalloc-bg", 0, 0, 0);   /* (not api.c's prctl: os.h) */
    atomic_store(&bg_tid, tm_os_gettid());
    tm_tcache_reclaim_init();
    while (TM_P(background) != TM_BG_OFF && !atomic_load(&bg_stop)) {
        unsigned gen = tm_event_prepare(&tm_bg_event);
        uint64_t now = tm_os_now_ms();
        long decay = TM_P(decay_ms);
        uint64_t next = tm_arenas_decay(now);           /* UINT64_MAX: nothing waits */
        uint64_t obs = tm_obs_bg_round(now);            /* statistics channel */
        if (obs < next)
            next = obs;
        if (decay >= 0 && tm_tcache_reclaim_idle()) {
            uint64_t look = now + (uint64_t)(decay > 100 ? decay : 100);
            if (look < next)
                next = look;
        }
        if (next == UINT64_MAX) {
            tm_event_wait(&tm_bg_event, gen, -1);      /* until poked */
            continue;
        }
        /* Something becomes due at `next`: sleep until then (at least a
         * quarter of the decay time, so a busy process costs a few
         * rounds a second at most), without asking to be poked.       */
        tm_event_withdraw(&tm_bg_event);
        uint64_t min_step = (uint64_t)(decay / 4 > 10 ? decay / 4 : 10);
        uint64_t wait = next > now ? next - now : 0;
        if (wait < min_step)
            wait = min_step;
        tm_event_wait(&tm_bg_event, gen, (long)wait);
    }
    atomic_store(&bg_tid, 0);
    atomic_store(&tm_bg_active, false);     /* (a new one may start now) */
    return NULL;
}

/* The program is about to make a call that the kernel refuses in a
 * process of more than one thread: unshare(CLONE_NEWUSER), setns into a
 * user, mount or time namespace (api.c).  A process that never created a
 * thread runs ours only because it swings (release.h): the thread is
 * asked to exit and waited for until the kernel has let go of it (then
 * the process is single-threaded again, as without tidemalloc), and
 * swings start it no more - the caps release at free time, as with the
 * thread off.  Found by a program that swung 4 times and then called
 * unshare(CLONE_NEWUSER): EINVAL, where glibc's malloc let it succeed
 * (test_quiet swing-ns).  The wait is bounded (2 s); a program that has
 * threads of its own fails that call anyway, and gets the thread back
 * on its next slow path.  No lock is held. */
void tm_ctl_single_thread(void)
{
    atomic_store(&single_wanted, true);
    bg_stop_and_wait();
}

/* Ask the running background thread to exit, and wait (2 s at most)
 * until the kernel has let go of it. */
static TM_NOINLINE void bg_stop_and_wait(void)
{
    int tid = 0;
    for (int k = 0; k < 20000 && atomic_load(&tm_bg_active); k++) {
        if ((tid = atomic_load(&bg_tid)) != 0)
            break;
        tm_os_sleep_us(100);             /* created, not yet running */
    }
    if (tid == 0)
        return;
    atomic_store(&bg_stop, true);
    tm_event_kick(&tm_bg_event);
    for (int k = 0; k < 20000 && tm_os_thread_alive(tid); k++)
        tm_os_sleep_us(100);
    atomic_store(&bg_stop, false);
}

void tm_bg_set(int mode)
{
    int m = mode == 0 ? TM_BG_OFF : mode == 2 ? TM_BG_AUTO : TM_BG_ON;
    TM_P_SET(background, m);
    if (m == TM_BG_OFF)
        tm_event_kick(&tm_bg_event);    /* a running thread sees it and exits */
}

_Atomic unsigned long tm_bg_start_failures;

void tm_bg_maybe_start(void)
{
    if (likely(atomic_load_explicit(&tm_bg_active, memory_order_relaxed)) || !bg_allowed() ||
        thread_leaving)
        return;
    uint64_t retry = atomic_load_explicit(&bg_retry_at, memory_order_relaxed);
    if (unlikely(retry) && tm_os_now_ms() < retry)
        return;
    /* The claim is the flag itself: active from here, not from the
     * thread's first instructions, so the caps let go of their free-time
     * release as soon as a thread is coming that releases by time.  Set
     * by the thread itself (a flag of its own claimed the start), it
     * came too late on a loaded machine: a swinging process released at
     * free time for as many rounds as the new thread waited to be
     * scheduled (test_quiet_swing failed in a CI run, 590 madvise calls
     * in its 2nd round; with the thread's start delayed by 150 ms,
     * rounds 2-5 released, and none since).                          */
    /* A start for a swing alone (the process has one thread itself) in a
     * process that confined itself with seccomp: its filter may kill it
     * for clone, a call it never makes itself (test_fork stage 5: SIGSYS
     * at the thread's clone3 in a fork child that swung under an
     * sshd-like filter; glibc's malloc makes no such call).  Asked once
     * (a /proc read): such a process gets no thread for its swings, and
     * its caps release at free time as with the thread off.  A filter
     * that was there when the process started (a container's, a
     * service manager's) is not taken for one (tm_ctl_self_sandboxed). */
    if (TM_P(background) == TM_BG_AUTO && atomic_load_explicit(&threads_seen, memory_order_relaxed) < 2 &&
        tm_ctl_self_sandboxed()) {
        atomic_store(&single_wanted, true);
        return;
    }
    bool expect = false;
    if (!atomic_compare_exchange_strong(&tm_bg_active, &expect, true))
        return;
    pthread_t bg_thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* The default scheduling, whoever starts it: by default a new thread
     * inherits its creator's policy and priority, and a real-time thread
     * of the program (SCHED_FIFO) taking a slow path made our purges
     * real-time, a SCHED_BATCH or SCHED_IDLE one made them wait.  (Where
     * the kernel refuses the policy - out of SCHED_IDLE without
     * RLIMIT_NICE, a filter on sched_setscheduler - inherited, below.) */
    struct sched_param sp = { .sched_priority = 0 };
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
    pthread_attr_setschedparam(&attr, &sp);
    /* Born with every signal blocked: a new thread inherits its creator's
     * mask, and until bg_main blocked them itself the program's handlers
     * ran on our thread - a signal sent to the process while the thread
     * started (test_bgsig: a handler ran on it 1272 times in 500 starts
     * with signals sent in a loop). */
    sigset_t all, prev;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &prev);
    int rc = pthread_create(&bg_thread, &attr, bg_main, NULL);
    if (rc == EPERM) {
        pthread_attr_setinheritsched(&attr, PTHREAD_INHERIT_SCHED);
        rc = pthread_create(&bg_thread, &attr, bg_main, NULL);
    }
    pthread_sigmask(SIG_SETMASK, &prev, NULL);
    if (rc != 0) {
        atomic_store_explicit(&bg_retry_at, tm_os_now_ms() + TM_BG_RETRY_MS, memory_order_relaxed);
        atomic_fetch_add_explicit(&tm_bg_start_failures, 1, memory_order_relaxed);
        atomic_store(&tm_bg_active, false);
    }
    pthread_attr_destroy(&attr);
}
