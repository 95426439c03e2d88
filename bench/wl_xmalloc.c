/*
 * wl_xmalloc - producer/consumer in the spirit of xmalloc-test (Lever &
 * Boreham, "malloc() Performance in a Multithreaded Linux Environment",
 * USENIX 2000; the fixed-work version in mimalloc-bench).  Written from
 * scratch here.
 *
 * Half of the threads only allocate, the other half only free: a producer
 * fills a batch of BATCH (4096) blocks of 8..1024 B (log-uniform), stamps the
 * first and last word of each, and pushes the batch onto one shared blocking
 * list; a consumer pops a batch, verifies every block and frees it.  So every
 * free is cross-thread, and the memory a producer's cache would want back is
 * always in another thread: the asymmetric pattern that per-thread caches
 * handle worst.  Fixed work: 4M blocks (200k with --quick), 2 threads (one
 * producer, one consumer; --threads N, even).  At most DEPTH batches wait in
 * the list, so the live set stays bounded (~DEPTH * 4096 blocks).
 * ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdlib.h>

#define BATCH 4096
#define DEPTH 8
#define MIN_SZ 8
#define MAX_SZ 1024

struct batch {
    struct batch *next;
    int n;
    void *p[BATCH];
    uint32_t size[BATCH];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t can_push, can_pop;
    struct batch *head, *tail;     /* full batches, FIFO */
    struct batch *spare;           /* empty descriptors */
    int depth, producers_left;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
        NULL, NULL, NULL, 0, 0 };

static long batches_per_producer;

static uint64_t tag_of(const void *p, uint32_t size)
{
    return (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull ^ size;
}

static void *producer(void *arg)
{
    rng_t r;
    rng_seed(&r, 1000 + (uint64_t)(uintptr_t)arg);
    for (long b = 0; b < batches_per_producer; b++) {
        pthread_mutex_lock(&q.mu);
        while (q.depth >= DEPTH || !q.spare)
            pthread_cond_wait(&q.can_push, &q.mu);
        struct batch *bt = q.spare;
        q.spare = bt->next;
        pthread_mutex_unlock(&q.mu);

        for (int i = 0; i < BATCH; i++) {
            uint32_t sz = (uint32_t)rng_logsize(&r, MIN_SZ, MAX_SZ);
            void *p = malloc(sz);
            if (!p)
                bench_fail("malloc(%u) returned NULL", sz);
            stamp_block(p, sz, tag_of(p, sz), 4096);
            bt->p[i] = p;
            bt->size[i] = sz;
        }
        bt->n = BATCH;
        bt->next = NULL;

        pthread_mutex_lock(&q.mu);
        if (q.tail)
            q.tail->next = bt;
        else
            q.head = bt;
        q.tail = bt;
        q.depth++;
        pthread_cond_signal(&q.can_pop);
        pthread_mutex_unlock(&q.mu);
    }
    pthread_mutex_lock(&q.mu);
    q.producers_left--;
    pthread_cond_broadcast(&q.can_pop);
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

static void *consumer(void *arg)
{
    long *freed = arg;
    for (;;) {
        pthread_mutex_lock(&q.mu);
        while (!q.head && q.producers_left > 0)
            pthread_cond_wait(&q.can_pop, &q.mu);
        struct batch *bt = q.head;
        if (!bt) {
            pthread_mutex_unlock(&q.mu);
            return NULL;
        }
        q.head = bt->next;
        if (!q.head)
            q.tail = NULL;
        q.depth--;
        pthread_mutex_unlock(&q.mu);

        for (int i = 0; i < bt->n; i++) {
            if (!stamp_ok(bt->p[i], bt->size[i], tag_of(bt->p[i], bt->size[i]), 4096))
                bench_fail("block %p (%u B) corrupted before its free", bt->p[i], bt->size[i]);
            free(bt->p[i]);
        }
        *freed += bt->n;

        pthread_mutex_lock(&q.mu);
        bt->next = q.spare;
        q.spare = bt;
        pthread_cond_signal(&q.can_push);
        pthread_mutex_unlock(&q.mu);
    }
}

int main(int argc, char **argv)
{
    bench_set_name("xmalloc");
    int quick = bench_quick(argc, argv);
    int threads = (int)bench_arg_long(argc, argv, "--threads", 2);
    long blocks = bench_arg_long(argc, argv, "--blocks", quick ? 200000 : 4000000);
    if (threads < 2 || threads % 2 || threads > 32)
        bench_fail("--threads must be even, 2..32");
    int np = threads / 2;
    batches_per_producer = blocks / BATCH / np;
    if (batches_per_producer < 1)
        batches_per_producer = 1;
    q.producers_left = np;
    /* Descriptors: allocated before the clock starts, recycled after. */
    for (int i = 0; i < DEPTH + threads; i++) {
        struct batch *b = malloc(sizeof *b);
        if (!b)
            bench_fail("out of memory");
        b->next = q.spare;
        q.spare = b;
    }

    pthread_t th[32];
    long freed[32] = { 0 };
    double t0 = now_s();
    for (int i = 0; i < np; i++) {
        if (pthread_create(&th[i], NULL, producer, (void *)(uintptr_t)i))
            bench_fail("pthread_create failed");
        if (pthread_create(&th[np + i], NULL, consumer, &freed[i]))
            bench_fail("pthread_create failed");
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double el = now_s() - t0;

    long total = 0;
    for (int i = 0; i < np; i++)
        total += freed[i];
    if (total != batches_per_producer * BATCH * np)
        bench_fail("freed %ld blocks, produced %ld", total, batches_per_producer * BATCH * np);
    while (q.spare) {
        struct batch *b = q.spare;
        q.spare = b->next;
        free(b);
    }
    bench_result(el, 2 * (uint64_t)total, "threads=%d batch=%d", threads, BATCH);
    return 0;
}
