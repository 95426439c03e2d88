/*
 * test_bgsig.c - the background thread takes neither its creator's signal
 * mask nor its creator's scheduling.
 *
 * A new thread inherits its creator's signal mask.  The background thread
 * is created from whatever program thread takes a slow path at the time;
 * until 2026-12-06 it blocked signals itself, as its first act, so a
 * signal sent to the process while it started could be delivered to it:
 * the program's handler then ran on tidemalloc's thread, where the
 * program never expects it (a handler that writes to its own thread's
 * state, a sigwait design that counts on the one thread with the signal
 * unblocked).  Now it is created with every signal blocked.
 *
 * One thread (the starter) has SIGUSR1 unblocked and starts the
 * background thread again and again (mallopt TIDE_M_BACKGROUND_THREAD 1,
 * a slow path; then 0, and wait until it has gone); every other thread of
 * the program blocks SIGUSR1, and one of them sends it to the process in
 * a loop.  The handler counts the runs on any thread but the starter.
 * Without the fix, 500 starts saw 350-11 900 such runs (three runs).
 *
 * Scheduling: a new thread also inherits its creator's policy and
 * priority, so a SCHED_FIFO thread of the program made the purges
 * real-time, a SCHED_BATCH or SCHED_IDLE one made them wait.  A thread
 * switches itself to SCHED_BATCH (and to SCHED_FIFO where the process may)
 * and starts the background thread, whose policy must be SCHED_OTHER.
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "harness.h"
#include "internal.h"
#include "tidemalloc.h"

enum { STARTS = 500 };
static atomic_int stop, starter_tid, hits, foreign_hits, starts, mask_changed;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&hits, 1);
    if ((int)syscall(SYS_gettid) != atomic_load(&starter_tid))
        atomic_fetch_add(&foreign_hits, 1);
}

static void block_usr1(int how)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(how, &s, NULL);
}

/* Ask for the background thread and take slow paths until it is
 * claimed (tm_bg_active: set by the starting call itself). */
static bool bg_start(void)
{
    mallopt(TIDE_M_BACKGROUND_THREAD, 1);              /* started on the next slow path */
    for (int k = 0; k < 1000 && !atomic_load(&tm_bg_active); k++)
        free(malloc(100000 + (size_t)k));
    return atomic_load(&tm_bg_active);
}

/* Turn it off and wait (2 s at most) until it has gone. */
static void bg_stop(void)
{
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);              /* it exits */
    for (int k = 0; k < 200000 && atomic_load(&tm_bg_active); k++)
        usleep(10);
}

static void *flood(void *arg)
{
    (void)arg;
    block_usr1(SIG_BLOCK);
    while (!atomic_load(&stop))
        kill(getpid(), SIGUSR1);
    return NULL;
}

static void *starter(void *arg)
{
    (void)arg;
    atomic_store(&starter_tid, (int)syscall(SYS_gettid));   /* (before the unblock) */
    block_usr1(SIG_UNBLOCK);
    for (int i = 0; i < STARTS; i++) {
        if (bg_start())
            atomic_fetch_add(&starts, 1);
        sigset_t now;                                     /* (the start blocks all around its create) */
        pthread_sigmask(SIG_BLOCK, NULL, &now);
        if (sigismember(&now, SIGUSR1) || sigismember(&now, SIGTERM))
            atomic_fetch_add(&mask_changed, 1);
        bg_stop();
    }
    block_usr1(SIG_BLOCK);
    return NULL;
}

/* The background thread's id (by its name), 0 if none within ~2 s. */
static int bg_tid(void)
{
    for (int tries = 0; tries < 2000; tries++) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        int found = 0;
        while (d && (de = readdir(d)) != NULL && !found) {
            char path[64], name[32] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
            FILE *f = fopen(path, "r");
            if (f) {
                if (fgets(name, sizeof name, f) && strncmp(name, "tidemalloc-bg", 13) == 0)
                    found = atoi(de->d_name);
                fclose(f);
            }
        }
        if (d)
            closedir(d);
        if (found)
            return found;
        usleep(1000);
    }
    return 0;
}

/* The background thread started by a thread of the given policy: its own
 * policy (-1: not found). */
static int bg_policy_after(int policy, int prio)
{
    struct sched_param sp = { .sched_priority = prio };
    if (sched_setscheduler(0, policy, &sp) != 0)
        return -2;                                  /* not allowed here */
    (void)bg_start();
    sp.sched_priority = 0;
    sched_setscheduler(0, SCHED_OTHER, &sp);        /* (back, before anything waits) */
    int tid = bg_tid(), got = tid ? sched_getscheduler(tid) : -1;
    bg_stop();
    return got;
}

static void *sched_starter(void *arg)
{
    (void)arg;
    int p = bg_policy_after(SCHED_BATCH, 0);
    CHECKF("started by a SCHED_BATCH thread, the background thread is SCHED_OTHER", p == SCHED_OTHER,
           "policy %d", p);
    p = bg_policy_after(SCHED_FIFO, 1);
    if (p == -2)
        printf("  (SCHED_FIFO not allowed here: that case skipped)\n");
    else
        CHECKF("started by a SCHED_FIFO thread, the background thread is SCHED_OTHER", p == SCHED_OTHER,
               "policy %d", p);
    return NULL;
}

int main(void)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    block_usr1(SIG_BLOCK);               /* the main thread: blocked (inherited by both) */
    free(malloc(1));
    pthread_t f, t;
    pthread_create(&f, NULL, flood, NULL);
    pthread_create(&t, NULL, starter, NULL);
    pthread_join(t, NULL);
    atomic_store(&stop, 1);
    pthread_join(f, NULL);
    CHECKF("the background thread was started again and again", atomic_load(&starts) >= STARTS * 9 / 10,
           "%d starts of %d", atomic_load(&starts), STARTS);
    CHECKF("signals were delivered (to the starter)", atomic_load(&hits) > 0, "%d", atomic_load(&hits));
    CHECKF("no handler ran on the background thread", atomic_load(&foreign_hits) == 0,
           "%d of %d runs on another thread than the one with the signal unblocked",
           atomic_load(&foreign_hits), atomic_load(&hits));
    pthread_create(&t, NULL, sched_starter, NULL);
    pthread_join(t, NULL);
    CHECKF("the starting thread's mask is as it was after each start", atomic_load(&mask_changed) == 0,
           "%d starts left it changed", atomic_load(&mask_changed));
    return harness_finish();
}
