/*
 * misuse_harden.c - use after free under the opt-in strong mode
 * (mallopt(M_TIDE_HARDEN, 1); TIDEMALLOC_HARDEN=1 does the same at start):
 * a write into a freed block must be reported when the block leaves the
 * quarantine, a forged cache link must not lead anywhere, and a double free
 * of a quarantined block is seen.  Without the mode (current main) these
 * go unnoticed or get exploited.  See misuse.h.
 */
#include "misuse.h"

#ifndef M_TIDE_HARDEN
#define M_TIDE_HARDEN (-1006)   /* tidemalloc.h; ignored by a build without it */
#endif

static void harden(void)
{
    mallopt(M_TIDE_HARDEN, 1);
}

/* The program goes on allocating and freeing; the freed block must never
 * come back while it holds the stray write. */
static void churn(const char *what, void *p, size_t n, size_t k)
{
    for (int i = 0; i < 20000; i++) {
        void *q = malloc(n);
        if (q == p && W(q)[k] == 0x4141414141414141ull)
            exploited("%s: the modified block %p came back from malloc", what, q);
        free(q);
    }
}

static void t_uaf_write(void *arg)
{
    (void)arg;
    harden();
    word *p = malloc(64);
    free(p);
    W(p)[3] = 0x4141414141414141ull;   /* a stray write after free */
    churn("write after free", p, 64, 3);
}

static _Alignas(16) word fake[8];
static void t_uaf_poison(void *arg)
{
    (void)arg;
    harden();
    word *a = malloc(40), *b = malloc(40);
    free(a);
    free(b);
    fake[1] = 0x30 | 1;
    W(b)[0] = mangle(&b[0], &fake[2]);
    for (int i = 0; i < 5000; i++) {
        void *m[4];
        for (int k = 0; k < 4; k++) {
            m[k] = malloc(40);
            check_target("cache poisoning under the strong mode", m[k], &fake[2], 32);
        }
        for (int k = 0; k < 4; k++)
            free(m[k]);
    }
}

static void t_double_free(void *arg)
{
    (void)arg;
    harden();
    void *p = malloc(200);
    free(p);
    free(harness_launder(p));
    void *a = malloc(200), *b = malloc(200);
    if (a && a == b)
        exploited("double free under the strong mode: malloc returned %p twice", a);
}

static void t_uaf_large(void *arg)
{
    (void)arg;
    harden();
    word *p = malloc(5000);
    free(p);
    W(p)[600] = 0x4141414141414141ull;
    churn("write after free (large block)", p, 5000, 600);
}

static const struct technique tab[] = {
    { "uaf_write", t_uaf_write, "strong mode: write into a freed 64-byte block, keep allocating",
      { "malloc(): freed chunk modified after free (use after free)" }, 0 },
    { "uaf_write_large", t_uaf_large, "strong mode: write into a freed 5000-byte block, keep allocating",
      { "malloc(): freed chunk modified after free (use after free)" }, 0 },
    { "uaf_poison", t_uaf_poison, "strong mode: mangled cache poisoning of a freed block",
      { "malloc(): freed chunk modified after free (use after free)", "malloc(): corrupted tcache link",
        "malloc(): unaligned tcache chunk detected" }, 0 },
    { "double_free", t_double_free, "strong mode: free(p) twice while p is in quarantine",
      { "free(): double free detected" }, 0 },
};

MISUSE_MAIN("harden", tab)
