/*
 * wl_realloc - realloc growth of many buffers.
 *
 * A set of ACTIVE buffers grows side by side (each step appends to a random
 * one, so neighbours keep getting in each other's way).  Three kinds:
 *   exact:  a string builder that reallocs to the exact new length on every
 *           append of 8..256 bytes; final length log-uniform 64 B..64 KiB;
 *   grow:   a string builder with a capacity growing by 1.5x (realloc when
 *           full), final length log-uniform 4 KiB..4 MiB, shrunk to fit with
 *           a last realloc when done;
 *   vector: an array doubling from 16 B up to 64 KiB..8 MiB, each doubling
 *           filling the new half.
 * Byte i of buffer `id` always holds content_byte(id, i); a finished buffer
 * is verified in full before it is freed, and a few random bytes are
 * spot-checked after every realloc that moved the block.
 * ops = number of realloc + free calls.
 */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "content_word() assumes a little-endian machine"
#endif

#define ACTIVE 48

enum kind { K_EXACT, K_GROW, K_VECTOR };

struct buf {
    unsigned char *p;
    size_t len, cap, target;
    uint64_t id, key;
    enum kind kind;
};

static uint64_t ops, moved, bytes_written;

static inline unsigned char content_byte(uint64_t key, size_t i)
{
    return (unsigned char)((key >> ((i & 7) * 8)) ^ (i >> 3) ^ (i >> 11));
}

static void start(struct buf *b, rng_t *r, uint64_t id)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->id = id;
    b->key = rng_next(r) | 0x0101010101010101ull;
    uint64_t k = rng_next(r) % 16;
    if (k < 12) {                 /* 3/4 of the buffers: small exact builders */
        b->kind = K_EXACT;
        b->target = rng_logsize(r, 64, 64 << 10);
    } else if (k < 14) {
        b->kind = K_GROW;
        b->target = rng_logsize(r, 4 << 10, 4 << 20);
    } else {
        b->kind = K_VECTOR;
        b->target = (size_t)64 << 10 << rng_range(r, 0, 7);   /* 64K..8M */
    }
}

/* The spot check's random byte comes from its own generator, seeded by
 * the buffer and the sizes: drawing it from the workload's stream made
 * every later step depend on whether this realloc moved the block, so
 * two allocators did different work (quick mode: 456 M against 560 M
 * bytes appended, 96 k against 86 k calls).                            */
static void resize(struct buf *b, size_t ncap)
{
    unsigned char *old = b->p;
    unsigned char *np = realloc(b->p, ncap);
    if (!np)
        bench_fail("realloc(%p, %zu) returned NULL", (void *)old, ncap);
    ops++;
    b->p = np;
    b->cap = ncap;
    if (np != old && b->len) {
        moved++;
        /* spot-check the copied contents: first, last and a random byte */
        rng_t spot;
        rng_seed(&spot, b->key ^ (uint64_t)b->len << 20 ^ (uint64_t)ncap << 40);
        size_t idx[3] = { 0, b->len - 1, (size_t)(rng_next(&spot) % b->len) };
        for (int i = 0; i < 3; i++)
            if (np[idx[i]] != content_byte(b->key, idx[i]))
                bench_fail("buffer %llu: byte %zu lost by realloc to %zu bytes",
                           (unsigned long long)b->id, idx[i], ncap);
    }
}

/* The 8 bytes of an 8-aligned word at offset i (i % 8 == 0), as a
 * little-endian word: byte j is content_byte(key, i + j).               */
static inline uint64_t content_word(uint64_t key, size_t i)
{
    return key ^ (0x0101010101010101ull * (unsigned char)((i >> 3) ^ (i >> 11)));
}

static void append(struct buf *b, size_t n)
{
    size_t i = b->len, end = b->len + n;
    while (i < end && (i & 7))
        b->p[i] = content_byte(b->key, i), i++;
    for (; i + 8 <= end; i += 8) {
        uint64_t w = content_word(b->key, i);
        __builtin_memcpy(b->p + i, &w, 8);
    }
    for (; i < end; i++)
        b->p[i] = content_byte(b->key, i);
    b->len = end;
    bytes_written += n;
}

/* 1 if the first len bytes hold the expected contents; *bad = first bad byte */
static int contents_ok(const struct buf *b, size_t *bad)
{
    size_t i = 0;
    for (; i + 8 <= b->len; i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, b->p + i, 8);
        if (w != content_word(b->key, i))
            break;
    }
    for (; i < b->len; i++)
        if (b->p[i] != content_byte(b->key, i)) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* One step on buffer b; returns 1 when the buffer is complete. */
static int step(struct buf *b, rng_t *r)
{
    switch (b->kind) {
    case K_EXACT: {
        size_t n = (size_t)rng_range(r, 8, 256);
        if (b->len + n > b->target)
            n = b->target - b->len;
        resize(b, b->len + n);
        append(b, n);
        break;
    }
    case K_GROW: {
        size_t n = (size_t)rng_range(r, 8, 256);
        if (b->len + n > b->target)
            n = b->target - b->len;
        if (b->len + n > b->cap) {
            size_t nc = b->cap ? b->cap + b->cap / 2 : 64;
            while (nc < b->len + n)
                nc += nc / 2;
            resize(b, nc);
        }
        append(b, n);
        if (b->len == b->target && b->cap != b->len)
            resize(b, b->len);      /* shrink to fit */
        break;
    }
    case K_VECTOR: {
        size_t nc = b->cap ? b->cap * 2 : 16;
        resize(b, nc);
        append(b, nc - b->len);
        break;
    }
    }
    return b->len >= b->target;
}

static void finish(struct buf *b)
{
    size_t bad;
    if (!contents_ok(b, &bad))
        bench_fail("buffer %llu (kind %d, %zu bytes): byte %zu corrupted",
                   (unsigned long long)b->id, (int)b->kind, b->len, bad);
    free(b->p);
    ops++;
    b->p = NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("realloc");
    int quick = bench_quick(argc, argv);
    long total = quick ? 1500 : 12000;     /* buffers built */

    rng_t r;
    rng_seed(&r, 7);
    struct buf act[ACTIVE];
    uint64_t next_id = 0;
    long done = 0;
    double t0 = now_s();
    for (int i = 0; i < ACTIVE; i++)
        start(&act[i], &r, next_id++);
    while (done < total) {
        struct buf *b = &act[rng_next(&r) % ACTIVE];
        if (step(b, &r)) {
            finish(b);
            done++;
            start(b, &r, next_id++);
        }
    }
    for (int i = 0; i < ACTIVE; i++) {
        if (act[i].len) {
            finish(&act[i]);
        }
    }
    double t = now_s() - t0;
    bench_result(t, ops, "buffers=%ld moved=%llu bytes=%llu", done,
                 (unsigned long long)moved, (unsigned long long)bytes_written);
    return 0;
}
