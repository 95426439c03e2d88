/*
 * test_hints.c - prefetch hints on class lists (tcache.h, "prefetch hints
 * on class lists"; tcache.c free_chain and rekey_list).
 *
 * A thread that frees other threads' blocks flushes them, a run per
 * arena, onto that arena's class list, and writes into each entry of a
 * run the (mangled) address of the entry TC_HINT_DIST places further
 * down; the thread that takes the list back prefetches by them, so its
 * walk has several misses in flight instead of one.  Here two producers
 * with arenas of their own hand NBLK blocks of one class each to a
 * consumer that frees them interleaved, STRIDE of one producer's then
 * STRIDE of the other's (a consumer serving two producers batch by
 * batch):
 *  - every hint on each producer's list names the entry TC_HINT_DIST
 *    places further down that list, or nothing - never another entry
 *    (a wrong hint costs only a wasted prefetch, but says the runs are
 *    not what free_chain meant to build);
 *  - runs are kept per arena through a flush: at least half the entries
 *    carry a hint (one run at a time, cut at each change of arena, made
 *    runs of STRIDE entries: STRIDE <= TC_HINT_DIST, so none had one);
 *  - no hint word holds the heap address it names (stored mangled);
 *  - each producer's next miss takes its list back: every block of it
 *    handed out once, the checker passes.
 * (Static link: reads the arenas' class lists and the cache.)
 */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"
#include "class_list.h"
#include "arena.h"
#include "internal.h"
#include "tcache.h"
#include "tidemalloc.h"

#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)
#define NBLK   96               /* blocks per producer (3 class limits) */
#define STRIDE 4                /* the consumer alternates every STRIDE blocks */
#define REQ    64               /* their size */
#define MAXL   (NBLK + 256)     /* a list: the consumer's blocks, and what a producer parked */

_Static_assert(STRIDE <= TC_HINT_DIST, "runs cut at each change of arena would carry no hint");

static pthread_barrier_t bar;
static void *blocks[2][NBLK];
static tm_arena *arenas[2];

static size_t cls(void) { return tc_req_index(REQ); }

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    free(malloc(1));                            /* (the thread's arena) */
    arenas[id] = tm_thread_arena();
    for (int k = 0; k < NBLK; k++) {
        blocks[id][k] = malloc(REQ);
        memset(blocks[id][k], 0x40 + id, REQ);
    }
    tide_thread_cache_flush();
    pthread_barrier_wait(&bar);                 /* the consumer frees */
    pthread_barrier_wait(&bar);

    tm_arena *av = arenas[id];
    CHECK("the producers have arenas of their own (the premise)", arenas[0] != arenas[1]);
    static void *list[2][MAXL];
    void **l = list[id];
    size_t nl = class_list_members(atomic_load(&av->remote_cls[cls()]), list[id], MAXL);
    size_t from_consumer = 0;
    for (size_t k = 0; k < nl; k++)
        for (int b = 0; b < NBLK; b++)
            from_consumer += l[k] == blocks[id][b];
    CHECKF("the consumer's frees wait on the producer's class list", from_consumer == NBLK,
           "producer %d: %zu of %d on a list of %zu", id, from_consumer, NBLK, nl);

    size_t hinted = 0, wrong = 0, raw = 0;
    for (size_t k = 0; k < nl; k++) {
        const void *h = tc_hint(l[k]);
        if (!h)
            continue;
        hinted++;
        if (k + TC_HINT_DIST >= nl || h != l[k + TC_HINT_DIST])
            wrong++;
        if (((const uintptr_t *)l[k])[2] == (uintptr_t)h)
            raw++;
    }
    CHECKF("every hint names the entry TC_HINT_DIST further down the list", wrong == 0,
           "producer %d: %zu of %zu hints wrong", id, wrong, hinted);
    CHECKF("runs per arena: at least half the entries carry a hint", 2 * hinted >= nl,
           "producer %d: %zu of %zu", id, hinted, nl);
    CHECKF("hints are stored mangled", raw == 0, "producer %d: %zu raw", id, raw);

    /* The next miss takes the list whole (the walk that prefetches);
     * every block of it comes out once. */
    size_t before = tm_tls_tcache->counts[cls()];
    CHECK("the producer's class is empty before the miss", before == 0);
    static void *got[2][MAXL];
    size_t ng = 0;
    got[id][ng++] = malloc(REQ);
    size_t installed = tm_tls_tcache->counts[cls()];
    CHECKF("the miss installed the list", installed + 1 == nl, "producer %d: %zu of %zu", id, installed + 1, nl);
    /* (The heap checker drains every arena's lists into the bins: not
     * before both producers took theirs.) */
    pthread_barrier_wait(&bar);
    CHECK("the installed class passes the heap check", tide_check_heap() > 0);
    while (tm_tls_tcache->counts[cls()] > 0 && ng < MAXL)
        got[id][ng++] = malloc(REQ);
    size_t on_list = 0, twice = 0;
    for (size_t x = 0; x < ng; x++) {
        for (size_t k = 0; k < nl; k++)
            on_list += got[id][x] == l[k];
        for (size_t y = x + 1; y < ng; y++)
            twice += got[id][x] == got[id][y];
    }
    CHECKF("each block of the list handed out once", ng == nl && on_list == nl && twice == 0,
           "producer %d: %zu out, %zu from the list of %zu, %zu twice", id, ng, on_list, nl, twice);
    for (size_t x = 0; x < ng; x++)
        free(got[id][x]);
    CHK();
    pthread_barrier_wait(&bar);                 /* the consumer may exit now */
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&bar);
    for (int k = 0; k < NBLK; k += STRIDE)
        for (int id = 0; id < 2; id++)
            for (int s = 0; s < STRIDE; s++) {
                unsigned char *p = blocks[id][k + s];
                CHECK("the block kept its bytes", p[0] == 0x40 + id && p[REQ - 1] == 0x40 + id);
                free(p);
            }
    tide_thread_cache_flush();
    pthread_barrier_wait(&bar);                 /* the producers look, take their lists */
    pthread_barrier_wait(&bar);                 /* and check */
    pthread_barrier_wait(&bar);
    return NULL;
}

int main(void)
{
    /* No background thread, no decay: their rounds drain class lists
     * into the bins while the producers look at them. */
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    for (int w = 0; w < 400 && atomic_load(&tm_bg_active); w++)
        usleep(5000);
    CHECK("the background thread stopped", !atomic_load(&tm_bg_active));
    free(malloc(1));
    pthread_barrier_init(&bar, NULL, 3);
    pthread_t t[3];
    pthread_create(&t[0], NULL, producer, (void *)(intptr_t)0);
    pthread_create(&t[1], NULL, producer, (void *)(intptr_t)1);
    pthread_create(&t[2], NULL, consumer, NULL);
    for (int k = 0; k < 3; k++)
        pthread_join(t[k], NULL);
    CHECK("the producers had arenas of their own (the premise)",
          arenas[0] && arenas[1] && arenas[0] != arenas[1]);
    CHK();
    return harness_finish();
}
