/*
 * misuse_interior.c - frees of pointers into the middle of a live block:
 * with a fake header the attacker wrote inside the block (the follow-up
 * malloc must not return memory overlapping the live block), with the
 * block's own data as header, and misaligned.  See misuse.h.
 */
#include "misuse.h"

/* Live block A of 0x200 bytes; a fake chunk of 0x100 at A+0x40 with a sane
 * next chunk; free(A+0x50) and malloc(0xf8) until it comes back. */
static void interior(int cached)
{
    if (!cached)
        tide_test_no_tcache();
    word *a = malloc(0x200);
    word *guard = malloc(0x40);
    memset(a, 'A', 0x200);
    word *f = a + 0x40 / 8;                  /* fake chunk */
    f[0] = 0;
    f[1] = 0x100 | 1;
    f[0x100 / 8] = 0x100;
    f[0x100 / 8 + 1] = 0x20 | 1;             /* a minimal next chunk, in A too */
    f[0x120 / 8 + 1] = 0x20 | 1;
    free(harness_launder(f + 2));
    for (int i = 0; i < 80; i++)
        check_overlap("interior free with a fake header", malloc(0xf8), 0xf8, a, 0x200);
    harness_sink(guard);
}
static void t_fake_header(void *arg) { (void)arg; interior(1); }
static void t_fake_header_bins(void *arg) { (void)arg; interior(0); }

/* 16 bytes in: the header is whatever the program stored there. */
static void t_plain(void *arg)
{
    (void)arg;
    word *a = malloc(0x200);
    for (int i = 0; i < 0x200 / 8; i++)
        a[i] = 0x41;                         /* "size" 0x41: class 0x40 */
    free(harness_launder(a + 2));
    for (int i = 0; i < 80; i++)
        check_overlap("interior free of program data", malloc(0x38), 0x38, a, 0x200);
}

static void t_misaligned8(void *arg)
{
    (void)arg;
    char *a = malloc(0x200);
    memset(a, 0, 0x200);
    free(harness_launder(a + 8));
}

static void t_misaligned1(void *arg)
{
    (void)arg;
    char *a = malloc(0x200);
    memset(a, 0, 0x200);
    free(harness_launder(a + 1));
}

static void t_realloc_interior(void *arg)
{
    (void)arg;
    word *a = malloc(0x200);
    memset(a, 0, 0x200);
    a[0x40 / 8 + 1] = 0x100 | 1;
    void *r = realloc(harness_launder(a + 0x40 / 8 + 2), 0x180);
    if (r && overlap(r, 0x180, a, 0x200))
        exploited("realloc of an interior pointer returned %p inside the live block %p", r, (void *)a);
    for (int i = 0; i < 80; i++)
        check_overlap("realloc of an interior pointer", malloc(0xf8), 0xf8, a, 0x200);
}

static const struct technique tab[] = {
    { "fake_header_tcache", t_fake_header, "free(A+0x50) with a fake 0x100 header inside live A, then malloc(0xf8)",
      { "free(): corrupted chunk header", "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "fake_header_bins", t_fake_header_bins, "the same with the thread cache off (bins)",
      { "free(): corrupted chunk header", "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "program_data_header", t_plain, "free(A+16) where A's data reads as a size",
      { "free(): corrupted chunk header", "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "misaligned_8", t_misaligned8, "free(A+8)", { "free(): invalid pointer" }, 0 },
    { "misaligned_1", t_misaligned1, "free(A+1)", { "free(): invalid pointer" }, 0 },
    { "realloc_interior", t_realloc_interior, "realloc(A+0x50) with a fake header inside live A",
      { "realloc(): corrupted chunk header", "realloc(): invalid pointer (not a chunk of this heap)" }, 0 },
};

MISUSE_MAIN("interior", tab)
