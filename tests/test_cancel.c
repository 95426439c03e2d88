/*
 * test_cancel.c - malloc, free and malloc_stats are no cancellation points.
 *
 * POSIX lists malloc and free among the functions that are not
 * cancellation points, and programs rely on it: a thread with deferred
 * cancellation holding a mutex of its own around a malloc needs no
 * cleanup handler for it.  tidemalloc's slow paths read /proc and sysfs
 * (the statistics refresh, made by the allocating thread when there is no
 * background thread) and malloc_stats writes to fd 2 with an arena lock
 * held: through libc's open/read/write/close, cancellation points, a
 * thread with a cancel pending was cancelled inside free (2026-12-05:
 * with TIDEMALLOC_BACKGROUND_THREAD=0, every run), and inside
 * malloc_stats it would have left the arena locked.  Now those are bare
 * system calls (os.c), as glibc's malloc uses non-cancelling variants.
 *
 * Each stage runs in a forked child (a deadlock ends in its alarm): a
 * thread gets a cancel while it spins without cancellation points, then
 * makes thousands of slow-path calls, then says it got through, then
 * meets pthread_testcancel.  It must get through, be cancelled there, and
 * the heap must work afterwards in another thread.  ctest runs it with
 * and without the background thread.
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include "harness.h"
#include "tidemalloc.h"

static atomic_int go, through;

enum { ALLOC = 0, STATS = 1, INFO = 2 };

/* Out of line, so that its array's stack shadow is cleared when it
 * returns: the worker's frame is unwound by the cancellation instead,
 * and ASan leaves the shadow of unwound frames as it was - a scope-ended
 * array there made ASan's own thread teardown report a
 * stack-use-after-scope on that stack (CI, ASan build; it appeared with
 * a change to the library's thread exit that left this frame alone,
 * and went with this function).                                     */
static __attribute__((noinline)) void alloc_rounds(void)
{
    for (int round = 0; round < 4000; round++) {
        void *p[8];
        for (int k = 0; k < 8; k++)
            p[k] = malloc(k & 1 ? 200000 + k * 4096 : 20000 + k * 512);  /* mmapped and arena */
        for (int k = 0; k < 8; k++)
            free(p[k]);
    }
    void *q = calloc(1000, 100);
    q = realloc(q, 300000);
    free(q);
}

static void *worker(void *arg)
{
    int what = (int)(intptr_t)arg;
    while (!atomic_load(&go))
        ;                                   /* no cancellation point */
    /* A cancel is pending from here on. */
    if (what == ALLOC) {
        alloc_rounds();
    } else if (what == STATS) {
        for (int k = 0; k < 20; k++)
            malloc_stats();
    } else {
        tide_check_heap();
        malloc_trim(0);
    }
    atomic_store(&through, 1);
    pthread_testcancel();
    return NULL;
}

static void *after(void *arg)
{
    (void)arg;
    for (int k = 0; k < 1000; k++)
        free(malloc((size_t)k * 97 + 1));
    return (void *)1;
}

static int run_stage(void *arg)
{
    int what = (int)(intptr_t)arg;
    alarm(60);
    if (what == STATS) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);                      /* malloc_stats's report */
    }
    pthread_t t;
    if (pthread_create(&t, NULL, worker, arg) != 0)
        return 3;
    pthread_cancel(t);
    /* Past the statistics' refresh interval (100 ms at least), so that
     * the worker's slow paths refresh them (without the background
     * thread) and read /proc. */
    usleep(300 * 1000);
    atomic_store(&go, 1);
    void *ret = NULL;
    pthread_join(t, &ret);
    if (!atomic_load(&through))
        return 4;                           /* cancelled inside the allocator */
    if (ret != PTHREAD_CANCELED)
        return 5;
    /* Nothing left locked: another thread and this one allocate. */
    pthread_t u;
    void *r = NULL;
    if (pthread_create(&u, NULL, after, NULL) != 0 || pthread_join(u, &r) != 0 || r != (void *)1)
        return 6;
    after(NULL);
    return tide_check_heap() > 0 ? 0 : 7;
}

static void stage(void *arg)
{
    exit(run_stage(arg));
}

int main(void)
{
    static const char *names[] = { "malloc/free/calloc/realloc", "malloc_stats", "check_heap/malloc_trim" };
    for (int what = ALLOC; what <= INFO; what++) {
        char name[96];
        snprintf(name, sizeof name, "a pending cancel is not acted on in %s", names[what]);
        CHECK_EXIT(name, stage, (void *)(intptr_t)what, 0);
    }
    return harness_finish();
}
