/*
 * misuse.h - the heap-misuse suite's shared runner (issue 11).
 *
 * Each test_misuse_<family> program holds one family of techniques from
 * public heap-exploitation write-ups.  Every technique runs in a forked
 * child (harness.h's harness_run_child) and does what an attacker does:
 * the misuse itself, then the follow-up that cashes it in (mallocs of the
 * poisoned size, a malloc that consolidates, ...).  The parent judges the
 * child's fate:
 *
 *   caught      SIGABRT, and stderr contains one of the technique's
 *               accepted messages (docs/design.md, "Hardening messages");
 *   EXPLOITED   the child got attacker-placed or overlapping memory (or an
 *               attacker-chosen write happened) and _exit()ed with
 *               MISUSE_EXPLOITED after printing what it got;
 *   blocked     (thread-cache metadata only) the structure the technique
 *               needs is not reachable, which the child verified;
 *   otherwise   any other death, another message, or a normal exit (the
 *               misuse went unnoticed and the follow-up got nothing).
 *
 * Usage of every program:
 *   test_misuse_X              run all techniques as checks (ctest)
 *   test_misuse_X NAME...      only those
 *   test_misuse_X --summary    one line per technique, always exit 0
 *   test_misuse_X --list
 *   HARNESS_VERBOSE=1 also prints each child's stderr
 *
 * Only the public API is used.  The chunk layout the techniques rely on
 * is the documented one (src/chunk.h, docs/design.md §3): the user
 * pointer is 16 bytes past the chunk; word [-1] is the size word, flags
 * in bits 0..3 (P=1 previous in use, M=2 mmapped, A=4 non-main arena),
 * the size in bits 4..47; word [-2] is prev_size; a free chunk's fd/bk
 * are words [0]/[1] (fd_nextsize/bk_nextsize [2]/[3] in large bins); a
 * thread-cache entry's next link is word [0], stored safe-linked as
 * (address of the slot >> 12) ^ target - what an attacker who knows one
 * heap address can compute.  Sizes are read with bits 48..63 masked (a
 * checksum lives there in hardened builds) and written keeping those bits,
 * the most an attacker without the secret can do.
 */
#ifndef TIDE_MISUSE_H
#define TIDE_MISUSE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "harness.h"
#include "tide_test.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tidemalloc.h"

/* Exit codes of a child. */
#define MISUSE_EXPLOITED 66   /* got the target / overlapping memory        */
#define MISUSE_BLOCKED   67   /* the technique's target is out of reach     */
#define MISUSE_SETUP     68   /* the layout the technique needs did not form */

typedef size_t word;

#define SZ_FLAGS ((word)15)
#define SZ_LOW48 (((word)1 << 48) - 1)
#define SZ_MASK (SZ_LOW48 & ~SZ_FLAGS)

static inline word *W(void *p) { return harness_launder(p); }
/* Size of the chunk of user pointer m (flags and checksum bits masked). */
static inline word csize(void *m) { return W(m)[-1] & SZ_MASK; }
static inline word cflags(void *m) { return W(m)[-1] & SZ_FLAGS; }
/* Overwrite size and flags, keeping whatever bits 48..63 held. */
static inline void set_size_word(void *m, word size_and_flags)
{
    W(m)[-1] = (W(m)[-1] & ~SZ_LOW48) | size_and_flags;
}
/* User pointer of the chunk after m's. */
static inline void *next_mem(void *m) { return (char *)m + csize(m); }
/* Safe-linking as src/chunk.h documents it. */
static inline word mangle(const void *slot, const void *target)
{
    return ((uintptr_t)slot >> 12) ^ (uintptr_t)target;
}


/* Child side: report and stop. */
static inline __attribute__((noreturn, format(printf, 1, 2))) void exploited(const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    fputs("EXPLOITED: ", stderr);
    fwrite(buf, 1, (size_t)n, stderr);
    fflush(stderr);
    _exit(MISUSE_EXPLOITED);
}
static inline __attribute__((noreturn)) void setup_failed(const char *why)
{
    fprintf(stderr, "SETUP: %s\n", why);
    fflush(stderr);
    _exit(MISUSE_SETUP);
}

/* [a, a+alen) and [b, b+blen) share a byte. */
static inline int overlap(const void *a, size_t alen, const void *b, size_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + blen && y < x + alen;
}
/* m (n bytes) came back while live (llen bytes) is still allocated. */
static inline void check_overlap(const char *what, void *m, size_t n, void *live, size_t llen)
{
    if (m && overlap(m, n, live, llen))
        exploited("%s: malloc returned %p (+%zu) overlapping the live block %p (+%zu)", what, m, n,
                  live, llen);
}
/* A malloc returned the attacker's target. */
static inline void check_target(const char *what, void *m, void *target, size_t tlen)
{
    if (m && overlap(m, 1, target, tlen))
        exploited("%s: malloc returned %p, the attacker's target %p", what, m, target);
}


/* Allocate blocks of `size` until three consecutive ones lie back to back
 * (lo|mid|hi, all in use, in either order: the thread cache hands out a
 * refilled batch downwards); returns mid, *before = lo, *after = hi. */
/* Three adjacent blocks of `size` among 64 allocated in a row, in any
 * order (a cache refill hands out a carved batch newest first).  The
 * others stay allocated.                                             */
static inline void *adjacent_triple_any(size_t size, void **before, void **after)
{
    char *x[64];
    for (int i = 0; i < 64; i++)
        x[i] = malloc(size);
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            if (!x[i] || next_mem(x[i]) != x[j])
                continue;
            for (int k = 0; k < 64; k++)
                if (x[j] && next_mem(x[j]) == x[k]) {
                    if (before)
                        *before = x[i];
                    if (after)
                        *after = x[k];
                    return x[j];
                }
        }
    setup_failed("no three adjacent blocks");
}

static inline void *adjacent_triple(size_t size, void **before, void **after)
{
    void *x[64];
    for (int i = 0; i < 64; i++) {
        x[i] = malloc(size);
        if (i < 2)
            continue;
        char *lo = x[i - 2], *mid = x[i - 1], *hi = x[i];
        if (lo > hi) {
            char *t = lo;
            lo = hi;
            hi = t;
        }
        if (next_mem(lo) == mid && next_mem(mid) == hi) {
            if (before)
                *before = lo;
            if (after)
                *after = hi;
            return mid;
        }
    }
    setup_failed("no three adjacent blocks");
}

/* A replayed header: a block of n bytes between two allocated ones,
 * its in-use header read while it is live (a leak), the block freed
 * into a bin by realloc (which moves it and frees the old chunk in the
 * arena, cache on; the moved block in *moved), then the header written
 * back over what the free left (a use-after-free write through a
 * neighbour's stale pointer).  Returns the block, free but with a
 * header that verifies as in use.                                   */
static inline void *replayed_in_bin(size_t n, void **moved)
{
    word *p = adjacent_triple_any(n, NULL, NULL);
    word live_hdr = p[-1];
    *moved = realloc(p, 100000);
    if (!*moved)
        setup_failed("realloc failed");
    if (p[-1] == live_hdr)
        setup_failed("the freed chunk's header did not change");
    p[-1] = live_hdr;                          /* the replay */
    return p;
}

/* Hand-offs between the threads of a child: a byte through a pipe. */
static inline void misuse_wait(int fd)
{
    char c;
    while (read(fd, &c, 1) < 0) {}
}
static inline void misuse_post(int fd)
{
    char c = 1;
    while (write(fd, &c, 1) < 0) {}
}

/* A second thread of the child, running fn(arg), and the two pipes of its
 * hand-offs (go: to it, done: from it). */
static inline pthread_t misuse_thread(void *(*fn)(void *), void *arg, int go[2], int done[2])
{
    pthread_t t;
    if (pipe(go) || pipe(done))
        setup_failed("pipe");
    if (pthread_create(&t, NULL, fn, arg))
        setup_failed("pthread_create");
    return t;
}

/* ---- the table and the runner --------------------------------------------- */
struct technique {
    const char *name;
    harness_fn fn;
    const char *desc;
    const char *msgs[8];   /* accepted messages, NULL-terminated */
    int blocked_ok;        /* MISUSE_BLOCKED counts as a pass    */
};

enum misuse_fate { F_CAUGHT, F_BLOCKED, F_EXPLOITED, F_OTHER };

/* The first line of s containing `needle`, copied to out. */
static inline void misuse_line(const char *s, const char *needle, char *out, size_t n)
{
    const char *p = strstr(s, needle);
    out[0] = '\0';
    if (!p)
        return;
    while (p > s && p[-1] != '\n')
        p--;
    size_t k = 0;
    while (p[k] && p[k] != '\n' && k + 1 < n) {
        out[k] = p[k];
        k++;
    }
    out[k] = '\0';
}

static inline enum misuse_fate misuse_run(const struct technique *t, char *what, size_t n)
{
    int st = harness_run_child(t->fn, NULL);
    const char *out = harness_child_output;
    char line[400];
    if (st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) {
        for (const char *const *m = t->msgs; *m; m++) {
            if (strstr(out, *m)) {
                misuse_line(out, *m, line, sizeof line);
                snprintf(what, n, "caught (%s)", line);
                return F_CAUGHT;
            }
        }
    }
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == MISUSE_EXPLOITED) {
        misuse_line(out, "EXPLOITED: ", line, sizeof line);
        snprintf(what, n, "EXPLOITED (%s)", line + (line[0] ? 11 : 0));
        return F_EXPLOITED;
    }
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == MISUSE_BLOCKED) {
        misuse_line(out, "BLOCKED: ", line, sizeof line);
        snprintf(what, n, "blocked (%s)", line + (line[0] ? 9 : 0));
        return t->blocked_ok ? F_BLOCKED : F_OTHER;
    }
    char how[128];
    harness_describe_status(st, how, sizeof how);
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        snprintf(how, sizeof how, "not detected, follow-up got nothing (exit 0)");
    else if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == MISUSE_SETUP)
        snprintf(how, sizeof how, "set-up failed");
    /* The first line of stderr says why. */
    size_t k = 0;
    while (out[k] && out[k] != '\n' && k + 1 < sizeof line) {
        line[k] = out[k];
        k++;
    }
    line[k] = '\0';
    snprintf(what, n, "otherwise: %s%s%s%s", how, k ? " [" : "", line, k ? "]" : "");
    return F_OTHER;
}

static inline int misuse_main(int argc, char **argv, const char *family,
                              const struct technique *tab, size_t ntab)
{
    harness_reexec_without_malloc_check(argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int summary = 0, ran = 0;
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < ntab; i++)
            printf("%-22s %-28s %s\n", family, tab[i].name, tab[i].desc);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--summary") == 0) {
        summary = 1;
        first = 2;
    }
    for (size_t i = 0; i < ntab; i++) {
        int selected = argc <= first;
        for (int a = first; a < argc; a++)
            if (strcmp(argv[a], tab[i].name) == 0)
                selected = 1;
        if (!selected)
            continue;
        ran++;
        char what[700];
        enum misuse_fate f = misuse_run(&tab[i], what, sizeof what);
        if (harness_verbose())
            fprintf(stderr, "--- %s/%s: child stderr:\n%s---\n", family, tab[i].name, harness_child_output);
        if (summary) {
            printf("%-16s %-28s %s\n", family, tab[i].name, what);
            continue;
        }
        char name[300];
        snprintf(name, sizeof name, "%s/%s: %s", family, tab[i].name, tab[i].desc);
        CHECKF(name, f == F_CAUGHT || f == F_BLOCKED, "\n  expected: abort with \"%s\"%s\n  observed: %s",
               tab[i].msgs[0], tab[i].msgs[1] ? " (or another accepted message)" : "", what);
    }
    if (ran == 0) {
        fprintf(stderr, "no such technique (see --list)\n");
        return 2;
    }
    return summary ? 0 : harness_finish();
}

#define MISUSE_MAIN(family, table)                                                   \
    int main(int argc, char **argv)                                                  \
    {                                                                                \
        return misuse_main(argc, argv, family, table, sizeof table / sizeof table[0]); \
    }

#endif
