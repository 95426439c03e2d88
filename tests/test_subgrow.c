/*
 * test_subgrow.c - a thread's sub-heap grows by top_pad beyond what a
 * request needs, as the brk heap does (heap.c tm_heap_grow, from
 * sysmem.c sub_grow).
 *
 * Grown by the request alone, a sub-heap under a stream of small blocks
 * grew a page at a time: an mprotect commit for each page (the address
 * space's lock taken for writing each time) and a populate call of one
 * page.  Here a thread carves 4 MiB of small blocks from its own arena:
 *  - default pad (128 KiB): at most one commit per pad's worth of growth
 *    (plus the heap's first), and the heap's size never runs more than
 *    the pad (or a huge page unit where heaps grow by those) beyond the
 *    top's start; every block keeps its bytes, the checker passes;
 *  - M_TOP_PAD 0: the request alone - where the heap grows in pages, a
 *    commit per 64 KiB of growth or more;
 *  - M_TOP_PAD above the 64 MiB slot: the pad cannot fit, the heap grows
 *    by the request and the blocks are served all the same.
 * Each in a child forked before any thread (a new arena each).
 * (Static link: reads the arena and the system call counters.)
 */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"
#include "arena.h"
#include "heap.h"
#include "internal.h"
#include "os.h"
#include "thp.h"
#include "tidemalloc.h"

#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)
#define NBLK  ((4 << 20) / 64)      /* 4 MiB of 48..160-byte blocks */
#define BLK_MAX 160

static size_t pg;

/* Block i's size: 48..BLK_MAX bytes. */
static size_t blk_size(int i) { return 48 + (size_t)(i % 8) * 16; }

struct run {
    unsigned long commits;      /* mprotect commits while the thread carved */
    size_t grown;               /* bytes the thread's last heap committed meanwhile */
    size_t worst_ahead;         /* most heap beyond the top's start after a growth */
    bool sub, intact;
};

static unsigned long commits(void) { return atomic_load(&tm_os_calls.mprotect); }

static void *carver(void *arg)
{
    struct run *r = arg;
    free(malloc(1));                   /* (the thread's arena exists) */
    tm_arena *av = tm_thread_arena();
    r->sub = av != &tm_main_arena;
    if (!r->sub)
        return NULL;
    tm_heap *h = heap_for_ptr(av->top);
    size_t c0 = h->committed;
    unsigned long m0 = commits();
    void **b = calloc(NBLK, sizeof *b);
    r->intact = b != NULL;
    size_t last = h->size;
    for (int i = 0; b && i < NBLK; i++) {
        size_t n = blk_size(i);
        b[i] = malloc(n);
        if (!b[i]) {
            r->intact = false;
            break;
        }
        memset(b[i], (unsigned char)i, n);
        if (heap_for_ptr(av->top) == h && h->size != last) {   /* grown just now */
            last = h->size;
            size_t ahead = (size_t)((char *)h + h->size - (char *)av->top);
            if (ahead > r->worst_ahead)
                r->worst_ahead = ahead;
        }
    }
    r->commits = commits() - m0;
    r->grown = heap_for_ptr(av->top) == h ? h->committed - c0 : 0;
    for (int i = 0; b && i < NBLK && b[i]; i++) {
        size_t n = blk_size(i);
        for (size_t k = 0; k < n; k++)
            if (((unsigned char *)b[i])[k] != (unsigned char)i)
                r->intact = false;
        free(b[i]);
    }
    free(b);
    CHK();
    return NULL;
}

static struct run carve_in_thread(void)
{
    struct run r = {0};
    pthread_t t;
    CHECK("a thread", pthread_create(&t, NULL, carver, &r) == 0 && pthread_join(t, NULL) == 0);
    CHECK("the thread ran in a sub-heap", r.sub);
    CHECK("every block kept its bytes", r.intact);
    return r;
}

/* The heap grows in pages here (no huge page rounding of heap sizes). */
static bool grows_in_pages(void) { return tm_thp_grow_to((uintptr_t)1 << 30, pg) == pg; }

static void pad0_child(void *arg)
{
    (void)arg;
    CHECK("mallopt(M_TOP_PAD, 0)", mallopt(M_TOP_PAD, 0) == 1);
    struct run r = carve_in_thread();
    printf("pad 0: %lu commits for %zu KiB of growth\n", r.commits, r.grown >> 10);
    CHECKF("pad 0: the heap grew by MiB", r.grown >= (size_t)2 << 20, "%zu", r.grown);
    if (grows_in_pages())   /* (the default pad: at most one per 128 KiB) */
        CHECKF("pad 0: the request alone, a commit per 64 KiB or more", r.commits >= r.grown / (64 << 10),
               "%lu commits, %zu bytes", r.commits, r.grown);
    else
        CHECKF("pad 0: a commit per huge page unit at most", r.commits > 0 && r.commits <= r.grown / (2 << 20) + 2,
               "%lu commits, %zu bytes", r.commits, r.grown);
    _exit(harness_finish());
}

static void hugepad_child(void *arg)
{
    (void)arg;
    CHECK("mallopt(M_TOP_PAD, 100 MiB)", mallopt(M_TOP_PAD, 100 << 20) == 1);
    struct run r = carve_in_thread();
    printf("pad 100 MiB: %lu commits for %zu KiB of growth\n", r.commits, r.grown >> 10);
    CHECKF("a pad beyond the slot: the heap still grows", r.grown >= (size_t)2 << 20, "%zu", r.grown);
    _exit(harness_finish());
}

static void default_child(void *arg)
{
    (void)arg;
    size_t pad = TM_P(top_pad);
    CHECKF("the default pad", pad == TM_DEFAULT_TOP_PAD, "%zu", pad);
    struct run r = carve_in_thread();
    size_t unit = grows_in_pages() ? pg : (size_t)2 << 20;
    printf("pad %zu KiB: %lu commits for %zu KiB of growth, at most %zu KiB ahead of the top\n", pad >> 10,
           r.commits, r.grown >> 10, r.worst_ahead >> 10);
    CHECKF("the heap grew by MiB", r.grown >= (size_t)2 << 20, "%zu", r.grown);
    CHECKF("a commit per pad's worth of growth at most", r.commits > 0 && r.commits <= r.grown / pad + 2,
           "%lu commits, %zu bytes", r.commits, r.grown);
    CHECKF("growth keeps the pad ahead, no more", r.worst_ahead <= pad + TM_MINSIZE + BLK_MAX + unit,
           "%zu ahead", r.worst_ahead);
    CHK();
    _exit(harness_finish());
}

/* Each run in a child forked before any thread: its thread's arena is
 * new, its heap grows from its first pages. */
int main(void)
{
    pg = (size_t)sysconf(_SC_PAGESIZE);
    mallopt(TIDE_M_DECAY_MS, -1);          /* nothing released or trimmed behind the test's back */
    free(malloc(1));
    CHECK_EXIT("the default pad", default_child, NULL, 0);
    CHECK_EXIT("M_TOP_PAD 0: the request alone", pad0_child, NULL, 0);
    CHECK_EXIT("M_TOP_PAD beyond the slot", hugepad_child, NULL, 0);
    CHK();
    return harness_finish();
}
