/*
 * test_trim.c - trimming the top of the main heap.
 *  - an arena that must grow again right after a trim raises its own trim
 *    threshold (no trim/regrow loop), up to TM_TRIM_FLOOR_MAX;
 *  - M_TRIM_THRESHOLD = -1 means never trim (no overflow with top_pad);
 *  - a fixed M_TRIM_THRESHOLD is honoured exactly (no adaptation).
 * Every step ends with tide_check_heap().  (Static link: reads arena state.)
 */
#define _GNU_SOURCE 1
#include <stdlib.h>
#include <string.h>
#include "harness.h"
#include "arena.h"
#include "bins.h"
#include "heap.h"
#include "internal.h"
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

int main(void)
{
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
    return harness_finish();
}
