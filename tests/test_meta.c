/*
 * test_meta.c - the allocator's own structures are out of reach of a heap
 * overflow (issue 11, "metadata out of reach").
 *  - a thread's cache structure is in no heap and no mapped chunk, in a
 *    metadata slot (tm_meta_owns), and a write one byte before it or one
 *    page after its start faults (SIGSEGV in a child): a linear overflow
 *    from any block, whichever mapping it is in, stops at a guard page;
 *  - the same for a non-main arena: the byte before its sub-heap header
 *    (which the arena follows) faults;
 *  - the heap itself is unaffected: the sub-heap header is where
 *    heap_for_ptr finds it, and blocks just below the next slot's guard
 *    are written whole;
 *  - slots are reused: 300 threads started one after the other use at
 *    most a handful of slots; 16 threads alive at once have 16 distinct
 *    slots, and 18 such batches in a row use at most one slab (64).
 * (Static link: reads the thread's cache and arena.)
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <malloc.h>
#include "harness.h"
#include "tidemalloc.h"
#include "arena.h"
#include "heap.h"
#include "meta.h"
#include "owner.h"
#include "tcache.h"

static void poke(void *arg)
{
    volatile char *c = arg;
    *c = 1;                              /* must fault */
}


/* A write at a faults: the child dies of SIGSEGV (under ASan or TSan,
 * whose handler reports the SEGV and exits, it fails with that report). */
static bool write_faults(void *a)
{
    int st = harness_run_child(poke, a);
    if (st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
        return true;
    return UNDER_SANITIZER && st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
           strstr(harness_child_output, "SEGV") != NULL;
}

static void check_cache_guarded(const char *who)
{
    tm_tcache *tc = tm_tls_tcache_own;
    char label[128];
    snprintf(label, sizeof label, "%s: has a thread cache", who);
    CHECK(label, tc != NULL);
    if (!tc)
        return;
    snprintf(label, sizeof label, "%s: its cache is a metadata slot, in no heap", who);
    CHECKF(label, tm_meta_owns(tc) && !tm_own_in_heaps((uintptr_t)tc) &&
           tm_own_classify((const tm_chunk *)tc) == TM_OWN_NONE, "%p", (void *)tc);
    snprintf(label, sizeof label, "%s: the byte before its cache faults (guard page)", who);
    CHECK(label, write_faults((char *)tc - 1));
    snprintf(label, sizeof label, "%s: the page after its cache faults (guard page)", who);
    CHECK(label, write_faults((char *)tc + tm_fix.pagesize));
}

static void *arena_thread(void *arg)
{
    (void)arg;
    char *keep = malloc(64);
    tm_arena *av = tm_thread_arena();
    CHECK("a second thread gets a non-main arena", av != NULL && av != &tm_main_arena);
    check_cache_guarded("second thread");
    tm_heap *h = heap_for_ptr(mem2chunk(keep));
    CHECK("heap_for_ptr finds the sub-heap header, the arena after it",
          h->ar == av && (char *)av == (char *)(h + 1));
    CHECK("the byte before the sub-heap header faults (guard)", write_faults((char *)h - 1));
    /* Fill the arena past one sub-heap: the next heap is a new slot, and
     * the last block of the first one is written whole. */
    enum { N = 80 };
    char *blk[N];
    mallopt(M_MMAP_THRESHOLD, 4 << 20);  /* 1 MiB blocks from the heap */
    for (int i = 0; i < N; i++) {
        blk[i] = malloc(1 << 20);
        CHECK("1 MiB blocks", blk[i] != NULL);
        if (blk[i])
            memset(blk[i], i, 1 << 20);
    }
    CHECK("the arena spans several sub-heaps", av->nheaps >= 2);
    CHECK("every heap of the arena has its guard", av->last_heap != NULL &&
          write_faults((char *)av->last_heap - 1));
    CHECK("tide_check_heap", tide_check_heap() > 0);
    for (int i = 0; i < N; i++)
        free(blk[i]);
    free(keep);
    return NULL;
}

enum { MAXT = 300 };
static void *seen[MAXT];
static void *record(void *arg)
{
    free(malloc(32));
    *(void **)arg = tm_tls_tcache_own;
    return NULL;
}

static pthread_barrier_t all_alive;
static void *record_together(void *arg)
{
    record(arg);
    pthread_barrier_wait(&all_alive);    /* the batch lives at the same time */
    return NULL;
}

static size_t distinct(void **v, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && v[j] != v[i])
            j++;
        d += j == i;
    }
    return d;
}

int main(void)
{
    free(malloc(1));
    check_cache_guarded("main thread");
    pthread_t t;
    CHECK("thread", pthread_create(&t, NULL, arena_thread, NULL) == 0 && pthread_join(t, NULL) == 0);

    for (int i = 0; i < MAXT; i++)
        if (pthread_create(&t, NULL, record, &seen[i]) != 0 || pthread_join(t, NULL) != 0)
            CHECK("thread", 0);
    size_t d = distinct(seen, MAXT);
    CHECKF("300 threads one after the other reuse their slots", d >= 1 && d <= 3, "%zu slots", d);

    enum { BATCH = 16 };
    pthread_barrier_init(&all_alive, NULL, BATCH);
    size_t bad_batches = 0;
    for (int b = 0; b < MAXT / BATCH; b++) {
        pthread_t ts[BATCH];
        for (int i = 0; i < BATCH; i++)
            pthread_create(&ts[i], NULL, record_together, &seen[b * BATCH + i]);
        for (int i = 0; i < BATCH; i++)
            pthread_join(ts[i], NULL);
        bad_batches += distinct(seen + b * BATCH, BATCH) != BATCH;
    }
    CHECKF("16 threads alive at once have 16 slots", bad_batches == 0, "%zu batches not", bad_batches);
    d = distinct(seen, MAXT / BATCH * BATCH);
    CHECKF("and batch after batch reuse them", d >= BATCH && d <= 64, "%zu slots", d);
    CHECK("tide_check_heap", tide_check_heap() > 0);
    return harness_finish();
}
