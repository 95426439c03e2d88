/*
 * test_populate.c - fresh top pages are faulted in by range, and only
 * where the allocator is about to write them (release.c populate_top).
 *
 * Small blocks carved from a clean top (a cache refill's run): one
 * madvise(MADV_POPULATE_WRITE) makes their pages and the next 64 KiB
 * resident, top_clean moves past them, and further carves take no call
 * until they pass it.  A block above 16 KiB carved from a clean top
 * stays sparse: its pages are resident only where written.  The
 * tunable (mallopt, TIDEMALLOC_POPULATE=0 - argv[1] "off") and
 * no_new_privs turn it off; a thread's arena (a sub-heap) populates
 * inside its committed part.  mincore reads residency; the checker runs
 * after every step.  Where the kernel refuses the advice (Linux < 5.14)
 * or the build is a sanitizer's (populating off, as process_madvise),
 * the test checks that nothing was populated instead.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "harness.h"
#include "arena.h"
#include "heap.h"
#include "internal.h"
#include "os.h"
#include "tidemalloc.h"
#include "thp_common.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)

static size_t pg;

static unsigned long populates(void) { return atomic_load(&tm_os_calls.populate); }

/* Resident pages of [lo, hi), rounded inwards to whole pages
 * (thp_common.h's count). */
static size_t resident(uintptr_t lo, uintptr_t hi)
{
    lo = (lo + pg - 1) & ~(pg - 1);
    hi &= ~(pg - 1);
    return lo < hi ? (size_t)thp_resident_pages(lo, hi) : 0;   /* (-1: not mapped) */
}

static uintptr_t top_end(const tm_arena *av)
{
    return (uintptr_t)av->top + chunksize(av->top);
}

/* Does this kernel take the advice at all (and this build use it)? */
static bool kernel_populates(void)
{
    char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, pg, MADV_POPULATE_WRITE) == 0;
    munmap(p, pg);
    return ok;
}

/* The main arena's top made clean (malloc_trim gives its pages back),
 * then 64-byte blocks carved from it; returns how many were needed. */
static int carve_small(tm_arena *av, uintptr_t *clean0, void **keep, int max)
{
    CHECK("malloc_trim(0)", malloc_trim(0) >= 0);
    *clean0 = (uintptr_t)av->top_clean;
    int n = 0;
    while (n < max && (uintptr_t)av->top < *clean0 + 4 * pg) {
        keep[n] = malloc(64);
        memset(keep[n], 0x5a, 64);
        n++;
    }
    return n;
}

enum { NKEEP = 20000 };
static void *keep[NKEEP];

static void check_on(tm_arena *av)
{
    uintptr_t c0;
    unsigned long p0 = populates();
    int n = carve_small(av, &c0, keep, NKEEP);
    unsigned long p1 = populates();
    CHECKF("small blocks reached past the clean mark", (uintptr_t)av->top >= c0 + 4 * pg,
           "%d blocks, top %p, clean at %p", n, (void *)av->top, (void *)c0);
    CHECKF("the carve populated its pages by range: a few calls, not one a page",
           p1 > p0 && p1 - p0 <= 4, "%lu calls for %d blocks", p1 - p0, n);
    uintptr_t clean = (uintptr_t)av->top_clean, t = (uintptr_t)av->top;
    CHECKF("top_clean moved ahead of the top, by at most 64 KiB and a page",
           clean > t && clean <= ((t + pg - 1) & ~(pg - 1)) + TM_POPULATE_AHEAD + pg && clean <= top_end(av),
           "top %p clean %p end %p", (void *)t, (void *)clean, (void *)top_end(av));
    size_t want = (clean - ((c0 + pg - 1) & ~(pg - 1))) / pg;
    size_t got = resident(c0, clean);
    CHECKF("every page up to the new mark is resident", got == want, "%zu of %zu", got, want);
    if (clean + 2 * pg < top_end(av)) {
        size_t beyond = resident(clean + pg, top_end(av));
        CHECKF("nothing beyond the mark is", beyond == 0, "%zu pages", beyond);
    }
    CHK();

    /* More carving: one call per 64 KiB or so, never one per page. */
    unsigned long p2 = populates();
    uintptr_t t0 = (uintptr_t)av->top;
    int m = 0;
    while (n < NKEEP && (uintptr_t)av->top < t0 + (1u << 20)) {
        keep[n] = calloc(1, 64);
        if (m < 4000) {
            const unsigned char *b = keep[n];
            for (int i = 0; i < 64; i++)
                if (b[i] != 0) {
                    CHECKF("calloc over populated pages reads zero", 0, "block %p byte %d", (void *)b, i);
                    break;
                }
        }
        n++, m++;
    }
    unsigned long calls = populates() - p2;
    size_t span = (uintptr_t)av->top - t0;
    CHECKF("1 MiB of small blocks: about one populate per 64 KiB",
           calls >= span / TM_POPULATE_AHEAD / 2 && calls <= span / TM_POPULATE_AHEAD + 2,
           "%lu calls for %zu bytes", calls, span);
    CHK();

    /* A block above 16 KiB from a clean top stays sparse. */
    CHECK("malloc_trim(0) again", malloc_trim(0) >= 0);
    uintptr_t c1 = (uintptr_t)av->top_clean;
    unsigned long p3 = populates();
    char *big = malloc(100 * 1024);
    CHECK("100 KiB from the top", big && (uintptr_t)big >= (uintptr_t)c1 - 100 * 1024);
    uintptr_t lo = (uintptr_t)big > c1 ? (uintptr_t)big : c1;
    size_t sparse = resident(lo + pg, (uintptr_t)big + 100 * 1024 - pg);
    CHECKF("a 100 KiB block: no populate call", populates() == p3, "%lu calls", populates() - p3);
    CHECKF("a 100 KiB block: its untouched pages are not resident", sparse == 0, "%zu pages", sparse);
    big[50 * 1024] = 1;
    CHECK("written, one page of it is", resident(lo + pg, (uintptr_t)big + 100 * 1024 - pg) == (sparse + 1));
    free(big);
    for (int i = 0; i < n; i++)
        free(keep[i]);
    CHK();
}

static void check_off(tm_arena *av, const char *why)
{
    uintptr_t c0;
    unsigned long p0 = populates();
    int n = carve_small(av, &c0, keep, NKEEP);
    char name[160];
    snprintf(name, sizeof name, "%s: no populate call", why);
    CHECKF(name, populates() == p0, "%lu calls", populates() - p0);
    uintptr_t t = (uintptr_t)av->top;
    size_t beyond = resident(((t + pg - 1) & ~(pg - 1)) + pg, top_end(av));
    snprintf(name, sizeof name, "%s: nothing resident beyond the top's first page", why);
    CHECKF(name, beyond == 0, "%zu pages", beyond);
    for (int i = 0; i < n; i++)
        free(keep[i]);
    CHK();
}

static void *thread_body(void *arg)
{
    (void)arg;
    unsigned long p0 = populates();
    void **blocks = calloc(40000, sizeof *blocks);
    for (int i = 0; i < 40000; i++) {
        blocks[i] = malloc(48 + (i % 8) * 16);
        memset(blocks[i], 0x33, 48);
    }
    tm_arena *av = tm_thread_arena();
    bool sub = av != &tm_main_arena;
    tm_heap *h = sub ? heap_for_ptr(av->top) : NULL;
    CHECKF("a thread's arena: populated within its committed heap",
           !sub || (uintptr_t)av->top_clean <= (uintptr_t)heap_end(h),
           "clean %p end %p", (void *)av->top_clean, sub ? (void *)heap_end(h) : NULL);
    CHECKF("a thread's arena: populate calls", populates() > p0, "%lu", populates() - p0);
    for (int i = 0; i < 40000; i++)
        free(blocks[i]);
    free(blocks);
    CHK();
    return NULL;
}

static void nnp_child(void *arg)
{
    (void)arg;
    CHECK("prctl(PR_SET_NO_NEW_PRIVS) succeeds", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CHECK("populating off after no_new_privs", !tm_os_populate_on());
    check_off(&tm_main_arena, "no_new_privs");
    _exit(harness_finish());
}

static void mallopt_child(void *arg)
{
    (void)arg;
    CHECK("mallopt(TIDE_M_POPULATE, 2) rejected", mallopt(TIDE_M_POPULATE, 2) == 0);
    CHECK("mallopt(TIDE_M_POPULATE, 0)", mallopt(TIDE_M_POPULATE, 0) == 1);
    check_off(&tm_main_arena, "mallopt 0");
    _exit(harness_finish());
}

int main(int argc, char **argv)
{
    pg = (size_t)sysconf(_SC_PAGESIZE);
    mallopt(TIDE_M_DECAY_MS, -1);          /* nothing released behind the test's back */
    free(malloc(1));
    tm_arena *av = &tm_main_arena;
    CHECK("main thread on the main arena", tm_thread_arena() == av);
    if (argc > 1 && strcmp(argv[1], "off") == 0) {
        check_off(av, "TIDEMALLOC_POPULATE=0");
        return harness_finish();
    }
    bool kernel = kernel_populates();
    if (!kernel || !tm_os_populate_on()) {
        printf("populating off here (%s): checked that nothing is populated instead\n",
               !kernel ? "the kernel refuses MADV_POPULATE_WRITE" : "a sanitizer build, or a filter at start");
        if (tm_os_populate_on()) {         /* (the first carve asks, is refused, and stops asking) */
            uintptr_t c0;
            int n = carve_small(av, &c0, keep, NKEEP);
            for (int i = 0; i < n; i++)
                free(keep[i]);
            CHECK("the kernel refused once: off for good", !tm_os_populate_on());
        }
        check_off(av, "off");
        return harness_finish();
    }
    check_on(av);
    pthread_t t;
    CHECK("a thread", pthread_create(&t, NULL, thread_body, NULL) == 0 && pthread_join(t, NULL) == 0);
    CHECK_EXIT("mallopt turns it off", mallopt_child, NULL, 0);
    CHECK_EXIT("no_new_privs turns it off", nnp_child, NULL, 0);
    return harness_finish();
}
