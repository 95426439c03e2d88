/*
 * wl_prodcons - producer/consumer with cross-thread frees.
 *
 * PRODUCERS threads allocate objects of 16..512 B, stamp them and pass them
 * in batches of BATCH pointers through one bounded queue (a ring of batch
 * descriptors under a mutex + two condition variables) to CONSUMERS threads,
 * which verify and free them.  Every block is therefore freed by a thread
 * that did not allocate it.  The queue is touched once per BATCH objects,
 * so the allocator dominates the cost.
 * ops = number of malloc + free calls; ops_per_s is the figure of merit.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 2
#define CONSUMERS 2
#define BATCH 256
#define RING 64          /* batches in flight */

struct batch {
    int n;
    void *p[BATCH];
    uint32_t size[BATCH];
    uint64_t tag[BATCH];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    struct batch *ring[RING];
    unsigned head, tail;   /* head: next to pop, tail: next to push */
    int producers_left;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
        { 0 }, 0, 0, PRODUCERS };

/* Batch descriptors are recycled through a second ring (free list) so the
 * descriptors themselves cost no malloc in the measured loop.            */
static struct {
    pthread_mutex_t mu;
    struct batch *items[RING + PRODUCERS + CONSUMERS + 4];
    int n;
} pool = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 };

static long per_producer;

static struct batch *pool_get(void)
{
    pthread_mutex_lock(&pool.mu);
    struct batch *b = pool.n ? pool.items[--pool.n] : NULL;
    pthread_mutex_unlock(&pool.mu);
    if (!b)
        bench_fail("batch pool exhausted");
    return b;
}

static void pool_put(struct batch *b)
{
    pthread_mutex_lock(&pool.mu);
    pool.items[pool.n++] = b;
    pthread_mutex_unlock(&pool.mu);
}

static void q_push(struct batch *b)
{
    pthread_mutex_lock(&q.mu);
    while (q.tail - q.head == RING)
        pthread_cond_wait(&q.not_full, &q.mu);
    q.ring[q.tail++ % RING] = b;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

static struct batch *q_pop(void)
{
    pthread_mutex_lock(&q.mu);
    while (q.tail == q.head && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.mu);
    struct batch *b = NULL;
    if (q.tail != q.head) {
        b = q.ring[q.head++ % RING];
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.mu);
    return b;
}

static void *producer(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    rng_t r;
    rng_seed(&r, 1000 + id);
    uint64_t seq = 0;
    long left = per_producer;
    while (left > 0) {
        struct batch *b = pool_get();
        b->n = left < BATCH ? (int)left : BATCH;
        for (int i = 0; i < b->n; i++) {
            uint32_t sz = (uint32_t)rng_range(&r, 16, 512);
            void *p = malloc(sz);
            if (!p)
                bench_fail("malloc(%u) returned NULL", sz);
            uint64_t tag = (id << 48) | seq++;
            stamp_block(p, sz, tag, 64);
            b->p[i] = p;
            b->size[i] = sz;
            b->tag[i] = tag;
        }
        left -= b->n;
        q_push(b);
    }
    pthread_mutex_lock(&q.mu);
    q.producers_left--;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

static void *consumer(void *arg)
{
    long *count = arg;
    struct batch *b;
    while ((b = q_pop()) != NULL) {
        for (int i = 0; i < b->n; i++) {
            if (!stamp_ok(b->p[i], b->size[i], b->tag[i], 64))
                bench_fail("object %p (%u B, producer %llu, seq %llu) corrupted",
                           b->p[i], b->size[i], (unsigned long long)(b->tag[i] >> 48),
                           (unsigned long long)(b->tag[i] & 0xFFFFFFFFFFFFull));
            free(b->p[i]);
        }
        *count += b->n;
        pool_put(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("prodcons");
    int quick = bench_quick(argc, argv);
    per_producer = quick ? 600000 : 5000000;

    static struct batch batches[RING + PRODUCERS + CONSUMERS + 4];
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
        pool.items[pool.n++] = &batches[i];

    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    long consumed[CONSUMERS];
    memset(consumed, 0, sizeof consumed);
    double t0 = now_s();
    for (int i = 0; i < CONSUMERS; i++)
        if (pthread_create(&ct[i], NULL, consumer, &consumed[i]))
            bench_fail("pthread_create failed");
    for (int i = 0; i < PRODUCERS; i++)
        if (pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)(i + 1)))
            bench_fail("pthread_create failed");
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(pt[i], NULL);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(ct[i], NULL);
    double t = now_s() - t0;

    long total = 0;
    for (int i = 0; i < CONSUMERS; i++)
        total += consumed[i];
    if (total != per_producer * PRODUCERS)
        bench_fail("consumed %ld objects, produced %ld", total, per_producer * PRODUCERS);
    bench_result(t, (uint64_t)total * 2, "threads=%d+%d objects=%ld",
                 PRODUCERS, CONSUMERS, total);
    return 0;
}
