/*
 * test_meta.c - the allocator's own structures are out of reach of a heap
 * overflow (issue 11, "metadata out of reach").
 *  - a thread's cache structure is in no heap and no mapped chunk, in a
 *    metadata slot (tm_meta_owns) of a slab whose slots lie between two
 *    guard pages: a write one byte before the slab's first slot or at
 *    its end faults (SIGSEGV in a child), so a linear overflow from any
 *    block, whichever mapping it is in, stops at a guard page;
 *  - the same for a non-main arena: the byte before its sub-heap header
 *    (which the arena follows) faults;
 *  - the heap itself is unaffected: the sub-heap header is where
 *    heap_for_ptr finds it, and blocks just below the next slot's guard
 *    are written whole;
 *  - slots are reused: 300 threads started one after the other use at
 *    most a handful of slots; 16 threads alive at once have 16 distinct
 *    slots, and 18 such batches in a row use at most one slab (64);
 *  - the slots cost no mappings of their own: 256 more threads alive at
 *    once add at most glibc's two mappings each (stack and guard) and a
 *    few per slab.  A guard page between slots made each cache two
 *    mappings more, and a program with ~16 300 threads alive ran out of
 *    vm.max_map_count (65530) where glibc made 20 000 (a helper's hunt
 *    with real programs, 2026-12-06).
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

static size_t distinct(void **v, size_t n);

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
    void *first = NULL, *end = NULL;
    snprintf(label, sizeof label, "%s: its slot lies in a slab's slots", who);
    CHECK(label, tm_meta_span(tc, &first, &end) && (char *)first <= (char *)tc &&
                 (char *)tc + sizeof *tc <= (char *)end);
    if (!first)
        return;
    snprintf(label, sizeof label, "%s: the byte before the slab's slots faults (guard page)", who);
    CHECK(label, write_faults((char *)first - 1));
    snprintf(label, sizeof label, "%s: the byte after them faults (guard page)", who);
    CHECK(label, write_faults(end));
}

/* Lines of /proc/self/maps: the process's mappings. */
static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

enum { MANY = 256 };
static pthread_barrier_t many_up, many_done;
static void *many_thread(void *arg)
{
    free(malloc(32));                    /* its cache: a slot */
    *(void **)arg = tm_tls_tcache_own;
    pthread_barrier_wait(&many_up);      /* all alive: main counts */
    pthread_barrier_wait(&many_done);
    return NULL;
}

/* MANY threads alive at once, with small stacks (64 KiB, a mapping and
 * its guard each, glibc's): the mappings they add, or -1.            */
static long maps_added_by_threads(size_t *slots)
{
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 64 << 10);
    pthread_barrier_init(&many_up, NULL, MANY + 1);
    pthread_barrier_init(&many_done, NULL, MANY + 1);
    static pthread_t ts[MANY];
    static void *caches[MANY];
    long before = count_maps(), after = -1;
    for (int i = 0; i < MANY; i++)
        if (pthread_create(&ts[i], &at, many_thread, &caches[i]) != 0)
            return -1;
    pthread_barrier_wait(&many_up);
    after = count_maps();
    pthread_barrier_wait(&many_done);
    for (int i = 0; i < MANY; i++)
        pthread_join(ts[i], NULL);
    pthread_attr_destroy(&at);
    pthread_barrier_destroy(&many_up);
    pthread_barrier_destroy(&many_done);
    *slots = distinct(caches, MANY);
    return before < 0 || after < 0 ? -1 : after - before;
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

    /* The sanitizers' runtimes map memory of their own per thread. */
    if (!UNDER_SANITIZER) {
        mallopt(M_ARENA_MAX, 2);         /* (no arena is made meanwhile: the count is the threads') */
        size_t slots = 0;
        long added = maps_added_by_threads(&slots);
        CHECKF("256 threads alive at once have 256 cache slots", slots == MANY, "%zu", slots);
        CHECKF("and add at most 2 mappings a thread (glibc's stack and guard) and 3 a slab",
               added >= 0 && added <= 2 * MANY + 3 * (MANY / 64 + 1), "%ld mappings added", added);
    }
    CHECK("tide_check_heap", tide_check_heap() > 0);
    return harness_finish();
}
