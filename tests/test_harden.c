/*
 * test_harden.c - unit tests of the default-mode hardening checks (issue
 * 11, docs/design.md "Hardening"): one scenario per check, each in a
 * forked child that must abort with the check's message; plus the
 * properties the checks rest on (the checksum catches every single-bit
 * change of size and flags and every state or address change; P is not
 * covered; links carry the secret; the secret page is read-only; fork
 * keeps headers valid).
 *
 * INTERNAL: links the static library and reads src/ (chunk.h), so that
 * it can name the keys when it needs a correctly keyed forgery.
 */
#define _GNU_SOURCE 1
#include "harness.h"
#include "tide_test.h"

#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunk.h"
#include "tidemalloc.h"

#if !TIDE_CHECKS
int main(void)
{
    CHECK("built without TIDE_CHECKS: nothing to test but this", 1);
    return harness_finish();
}
#else

typedef size_t word;
static word *W(void *p) { return harness_launder(p); }
static word size_of(void *p) { return W(p)[-1] & TM_SIZE_MASK; }


/* ---- ownership ---------------------------------------------------------- */
static char global_block[256] __attribute__((aligned(16)));

static void sc_free_stack(void *a)
{
    (void)a;
    word buf[8] __attribute__((aligned(16))) = { 0, 0, 0x41, 0, 0, 0, 0, 0 };
    free(harness_launder(&buf[2]));
}
static void sc_free_global(void *a)
{
    (void)a;
    W(global_block)[1] = 0x51;          /* a plausible header */
    free(harness_launder(global_block + 16));
}
static void sc_free_foreign_mmap(void *a)
{
    (void)a;
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(3);
    W(m)[1] = (1 << 20) | 2;            /* looks like an mmapped chunk */
    free(harness_launder(m + 16));
}
static void sc_realloc_stack(void *a)
{
    (void)a;
    word buf[8] __attribute__((aligned(16))) = { 0, 0, 0x41, 0, 0, 0, 0, 0 };
    harness_sink(realloc(harness_launder(&buf[2]), 100));
}
static void sc_usable_stack(void *a)
{
    (void)a;
    word buf[8] __attribute__((aligned(16))) = { 0, 0, 0x41, 0, 0, 0, 0, 0 };
    harness_sink((void *)malloc_usable_size(harness_launder(&buf[2])));
}

/* ---- headers ------------------------------------------------------------ */
static void sc_enlarge(void *a)
{
    (void)a;
    char *p = malloc(100), *q = malloc(100);
    W(p)[-1] += 0x100;                  /* size grows over q; checksum kept */
    free(p);
    harness_sink(q);
}
static void sc_shrink(void *a)
{
    (void)a;
    char *p = malloc(2000);
    W(p)[-1] -= 0x400;
    free(p);
}
static void sc_null_byte(void *a)
{
    (void)a;
    /* p's last byte overflows into q's size word's low byte. */
    char *p = malloc(0x108), *q = malloc(0x1f0);
    char *qs = (char *)&W(q)[-1];
    qs[0] = 0;                          /* size 0x200|P -> 0x200 or less */
    if (size_of(q) == 0x200)            /* only P cleared: make it bite */
        W(q)[-1] &= ~(word)0xff0;
    free(q);
    harness_sink(p);
}
static void sc_interior(void *a)
{
    (void)a;
    char *p = malloc(4000);
    memset(p, 0, 4000);
    W(p)[3] = 0x101;                    /* fake header 32 bytes in */
    free(p + 32);
}
static void sc_replayed_header(void *a)
{
    (void)a;
    /* A genuine header copied to another address does not verify there. */
    char *p = malloc(64);
    char *big = malloc(4000);
    W(big)[9] = W(p)[-1];               /* a 64-byte chunk's header inside big */
    free(big + 80);
}
static void sc_top_size(void *a)
{
    (void)a;
    tide_test_no_tcache();
    char *p = malloc(200);
    char *top = p + size_of(p);          /* p was split from top */
    W(top)[-1] = (word)-16 | 1;          /* House of Force */
    harness_sink(malloc(1 << 20));
    harness_sink(malloc(300));
}

/* ---- double frees ------------------------------------------------------- */
static void sc_double_free_bin(void *a)
{
    (void)a;
    tide_test_no_tcache();
    char *p = malloc(2000), *guard = malloc(2000);
    free(p);
    free(harness_launder(p));
    harness_sink(guard);
}
static void sc_double_free_fast_not_top(void *a)
{
    (void)a;
    tide_test_no_tcache();
    tide_test_fast_bins();
    char *p = malloc(40), *q = malloc(40), *guard = malloc(40);
    free(p);
    free(q);                             /* p is no longer the bin's top */
    free(harness_launder(p));
    harness_sink(guard);
}
static void sc_double_free_mmapped(void *a)
{
    (void)a;
    char *p = malloc(1 << 20);
    free(p);
    free(harness_launder(p));
}
static void sc_realloc_freed_bin(void *a)
{
    (void)a;
    tide_test_no_tcache();
    char *p = malloc(2000), *guard = malloc(2000);
    free(p);
    harness_sink(realloc(harness_launder(p), 3000));
    harness_sink(guard);
}
static void sc_realloc_freed_cached(void *a)
{
    (void)a;
    char *p = malloc(40), *guard = malloc(40);
    free(p);
    harness_sink(realloc(harness_launder(p), 100));
    harness_sink(guard);
}

/* Cross-thread: a chunk of the main arena freed by a thread of another
 * arena, flushed from its cache onto the main arena's remote list, and
 * freed again.                                                         */
#define NREM 80
static char *rem_blocks[NREM];
static void *remote_freer(void *a)
{
    (void)a;
    free(malloc(1));                     /* attach this thread to an arena of its own */
    for (int i = 0; i < NREM; i++)
        free(rem_blocks[i]);
    return NULL;
}
static void sc_double_free_remote(void *a)
{
    (void)a;
    /* No background thread: it would drain the remote list (and free the
     * chunk for real) while the main thread waits. */
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    for (int i = 0; i < NREM; i++)
        rem_blocks[i] = malloc(48);
    pthread_t t;
    pthread_create(&t, NULL, remote_freer, NULL);
    pthread_join(t, NULL);
    free(harness_launder(rem_blocks[0]));   /* the oldest: flushed first */
}
/* A chunk held in another (live) thread's cache, freed again. */
static char *cached_elsewhere;
static sem_t cached_sem, done_sem;
static void *cache_holder(void *a)
{
    (void)a;
    free(cached_elsewhere);              /* into this thread's cache */
    sem_post(&cached_sem);
    sem_wait(&done_sem);
    return NULL;
}
static void sc_double_free_other_cache(void *a)
{
    (void)a;
    sem_init(&cached_sem, 0, 0);
    sem_init(&done_sem, 0, 0);
    cached_elsewhere = malloc(40);
    pthread_t t;
    pthread_create(&t, NULL, cache_holder, NULL);
    sem_wait(&cached_sem);
    free(harness_launder(cached_elsewhere));
}

/* A block of `size` whose neighbours on both sides are in use (freeing it
 * merges with nothing), whatever free memory the heap held before. */
static char *isolated(size_t size)
{
    for (int i = 0; i < 64; i++) {
        char *b = malloc(size), *g = malloc(size);
        if ((W(b)[-1] & 1) && b + size_of(b) == g)
            return b;
    }
    fprintf(stderr, "test set-up: no isolated block of %zu bytes\n", size);
    _exit(5);
}
/* ---- links -------------------------------------------------------------- */
static void sc_tcache_glibc_mangled(void *a)
{
    (void)a;
    /* Safe-linking as glibc does it, to an aligned target in the heap: the
     * link also carries our secret, so it reveals to a wild address. */
    char *target = malloc(200);
    char *p = malloc(40), *q = malloc(40);
    free(p);
    free(q);                             /* q -> p */
    W(q)[0] = ((uintptr_t)q >> 12) ^ (uintptr_t)target;
    harness_sink(malloc(40));
    harness_sink(malloc(40));
}
static void sc_tcache_keyed_to_fake(void *a)
{
    (void)a;
    /* Even a correctly keyed link (the secret leaked) to a fake chunk with
     * a plausible header outside the heap is refused: not ours. */
    static word fake[8] __attribute__((aligned(16)));
    fake[1] = 0x41;
    char *p = malloc(40), *q = malloc(40);
    free(p);
    free(q);
    W(q)[0] = tm_protect_ptr(q, (uintptr_t)&fake[2]);
    harness_sink(malloc(40));
    harness_sink(malloc(40));
}
static void sc_tcache_keyed_to_live(void *a)
{
    (void)a;
    /* A correctly keyed link to a live heap chunk of the same class:
     * its header verifies, but it carries no cache key. */
    char *victim = malloc(40);
    char *p = malloc(40), *q = malloc(40);
    free(p);
    free(q);
    W(q)[0] = tm_protect_ptr(q, (uintptr_t)victim);
    harness_sink(malloc(40));
    harness_sink(malloc(40));
}
static void sc_fastbin_raw(void *a)
{
    (void)a;
    tide_test_no_tcache();
    tide_test_fast_bins();
    char *target = malloc(200);
    char *p = malloc(40), *q = malloc(40), *guard = malloc(40);
    free(p);
    free(q);
    W(q)[0] = (uintptr_t)target - 16;   /* a raw pointer, as before safe-linking */
    harness_sink(malloc(40));
    harness_sink(malloc(40));
    harness_sink(guard);
}
static void sc_fastbin_keyed_to_live(void *a)
{
    (void)a;
    tide_test_no_tcache();
    tide_test_fast_bins();
    char *victim = malloc(40);
    char *p = malloc(40), *q = malloc(40), *guard = malloc(40);
    free(p);
    free(q);
    tm_chunk *qc = (tm_chunk *)(q - 16);
    fastbin_link(qc, (tm_chunk *)(victim - 16));   /* keyed: the secret leaked */
    harness_sink(malloc(40));
    harness_sink(malloc(40));
    harness_sink(guard);
}
static void sc_unlink_forged(void *a)
{
    (void)a;
    tide_test_no_tcache();
    char *q = isolated(2000);
    char *g = q + size_of(q);            /* q's in-use neighbour */
    free(q);
    harness_sink(malloc(3000));                  /* sorts q into its bin */
    static word fake[8] __attribute__((aligned(16)));
    W(q)[0] = (uintptr_t)fake;           /* q->fd = a fake chunk outside the heap */
    free(g);                             /* coalesces with q: unlinks it */
}
static void sc_largebin_nextsize(void *a)
{
    (void)a;
    tide_test_no_tcache();
    char *p = isolated(0x500), *q = isolated(0x510);
    free(p);
    harness_sink(malloc(0x600));                 /* p into its large bin */
    free(q);
    W(p)[2] = (uintptr_t)global_block;   /* p->fd_nextsize forged */
    W(p)[3] = (uintptr_t)global_block;   /* p->bk_nextsize forged */
    harness_sink(malloc(0x600));                 /* sorting q follows p's nextsize links */
}
static void sc_mmapped_size(void *a)
{
    (void)a;
    char *p = malloc(1 << 20);
    W(p)[-1] += 1 << 20;                 /* as if twice as big: munmap too much */
    free(p);
}

static void sc_forged_sampled(void *a)
{
    (void)a;
    char *p = malloc(40);
    W(p)[-1] |= 0x8;                     /* the profiler's S bit, outside the checksum */
    free(p);                             /* no profiler record: refused */
}

/* ---- properties --------------------------------------------------------- */
static void check_checksum_properties(void)
{
    char *m = malloc(200);
    tm_chunk *p = mem2chunk(m);
    size_t w = size_word(p);
    CHECK("a fresh chunk's header verifies as in use", hdr_ok(p, w, TM_ST_INUSE));
    CHECK("... and as no other state", !hdr_ok(p, w, TM_ST_FREE) && !hdr_ok(p, w, TM_ST_FAST) &&
                                           !hdr_ok(p, w, TM_ST_TOP));
    int missed = 0;
    for (int b = 1; b < 48; b++)
        if (b != 3 && hdr_ok(p, w ^ ((size_t)1 << b), TM_ST_INUSE))
            missed++;
    CHECKF("every single-bit change of size and flags (bits 1, 2, 4..47) is caught", missed == 0,
           "%d bit flips verified", missed);
    CHECK("P (bit 0) is not covered", hdr_ok(p, w ^ 1, TM_ST_INUSE));
    CHECK("S (bit 3, the profiler's, set without the lock) is not covered",
          hdr_ok(p, w ^ TM_SAMPLED, TM_ST_INUSE));
    int moved = 0;
    for (int k = 1; k <= 64; k++)
        if (hdr_ok(chunk_at(p, 16 * (size_t)k), w, TM_ST_INUSE))
            moved++;
    CHECKF("the same header at 64 other addresses fails", moved == 0, "%d verified", moved);
    /* 2^16 random words: about one verifies by chance. */
    uint64_t x = 88172645463325252ull;
    int lucky = 0;
    for (int i = 0; i < 65536; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        lucky += hdr_ok(p, (size_t)x, TM_ST_INUSE);
    }
    CHECKF("random headers verify about 2^-16 of the time", lucky <= 8, "%d of 65536", lucky);
    free(m);
}

static void check_link_keyed(void)
{
    char slot[16] __attribute__((aligned(16)));
    uintptr_t glibc = (uintptr_t)slot >> 12;
    CHECK("a NULL link is not glibc's (slot >> 12): it carries the secret",
          tm_protect_ptr(slot, 0) != glibc);
    CHECK("protect twice reveals", tm_protect_ptr(slot, tm_protect_ptr(slot, 0x1230)) == 0x1230);
}

static void sc_write_secret(void *a)
{
    (void)a;
    free(malloc(1));
    ((volatile union tm_secret_page *)&tm_secret_page)->s.hdr_a ^= 1;
    abort();   /* only if the write went through */
}
static int child_signal(harness_fn fn)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        fn(NULL);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : -1;
}

static void check_fork_keeps_keys(void)
{
    char *blk[64];
    for (int i = 0; i < 64; i++)
        blk[i] = malloc(16 + 40 * (size_t)i);
    char *big = malloc(1 << 20);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 64; i++)
            free(blk[i]);
        free(big);
        tide_check_heap();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF("a fork child frees its parent's chunks (keys unchanged)",
           WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    for (int i = 0; i < 64; i++)
        free(blk[i]);
    free(big);
}

static void sc_check_heap_sees_checksum(void *a)
{
    (void)a;
    tide_test_no_tcache();
    char *p = malloc(2000), *guard = malloc(2000);
    free(p);
    W(p)[-1] ^= (word)1 << 50;           /* checksum bit of a free chunk in a bin */
    tide_check_heap();
    harness_sink(guard);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    free(malloc(1));                     /* initialize */

    CHECK_ABORT("free of a stack pointer", sc_free_stack, NULL,
                "free(): invalid pointer (not a chunk of this heap)");
    CHECK_ABORT("free of a global", sc_free_global, NULL,
                "free(): invalid pointer (not a chunk of this heap)");
    CHECK_ABORT("free of another mapping (fake mmapped header)", sc_free_foreign_mmap, NULL,
                "free(): invalid pointer (not a chunk of this heap)");
    CHECK_ABORT("realloc of a stack pointer", sc_realloc_stack, NULL,
                "realloc(): invalid pointer (not a chunk of this heap)");
    CHECK_ABORT("malloc_usable_size of a stack pointer", sc_usable_stack, NULL,
                "malloc_usable_size(): invalid pointer (not a chunk of this heap)");

    /* A forged header fails its in-use checksum; free then names the
     * state whose checksum the word matches, if any - a chance of about
     * 2^-16 for each of the other four states (FREE, FAST, CACHED, TOP),
     * which names the forgery a double free (seen once in CI: "free():
     * double free detected" for the enlarged size).  The abort is what
     * these check; the name is the header's, as free reads it.       */
#define CHECK_ABORT_HDR(name, fn)                                                                  \
    CHECK_ABORT_ANY(name, fn, NULL, "free(): corrupted chunk header", "free(): double free detected", \
                    "double free or corruption (top)")
    CHECK_ABORT_HDR("enlarged size, then free", sc_enlarge);
    CHECK_ABORT_HDR("shrunk size, then free", sc_shrink);
    CHECK_ABORT_HDR("null byte into the next size, then free of it", sc_null_byte);
    CHECK_ABORT_HDR("interior free with a fake header", sc_interior);
    CHECK_ABORT_HDR("genuine header replayed at another address", sc_replayed_header);
    CHECK_ABORT_ANY("size after a block overwritten (top, or a remainder)", sc_top_size, NULL,
                    "malloc(): corrupted top size", "malloc(): corrupted chunk header");

    CHECK_ABORT("double free of a binned chunk", sc_double_free_bin, NULL,
                "free(): double free detected");
    CHECK_ABORT("double free of a fast chunk not at its bin's top", sc_double_free_fast_not_top, NULL,
                "free(): double free detected");
    CHECK_ABORT("double free of an mmapped chunk", sc_double_free_mmapped, NULL,
                "free(): invalid pointer (not a chunk of this heap)");
    CHECK_ABORT("realloc of a freed (binned) pointer", sc_realloc_freed_bin, NULL,
                "realloc(): invalid pointer (chunk is free)");
    CHECK_ABORT("realloc of a freed (cached) pointer", sc_realloc_freed_cached, NULL,
                "realloc(): invalid pointer (chunk is free)");
    CHECK_ABORT("double free of a chunk parked on a remote list", sc_double_free_remote, NULL,
                "free(): double free detected (remote list)");
    CHECK_ABORT("double free of a chunk in another thread's cache", sc_double_free_other_cache, NULL,
                "free(): double free detected");

    CHECK_ABORT_ANY("tcache link mangled the glibc way", sc_tcache_glibc_mangled, NULL,
                    "malloc(): corrupted tcache link", "malloc(): unaligned tcache chunk detected");
    CHECK_ABORT("keyed tcache link to a fake chunk outside the heap", sc_tcache_keyed_to_fake, NULL,
                "malloc(): corrupted tcache link");
    CHECK_ABORT("keyed tcache link to a live chunk", sc_tcache_keyed_to_live, NULL,
                "malloc(): corrupted tcache link");
    CHECK_ABORT_ANY("raw fast-bin link", sc_fastbin_raw, NULL, "malloc(): corrupted fastbin link",
                    "malloc(): unaligned fastbin chunk detected");
    CHECK_ABORT("keyed fast-bin link to a live chunk", sc_fastbin_keyed_to_live, NULL,
                "malloc(): corrupted fastbin link");
    CHECK_ABORT("forged fd of a binned chunk, then unlink", sc_unlink_forged, NULL,
                "corrupted double-linked list");
    CHECK_ABORT("forged large-bin nextsize links", sc_largebin_nextsize, NULL,
                "malloc(): largebin double linked list corrupted (nextsize)");
    CHECK_ABORT("forged S bit (not covered by the checksum) on a chunk never sampled",
                sc_forged_sampled, NULL, "free(): invalid size");
    CHECK_ABORT("mmapped chunk's size overwritten", sc_mmapped_size, NULL,
                "munmap_chunk(): invalid pointer");
    CHECK_ABORT("tide_check_heap verifies checksums", sc_check_heap_sees_checksum, NULL,
                "checksum does not match");

    check_checksum_properties();
    check_link_keyed();
    CHECKF("the secret page is read-only after initialization", child_signal(sc_write_secret) == SIGSEGV,
           "child ended by signal %d", child_signal(sc_write_secret));
    check_fork_keeps_keys();
    CHECK("tide_check_heap passes on an intact heap", tide_check_heap() > 0);
    return harness_finish();
}
#endif
