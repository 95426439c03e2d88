/*
 * test_trim.c - trimming the top of the main heap.
 *  - an arena that must grow again right after a trim raises its own trim
 *    threshold (no trim/regrow loop), up to TM_TRIM_FLOOR_MAX;
 *  - M_TRIM_THRESHOLD = -1 means never trim (no overflow with top_pad);
 *  - a fixed M_TRIM_THRESHOLD is honoured exactly (no adaptation);
 *  - a top that churns by more than the floor's ceiling (10 MB freed and
 *    allocated again within a second) is no longer trimmed at free time
 *    while the background thread runs (started for it by the automatic
 *    mode): no brk moves over further cycles; once quiet for decay_ms the
 *    thread gives the top's pages back (RSS falls) and the churn state
 *    ends; a dip to a sixth of the mark does not trim it; churning again
 *    and then draining to an eighth (all ballast freed) trims at free time;
 *    without the thread, with two arenas or with decay_ms -1, the floor
 *    applies as before; random churn of 64 KiB..32 MiB blocks with quiet
 *    gaps, the mark set and cleared under the background thread's purges,
 *    every block and the heap verified (forked children);
 *  - when brk fails, the main arena goes on in sub-heaps: 300 MiB of small
 *    blocks (5+ sub-heaps, beyond any fixed segment table) are each told
 *    ours by the ownership registry, a stack address is not, and once
 *    brk works again the arena stays in its sub-heaps while they hold
 *    data; once everything is freed (and malloc_trim called) they are
 *    given back and the arena continues in its brk segment;
 *  - a trim whose negative brk fails (injected) gives nothing back and
 *    leaves the top's pages ours (the registries give pages up before the
 *    kernel takes them, and take them back when it does not); once brk
 *    shrinks again, malloc_trim gives them back and they stop being ours;
 *  - a foreign sbrk between two brk segments: its memory lies inside the
 *    main arena's bounds but in neither segment; tm_own_classify says it
 *    is not ours, and a free of a pointer into it aborts naming it;
 *  - the fast ownership test at its edges (owner.h): the brk range as
 *    [lo, lo + span), a segment registered below lo, a trim below lo
 *    (an empty range, not a wrapped one), the sub-heap slot
 *    map (first and last slot of a slot, the highest slot), NULL and the
 *    chunk "before" NULL (what the hit paths rely on to test no NULL).
 * Every step ends with tide_check_heap().  (Static link: reads arena state.)
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include "harness.h"
#include "arena.h"
#include "bins.h"
#include "heap.h"
#include "owner.h"
#include "internal.h"
#include "release.h"
#include "sysmem.h"
#include "tidemalloc.h"

#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)
enum { N = 16, BLK = 100 * 1024 };     /* 1.6 MB of 100 KiB blocks: below the mmap threshold */

static void cycle(void)
{
    void *p[N];
    for (int k = 0; k < N; k++)
        p[k] = malloc(BLK);
    for (int k = N - 1; k >= 0; k--)
        free(p[k]);
}

static void brk_fails(void)
{
    tm_arena *av = &tm_main_arena;
    CHECK("M_TRIM_THRESHOLD 128 KiB", mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
    malloc_trim(0);
    size_t sys0 = av->system_mem;
    size_t nheaps0 = av->nheaps;
    tide_fault_inject(TIDE_FAULT_BRK, 0);
    enum { NB = 300 * 1024 };               /* 300 MiB of 1 KiB blocks */
    void **b = malloc(NB * sizeof *b);
    CHECK("brk failing: malloc still succeeds", b != NULL);
    if (!b)
        return;
    size_t bad = 0, alloc_fail = 0;
    for (size_t k = 0; k < NB; k++) {
        b[k] = malloc(1000);
        if (!b[k])
            alloc_fail++;
        else
            memset(b[k], (int)k, 1000);
    }
    CHECKF("brk failing: 300 MiB of small blocks allocated", alloc_fail == 0, "%zu failed", alloc_fail);
    CHECKF("brk failing: the main arena grew in sub-heaps", av->last_heap->kind == TM_HEAP_SUB &&
           av->nheaps >= nheaps0 + 5, "%zu -> %zu heaps", nheaps0, av->nheaps);
    for (size_t k = 0; k < NB; k++)
        if (b[k] && (!tm_own_in_heaps((uintptr_t)b[k]) ||
                     tm_own_classify(mem2chunk(b[k])) != TM_OWN_HEAP))
            bad++;
    CHECKF("every block in them is ours (ownership registry)", bad == 0, "%zu not", bad);
    CHECK("a stack address is not", !tm_own_in_heaps((uintptr_t)&bad));
    CHK();
    /* brk works again: the arena stays in sub-heaps while they hold data
     * (a brk segment after a sub-heap could never be trimmed). */
    tide_fault_inject(TIDE_FAULT_BRK, -1);
    enum { NM = 20 * 1024 };
    void **more = malloc(NM * sizeof *more);
    for (size_t k = 0; more && k < NM; k++)
        more[k] = malloc(1000);
    CHECK("brk back: the arena goes on in sub-heaps", av->last_heap->kind == TM_HEAP_SUB);
    for (size_t k = 0; more && k < NM; k++)
        free(more[k]);
    free(more);
    CHK();
    for (size_t k = 0; k < NB; k++)
        free(b[k]);
    free(b);
    tide_thread_cache_flush();
    malloc_trim(0);      /* free's own trimming may have done it all already */
    CHECKF("the arena is back in its brk segment", av->last_heap->kind == TM_SEG_BRK &&
           av->nheaps == nheaps0 && av->system_mem < sys0 + 1024 * 1024,
           "%zu heaps, %zu -> %zu bytes", av->nheaps, sys0, av->system_mem);
    CHK();
    CHECK("M_MMAP_THRESHOLD 32 MiB", mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1);
    void *q = malloc(8 * 1024 * 1024);     /* beyond top, below the mmap threshold */
    CHECK("and grows with brk again", q && tm_own_in_heaps((uintptr_t)q) && av->last_heap->kind == TM_SEG_BRK);
    free(q);
    CHK();
}

/* A trim whose sbrk(-n) fails: sysmem.c main_trim shrinks the ownership
 * registries first, so it must grow them back when the kernel keeps the
 * pages. */
static void shrink_fails(void)
{
    tm_arena *av = &tm_main_arena;
    CHECK("M_TRIM_THRESHOLD 128 KiB", mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
    malloc_trim(0);
    CHECK("the main arena is in brk", av->last_heap && av->last_heap->kind == TM_SEG_BRK);
    tide_fault_inject(TIDE_FAULT_BRK_SHRINK, 0);
    size_t sys0 = av->system_mem;
    cycle();                                    /* 1.6 MB of top, trims failing */
    char *end = (char *)av->top + chunksize(av->top);
    CHECKF("shrinking failing: the top stays", av->system_mem >= sys0 + N * BLK && sbrk(0) == end,
           "%zu -> %zu", sys0, av->system_mem);
    malloc_trim(0);               /* (may release pages inside top: its answer says nothing here) */
    CHECK("malloc_trim(0) leaves brk where it was", sbrk(0) == end && av->system_mem >= sys0 + N * BLK);
    CHECK("the top's last bytes are still ours (fast test)",
          tm_own_in_heaps((uintptr_t)end - TM_OWN_RANGE_TAIL - 16));
    CHK();
    void *p[N];
    size_t bad = 0;
    for (int k = 0; k < N; k++) {
        p[k] = malloc(BLK);
        if (!p[k] || !tm_own_in_heaps((uintptr_t)p[k]) || tm_own_classify(mem2chunk(p[k])) != TM_OWN_HEAP)
            bad++;
        else
            memset(p[k], k, BLK);
    }
    CHECKF("blocks carved from that top again are ours", bad == 0, "%zu not", bad);
    for (int k = N - 1; k >= 0; k--)
        free(p[k]);
    CHK();
    tide_fault_inject(TIDE_FAULT_BRK_SHRINK, -1);
    CHECK("brk shrinks again: malloc_trim(0) gives the top back", malloc_trim(0) == 1 &&
          av->system_mem < sys0 + 256 * 1024 && (char *)sbrk(0) < end);
    char *end2 = (char *)av->top + chunksize(av->top);
    CHECKF("and what went is not ours any more", (char *)sbrk(0) == end2 &&
           !tm_own_in_heaps((uintptr_t)end2 + 4096) && tm_own_in_heaps((uintptr_t)end2 - TM_OWN_RANGE_TAIL - 16),
           "brk %p, top end %p", sbrk(0), (void *)end2);
    CHK();
}

static char *foreign;
static void free_foreign(void *arg)
{
    (void)arg;
    free(foreign + 4096 + 16);
}

static void foreign_sbrk(void)
{
    tm_arena *av = &tm_main_arena;
    free(malloc(64));
    CHECK("the main arena is in brk", av->last_heap && av->last_heap->kind == TM_SEG_BRK);
    size_t segs0 = av->nheaps;
    foreign = sbrk(64 * 1024);                     /* someone else's brk memory */
    CHECK("foreign sbrk", foreign != (char *)-1);
    if (foreign == (char *)-1)
        return;
    memset(foreign, 0, 64 * 1024);
    ((size_t *)(foreign + 4096))[1] = 0x100 | 1;   /* a plausible header */
    /* ... whose checksum bits (0) must not be right by chance for this
     * process's secret (1 in 65536): then free would take it for ours. */
    while (hdr_state((const tm_chunk *)(foreign + 4096)) >= 0)
        ((size_t *)(foreign + 4096))[1] += (size_t)1 << TM_CKS_SHIFT;
    void *big = malloc(8 * 1024 * 1024);           /* beyond top: a new brk segment */
    CHECKF("a new brk segment after the foreign memory", big && av->nheaps == segs0 + 1 &&
           (char *)av->last_heap > foreign, "%zu -> %zu heaps", segs0, av->nheaps);
    CHECK("the foreign memory is inside the main arena's bounds (fast test)",
          tm_own_in_heaps((uintptr_t)foreign + 4096));
    CHECK("but tm_own_classify says it is not ours",
          tm_own_classify((const tm_chunk *)(foreign + 4096)) == TM_OWN_NONE);
    CHECK("blocks of both segments are", tm_own_classify(mem2chunk(big)) == TM_OWN_HEAP &&
          tm_own_classify(mem2chunk(av->last_heap->prev ? (void *)((char *)av->last_heap->prev + 64)
                                                         : big)) == TM_OWN_HEAP);
    int st = harness_run_child(free_foreign, NULL);
    CHECKF("free of a pointer into it aborts naming it", WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT &&
           strstr(harness_child_output, "free(): invalid pointer (not a chunk of this heap)"),
           "status %#x: %s", (unsigned)st, harness_child_output);
    free(big);
    CHK();
}

/* The fast ownership test at its edges, on the live registry (restored
 * after each change; this process has one thread).                   */
static void registry_edges(void)
{
    uintptr_t lo = atomic_load(&tm_own.main_lo), span = atomic_load(&tm_own.main_span);
    uintptr_t pg = (uintptr_t)tm_fix.pagesize;
    CHECK("the brk range is registered", lo > 0 && span > 0);
    CHECK("lo is in the range, lo - 1 is not", tm_own_in_main(lo) && !tm_own_in_main(lo - 1));
    CHECK("lo + span - 1 is in the range, lo + span is not",
          tm_own_in_main(lo + span - 1) && !tm_own_in_main(lo + span));
    /* free(NULL) and an empty cache class: the hit paths skip their NULL
     * test with the checks because these two are never ours.         */
    CHECK("NULL is not ours", !tm_own_in_heaps(0));
    CHECK("nor the chunk before NULL", !tm_own_in_heaps((uintptr_t)0 - TM_HDR));
    /* The hit paths' aligned test (one rotate for both): the same range,
     * aligned addresses only; the last full 16 bytes are in.         */
    uintptr_t end16 = lo + (span & ~(uintptr_t)15);
    CHECK("aligned test: lo and the last full 16 bytes are in",
          (lo & 15) == 0 && tm_own_aligned_in_heaps(lo) && tm_own_aligned_in_heaps(end16 - 16));
    CHECK("aligned test: lo - 16 and the end are not",
          !tm_own_aligned_in_heaps(lo - 16) && !tm_own_aligned_in_heaps(end16));
    int mis = 0;
    for (uintptr_t k = 1; k < 16; k++)
        mis += tm_own_aligned_in_heaps(lo + 64 + k) + tm_own_aligned_in_heaps(lo + ((span / 2) & ~(uintptr_t)15) + k);
    CHECK("aligned test: no misaligned address is in", mis == 0);
    CHECK("aligned test: NULL and the chunk before it are not",
          !tm_own_aligned_in_heaps(0) && !tm_own_aligned_in_heaps((uintptr_t)0 - TM_HDR));
    /* The span test of a walk (a chunk's first 32 bytes). */
    CHECK("span test: the range's first and last 32 bytes are in",
          tm_own_span_in_heaps(lo, 32) && tm_own_span_in_heaps(lo + span - 32, 32));
    CHECK("span test: 32 bytes over either edge are not",
          !tm_own_span_in_heaps(lo - 16, 32) && !tm_own_span_in_heaps(lo + span - 16, 32));
    free(NULL);
    CHECK("malloc_usable_size(NULL) is 0", malloc_usable_size(NULL) == 0);
    void *q = realloc(NULL, 40);
    CHECK("realloc(NULL, 40) allocates", q != NULL && malloc_usable_size(q) >= 40);
    free(q);

    /* A segment below lo (a brk that moved down): the range spans both. */
    tm_own_main_brk(lo - 4 * pg, lo - 2 * pg);
    CHECK("a segment below: its start is in the range, the byte before is not",
          tm_own_in_main(lo - 4 * pg) && !tm_own_in_main(lo - 4 * pg - 1));
    CHECK("and the old top end still is", tm_own_in_main(lo + span - 1) && !tm_own_in_main(lo + span));
    atomic_store(&tm_own.main_lo, lo);
    atomic_store(&tm_own.main_span, span);
    atomic_store(&tm_own.main_span16, span >> 4);

    /* A trim of the top segment down to below lo: an empty range, not
     * one that wraps around the address space.                       */
    tm_own_main_brk_trim(lo + span, lo - pg);
    CHECK("trimmed below lo: nothing is in the range",
          !tm_own_in_main(lo) && !tm_own_in_main(lo - pg) && !tm_own_in_main(UINTPTR_MAX / 2));
    tm_own_main_brk_trim(lo - pg, lo + span);     /* (the segment table back) */
    atomic_store(&tm_own.main_lo, lo);
    atomic_store(&tm_own.main_span, span);
    atomic_store(&tm_own.main_span16, span >> 4);
    CHECK("restored", tm_own_in_main(lo) && tm_own_in_main(lo + span - 1));

    /* Sub-heap slots: a whole 64 MiB slot, nothing beside it.  (The slot
     * addresses are never read: tm_own_in_sub only looks at the map.) */
    uintptr_t a = (uintptr_t)0x600000000000;   /* 64 MiB-aligned, below 2^47 */
    CHECK("a slot nobody registered is not a sub-heap", !tm_own_in_sub(a));
    tm_own_sub_add((void *)(a + TM_HEAP_GUARD));
    CHECK("registered: its first and last byte are in it",
          tm_own_in_sub(a) && tm_own_in_sub(a + TM_HEAP_MAX_SIZE - 1) && tm_own_in_heaps(a + 4096));
    CHECK("the slots beside it are not", !tm_own_in_sub(a - 1) && !tm_own_in_sub(a + TM_HEAP_MAX_SIZE));
    CHECK("in it, the aligned test takes aligned addresses only",
          tm_own_aligned_in_heaps(a + 4096) && !tm_own_aligned_in_heaps(a + 4096 + 8));
    /* (the slot number from a rotated right by 4: a low bit lands at the
     * top and must push the number out of range, never onto a slot) */
    int sub_mis = 0;
    for (uintptr_t k = 1; k < 16; k++)
        sub_mis += tm_own_aligned_in_heaps(a + k) + tm_own_aligned_in_heaps(a + TM_HEAP_MAX_SIZE - 16 + k);
    CHECK("no address 1..15 bytes off alignment in it", sub_mis == 0);
    CHECK("its first and last aligned address, and an alias with the top bit set",
          tm_own_aligned_in_heaps(a) && tm_own_aligned_in_heaps(a + TM_HEAP_MAX_SIZE - 16) &&
          !tm_own_aligned_in_heaps(a + ((uintptr_t)1 << 63)) &&
          !tm_own_aligned_in_heaps(a + ((uintptr_t)1 << TM_OWN_ADDR_BITS)));
    CHECK("and the span test no span across its end",
          tm_own_span_in_heaps(a + 4096, 32) && tm_own_span_in_heaps(a + TM_HEAP_MAX_SIZE - 32, 32) &&
          !tm_own_span_in_heaps(a + TM_HEAP_MAX_SIZE - 16, 32));
    tm_own_sub_del((void *)(a + TM_HEAP_GUARD));
    CHECK("deleted: it is not any more", !tm_own_in_sub(a) && !tm_own_in_sub(a + TM_HEAP_MAX_SIZE - 1));
    uintptr_t last = ((uintptr_t)1 << TM_OWN_ADDR_BITS) - TM_HEAP_MAX_SIZE;
    tm_own_sub_add((void *)(last + TM_HEAP_GUARD));
    CHECK("the highest slot works", tm_own_in_sub(last) && tm_own_in_sub(last + TM_HEAP_MAX_SIZE - 1) &&
          tm_own_aligned_in_heaps(last + TM_HEAP_MAX_SIZE - 16) && !tm_own_aligned_in_heaps(last + TM_HEAP_MAX_SIZE - 8));
    CHECK("and nothing at or above 2^47 is a sub-heap",
          !tm_own_in_sub((uintptr_t)1 << TM_OWN_ADDR_BITS) && !tm_own_in_sub(UINTPTR_MAX));
    tm_own_sub_del((void *)(last + TM_HEAP_GUARD));
    CHECK("deleted too", !tm_own_in_sub(last));
    CHK();
}

/* ---- the top churning beyond the floor's ceiling (sysmem.h) ---------------- */
enum { CH_N = 100, CH_BALLAST = 80 };  /* 100 KiB blocks: 10 MB a cycle, 8 MB kept live */

/* Allocate 10 MB above the ballast and free it lowest first: the last free
 * merges it all into the top at once (one trim of 10 MB, not many small). */
static void churn_cycle(void)
{
    void *p[CH_N];
    for (int k = 0; k < CH_N; k++) {
        p[k] = malloc(BLK);
        if (p[k])
            memset(p[k], k, BLK);
    }
    for (int k = 0; k < CH_N; k++)
        free(p[k]);
}
struct arena_view { bool by_decay; size_t system_mem, top_released; };
static struct arena_view view(tm_arena *av)
{
    tm_arena_enter_owner(av);      /* (the background thread works on it too) */
    struct arena_view v = { av->trim_by_decay, av->system_mem, tm_release_top_bytes(av) };
    tm_arena_unlock(av);
    return v;
}

static void *second_arena(void *arg)
{
    free(malloc(BLK));                      /* a new thread gets an arena of its own */
    return arg;
}

/* arg: 0 the automatic mode, 1 no background thread, 2 the thread on
 * from the start (its own allocations then lie below the ballast, not
 * between the ballast and the top), 3 the same with a second arena,
 * 4 the same with decay_ms = -1 (nothing releases by time), 5 the
 * automatic mode with decay_ms = -1. */
/* The churn state ended and the top's pages went back (madvise: released
 * top bytes; or a trim: system_mem down from sys). */
static bool top_given_back(struct arena_view v, size_t sys)
{
    return !v.by_decay && (v.top_released >= 9 * 1024 * 1024 || v.system_mem + 9 * 1024 * 1024 <= sys);
}

static void churn_child(void *arg)
{
    int mode = (int)(intptr_t)arg;
    tm_arena *av = &tm_main_arena;
    mallopt(TIDE_M_DECAY_MS, mode >= 4 ? -1 : 200);
    if (mode == 1)
        mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    if (mode >= 2 && mode <= 4) {
        mallopt(TIDE_M_BACKGROUND_THREAD, 1);
        free(malloc(BLK));                  /* (an arena malloc starts it) */
    }
    if (mode == 3) {
        pthread_t t;
        CHECK("a second thread", pthread_create(&t, NULL, second_arena, NULL) == 0 &&
                                     pthread_join(t, NULL) == 0);
        CHECK("with an arena of its own", atomic_load(&tm_narenas) == 2);
    }
    void *ballast[CH_BALLAST];
    bool got = true;
    for (int k = 0; k < CH_BALLAST; k++) {
        ballast[k] = malloc(BLK);
        if (ballast[k])
            memset(ballast[k], 1, BLK);
        got = got && ballast[k];
    }
    CHECK("8 MB of ballast", got);
    size_t base = view(av).system_mem;
    churn_cycle();                          /* trimmed: 10 MB at once */
    CHECKF("the first cycle trims its 10 MB", view(av).system_mem < base + 1024 * 1024, "%zu -> %zu",
           base, view(av).system_mem);
    churn_cycle();                          /* regrown within a second */
    if (mode == 1 || mode >= 3) {
        for (int r = 0; r < 5; r++)
            churn_cycle();
        struct arena_view v = view(av);
        CHECKF(mode == 1   ? "without the background thread the floor applies: the top is trimmed"
               : mode == 3 ? "with two arenas the floor applies: the top is trimmed"
               : mode == 4 ? "with decay_ms -1 the floor applies: the top is trimmed"
                           : "with decay_ms -1 the automatic mode starts no thread, the floor applies",
               ((mode != 1 && mode != 5) || !atomic_load(&tm_bg_active)) &&
                   v.system_mem <= base + TM_TRIM_FLOOR_MAX + 1024 * 1024,
               "%zu -> %zu", base, v.system_mem);
        CHK();
        _exit(harness_finish());
    }
    struct arena_view v = view(av);
    CHECK("a trim of 10 MB regrown at once: the top churns", v.by_decay);
    CHECK("the background thread runs (the automatic mode started it)", atomic_load(&tm_bg_active));
    char *end = sbrk(0);
    size_t sys = v.system_mem;
    CHECKF("the churned top stays", sys >= base + CH_N * BLK, "%zu -> %zu", base, sys);
    for (int r = 0; r < 5; r++)
        churn_cycle();
    v = view(av);
    CHECKF("while it churns, free does not trim the top (brk stays)",
           sbrk(0) == end && v.system_mem == sys, "%zu -> %zu", sys, v.system_mem);
    CHK();
    if (mode == 2) {
        /* A dip to a sixth of the mark, between an eighth and a quarter,
         * is what a window of big blocks does as it swings: no trim
         * (config.h TM_CHURN_DRAIN_DEPTH; a quarter trimmed it). */
        size_t hwm = av->other_hwm;
        int keep = (int)(hwm / 6 / BLK);
        CHECKF("the mark leaves room for a dip", keep >= 1 && keep < CH_BALLAST, "mark %zu, keep %d",
               hwm, keep);
        for (int k = CH_BALLAST - 1; k >= keep && k >= 0; k--)
            free(ballast[k]);
        v = view(av);
        CHECKF("a dip to a sixth of the mark does not trim a churning top (brk stays)",
               sbrk(0) == end && v.system_mem == sys, "%zu -> %zu", sys, v.system_mem);
        CHK();
        /* A deep drain trims at free time, churn or not. */
        for (int k = 0; k < keep && k < CH_BALLAST; k++)
            free(ballast[k]);
        v = view(av);
        CHECKF("a deep drain trims at free time even while the top churns",
               v.system_mem < base - (CH_BALLAST - 4) * BLK && (char *)sbrk(0) < end, "%zu -> %zu",
               base, v.system_mem);
        CHK();
        _exit(harness_finish());
    }
    /* Quiet: after the decay time the background thread gives the top's
     * pages back (by madvise; or by a trim, if a chunk it takes back from
     * an idle cache merges into the top once the churn state has ended). */
    long rss_busy = harness_vm_rss_kb();
    for (int i = 0; i < 100; i++) {
        v = view(av);
        if (top_given_back(v, sys))
            break;
        usleep(50 * 1000);
    }
    long rss_quiet = harness_vm_rss_kb();
    CHECKF("quiet for decay_ms: the churn state ends and the top is given back",
           top_given_back(v, sys),
           "by_decay %d, released %zu, system %zu -> %zu", (int)v.by_decay, v.top_released, sys,
           v.system_mem);
    CHECKF("and RSS fell by it", rss_quiet <= rss_busy - 8 * 1024, "%ld -> %ld kB", rss_busy, rss_quiet);
    CHK();
    churn_cycle();
    churn_cycle();
    CHECK("churning again: the state comes back", view(av).by_decay);
    CHK();
    _exit(harness_finish());
}

/* Random blocks of 64 KiB..32 MiB allocated and freed for about 2 s,
 * with quiet gaps longer than decay_ms (5 ms): the mark comes and goes
 * while the background thread purges and the heap grows and trims.
 * Every block's first and last bytes verified, the heap checked every
 * 100 operations.                                                   */
static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void churn_random(void *arg)
{
    (void)arg;
    tm_arena *av = &tm_main_arena;
    mallopt(TIDE_M_DECAY_MS, 5);
    enum { S = 24 };
    unsigned char *p[S] = { 0 };
    size_t sz[S] = { 0 };
    uint64_t x = 88172645463325252ull;
    int marked = 0, cleared = 0;
    bool was = false, ok = true;
    long ops = 0;
    for (long t0 = now_ms(); now_ms() - t0 < 2000 || !marked || !cleared;) {
        if (now_ms() - t0 > 15000)
            break;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int i = (int)(x % S);
        if (p[i]) {
            ok = ok && p[i][0] == (unsigned char)i && p[i][sz[i] - 1] == (unsigned char)i;
            free(p[i]);
            p[i] = NULL;
        } else {
            sz[i] = ((size_t)1 << (16 + (x >> 40) % 10)) + (x >> 20) % 4096;
            p[i] = malloc(sz[i]);
            if (!p[i]) {
                ok = false;
                break;
            }
            memset(p[i], i, sz[i] < 65536 ? sz[i] : 65536);
            p[i][sz[i] - 1] = (unsigned char)i;
        }
        if (++ops % 100 == 0) {
            ok = ok && tide_check_heap() > 0;
            bool now = view(av).by_decay;
            marked += now && !was;
            cleared += was && !now;
            was = now;
        }
        if ((x >> 50) % 64 == 0)
            usleep((useconds_t)((x >> 30) % 20000));
    }
    CHECKF("random churn: every block intact, the heap consistent", ok, "%ld operations", ops);
    CHECKF("the mark came and went", marked > 0 && cleared > 0, "set %d times, cleared %d times", marked,
           cleared);
    for (int i = 0; i < S; i++)
        free(p[i]);
    CHK();
    _exit(harness_finish());
}

int main(void)
{
    CHECK_EXIT("a churning top: kept while the background thread runs, given back by time",
               churn_child, (void *)0, 0);
    CHECK_EXIT("a churning top without the background thread: the floor", churn_child, (void *)1, 0);
    CHECK_EXIT("a churning top, then a deep drain: trimmed at free time", churn_child, (void *)2, 0);
    CHECK_EXIT("a churning top in a process of two arenas: the floor", churn_child, (void *)3, 0);
    CHECK_EXIT("a churning top with decay_ms -1: the floor", churn_child, (void *)4, 0);
    CHECK_EXIT("a churning top with decay_ms -1, automatic mode: no thread, the floor", churn_child,
               (void *)5, 0);
    CHECK_EXIT("a churning top at random, against the background thread's purges", churn_random, NULL, 0);
    tm_arena *av = &tm_main_arena;
    free(malloc(1));
    CHECK("main thread on the main arena", tm_thread_arena() == av);
    CHECK("no floor yet", av->trim_floor == 0);
    size_t sys0 = av->system_mem;
    cycle();
    CHECKF("first cycle trims the top back", av->system_mem < sys0 + 512 * 1024, "%zu -> %zu", sys0,
           av->system_mem);
    for (int r = 0; r < 6; r++)
        cycle();
    CHECKF("trim/regrow cycles raised the arena's trim threshold", av->trim_floor >= 512 * 1024,
           "floor %zu", av->trim_floor);
    size_t floor = av->trim_floor;
    size_t sys1 = av->system_mem;
    cycle();
    CHECKF("with the raised threshold, the next cycle keeps its top (no brk churn)",
           av->system_mem >= sys1 && av->trim_floor <= TM_TRIM_FLOOR_MAX, "%zu -> %zu (floor %zu)",
           sys1, av->system_mem, floor);
    CHK();
    CHECK("malloc_trim(0) still gives it all back", malloc_trim(0) == 1 && av->system_mem < sys0 + 256 * 1024);
    CHK();

    /* A fixed threshold: -1 never trims. */
    CHECK("M_TRIM_THRESHOLD -1", mallopt(M_TRIM_THRESHOLD, -1) == 1);
    size_t sys2 = av->system_mem;
    void *big = malloc(BLK * 10);
    free(big);
    void *p[N];
    for (int k = 0; k < N; k++)
        p[k] = malloc(BLK);
    for (int k = N - 1; k >= 0; k--)
        free(p[k]);
    CHECKF("M_TRIM_THRESHOLD -1: the top is never trimmed", av->system_mem >= sys2 + N * BLK,
           "%zu -> %zu", sys2, av->system_mem);
    CHK();
    /* A fixed, ordinary threshold is honoured as set. */
    CHECK("M_TRIM_THRESHOLD 128 KiB", mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
    av->trim_floor = 0;
    for (int r = 0; r < 4; r++)
        cycle();
    CHECK("a threshold set by the user is not adapted", av->trim_floor == 0);
    CHECKF("and trims back", av->system_mem < sys2 + 512 * 1024, "%zu -> %zu", sys2, av->system_mem);
    CHK();
    shrink_fails();
    brk_fails();
    if (TIDE_CHECKS)                   /* (ownership: none without the checks) */
        foreign_sbrk();
    else
        printf("skipped without TIDE_CHECKS: foreign sbrk memory between brk segments\n");
    registry_edges();
    return harness_finish();
}
