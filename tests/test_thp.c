/*
 * test_thp.c - page release where transparent huge pages back the heap.
 *
 * With THP "always" (or heaps advised huge: glibc.malloc.hugetlb=1, as
 * here), 4 KiB pages given back inside a 2 MiB unit that still holds live
 * blocks come back: khugepaged collapses any unit with a page present
 * into one huge page (max_ptes_none 511 by default), resident and zero.
 * tidemalloc marks the units of every released range MADV_NOHUGEPAGE
 * (src/thp.h).  khugepaged runs on its own clock (minutes by default),
 * so the test asks the kernel for the same collapse at once with
 * MADV_COLLAPSE (Linux 6.1+), which follows the same eligibility rules.
 *
 * The test re-executes itself twice, with hugetlb=1 and release at once
 * (TIDEMALLOC_DECAY_MS=0):
 *   split  (the default)    released pages stay out after the collapse;
 *                           the units over them are not eligible;
 *   keep   (TIDEMALLOC_THP=0) the control: the same units are eligible and
 *                           the collapse brings the pages back - what
 *                           the marks prevent, so the test can see it.
 * Each runs the scenario on the main arena (brk) and on a second
 * thread's arena (a sub-heap).  Residency is read with mincore over the
 * blocks' span (exact, and blind to anything else in the process).
 * Exit 77 (skipped) where the system has no THP or never uses it.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "thp_common.h"
#include "tidemalloc.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

enum { NBLK = 320, BLK = 100 * 1024, KEEP_EVERY = 8 };
#define UNIT ((uintptr_t)2 << 20)

static size_t page;

static HARNESS_PRINTF(1, 2) void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("test_thp: ");
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

static int read_file(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t r = fread(buf, 1, n - 1, f);
    buf[r] = 0;
    fclose(f);
    return (int)r;
}

/* Resident pages of the unit at u (UNIT aligned); -1 if any of it is not
 * mapped (a hole between two heaps the blocks came from). */
static long unit_resident(uintptr_t u)
{
    return thp_resident_pages(u, u + UNIT);
}

/* The whole units of [lo, hi) that are mapped whole, and their resident
 * pages in all. */
static size_t resident(const uintptr_t *units, int nunits)
{
    size_t r = 0;
    for (int k = 0; k < nunits; k++) {
        long x = unit_resident(units[k]);
        r += x > 0 ? (size_t)x : 0;
    }
    return r;
}

struct scen {
    const char *where;
    bool keep;            /* TIDEMALLOC_THP=0: the control */
    int collapse_ok;      /* out: MADV_COLLAPSE did something (keep) */
};

static void *scenario(void *arg)
{
    struct scen *s = arg;
    static char *b[NBLK];
    for (int k = 0; k < NBLK; k++) {
        b[k] = malloc(BLK);
        CHECKF("malloc", b[k] != NULL, "%s: block %d", s->where, k);
        if (!b[k])
            return NULL;
        memset(b[k], 0x5a, BLK);
    }
    uintptr_t lo = (uintptr_t)b[0], hi = (uintptr_t)b[NBLK - 1] + BLK;
    for (int k = 1; k < NBLK; k++) {       /* one heap, in order */
        if ((uintptr_t)b[k] < lo)
            lo = (uintptr_t)b[k];
        if ((uintptr_t)b[k] + BLK > hi)
            hi = (uintptr_t)b[k] + BLK;
    }
    CHECKF("blocks in one span", hi - lo < (size_t)NBLK * BLK * 2, "%s: %#lx..%#lx", s->where,
           (unsigned long)lo, (unsigned long)hi);
    /* The whole units inside the span that are mapped whole. */
    uintptr_t ulo = (lo + UNIT - 1) & ~(UNIT - 1), uhi = hi & ~(UNIT - 1);
    uintptr_t units[NBLK * BLK * 2 / UNIT + 2];   /* (the span is below twice the bytes) */
    int nunits = 0;
    for (uintptr_t u = ulo; u < uhi; u += UNIT)
        if (unit_resident(u) >= 0)
            units[nunits++] = u;
    CHECKF("span holds units", nunits >= 4, "%s: %d", s->where, nunits);
    if (nunits < 4)
        return NULL;
    int elig0 = thp_eligible(units[0]);
    CHECKF("heap eligible for huge pages before", elig0 == 1, "%s: THPeligible %d", s->where, elig0);

    for (int k = 0; k < NBLK; k++)
        if (k % KEEP_EVERY != 0) {
            free(b[k]);
            b[k] = NULL;
        }
    size_t live_pages = (size_t)(NBLK / KEEP_EVERY) * (BLK / page + 2);
    size_t units_pages = (size_t)nunits * (UNIT / page);
    size_t r1 = resident(units, nunits);
    note("%s: %zu of %zu pages resident after the frees (live ~%zu)", s->where, r1, units_pages,
                 live_pages);
    CHECKF("released at free time", r1 <= live_pages + units_pages / 8, "%s: %zu of %zu resident", s->where,
           r1, units_pages);

    /* Every whole unit held a released range: marked unless kept. */
    int bad = 0;
    for (int k = 0; k < nunits; k++) {
        int e = thp_eligible(units[k] + UNIT / 2);
        if (e != (s->keep ? 1 : 0))
            bad++;
    }
    CHECKF("units over released ranges", bad == 0, "%s: %d units with THPeligible %s", s->where, bad,
           s->keep ? "0 (kept: want 1)" : "1 (want 0)");

    /* What khugepaged would do, now. */
    int rc = 0, err = 0;
    for (int k = 0; k < nunits; k++) {
        errno = 0;
        if (madvise((void *)units[k], UNIT, MADV_COLLAPSE) != 0) {
            rc = -1;
            err = errno;
        }
    }
    size_t r2 = resident(units, nunits);
    note("%s: MADV_COLLAPSE rc %d errno %d; %zu of %zu pages resident after", s->where, rc, err, r2,
                 units_pages);
    if (s->keep)
        s->collapse_ok = r2 > r1 + units_pages / 2;
    else
        CHECKF("no collapse over released pages", r2 <= r1 + UNIT / page, "%s: %zu -> %zu resident",
               s->where, r1, r2);

    /* The kept blocks are intact, freed blocks come back usable. */
    for (int k = 0; k < NBLK; k += KEEP_EVERY) {
        CHECKF("kept block intact", b[k][0] == 0x5a && b[k][BLK - 1] == 0x5a, "%s: %d", s->where, k);
        free(b[k]);
    }
    CHECK("heap consistent", tide_check_heap() > 0);
    return NULL;
}

static int child(bool keep)
{
    struct scen m = { "main arena", keep, 0 }, t = { "thread arena", keep, 0 };
    scenario(&m);
    pthread_t th;
    if (pthread_create(&th, NULL, scenario, &t) == 0)
        pthread_join(th, NULL);
    if (keep) {
        /* The control needs a working MADV_COLLAPSE: without it (before
         * Linux 6.1) only the eligibility was shown. */
        errno = 0;
        void *probe = mmap(NULL, 2 * UNIT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uintptr_t a = ((uintptr_t)probe + UNIT - 1) & ~(UNIT - 1);
        memset((void *)a, 1, page);
        madvise((void *)a, UNIT, MADV_HUGEPAGE);
        bool works = madvise((void *)a, UNIT, MADV_COLLAPSE) == 0;
        munmap(probe, 2 * UNIT);
        if (works) {
            CHECK("control: collapse brings the main arena's pages back", m.collapse_ok);
            CHECK("control: collapse brings the thread arena's pages back", t.collapse_ok);
        } else {
            note("MADV_COLLAPSE unavailable (errno %d): control of the collapse skipped", errno);
        }
    }
    return harness_finish();
}

int main(int argc, char **argv)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    if (argc > 1)
        return child(strcmp(argv[1], "keep") == 0);

    char buf[256];
    if (read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) <= 0 ||
        strstr(buf, "[never]") || read_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf,
                                            sizeof buf) <= 0 || strtoul(buf, NULL, 10) != UNIT) {
        printf("test_thp: no transparent huge pages of 2 MiB here: skipped\n");
        return 77;
    }
    static const char *modes[] = { "split", "keep" };
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1);
            setenv("TIDEMALLOC_DECAY_MS", "0", 1);
            if (i == 1)
                setenv("TIDEMALLOC_THP", "0", 1);
            else
                unsetenv("TIDEMALLOC_THP");
            execl("/proc/self/exe", argv[0], modes[i], (char *)NULL);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECKF("child", WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %#x", modes[i], st);
    }
    return harness_finish();
}
