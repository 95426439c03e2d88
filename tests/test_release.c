/*
 * test_release.c - free pages inside the heap go back to the system.
 *
 * Every scenario pins its free memory under a live block (so no trim from
 * the top could return it: the seed-002 situation) and measures VmRSS, not
 * time: decay 0 releases at once, decay -1 never (until malloc_trim), the
 * default releases after its decay time while the program keeps calling
 * malloc, and the background thread does it while the program is idle.
 * Released memory reads back as zero (calloc skips zeroing it) and stays
 * usable; the checker verifies the release accounting after every step;
 * a fork child of a process with released pages allocates normally.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "arena.h"
#include "bins.h"
#include "heap.h"
#include "internal.h"
#include "engine.h"
#include "observe.h"
#include "os.h"
#include "sysmem.h"
#include "tidemalloc.h"

#define CHK() CHECK("tide_check_heap", tide_check_heap() > 0)
#define MiB (1024 * 1024)
enum { NBLK = 48 };                 /* 48 x 1 MiB blocks, each pinned */

struct pinned { char *blk[NBLK]; char *pin[NBLK]; };

static void fill(struct pinned *s)
{
    for (int k = 0; k < NBLK; k++) {
        s->blk[k] = malloc(MiB);
        s->pin[k] = malloc(20000);  /* above the cache classes: from the arena, right after */
        memset(s->blk[k], 0x77, MiB);
    }
}
static void free_blocks(struct pinned *s)
{
    for (int k = 0; k < NBLK; k++)
        free(s->blk[k]);
}
static void free_pins(struct pinned *s)
{
    for (int k = 0; k < NBLK; k++)
        free(s->pin[k]);
}
static long rss(void) { return harness_vm_rss_kb(); }
static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}
/* Activity that reaches the arena (64 KiB blocks bypass the thread cache). */
static void activity(int n)
{
    for (int k = 0; k < n; k++)
        free(malloc(64 * 1024));
}

static void test_decay_zero(void)
{
    mallopt(TIDE_M_DECAY_MS, 0);
    struct pinned s;
    fill(&s);
    long before = rss();
    free_blocks(&s);
    long after = rss();
    CHECKF("decay 0: RSS drops at once by ~48 MiB", before - after > 40 * 1024, "%ld -> %ld kB",
           before, after);
    struct tide_stats st;
    tide_get_stats(&st);
    CHECKF("decay 0: stats report the released bytes", st.released_bytes > 40u * MiB, "%zu",
           st.released_bytes);
    CHECK("free resident + released = free", st.free_resident_bytes + st.released_bytes == st.free_bytes);
    /* malloc_stats and malloc_info say so too. */
    struct harness_capture cap;
    char out[8192];
    harness_capture_fd_begin(&cap, 2);
    malloc_stats();
    harness_capture_fd_end(&cap, out, sizeof out);
    const char *r = strstr(out, "released bytes   = ");
    unsigned long rel = r ? strtoul(r + 19, NULL, 10) : 0;
    CHECKF("malloc_stats reports the released bytes", rel > 40ul * MiB, "%s", out);
    FILE *f = tmpfile();
    malloc_info(0, f);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    fclose(f);
    r = strstr(out, "</heap>\n<total type=\"fast\"");
    static const char tag[] = "<total type=\"released\" size=\"";
    r = r ? strstr(r, tag) : NULL;
    rel = r ? strtoul(r + sizeof tag - 1, NULL, 10) : 0;
    CHECKF("malloc_info reports the released bytes", rel > 40ul * MiB, "%.300s", r ? r : out);
    CHK();
    /* Reuse: calloc from released pages is zero; malloc'd memory usable. */
    bool zero = true, ok = true;
    for (int k = 0; k < NBLK; k++) {
        char *z = calloc(1, MiB);
        for (size_t i = 0; i < MiB; i += 512)
            zero = zero && z[i] == 0 && z[i + 511] == 0;
        memset(z, k, MiB);
        ok = ok && z[MiB - 1] == (char)k;
        s.blk[k] = z;
    }
    CHECK("calloc over released pages reads zero", zero);
    CHECK("reused released pages hold new data", ok);
    CHK();
    free_blocks(&s);
    free_pins(&s);
    CHK();
}

static void test_decay_never(void)
{
    mallopt(TIDE_M_DECAY_MS, -1);
    struct pinned s;
    fill(&s);
    long before = rss();
    free_blocks(&s);
    activity(2000);
    sleep_ms(100);
    activity(2000);
    long after = rss();
    CHECKF("decay -1: nothing released, however much activity", before - after < 8 * 1024,
           "%ld -> %ld kB", before, after);
    CHK();
    CHECK("malloc_trim(0) releases it and returns 1", malloc_trim(0) == 1);
    long trimmed = rss();
    CHECKF("malloc_trim(0): RSS drops by ~48 MiB", after - trimmed > 40 * 1024, "%ld -> %ld kB",
           after, trimmed);
    CHK();
    free_pins(&s);
    mallopt(TIDE_M_DECAY_MS, 1000);
}

static void test_decay_default(void)
{
    mallopt(TIDE_M_DECAY_MS, 1000);
    struct pinned s;
    fill(&s);
    /* A little free memory (2 MiB of 48) stays under the cap on resident
     * free memory: it waits for the decay time, then goes back while the
     * program keeps running (4 decay times: the loop below keeps the
     * arena busy, test_busy_decay).                                    */
    long before = rss();
    free(s.blk[0]);
    free(s.blk[1]);
    long right_after = rss();
    CHECKF("default decay, under the cap: not released at once", before - right_after < 1024,
           "%ld -> %ld kB", before, right_after);
    long now = right_after;
    for (int round = 0; round < 800 && right_after - now < 1536; round++) {
        activity(20);
        sleep_ms(10);
        now = rss();
    }
    CHECKF("default decay, under the cap: released while the program runs", right_after - now >= 1536,
           "%ld -> %ld kB", right_after, now);
    CHK();
    /* Freeing the other 46 MiB goes over the cap (an eighth of what stays
     * in use, at least 4 MiB): released at the free itself, with no
     * later call needed.                                                */
    before = rss();
    for (int k = 2; k < NBLK; k++)
        free(s.blk[k]);
    long after = rss();
    CHECKF("default decay, over the cap: released at once", before - after > 38 * 1024,
           "%ld -> %ld kB", before, after);
    CHK();
    free_pins(&s);
}

/* Frees in another thread's arena are released by this thread's activity:
 * idle arenas decay too. */
static struct pinned other;
static void *other_thread(void *arg)
{
    (void)arg;
    fill(&other);
    free_blocks(&other);
    return NULL;
}

static void test_idle_arena(void)
{
    mallopt(TIDE_M_DECAY_MS, 200);
    pthread_t t;
    long before = rss();
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    long mid = rss();
    long now = mid;
    /* The thread freed ~48 MiB in its own arena and exited: those pages
     * come back, at its frees (the cap on resident free memory), through
     * the background thread, or through this thread's activity.        */
    for (int round = 0; round < 500 && now - before > 8 * 1024; round++) {
        activity(20);
        sleep_ms(10);
        now = rss();
    }
    CHECKF("an idle arena's free pages are released (RSS back within 8 MiB of before)",
           now - before <= 8 * 1024, "before %ld, after the thread %ld, now %ld kB", before, mid, now);
    CHK();
    free_pins(&other);
    mallopt(TIDE_M_DECAY_MS, 1000);
}

static void test_background(void)
{
    mallopt(TIDE_M_DECAY_MS, 200);
    CHECK("background thread on", mallopt(TIDE_M_BACKGROUND_THREAD, 1) == 1);
    free(malloc(100 * 1024));       /* an arena call starts the thread */
    struct pinned s;
    fill(&s);
    long before = rss();
    free_blocks(&s);
    long now = before;
    for (int round = 0; round < 100 && before - now < 40 * 1024; round++) {
        sleep_ms(50);                /* no allocator call at all */
        now = rss();
    }
    CHECKF("background thread releases while the program is idle", before - now > 40 * 1024,
           "%ld -> %ld kB", before, now);
    CHK();
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    free_pins(&s);
    mallopt(TIDE_M_DECAY_MS, 1000);
}

/* The arena's last thread exits while the background thread runs: the cap
 * waits for the decay (the next thread to take the arena over reuses the
 * memory instead of faulting it back); the background thread gives it
 * back after the decay with no allocator call.  Without the background
 * thread an exit defers nothing.                                       */
static struct pinned exiting;
static tm_arena *exiting_arena;
static void *exiting_thread(void *arg)
{
    (void)arg;
    fill(&exiting);
    exiting_arena = tm_thread_arena();
    return NULL;
}
/* Read or clear the arena's deadline under its lock (the background
 * thread works on idle arenas too).                                    */
static uint64_t defer_of(tm_arena *av, bool clear)
{
    tm_arena_enter_owner(av);
    uint64_t d = av->cap_defer_until;
    if (clear)
        av->cap_defer_until = 0;
    tm_arena_unlock(av);
    return d;
}
static void test_exit_deferred(void)
{
    mallopt(TIDE_M_DECAY_MS, 1500);
    CHECK("background thread on", mallopt(TIDE_M_BACKGROUND_THREAD, 1) == 1);
    free(malloc(100 * 1024));
    pthread_t t;
    pthread_create(&t, NULL, exiting_thread, NULL);
    pthread_join(t, NULL);
    tm_arena *av = exiting_arena;
    CHECK("the exit of an arena's last thread defers its cap",
          av && av != &tm_main_arena && defer_of(av, false) != 0);
    long before = rss();
    free_blocks(&exiting);          /* 48 MiB into that arena, pinned */
    long after = rss();
    CHECKF("... so its frees are not released at once", before - after < 24 * 1024,
           "%ld -> %ld kB", before, after);
    long now = after;
    for (int round = 0; round < 160 && before - now < 40 * 1024; round++) {
        sleep_ms(50);                /* no allocator call at all */
        now = rss();
    }
    CHECKF("... and the background thread releases them after the decay",
           before - now > 40 * 1024, "%ld -> %ld kB", before, now);
    CHK();
    free_pins(&exiting);
    /* no background thread: nothing deferred */
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    defer_of(av, true);
    pthread_create(&t, NULL, exiting_thread, NULL);
    pthread_join(t, NULL);
    CHECK("without the background thread an exit defers nothing",
          exiting_arena && defer_of(exiting_arena, false) == 0);
    free_blocks(&exiting);
    free_pins(&exiting);
    CHK();
    mallopt(TIDE_M_DECAY_MS, 1000);
}

static void test_fork_after_release(void)
{
    mallopt(TIDE_M_DECAY_MS, 0);
    struct pinned s;
    fill(&s);
    free_blocks(&s);
    pid_t pid = fork();
    if (pid == 0) {
        struct pinned c;
        fill(&c);
        free_blocks(&c);
        free_pins(&c);
        char *z = calloc(4, MiB);
        int bad = 0;
        for (size_t i = 0; i < 4u * MiB; i += 4096)
            bad += z[i] != 0;
        free(z);
        tide_check_heap();
        _exit(bad ? 3 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF("fork child allocates over released pages", WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "status 0x%x", st);
    free_pins(&s);
    mallopt(TIDE_M_DECAY_MS, 1000);
    CHK();
}

/* The cap counts the top's bytes beyond its pad as releasable, not as
 * "other": a big free top (not trimmed: trim threshold -1 here; a top
 * that churns, or one under a dynamic trim threshold of 64 MiB) must not
 * raise the loose cap (four times the other bytes) over the free chunks
 * below it.  wl_realloc's end kept 110 MiB of free chunks under a 31 MiB
 * top until the background thread's decay, while the cap's inline test
 * counted the top as other.  arg: 1 with the background thread, 0
 * without.  (A forked child: fresh arena state, its own mallopts.)   */
static void cap_big_top_child(void *arg)
{
    bool bg = arg != NULL;
    mallopt(TIDE_M_DECAY_MS, 600000);         /* nothing goes back by time */
    mallopt(TIDE_M_BACKGROUND_THREAD, bg ? 1 : 0);
    mallopt(M_TRIM_THRESHOLD, -1);            /* the top stays */
    free(malloc(20000));                      /* (an arena malloc starts the thread) */
    struct pinned s;
    fill(&s);                                 /* 48 x 1 MiB, each pinned */
    enum { NTOP = 8 };
    char *t[NTOP];
    for (int k = 0; k < NTOP; k++) {
        t[k] = malloc(4 * MiB);
        if (t[k])
            memset(t[k], 0x55, 4 * MiB);
    }
    for (int k = NTOP - 1; k >= 0; k--)
        free(t[k]);                           /* into the top: 32 MiB resident */
    tm_arena *av = &tm_main_arena;
    CHECKF("a free top of 32 MiB", chunksize(av->top) >= 32u * MiB, "%zu", chunksize(av->top));
    CHECK("the background thread as asked", atomic_load(&tm_bg_active) == bg);
    long before = rss();
    free_blocks(&s);                          /* 48 MiB of free chunks below the top */
    long after = rss();
    CHECKF("the cap gives the top and the free chunks back at once (>= 64 MiB of RSS)",
           after <= before - 64 * 1024, "%ld -> %ld kB", before, after);
    CHK();
    free_pins(&s);
    CHK();
    _exit(harness_finish());
}
static void test_cap_big_top(void)
{
    CHECK_EXIT("a big free top does not raise the cap (background thread)", cap_big_top_child,
               (void *)1, 0);
    CHECK_EXIT("a big free top does not raise the cap (no background thread)", cap_big_top_child,
               NULL, 0);
}

/* The parent made no allocation before it forked (main's mallopt is
 * not one, and this runs first): the child's first malloc counts the
 * forking thread as its first thread, not as a second (control.c
 * fork_child).  Before 2026-12-07 such a child was taken for
 * multi-threaded and started the background thread at once.         */
static void fork_first_child(void *arg)
{
    (void)arg;
    CHECK("the fork child has not counted a thread yet", !atomic_load(&tm_multi_threaded));
    free(malloc(100));
    free(malloc(100000));
    CHECK("its first allocations count one thread: not multi-threaded, no background thread",
          !atomic_load(&tm_multi_threaded) && !atomic_load(&tm_bg_active));
    _exit(harness_finish());
}
static void test_fork_first(void)
{
    CHECK_EXIT("a fork child of a process that had not allocated is single-threaded", fork_first_child,
               NULL, 0);
}

/* A single-threaded program whose drains are each shallower than
 * TM_SOLO_DRAIN_BYTES gets no background thread from them, and the
 * strict cap then releases at the frees of every later round; once it
 * has released that much in all, the thread is wanted as for one deep
 * drain (release.h tm_release_solo_note; wl_realloc's first 150 ms).
 * Early in main: one arena, little inherited.  Pinned 1 MiB blocks,
 * so the freed ones stay chunks in the bins (no trim of the top).     */
static void solo_rounds_child(void *arg)
{
    (void)arg;
    mallopt(TIDE_M_DECAY_MS, 1000);
    mallopt(TIDE_M_BACKGROUND_THREAD, TM_BG_AUTO);
    enum { DEEP = 14, ROUND = 5 };         /* MiB: 14 < 16, and 5 > the 4 MiB strict cap */
    char *blk[DEEP], *pin[DEEP];
    for (int k = 0; k < DEEP; k++) {
        blk[k] = malloc(MiB);
        pin[k] = malloc(20000);
        memset(blk[k], 0x5a, MiB);
    }
    struct tide_stats a, b;
    tide_get_stats(&a);
    for (int k = 0; k < DEEP; k++)
        free(blk[k]);
    tide_get_stats(&b);
    CHECKF("a 14 MiB drain: the strict cap releases at free time", b.madvise_calls > a.madvise_calls,
           "%zu -> %zu madvise calls", a.madvise_calls, b.madvise_calls);
    CHECK("a 14 MiB drain starts no background thread", !atomic_load(&tm_bg_active));
    int rounds = 0;
    for (; rounds < 8 && !atomic_load(&tm_bg_active); rounds++) {
        for (int k = 0; k < ROUND; k++) {
            blk[k] = malloc(MiB);
            memset(blk[k], 0x5b, MiB);
        }
        for (int k = 0; k < ROUND; k++)
            free(blk[k]);
    }
    tide_get_stats(&b);
    CHECKF("16 MiB released at free time in all: the background thread runs", atomic_load(&tm_bg_active),
           "after %d rounds of %d MiB, %zu madvise calls", rounds, ROUND, b.madvise_calls - a.madvise_calls);
    CHK();
    for (int k = 0; k < DEEP; k++)
        free(pin[k]);
    CHK();
    _exit(harness_finish());
}
static void test_solo_rounds(void)
{
    CHECK_EXIT("shallow drains that release 16 MiB in all start the background thread", solo_rounds_child,
               NULL, 0);
}

/* A busy arena keeps its free chunks for TM_BUSY_DECAY_MULT decay times,
 * a quiet one for one (arena.c purge): a server under load that frees
 * a block reuses its pages soon, and gave them back only to fault them
 * in again (wl_seed002's load).  Driven by tm_arenas_decay, the
 * background thread's pass, at chosen clock values, so that the test
 * does not depend on how fast the machine runs: decay 60 s, so no real
 * tick purges meanwhile.  (A forked child: fresh arena state.)        */
static void busy_decay_child(void *arg)
{
    (void)arg;
    const uint64_t decay = 60000;
    mallopt(TIDE_M_DECAY_MS, (int)decay);
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    struct pinned s;
    fill(&s);
    /* A window closes at tw for certain (it began at a clock reading
     * of the past, inherited or not, at most t0) and a new one starts:
     * nothing of ours is free yet.                                    */
    uint64_t t0 = tm_os_now_ms(), step = decay / 4;
    uint64_t tw = t0 + step;
    tm_arenas_decay(tw);
    struct tide_stats st;
    tide_get_stats(&st);
    size_t r0 = st.released_bytes;
    free(s.blk[0]);                        /* 2 MiB: under the cap */
    free(s.blk[1]);
    /* Busy: 2 lock sections per call, 60000 in all over the next
     * window's decay + 1 ms: 1000 a second, twice TM_BUSY_RATE.      */
    activity(30000);
    uint64_t t2 = tw + decay + 1;          /* the chunks are older than the decay */
    tm_arenas_decay(t2);
    tide_get_stats(&st);
    CHECKF("a busy arena keeps chunks older than the decay time", st.released_bytes - r0 < MiB,
           "%zu bytes released", st.released_bytes - r0);
    CHK();
    /* Quiet for a window: the decay time applies again. */
    tm_arenas_decay(t2 + step);
    tide_get_stats(&st);
    CHECKF("the arena gone quiet releases them", st.released_bytes - r0 >= 3 * MiB / 2,
           "%zu bytes released", st.released_bytes - r0);
    CHK();
    free_pins(&s);
    for (int k = 2; k < NBLK; k++)
        free(s.blk[k]);
    CHK();
    _exit(harness_finish());
}
static void test_busy_decay(void)
{
    CHECK_EXIT("a busy arena's free chunks wait longer than a quiet one's", busy_decay_child, NULL, 0);
}

/* Churn never makes a system call per free with the default decay: page
 * release is amortized (an arena looks at most every decay/4).  In the
 * default thread mode (the tests before turned the thread off).  (Not
 * counted: brk.  After the deep drains of the tests before, a churn at
 * the top of the main heap trims it and grows it again every round -
 * 1400-2900 brk calls here, before 2026-12-07 too; a deeply drained
 * arena trims at once, sysmem.c trim_deferred, as glibc does past its
 * trim threshold.)                                                    */
static void test_no_syscall_storm(void)
{
    mallopt(TIDE_M_DECAY_MS, 1000);
    mallopt(TIDE_M_BACKGROUND_THREAD, TM_BG_AUTO);
    struct tide_stats a, b;
    tide_get_stats(&a);
    for (int r = 0; r < 200; r++) {
        void *p[100];
        for (int k = 0; k < 100; k++)
            p[k] = malloc(16 + (size_t)k * 400);
        for (int k = 0; k < 100; k++)
            free(p[k]);
    }
    tide_get_stats(&b);
    CHECKF("20000 malloc/free of 16 B-40 KiB: a handful of madvise at most",
           b.madvise_calls - a.madvise_calls <= 16, "%zu -> %zu", a.madvise_calls, b.madvise_calls);
}

/* The periodic summaries walk at most TM_OBS_WALK_MAX free chunks per
 * arena (observe.c): one taken while a program freed a million small
 * blocks held the arena lock for 82 ms.  Beyond the limit the totals come
 * from the counters: the fast bytes exactly, the free bytes as system -
 * in use - fast, which counts fenceposts and heap headers as free.     */
static void test_bounded_summary(void)
{
    enum { N = 20000 };                  /* 20000 x 32 B: below the fast cap */
    static void *m[N];
    tm_arena *av = &tm_main_arena;
    free(malloc(1));
    mallopt(M_MXFAST, 128);              /* (off by default: config.h) */
    tm_arena_enter_owner(av);
    for (int k = 0; k < N; k++)
        m[k] = tm_int_malloc(av, 32, NULL);
    for (int k = 0; k < N; k += 2)       /* every other: no neighbours merge later */
        if (m[k])
            tm_int_free(av, mem2chunk(m[k]));
    struct tm_arena_figures exact, est;
    bool full = tm_obs_gather(av, &exact, SIZE_MAX);
    bool cut = !tm_obs_gather(av, &est, 1000);
    for (int k = 1; k < N; k += 2)
        if (m[k])
            tm_int_free(av, mem2chunk(m[k]));
    tm_arena_unlock(av);
    CHECKF("enough fast chunks to cut the walk", exact.fast_count >= N / 2, "%zu", exact.fast_count);
    CHECK("no limit: the walk is whole", full);
    CHECK("a limit below the chunks: the walk is cut", cut);
    CHECKF("cut: the fast bytes from the counter, exact", est.fast_bytes == exact.fast_bytes,
           "%zu vs %zu", est.fast_bytes, exact.fast_bytes);
    CHECKF("cut: free bytes at least the walked figure, within 1 MiB of it",
           est.free_bytes >= exact.free_bytes && est.free_bytes - exact.free_bytes <= MiB,
           "%zu vs %zu", est.free_bytes, exact.free_bytes);
    CHECK("cut: system, top and released as walked", est.system == exact.system && est.top == exact.top &&
          est.released == exact.released);
    CHECK("heap consistent", tide_check_heap() > 0);
    mallopt(M_MXFAST, 0);                /* (back to the default) */
}

/* A release the kernel refuses must still leave the range reading as
 * zero: calloc skips zeroing released interiors.  MADV_DONTNEED fails on
 * locked pages, so under mlockall(MCL_FUTURE) every release failed and
 * calloc returned a block holding the bytes freed there (tm_os_release
 * now zeroes what it could not give back).  After TM_OS_RELEASE_REFUSALS
 * refusals the library stops trying.  In a child: mlockall is for the
 * whole process.                                                       */
static void release_refused_child(void *arg)
{
    (void)arg;
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        _exit(77);
    mallopt(TIDE_M_DECAY_MS, 0);              /* every big free releases at once */
    enum { N = 16, SZ = 60000, ROUNDS = 4 };
    static char *b[N], *pin[N];
    int bad = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < N; i++) {
            b[i] = malloc(SZ);
            pin[i] = malloc(32);              /* keeps each block's chunk off the top */
            if (b[i])
                memset(b[i], 0xaa, SZ);
        }
        for (int i = 0; i < N; i++)
            free(b[i]);
        for (int i = 0; i < N; i++) {
            unsigned char *c = calloc(1, SZ);
            for (size_t k = 0; c && k < SZ; k++)
                if (c[k]) {
                    bad++;
                    break;
                }
            b[i] = (char *)c;
        }
        for (int i = 0; i < N; i++) {
            free(b[i]);
            free(pin[i]);
        }
    }
    unsigned long refused = atomic_load(&tm_os_release_refusals);
    CHECKF("release refused: every calloc block reads zero", bad == 0, "%d of %d blocks not zero",
           bad, N * ROUNDS);
    CHECKF("release refused: the kernel refused, and the library stopped after a few tries",
           refused >= 1 && refused <= TM_OS_RELEASE_REFUSALS, "%lu refusals", refused);
    CHK();
    _exit(harness_finish());
}
static void test_release_refused(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : 1);
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("release refused: mlockall not allowed here (needs CAP_IPC_LOCK or a higher "
               "RLIMIT_MEMLOCK): not run\n");
        return;
    }
    CHECK_EXIT("release refused under mlockall: calloc still zero, tries bounded",
               release_refused_child, NULL, 0);
}

int main(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 * MiB);   /* 1 MiB blocks come from the heap */
    test_fork_first();
    test_solo_rounds();
    test_decay_zero();
    test_decay_never();
    test_decay_default();
    test_idle_arena();
    test_background();
    test_exit_deferred();
    test_fork_after_release();
    test_no_syscall_storm();
    test_bounded_summary();
    test_cap_big_top();
    test_busy_decay();
    test_release_refused();
    return harness_finish();
}
