/*
 * test_thp_grow.c - heaps advised huge (glibc.malloc.hugetlb=1) are
 * backed by huge pages, and give them back (THP in madvise mode).
 *
 * The kernel faults in a 2 MiB page only where the whole aligned unit
 * around the faulting address is mapped and advised.  A heap that grows
 * by its top pad (128 KiB) at a time never has the unit ahead of its end
 * mapped, so every fault took a 4 KiB page although the heap was advised
 * (python with hugetlb=1: 13 258 page faults, glibc 1 496).  Where heaps
 * are advised huge, growth rounds the heap's end up to a unit (src/thp.h
 * tm_thp_grow_to), as glibc does - the heap's size with it: a huge page
 * faulted near the end fills the whole unit, and pages past the top's end
 * are reached by no release (a sub-heap that committed the unit but kept
 * its size: seed002 idled at 1.66x its live bytes instead of 1.16x).
 *
 * The test re-executes itself in three modes; in each, on the main arena
 * (brk) and on a second thread's arena (a sub-heap), it writes 32 MiB of
 * 64-byte blocks, then frees them and trims:
 *   all      (glibc.malloc.hugetlb=1)  the heap's end lies on a unit
 *            boundary (the main arena: the program break; the sub-heap:
 *            its writable mapping), every mapping of the blocks is
 *            advised (VmFlags "hg"), and at least half their span is in
 *            huge pages;
 *   default  (no tunable) and off (hugetlb=0)  no mapping of the blocks
 *            is advised, none is huge;
 * and in every mode, freed and trimmed, at most 256 KiB of the blocks'
 * span up to the end of its last unit is resident (mincore).
 * The huge page counts are checked where the kernel gives a huge page to
 * a probe mapping at all (memory may be too fragmented for one); said,
 * not checked, where it does not.  Exit 77 (skipped) where THP is not in
 * "madvise" mode: "always" backs heaps without advice, "never" not at
 * all.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <malloc.h>
#include <unistd.h>
#include "harness.h"
#include "thp_common.h"

#define UNIT ((uintptr_t)2 << 20)
enum { BLK = 64 };

static HARNESS_PRINTF(1, 2) void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("test_thp_grow: ");
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

/* Over the mappings that overlap [lo, hi): the sum of AnonHugePages
 * (bytes), whether every one or none is advised huge ("hg" in VmFlags),
 * and the end of the one holding address a. */
struct span_state {
    size_t huge_bytes;
    bool all_advised, none_advised;
    int nmaps;
    uintptr_t end_of_a;
};

static struct span_state scan(uintptr_t lo, uintptr_t hi, uintptr_t a)
{
    struct span_state st = { 0, true, true, 0, 0 };
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false;
    if (!f) {
        st.all_advised = st.none_advised = false;
        return st;
    }
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
        if (dash && sp && dash < sp && sscanf(line, "%lx-%lx ", &s, &e) == 2) {
            in = s < hi && e > lo;
            st.nmaps += in;
            if (a >= s && a < e)
                st.end_of_a = e;
            continue;
        }
        if (!in)
            continue;
        if (strncmp(line, "AnonHugePages:", 14) == 0)
            st.huge_bytes += strtoul(line + 14, NULL, 10) * 1024;
        else if (strncmp(line, "VmFlags:", 8) == 0) {
            bool hg = strstr(line, " hg") != NULL;
            st.all_advised &= hg;
            st.none_advised &= !hg;
        }
    }
    fclose(f);
    return st;
}

/* Does the kernel give a huge page to an advised, aligned, touched unit? */
static bool kernel_gives_huge_pages(void)
{
    char *m = mmap(NULL, 2 * UNIT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    uintptr_t a = ((uintptr_t)m + UNIT - 1) & ~(UNIT - 1);
    madvise((void *)a, UNIT, MADV_HUGEPAGE);
    memset((void *)a, 1, UNIT);
    struct span_state st = scan(a, a + UNIT, a);
    munmap(m, 2 * UNIT);
    return st.huge_bytes > 0;
}

static bool huge_ok;
static enum mode { ALL, DEFAULT, OFF } mode;
static const char *const mode_names[] = { "all", "default", "off" };

#define MIB ((size_t)1 << 20)

/* The span [*lo, *hi) of the blocks b[0..n). */
static void span_of(char **b, size_t n, uintptr_t *lo, uintptr_t *hi)
{
    *lo = UINTPTR_MAX, *hi = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t p = (uintptr_t)b[i];
        *lo = p < *lo ? p : *lo;
        *hi = p + BLK > *hi ? p + BLK : *hi;
    }
}

/* The state of the blocks b[0..n) (their span, and the mapping of the
 * last one); name: which arena. */
static struct span_state blocks_state(char **b, size_t n, const char *name)
{
    uintptr_t lo, hi;
    span_of(b, n, &lo, &hi);
    struct span_state st = scan(lo, hi, (uintptr_t)b[n - 1]);
    note("%s, %s: blocks over %#lx..%#lx, %d mapping(s), advised %s, %zu KiB in huge pages", mode_names[mode],
         name, (unsigned long)lo, (unsigned long)hi, st.nmaps,
         st.all_advised ? "all" : st.none_advised ? "none" : "some", st.huge_bytes / 1024);
    return st;
}

/* All freed and trimmed (what: which round): the heap gives back what it
 * held over the blocks' span [lo, hi), up to the end of the unit its last
 * block lay in - a huge page faulted near a heap's end fills the whole
 * unit, beyond the top's end too (a sub-heap's size once stopped short
 * of the unit it committed).  The main arena: up to the break, past
 * which nothing is mapped. */
static void check_trimmed(const char *what, const char *name, bool main_arena, uintptr_t lo, uintptr_t hi)
{
    uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE), end = (hi + UNIT - 1) & ~(UNIT - 1);
    if (main_arena && (uintptr_t)sbrk(0) < end)
        end = (uintptr_t)sbrk(0);
    lo &= ~(ps - 1);
    long pages = end > lo ? thp_resident_pages(lo, end) : 0;
    size_t kib = pages > 0 ? (size_t)pages * ps / 1024 : 0;
    note("%s, %s, %s: %zu KiB resident over %#lx..%#lx", mode_names[mode], name, what, kib,
         (unsigned long)lo, (unsigned long)end);
    CHECKF("freed and trimmed: at most 256 KiB of the heap resident", pages >= 0 && kib <= 256,
           "%s %s, %s: %zu KiB", mode_names[mode], name, what, kib);
}

/* A table of nblk blocks of BLK bytes, each written (outside the heap,
 * so that the table's own pages do not count there); the blocks
 * allocated before a malloc failed, in *n.  NULL if no table.         */
static char **blocks_new(size_t nblk, size_t *n)
{
    char **b = mmap(NULL, nblk * sizeof *b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *n = 0;
    if (b == MAP_FAILED)
        return NULL;
    for (; *n < nblk && (b[*n] = malloc(BLK)) != NULL; (*n)++)
        memset(b[*n], (int)*n, BLK);
    return b;
}
/* Free the n blocks of table b (of nblk), the table, and trim. */
static void blocks_free(char **b, size_t n, size_t nblk)
{
    for (size_t i = 0; b && i < n; i++)
        free(b[i]);
    if (b)
        munmap(b, nblk * sizeof *b);
    malloc_trim(0);
}

/* Allocate and write the blocks, check their heap; name: which arena. */
static void run(const char *name, bool main_arena)
{
    size_t nblk = 32 * MIB / BLK, n;
    char **b = blocks_new(nblk, &n);
    CHECKF("block table", b != NULL, "%s", name);
    if (!b)
        return;
    CHECKF("32 MiB of 64-byte blocks allocated", n == nblk, "%s %s", mode_names[mode], name);
    if (n == nblk) {
        struct span_state st = blocks_state(b, n, name);
        if (mode == ALL) {
            uintptr_t end = main_arena ? (uintptr_t)sbrk(0) : st.end_of_a;
            CHECKF(main_arena ? "the program break lies on a huge page unit"
                              : "the sub-heap's writable mapping ends on a huge page unit",
                   end != 0 && end % UNIT == 0, "%s %s: %#lx", mode_names[mode], name, (unsigned long)end);
            CHECKF("every mapping of the blocks advised huge", st.all_advised && st.nmaps > 0, "%s: %d mapping(s)",
                   name, st.nmaps);
            if (huge_ok)
                CHECKF("at least half the blocks' span in huge pages", st.huge_bytes >= 16 * MIB,
                       "%s: %zu KiB", name, st.huge_bytes / 1024);
        } else {
            CHECKF("no mapping of the blocks advised huge", st.none_advised && st.nmaps > 0, "%s", name);
            if (huge_ok)
                CHECKF("no huge page", st.huge_bytes == 0, "%s: %zu KiB", name, st.huge_bytes / 1024);
        }
    }
    uintptr_t lo, hi;
    span_of(b, n, &lo, &hi);
    blocks_free(b, n, nblk);
    if (n != nblk)
        return;
    check_trimmed("freed and trimmed", name, main_arena, lo, hi);
    /* Again, grown back into what the heap had committed before. */
    size_t nb2 = (3 * MIB + 100 * 1024) / BLK, k;
    char **b2 = blocks_new(nb2, &k);
    CHECKF("3 MiB more allocated", b2 != NULL && k == nb2, "%s %s", mode_names[mode], name);
    blocks_free(b2, k, nb2);
    check_trimmed("grown again, freed and trimmed", name, main_arena, lo, hi);
}

static void *thread_main(void *arg)
{
    (void)arg;
    run("thread arena", false);
    return NULL;
}

static int child(void)
{
    huge_ok = kernel_gives_huge_pages();
    if (!huge_ok)
        note("the kernel gave no huge page to a probe mapping: huge page backing not checked");
    run("main arena", true);
    pthread_t t;
    CHECK("thread starts", pthread_create(&t, NULL, thread_main, NULL) == 0 && pthread_join(t, NULL) == 0);
    return harness_finish();
}

int main(int argc, char **argv)
{
    for (int m = ALL; argc > 1 && m <= OFF; m++) {
        if (strcmp(argv[1], mode_names[m]) == 0) {
            mode = (enum mode)m;
            return child();
        }
    }
    char buf[256] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    bool madvise_mode = f && fgets(buf, sizeof buf, f) && strstr(buf, "[madvise]");
    if (f)
        fclose(f);
    f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
    unsigned long unit = 0;
    if (!f || fscanf(f, "%lu", &unit) != 1)
        unit = 0;
    if (f)
        fclose(f);
    if (!madvise_mode || unit != UNIT) {
        printf("test_thp_grow: THP not in madvise mode with 2 MiB units here (%s): skipped\n",
               buf[0] ? strtok(buf, "\n") : "no THP");
        return 77;
    }
    for (int m = ALL; m <= OFF; m++) {
        pid_t pid = fork();
        if (pid == 0) {
            if (m == DEFAULT)
                unsetenv("GLIBC_TUNABLES");
            else
                setenv("GLIBC_TUNABLES", m == ALL ? "glibc.malloc.hugetlb=1" : "glibc.malloc.hugetlb=0", 1);
            execl("/proc/self/exe", argv[0], mode_names[m], (char *)NULL);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECKF("child", WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %#x", mode_names[m], st);
    }
    return harness_finish();
}
