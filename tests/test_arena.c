/*
 * test_arena.c - the arena limit and arena reuse.
 *
 *   test_arena             default limit: 8 x CPUs
 *   test_arena N           the environment sets a limit of N
 *                          (MALLOC_ARENA_MAX=N or GLIBC_TUNABLES=glibc.malloc.arena_max=N)
 *   test_arena mallopt N   mallopt(M_ARENA_MAX, N) before any thread exists
 *
 * 1. 8 threads, all alive at once, each allocating (and holding) blocks:
 *    tide_get_stats().narenas stays within the limit (== 1 when the limit
 *    is 1); with the default limit at least one arena besides the main one
 *    is created.
 * 2. 4 more rounds of 8 threads after the first ones exited: exited threads'
 *    arenas are reused, narenas does not grow past the first round's count.
 *    Blocks of exited threads stay alive meanwhile and are freed by main.
 * 3. 8 x CPUs + 8 threads alive at once: narenas reaches the limit exactly
 *    (as ptmalloc creates arenas while below it) and does not exceed it.
 * Then tide_check_heap().
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ROUND_THREADS 8
#define PER_THREAD    40
#define MAX_THREADS   512

static pthread_barrier_t bar;
static void *kept[MAX_THREADS][PER_THREAD / 2];
static atomic_long bad;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 31 + id);
    void *mine[PER_THREAD];
    pthread_barrier_wait(&bar);            /* everybody alive before anyone allocates */
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = (i == 0) ? 200 * 1024 : mt_range(&r, MT_HDR, 3000);
        mine[i] = malloc(n);
        if (!mine[i]) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        mt_fill(mine[i], n, id * 1000 + (uint64_t)i);
    }
    pthread_barrier_wait(&bar);            /* everybody holds memory at once */
    for (int i = 0; i < PER_THREAD; i++) {
        if (!mine[i])
            continue;
        if (i % 2) {                        /* half outlives the thread */
            kept[id][i / 2] = mine[i];
        } else {
            if (!mt_verify(mine[i], NULL))
                atomic_fetch_add(&bad, 1);
            free(mine[i]);
        }
    }
    return NULL;
}

static size_t narenas(void)
{
    struct tide_stats st;
    tide_get_stats(&st);
    return st.narenas;
}

static void run_threads(int n, uintptr_t first_id)
{
    pthread_t th[MAX_THREADS];
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(first_id + (uintptr_t)i)) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
}

static void free_kept(int nthreads)
{
    for (int t = 0; t < nthreads; t++)
        for (int i = 0; i < PER_THREAD / 2; i++)
            if (kept[t][i]) {
                if (!mt_verify(kept[t][i], NULL))
                    atomic_fetch_add(&bad, 1);
                free(kept[t][i]);
                kept[t][i] = NULL;
            }
}

int main(int argc, char **argv)
{
    mt_watchdog(120, "test_arena");
    setvbuf(stdout, NULL, _IOLBF, 0);
    long cpus = mt_ncpus();
    long limit = 8 * cpus;
    int explicit_limit = 0;
    const char *how = "default (8 x cpus)";
    if (argc >= 3 && strcmp(argv[1], "mallopt") == 0) {
        limit = atol(argv[2]);
        explicit_limit = 1;
        how = "mallopt(M_ARENA_MAX)";
        CHECK("mallopt(M_ARENA_MAX, n) returns 1", mallopt(M_ARENA_MAX, (int)limit) == 1);
    } else if (argc >= 2) {
        limit = atol(argv[1]);
        explicit_limit = 1;
        how = getenv("MALLOC_ARENA_MAX") ? "MALLOC_ARENA_MAX" : "GLIBC_TUNABLES";
    }
    printf("test_arena: limit %ld (%s), %ld cpus, MALLOC_ARENA_MAX=%s GLIBC_TUNABLES=%s\n", limit,
           how, cpus, getenv("MALLOC_ARENA_MAX") ? getenv("MALLOC_ARENA_MAX") : "(unset)",
           getenv("GLIBC_TUNABLES") ? getenv("GLIBC_TUNABLES") : "(unset)");
    free(malloc(1));
    size_t a0 = narenas();
    CHECKF("one arena (main) before any thread", a0 == 1, "narenas %zu", a0);

    /* 1. eight threads at once */
    run_threads(ROUND_THREADS, 0);
    size_t a1 = narenas();
    printf("after 8 concurrent threads: narenas %zu\n", a1);
    CHECKF("narenas within the limit after 8 threads", a1 <= (size_t)limit, "narenas %zu, limit %ld",
           a1, limit);
    if (limit == 1)
        CHECKF("limit 1: only the main arena", a1 == 1, "narenas %zu", a1);
    if (!explicit_limit || limit >= 2)
        CHECKF("concurrent threads get arenas of their own", a1 >= 2, "narenas %zu", a1);

    /* 2. more rounds: arenas of exited threads are reused */
    size_t worst = a1;
    for (int round = 1; round <= 4; round++) {
        run_threads(ROUND_THREADS, (uintptr_t)(round * ROUND_THREADS));
        size_t a = narenas();
        if (a > worst)
            worst = a;
    }
    printf("after 4 more rounds of 8 threads: narenas %zu\n", worst);
    CHECKF("arenas of exited threads are reused (no growth past the first round)", worst <= a1,
           "first round %zu, later %zu", a1, worst);
    free_kept(5 * ROUND_THREADS);
    CHECK("heap consistent after the rounds", tide_check_heap() >= 0);

    /* 3. more threads at once than the default limit allows arenas */
    int many = (int)(8 * cpus + 8);
    if (many > MAX_THREADS)
        many = MAX_THREADS;
    run_threads(many, 0);
    size_t a3 = narenas();
    printf("after %d concurrent threads: narenas %zu\n", many, a3);
    CHECKF("narenas within the limit with many threads", a3 <= (size_t)limit,
           "narenas %zu, limit %ld", a3, limit);
    /* ptmalloc creates a new arena for a thread while fewer than the limit
     * exist, so with more threads than that alive at once it is reached. */
    CHECKF("the limit is reached when more threads than that are alive at once",
           a3 == (size_t)limit, "narenas %zu, limit %ld", a3, limit);
    free_kept(many);

    CHECKF("every allocation succeeded, nothing corrupted", atomic_load(&bad) == 0, "%ld",
           (long)atomic_load(&bad));
    CHECK("final tide_check_heap", tide_check_heap() >= 0);
    return harness_finish();
}
