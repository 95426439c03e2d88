/*
 * test_corruption.c - heap integrity checks: each scenario corrupts the heap
 * the way a buggy program would, in a forked child, and expects the
 * allocator to abort with glibc 2.36's message for that check.
 *
 *   test_corruption            run every scenario
 *   test_corruption NAME...    run only the named scenarios
 *   test_corruption --list     list them ("tcache" / "no-tcache" tells
 *                              which thread-cache state the scenario needs)
 *
 * Chunk layout (ptmalloc2, 64-bit): for a user pointer p the chunk starts at
 * p - 16; ((size_t *)p)[-2] is prev_size, ((size_t *)p)[-1] the size with
 * bits P=0x1 (previous in use), M=0x2 (mmapped), A=0x4 (non-main arena).  A
 * free chunk's fd is at p[0] and bk at p[1]; a thread-cache entry's next
 * pointer is at p[0], stored mangled as glibc's safe-linking does:
 * (address of the field >> 12) ^ pointer.
 *
 * Scenarios marked no-tcache first switch the thread cache off in the child
 * with mallopt(TIDE_M_TCACHE_COUNT, 0) and flush it, which gives plain
 * ptmalloc behaviour.  (Against glibc itself - which ignores that mallopt -
 * run them with GLIBC_TUNABLES=glibc.malloc.tcache_count=0.)
 *
 * A scenario whose set-up does not give the layout it needs exits instead of
 * corrupting anything (the check then reports that exit status):
 *   3  mmap failed                  4  the 1 MiB block is not mmapped
 *   5  no three adjacent blocks     6  the block is not just below top
 */
#define _GNU_SOURCE 1
#include "harness.h"
#include "tide_test.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tidemalloc.h"

typedef size_t word;

static word *W(void *p)
{
    return harness_launder(p);
}
/* Size bits 4..47: tidemalloc keeps a checksum in bits 48..63 and flags
 * in 0..3 (docs/design.md, "Hardening"). */
static word chunk_size(void *p)
{
    return W(p)[-1] & (((word)1 << 48) - 16);
}
/* The size word of the chunk that follows p's chunk. */
static word *next_size_word(void *p)
{
    return (word *)((char *)p + chunk_size(p) - sizeof(word));
}
/* User pointer of the chunk after p's (for p just below top: top's). */
static void *next_user(void *p)
{
    return (char *)p + chunk_size(p);
}
/* Allocates blocks of `size` until three consecutive ones lie back to back
 * (x0 | x1 | x2, all in use) and returns x1; so freeing x1 merges with
 * neither neighbour.  The other blocks are left allocated. */
static void *adjacent_middle(size_t size)
{
    void *x[40];
    for (int i = 0; i < 40; i++) {
        x[i] = malloc(size);
        if (i >= 2 && next_user(x[i - 2]) == x[i - 1] && next_user(x[i - 1]) == x[i])
            return x[i - 1];
    }
    _exit(5);
}

/* Allocates `size` bytes and checks that the chunk after it is top (its
 * size is mallinfo2's keepcost, the main arena's top size). */
static void *just_below_top(size_t size)
{
    void *p = malloc(size);
    struct mallinfo2 mi = mallinfo2();
    if (!p || chunk_size(next_user(p)) != mi.keepcost)
        _exit(6);
    return p;
}

static uintptr_t mangle(const void *field_addr, uintptr_t ptr)
{
    return ((uintptr_t)field_addr >> 12) ^ ptr;
}


/* ---- scenarios -------------------------------------------------------- */
static void sc_tcache_double_free(void *arg)
{
    (void)arg;
    void *p = malloc(40);
    void *again = harness_launder(p);   /* the same pointer, unknown to the compiler */
    void *guard = malloc(40);
    free(p);
    free(again);
    harness_sink(guard);
}

static void sc_fasttop(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    tide_test_fast_bins();
    void *p = malloc(40);
    void *again = harness_launder(p);
    void *guard = malloc(40);
    free(p);
    free(again);
    harness_sink(guard);
}

static void sc_double_free_prev(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *a = adjacent_middle(2000);    /* neighbours in use: no merging */
    void *again = harness_launder(a);
    free(a);
    free(again);
}

static void sc_invalid_pointer_middle(void *arg)
{
    (void)arg;
    char *p = malloc(200);
    memset(p, 0, 200);
    free(harness_launder(p + 16));
}

static void sc_invalid_pointer_misaligned8(void *arg)
{
    (void)arg;
    char *p = malloc(200);
    memset(p, 0, 200);
    free(harness_launder(p + 8));
}

static void sc_invalid_pointer_misaligned1(void *arg)
{
    (void)arg;
    char *p = malloc(200);
    memset(p, 0, 200);
    free(harness_launder(p + 1));
}

static void sc_invalid_size_small(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    W(p)[-1] = 16 | 1;            /* below the 32-byte minimum */
    free(p);
}

static void sc_invalid_size_unaligned(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    W(p)[-1] = 0x48 | 1;          /* not a multiple of 16 */
    free(p);
}

static void sc_invalid_size_huge(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    W(p)[-1] = ((word)-32) | 1;   /* chunk would wrap around memory */
    free(p);
}

static void sc_invalid_next_size_fast_zero(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    tide_test_fast_bins();
    void *p = adjacent_middle(40);
    *next_size_word(p) = 0;       /* overflow smashes the neighbour's size */
    free(p);
}

static void sc_invalid_next_size_fast_huge(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    tide_test_fast_bins();
    void *p = adjacent_middle(40);
    *next_size_word(p) = ((word)1 << 40) | 1;
    free(p);
}

static void sc_invalid_next_size_normal_zero(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *p = adjacent_middle(2000);
    /* Size 0 but P still set: with P clear the "(!prev)" check fires first. */
    *next_size_word(p) = 1;
    free(p);
}

static void sc_invalid_next_size_normal_huge(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *p = adjacent_middle(2000);
    *next_size_word(p) = ((word)1 << 40) | 1;
    free(p);
}

static void sc_free_top(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *p = just_below_top(100000);
    free(next_user(p));
}

static void sc_free_fake_out(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    /* A plausible chunk in memory the allocator never handed out. */
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(3);
    word *c = (word *)(m + 0x100);
    c[0] = 0;
    c[1] = 0x100 | 1;                   /* size 256, P set          */
    word *n = (word *)(m + 0x200);
    n[0] = 0x100;
    n[1] = 0x40 | 1;                    /* a sane next chunk        */
    free(harness_launder(m + 0x110));
}

static void sc_free_wild_zero(void *arg)
{
    (void)arg;
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(3);
    free(harness_launder(m + 0x110));   /* header all zero */
}

static void sc_munmap_prev_size(void *arg)
{
    (void)arg;
    void *p = malloc(1024 * 1024);
    if (!(W(p)[-1] & 2))
        _exit(4);                       /* not mmapped: scenario invalid */
    W(p)[-2] += 16;                     /* offset inside the mapping */
    free(p);
}

static void sc_munmap_size(void *arg)
{
    (void)arg;
    void *p = malloc(1024 * 1024);
    if (!(W(p)[-1] & 2))
        _exit(4);
    W(p)[-1] += 16;                     /* mapping length no longer pages */
    free(p);
}

static void sc_realloc_invalid_middle(void *arg)
{
    (void)arg;
    char *p = malloc(200);
    memset(p, 0, 200);
    harness_sink(realloc(harness_launder(p + 16), 100));
}

static void sc_realloc_invalid_misaligned(void *arg)
{
    (void)arg;
    char *p = malloc(200);
    memset(p, 0, 200);
    harness_sink(realloc(harness_launder(p + 8), 100));
}

static void sc_unsorted_fd(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *a = adjacent_middle(2000);
    word *wa = W(a);
    free(a);                            /* -> unsorted bin */
    wa[0] = (word)wa;                   /* use after free: fd */
    harness_sink(malloc(5000));                 /* walks the unsorted bin */
}

static void sc_unsorted_bk(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *a = adjacent_middle(2000);
    word *wa = W(a);
    free(a);
    wa[1] = (word)wa;                   /* use after free: bk */
    harness_sink(malloc(5000));
}

static void sc_top_size(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *p = just_below_top(100000);
    *next_size_word(p) = ((word)-16) | 1;
    harness_sink(malloc(60000));                /* served from top */
}

static void sc_tcache_unaligned(void *arg)
{
    (void)arg;
    char *a = malloc(40);
    char *b = malloc(40);
    uintptr_t ua = (uintptr_t)a;
    word *wb = W(b);
    void *guard = malloc(40);
    free(a);
    free(b);                            /* cache: b -> a */
    /* Point b's next at a misaligned address, mangled like safe-linking.
     * The offset keeps it misaligned whether or not it is demangled. */
    uintptr_t key = ((uintptr_t)wb >> 12) & 15;
    uintptr_t off = key == 8 ? 4 : 8;
    uintptr_t target = (ua & ~(uintptr_t)15) + off;
    wb[0] = mangle(wb, target);
    harness_sink(malloc(40));                   /* returns b, head := target */
    harness_sink(malloc(40));                   /* target is misaligned */
    harness_sink(guard);
}

/* ---- table ------------------------------------------------------------- */
enum cache_need { ANY, TCACHE, NO_TCACHE };

struct scenario {
    const char *name;
    harness_fn fn;
    enum cache_need cache;
    const char *desc;
    const char *msgs[5];
};

static const struct scenario scenarios[] = {
    { "tcache_double_free", sc_tcache_double_free, TCACHE,
      "double free of a small chunk held in the thread cache",
      { "free(): double free detected in tcache 2" } },
    { "fasttop", sc_fasttop, NO_TCACHE,
      "double free of a fast chunk (thread cache off)",
      { "double free or corruption (fasttop)", "free(): double free detected" } },
    { "double_free_prev", sc_double_free_prev, NO_TCACHE,
      "double free of a 2000-byte chunk with an allocated neighbour",
      { "double free or corruption (!prev)", "free(): double free detected" } },
    { "invalid_pointer_middle", sc_invalid_pointer_middle, ANY,
      "free of a pointer 16 bytes into a block",
      { "free(): invalid pointer", "free(): corrupted chunk header" } },
    { "invalid_pointer_misaligned8", sc_invalid_pointer_misaligned8, ANY,
      "free of a pointer 8 bytes into a block (misaligned chunk)",
      { "free(): invalid pointer" } },
    { "invalid_pointer_misaligned1", sc_invalid_pointer_misaligned1, ANY,
      "free of a pointer 1 byte into a block",
      { "free(): invalid pointer" } },
    { "invalid_size_small", sc_invalid_size_small, ANY,
      "size field overwritten with 16 (below minimum)",
      { "free(): invalid size", "free(): corrupted chunk header" } },
    { "invalid_size_unaligned", sc_invalid_size_unaligned, ANY,
      "size field overwritten with 0x48 (not a multiple of 16)",
      { "free(): invalid size", "free(): corrupted chunk header" } },
    { "invalid_size_huge", sc_invalid_size_huge, ANY,
      "size field overwritten with a huge value",
      { "free(): invalid size", "free(): invalid pointer", "free(): corrupted chunk header" } },
    { "invalid_next_size_fast_zero", sc_invalid_next_size_fast_zero, NO_TCACHE,
      "overflow sets the next chunk's size to 0, then free of a fast chunk",
      /* (P cleared with it: free's test of the successor's P bit, which
       * catches replayed headers, names it before the size tests) */
      { "free(): invalid next size (fast)", "free(): corrupted chunk header",
        "double free or corruption (!prev)" } },
    { "invalid_next_size_fast_huge", sc_invalid_next_size_fast_huge, NO_TCACHE,
      "overflow sets the next chunk's size to 2^40, then free of a fast chunk",
      { "free(): invalid next size (fast)", "free(): corrupted chunk header" } },
    { "invalid_next_size_normal_zero", sc_invalid_next_size_normal_zero, NO_TCACHE,
      "overflow sets the next chunk's size to 0 (P kept), then free of a 2000-byte chunk",
      { "free(): invalid next size (normal)", "free(): corrupted chunk header" } },
    { "invalid_next_size_normal_huge", sc_invalid_next_size_normal_huge, NO_TCACHE,
      "overflow sets the next chunk's size to 2^40, then free of a 2000-byte chunk",
      { "free(): invalid next size (normal)", "free(): corrupted chunk header" } },
    { "free_top", sc_free_top, NO_TCACHE,
      "free of the top chunk's user pointer",
      { "double free or corruption (top)" } },
    { "free_fake_out", sc_free_fake_out, NO_TCACHE,
      "free of a plausible fake chunk in memory outside the heap",
      { "double free or corruption (out)", "free(): invalid pointer" } },
    { "free_wild_zero", sc_free_wild_zero, ANY,
      "free of a pointer outside the heap with a zero header",
      { "free(): invalid pointer" } },
    { "munmap_prev_size", sc_munmap_prev_size, ANY,
      "mmapped chunk with a corrupted prev_size (offset)",
      { "munmap_chunk(): invalid pointer" } },
    { "munmap_size", sc_munmap_size, ANY,
      "mmapped chunk with a corrupted size",
      { "munmap_chunk(): invalid pointer" } },
    { "realloc_invalid_middle", sc_realloc_invalid_middle, ANY,
      "realloc of a pointer 16 bytes into a block",
      { "realloc(): invalid pointer", "realloc(): corrupted chunk header" } },
    { "realloc_invalid_misaligned", sc_realloc_invalid_misaligned, ANY,
      "realloc of a misaligned pointer",
      { "realloc(): invalid pointer" } },
    { "unsorted_fd", sc_unsorted_fd, NO_TCACHE,
      "fd of a chunk in the unsorted bin overwritten, then malloc",
      { "malloc(): unsorted double linked list corrupted", "corrupted double-linked list",
        "malloc(): corrupted unsorted chunks", "malloc(): corrupted chunk header" } },
    { "unsorted_bk", sc_unsorted_bk, NO_TCACHE,
      "bk of a chunk in the unsorted bin overwritten, then malloc",
      { "malloc(): unsorted double linked list corrupted", "corrupted double-linked list",
        "malloc(): corrupted unsorted chunks", "malloc(): corrupted chunk header" } },
    { "top_size", sc_top_size, NO_TCACHE,
      "top chunk size overwritten with a huge value, then malloc from top",
      { "malloc(): corrupted top size" } },
    { "tcache_unaligned", sc_tcache_unaligned, TCACHE,
      "thread-cache next pointer overwritten with a misaligned address, then malloc twice",
      { "malloc(): unaligned tcache chunk detected" } },
};
#define NSCEN (sizeof scenarios / sizeof scenarios[0])

/* Detected only by the checks (TIDE_CHECKS: header checksums, the
 * ownership registry, the cache's keyed links); a build without them
 * (-DTIDE_CHECKS=OFF, the benchmarks' "checks off") skips these. */
static const char *const needs_checks[] = {
    "invalid_pointer_middle", "invalid_size_small", "invalid_size_huge", "free_wild_zero",
    "tcache_unaligned",
};
static int runnable(const struct scenario *s)
{
    if (TIDE_CHECKS)
        return 1;
    for (size_t k = 0; k < sizeof needs_checks / sizeof needs_checks[0]; k++)
        if (strcmp(s->name, needs_checks[k]) == 0) {
            printf("skipped without TIDE_CHECKS: %s\n", s->name);
            return 0;
        }
    return 1;
}

static void run(const struct scenario *s)
{
    char name[200];
    snprintf(name, sizeof name, "%s: %s -> abort \"%s\"%s", s->name, s->desc, s->msgs[0],
             s->msgs[1] ? " (or another accepted message)" : "");
    int ok = expect_abort_any(s->fn, NULL, s->msgs);
    CHECKF(name, ok, "%s", harness_child_diag);
}

int main(int argc, char **argv)
{
    harness_reexec_without_malloc_check(argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NSCEN; i++)
            printf("%-32s %-9s %s\n", scenarios[i].name,
                   scenarios[i].cache == TCACHE ? "tcache" : scenarios[i].cache == NO_TCACHE ? "no-tcache" : "any",
                   scenarios[i].desc);
        return 0;
    }
    int ran = 0;
    for (size_t i = 0; i < NSCEN; i++) {
        int selected = argc <= 1;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], scenarios[i].name) == 0)
                selected = 1;
        if (!selected)
            continue;
        ran++;
        if (runnable(&scenarios[i]))
            run(&scenarios[i]);
    }
    if (ran == 0) {
        fprintf(stderr, "no such scenario (see --list)\n");
        return 2;
    }
    return harness_finish();
}
