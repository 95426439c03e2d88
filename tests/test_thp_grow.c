/*
 * test_thp_grow.c - heaps advised huge (glibc.malloc.hugetlb=1) are
 * backed by huge pages.
 *
 * The kernel faults in a 2 MiB page only where the whole aligned unit
 * around the faulting address is mapped and advised.  A heap that grows
 * by its top pad (128 KiB) at a time never has the unit ahead of its end
 * mapped, so every fault took a 4 KiB page although the heap was advised
 * (python with hugetlb=1: 13 258 page faults, glibc 1 496).  With heaps
 * advised huge, growth rounds the heap's end up to a unit (src/thp.h
 * tm_thp_grow_unit), as glibc does.
 *
 * The test re-executes itself with hugetlb=1 and, on the main arena (brk)
 * and on a second thread's arena (a sub-heap), writes 24 MiB of 64-byte
 * blocks, then checks
 *   - the heap's end lies on a unit boundary (the main arena: the program
 *     break; the sub-heap: its writable mapping);
 *   - the blocks' mapping is advised huge (VmFlags "hg");
 *   - the blocks are backed by huge pages (AnonHugePages over their
 *     mappings): at least half of them.  Checked where the kernel gives
 *     a huge page to a probe mapping at all (memory may be too
 *     fragmented for one); said, not checked, where it does not.
 * Exit 77 (skipped) where THP is not in "madvise" mode: "always" backs
 * heaps without advice, "never" not at all, and hugetlb=1 is glibc's
 * switch for the "madvise" mode.
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
#include <unistd.h>
#include "harness.h"

#define UNIT ((uintptr_t)2 << 20)
enum { BLK = 64, NBLK = 24 * 1024 * 1024 / BLK };

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
 * (bytes), whether every one is advised huge ("hg" in VmFlags), and the
 * end of the one holding address a. */
struct span_state { size_t huge_bytes; bool all_advised; int nmaps; uintptr_t end_of_a; };

static struct span_state scan(uintptr_t lo, uintptr_t hi, uintptr_t a)
{
    struct span_state st = { 0, true, 0, 0 };
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false;
    if (!f) {
        st.all_advised = false;
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
        else if (strncmp(line, "VmFlags:", 8) == 0 && !strstr(line, " hg"))
            st.all_advised = false;
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

/* Allocate and write the blocks, check their heap; name: which arena. */
static void run(const char *name, bool main_arena)
{
    char **b = mmap(NULL, NBLK * sizeof *b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECKF("block table", b != MAP_FAILED, "%s", name);
    if (b == MAP_FAILED)
        return;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    bool all = true;
    for (size_t i = 0; i < NBLK; i++) {
        b[i] = malloc(BLK);
        if (!b[i]) {
            all = false;
            break;
        }
        memset(b[i], (int)i, BLK);
        uintptr_t p = (uintptr_t)b[i];
        lo = p < lo ? p : lo;
        hi = p + BLK > hi ? p + BLK : hi;
    }
    CHECKF("24 MiB of 64-byte blocks allocated", all, "%s", name);
    if (all) {
        struct span_state st = scan(lo, hi, hi - 1);
        note("%s: blocks over %#lx..%#lx, %d mapping(s), %zu KiB in huge pages", name,
             (unsigned long)lo, (unsigned long)hi, st.nmaps, st.huge_bytes / 1024);
        if (main_arena) {
            uintptr_t brk_end = (uintptr_t)sbrk(0);
            CHECKF("the program break lies on a huge page unit", brk_end % UNIT == 0,
                   "%s: break %#lx", name, (unsigned long)brk_end);
        } else {
            CHECKF("the sub-heap's writable mapping ends on a huge page unit",
                   st.end_of_a != 0 && st.end_of_a % UNIT == 0, "%s: ends at %#lx", name,
                   (unsigned long)st.end_of_a);
        }
        CHECKF("the blocks' mappings are advised huge", st.all_advised && st.nmaps > 0, "%s: %d mapping(s)",
               name, st.nmaps);
        if (huge_ok)
            CHECKF("at least half the blocks' span is in huge pages", st.huge_bytes >= (hi - lo) / 2,
                   "%s: %zu of %zu KiB", name, st.huge_bytes / 1024, (size_t)(hi - lo) / 1024);
    }
    for (size_t i = 0; i < NBLK && b[i]; i++)
        free(b[i]);
    munmap(b, NBLK * sizeof *b);
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
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child();
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
    pid_t pid = fork();
    if (pid == 0) {
        setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1);
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF("child", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    return harness_finish();
}
