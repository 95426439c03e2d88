/*
 * test_thp_budget.c - which units the huge-page marks cover (src/thp.h).
 *
 * Run with glibc.malloc.hugetlb=1 and TIDEMALLOC_DECAY_MS=0 (ctest), on
 * the main arena:
 *   units   (default budget) a region of blocks that stay live keeps its
 *           huge pages: only units that held released pages are marked;
 *   budget  (tm_thp_marks_max lowered to 3) past the budget a release
 *           marks its whole heap: the live region's unit too, the
 *           whole-heap counter moves, and the heap is one mapping or two
 *           again instead of a mapping per marked range.
 * Exit 77 where huge pages cannot back the heap (THP never, or absent).
 */
#define _GNU_SOURCE 1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"
#include "thp_common.h"
#include "thp.h"
#include "tidemalloc.h"

enum { DENSE = 48, SPARSE = 256, BLK = 100 * 1024, KEEP_EVERY = 8 };
#define UNIT ((uintptr_t)2 << 20)

int main(int argc, char **argv)
{
    bool budget = argc > 1 && strcmp(argv[1], "budget") == 0;
    struct tm_thp_stats st;
    free(malloc(1));
    tm_thp_get_stats(&st);
    if (!st.marking || st.unit != UNIT) {
        printf("test_thp_budget: huge pages cannot back the heap here (mode %d): skipped\n", st.mode);
        return 77;
    }
    {
        /* The budget at start: a sixteenth of vm.max_map_count at most. */
        FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
        long maps = -1;
        if (f) {
            if (fscanf(f, "%ld", &maps) != 1)
                maps = -1;
            fclose(f);
        }
        unsigned long want = maps > 0 && (unsigned long)maps / 16 < TM_THP_MARKS_MAX ? (unsigned long)maps / 16
                                                                                   : TM_THP_MARKS_MAX;
        CHECKF("mark budget from vm.max_map_count", tm_thp_marks_max == want, "%lu, want %lu (max_map_count %ld)",
               tm_thp_marks_max, want, maps);
    }
    /* The switch (TIDEMALLOC_THP / TIDE_M_THP): 0 or 1 only. */
    CHECK("mallopt(TIDE_M_THP, 2) refused", tide_mallopt(TIDE_M_THP, 2) == 0);
    CHECK("mallopt(TIDE_M_THP, 0)", tide_mallopt(TIDE_M_THP, 0) == 1);
    tm_thp_get_stats(&st);
    CHECK("off: no marking", !st.marking);
    CHECK("mallopt(TIDE_M_THP, 1)", tide_mallopt(TIDE_M_THP, 1) == 1);
    tm_thp_get_stats(&st);
    CHECK("on again: marking", st.marking);
    if (budget)
        tm_thp_marks_max = 3;
    static char *d[DENSE], *b[SPARSE];
    for (int k = 0; k < DENSE; k++) {
        d[k] = malloc(BLK);
        memset(d[k], 1, BLK);
    }
    for (int k = 0; k < SPARSE; k++) {
        b[k] = malloc(BLK);
        memset(b[k], 2, BLK);
    }
    uintptr_t dlo = (uintptr_t)d[0], dhi = (uintptr_t)d[DENSE - 1] + BLK;
    uintptr_t hi = (uintptr_t)b[SPARSE - 1] + BLK;
    CHECKF("blocks in order, one heap", dlo < dhi && dhi <= (uintptr_t)b[0] && hi - dlo < 64u << 20,
           "dense %#lx..%#lx, sparse from %#lx", (unsigned long)dlo, (unsigned long)dhi, (unsigned long)b[0]);
    /* A unit wholly inside the live region, with a page to spare each side. */
    uintptr_t u = (dlo + 4096 + UNIT - 1) & ~(UNIT - 1);
    CHECK("a whole unit inside the live region", u + UNIT + 4096 <= dhi);
    int n0;
    CHECK("eligible before", thp_smaps_scan(u, dlo, hi, &n0) == 1);

    for (int k = 0; k < SPARSE; k++)
        if (k % KEEP_EVERY)
            free(b[k]);
    tm_thp_get_stats(&st);
    int n1, e = thp_smaps_scan(u, dlo, hi, &n1);
    printf("test_thp_budget: %s: marks %lu, whole %lu; live unit THPeligible %d; mappings over the heap %d -> %d\n",
           budget ? "budget 3" : "default budget", st.marks, st.whole_marks, e, n0, n1);
    if (budget) {
        CHECKF("marks stop at the budget", st.marks == 3, "%lu", st.marks);
        CHECK("then whole-heap marks", st.whole_marks >= 1);
        CHECK("the whole heap is marked, the live unit too", e == 0);
        CHECKF("the heap is one or two mappings again", n1 <= 2, "%d", n1);
    } else {
        CHECK("several marks", st.marks >= 3 && st.whole_marks == 0);
        CHECK("the live unit keeps its huge pages", e == 1);
        CHECKF("a mapping per marked run at most", n1 > 1, "%d", n1);
    }
    for (int k = 0; k < DENSE; k++)
        CHECK("live block intact", d[k][0] == 1 && d[k][BLK - 1] == 1);
    CHECK("heap consistent", tide_check_heap() > 0);
    return harness_finish();
}
