/*
 * misuse_realloc.c - realloc of a pointer that was already freed: while it
 * sits in the thread cache, in a fast bin, in the unsorted bin, and in a
 * bin with its live header written back (a replay).  realloc
 * to a size of the same class hands it back; a malloc of that size then
 * hands it out a second time.  See misuse.h.
 */
#include "misuse.h"

static void freed(size_t n, int cache, const char *what)
{
    if (!cache)
        tide_test_no_tcache();
    void *p = n > 1032 && cache ? adjacent_triple_any(n, NULL, NULL) : adjacent_triple(n, NULL, NULL);
    free(p);
    void *r = realloc(harness_launder(p), n - 8);
    if (!r)
        return;
    for (int i = 0; i < 4; i++)
        check_overlap(what, malloc(n), n, r, n - 8);
}
static void t_tcache(void *arg) { (void)arg; freed(0x100, 1, "realloc of a cached chunk"); }
static void t_fast(void *arg) { (void)arg; freed(40, 0, "realloc of a fast-bin chunk"); }
static void t_unsorted(void *arg) { (void)arg; freed(0x500, 0, "realloc of an unsorted chunk"); }
static void t_medium(void *arg) { (void)arg; freed(0x500, 1, "realloc of a cached medium chunk"); }

/* Growing a freed chunk: realloc moves it and frees it once more. */
static void t_grow(void *arg)
{
    (void)arg;
    void *p = adjacent_triple(0x100, NULL, NULL);
    free(p);
    void *r = realloc(harness_launder(p), 0x2000);
    harness_sink(r);
    void *a = malloc(0x100), *b = malloc(0x100);
    if (a && a == b)
        exploited("realloc (grow) of a freed chunk: malloc returned %p twice", a);
    check_overlap("realloc (grow) of a freed chunk", a, 0x100, r, 0x2000);
}

/* A chunk freed into a bin with its in-use header written back
 * (replayed_in_bin, misuse.h), then realloc'd: the header verifies (it
 * was the allocator's own); the next chunk's P bit says it is free.
 * The follow-up: realloc hands the chunk back while it lies in a bin,
 * and a malloc of its size takes it from there.                      */
static void t_replayed(void *arg)
{
    (void)arg;
    size_t n = 0x100;
    void *moved, *p = replayed_in_bin(n, &moved);
    void *r = realloc(harness_launder(p), n - 8);
    if (!r)
        return;
    for (int i = 0; i < 4; i++)
        check_overlap("realloc of a binned chunk, header replayed", malloc(n), n, r, n - 8);
    harness_sink(moved);
}

static const struct technique tab[] = {
    { "freed_tcache", t_tcache, "free(p) (cache), realloc(p, same class), malloc(that size)",
      { "realloc(): invalid pointer (chunk is free)" }, 0 },
    { "freed_fast", t_fast, "cache off: free(p) (fast bin), realloc(p, same class), malloc",
      { "realloc(): invalid pointer (chunk is free)" }, 0 },
    { "freed_medium", t_medium, "free(p) of 0x500 (medium cache class), realloc(p, same class), malloc",
      { "realloc(): invalid pointer (chunk is free)" }, 0 },
    { "freed_unsorted", t_unsorted, "cache off: free(p) of 0x500 (unsorted), realloc(p, same class), malloc",
      { "realloc(): invalid pointer (chunk is free)" }, 0 },
    { "freed_grow", t_grow, "free(p) (cache), realloc(p, 0x2000), two mallocs",
      { "realloc(): invalid pointer (chunk is free)" }, 0 },
    { "replayed", t_replayed,
      "p freed into a bin, its in-use header (read while live) written back, realloc(p, same class), malloc",
      { "realloc(): invalid pointer (chunk is free)" }, 0 },
};

MISUSE_MAIN("realloc", tab)
