/*
 * mt_common.h - small helpers shared by the thread/fork/OOM/arena tests
 * (test_threads.c, test_fork.c, test_oom.c, test_arena.c, test_tunables.c,
 * test_static.c).  Header-only; include after harness.h.
 *
 *   mt_rng / mt_next()        xorshift64* generator (deterministic per seed)
 *   mt_fill() / mt_verify()   write / check a block's content; a block of at
 *                             least MT_HDR bytes carries its own size and
 *                             seed in a header so whoever frees it (another
 *                             thread, a forked child) can verify it without
 *                             any side table.  Big blocks are checked
 *                             sparsely (first/last 4 KiB and one word per
 *                             page) to keep the tests fast.
 *   mt_watchdog(secs, what)   SIGALRM after secs; the handler writes
 *                             "watchdog: ..." and _exit(2)s.  Only to turn a
 *                             deadlock into a failure, never a timing check.
 *   mt_watchdog_progress(secs, what)  the same, counted from the last
 *                             change of mt_stage: for a test that advances
 *                             it, only a stage that takes secs fails.
 *   mt_say()                  async-signal-safe message to stderr (no stdio
 *                             locks: usable in a child forked from a
 *                             multithreaded parent).
 *   mt_nthreads()             threads of this process (/proc/self/task).
 *   mt_wait_single_threaded() waits until detached threads are fully gone.
 *   mt_ncpus()                CPUs as the allocator's default arena limit sees
 *                             them (max of online and affinity counts).
 */
#ifndef TIDE_MT_COMMON_H
#define TIDE_MT_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__GNUC__)
#define MT_UNUSED __attribute__((unused))
#else
#define MT_UNUSED
#endif

/* ---- deterministic PRNG -------------------------------------------------- */
typedef struct { uint64_t s; } mt_rng;

static inline MT_UNUSED void mt_seed(mt_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (r->s == 0)
        r->s = 1;
}

static inline MT_UNUSED uint64_t mt_next(mt_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* uniform-ish in [lo, hi] */
static inline MT_UNUSED size_t mt_range(mt_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(mt_next(r) % (uint64_t)(hi - lo + 1));
}

/* Block i of a swing (a working set built and freed whole, round after
 * round: test_quiet swing, test_bgfail): 3 in 4 of 16-1024 B, 1 in 4 of
 * 1-16 KiB, the small classes and the medium ones. */
static inline MT_UNUSED size_t mt_swing_size(mt_rng *r, size_t i)
{
    return i % 4 ? mt_range(r, 16, 1024) : mt_range(r, 1024, 16 * 1024 - 1);
}

/* ---- block content --------------------------------------------------------- */
#define MT_HDR 16u                 /* header: size, seed                     */
#define MT_SPARSE_LIMIT (64u * 1024u)

struct mt_hdr {
    uint64_t size;
    uint64_t seed;
};

static inline MT_UNUSED unsigned char mt_byte(uint64_t seed, size_t i)
{
    uint64_t v = seed ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);
    v ^= v >> 29;
    return (unsigned char)(v ^ (v >> 8));
}

/* Visit the positions that carry the pattern: everything for small blocks,
 * first/last 4 KiB plus every 4096th..+8 bytes for big ones. */
#define MT_FOR_POSITIONS(n, i, body)                                          \
    do {                                                                      \
        size_t n_ = (n);                                                      \
        if (n_ <= MT_SPARSE_LIMIT) {                                          \
            for (size_t i = MT_HDR; i < n_; i++) { body; }                    \
        } else {                                                              \
            for (size_t i = MT_HDR; i < 4096; i++) { body; }                  \
            for (size_t p_ = 4096; p_ + 8 < n_ - 4096; p_ += 4096)            \
                for (size_t i = p_; i < p_ + 8; i++) { body; }                \
            for (size_t i = n_ - 4096; i < n_; i++) { body; }                 \
        }                                                                     \
    } while (0)

/* Fill a block of n >= MT_HDR bytes. */
static inline MT_UNUSED void mt_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    struct mt_hdr h = { n, seed };
    memcpy(b, &h, sizeof h);
    MT_FOR_POSITIONS(n, i, b[i] = mt_byte(seed, i));
}

/* 1 when the block's header and pattern are intact.  *size_out (optional)
 * receives the size recorded in the header. */
static inline MT_UNUSED int mt_verify(const void *p, size_t *size_out)
{
    const unsigned char *b = p;
    struct mt_hdr h;
    memcpy(&h, b, sizeof h);
    if (size_out)
        *size_out = (size_t)h.size;
    if (h.size < MT_HDR || h.size > ((size_t)1 << 34))
        return 0;
    int ok = 1;
    MT_FOR_POSITIONS((size_t)h.size, i, if (b[i] != mt_byte(h.seed, i)) { ok = 0; goto done_; });
done_:
    return ok;
}

/* Check a block that was filled with mt_fill(p, n_written, seed) but only at
 * positions below `limit` (after a shrinking realloc, or when only a prefix
 * is known to be preserved). */
static inline MT_UNUSED int mt_verify_prefix(const void *p, size_t n_written,
                                             uint64_t seed, size_t limit)
{
    const unsigned char *b = p;
    int ok = 1;
    MT_FOR_POSITIONS(n_written, i, if (i < limit && b[i] != mt_byte(seed, i)) { ok = 0; goto done_; });
done_:
    return ok;
}

/* 1 when the block reads as zeros (sparsely for big blocks, see above). */
static inline MT_UNUSED int mt_is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n && i < MT_HDR; i++)
        if (b[i] != 0)
            return 0;
    if (n < MT_HDR)
        return 1;
    int ok = 1;
    MT_FOR_POSITIONS(n, i, if (b[i] != 0) { ok = 0; goto done_; });
done_:
    return ok;
}

/* Small blocks (< MT_HDR) get a plain pattern and are checked by the owner. */
static inline MT_UNUSED void mt_fill_tiny(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = mt_byte(seed, i);
}

static inline MT_UNUSED int mt_verify_tiny(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != mt_byte(seed, i))
            return 0;
    return 1;
}

/* ---- async-signal-safe output ------------------------------------------------ */
static MT_UNUSED void mt_say(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* ---- watchdog ------------------------------------------------------------------ */
static MT_UNUSED const char *volatile mt_watchdog_what = "test";
static MT_UNUSED volatile sig_atomic_t mt_stage;   /* a test may set it to tell where it hung */

static MT_UNUSED unsigned mt_watchdog_step;       /* mt_watchdog_progress's seconds, or 0 */
static MT_UNUSED volatile sig_atomic_t mt_watchdog_seen;

static MT_UNUSED void mt_watchdog_handler(int sig)
{
    (void)sig;
    if (mt_watchdog_step && mt_stage != mt_watchdog_seen) {
        mt_watchdog_seen = mt_stage;             /* it moved on: slow, not stuck */
        alarm(mt_watchdog_step);
        return;
    }
    char buf[256];
    snprintf(buf, sizeof buf,
             "watchdog: %s (pid %ld) did not finish in time - deadlock? (stage %d)\n",
             mt_watchdog_what, (long)getpid(), (int)mt_stage);
    mt_say(buf);
    _exit(2);
}

static MT_UNUSED void mt_watchdog(unsigned seconds, const char *what)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = mt_watchdog_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    mt_watchdog_what = what;
    alarm(seconds);
}

/* The same for a test that advances mt_stage as it goes: a hang is
 * `seconds` without a new stage, however long the whole takes (a loaded
 * machine under a sanitizer: test_regress's 100 forks took over 20 s
 * in CI, at stage 90).  The harness's own timeout still bounds it.   */
static MT_UNUSED void mt_watchdog_progress(unsigned seconds, const char *what)
{
    mt_watchdog_step = seconds;
    mt_watchdog_seen = mt_stage;
    mt_watchdog(seconds, what);
}

/* ---- threads -------------------------------------------------------------------- */
/* Is thread `tid` of this process tidemalloc's background release thread
 * (named "tidemalloc-bg")?  It is the allocator's, not the test's.      */
static MT_UNUSED int mt_is_allocator_thread(const char *tid)
{
    char path[64], name[32] = { 0 };
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    return n > 0 && strncmp(name, "tidemalloc-bg", 13) == 0;
}

/* The program's own threads (the allocator's helper is not counted). */
static MT_UNUSED int mt_nthreads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && !mt_is_allocator_thread(e->d_name))
            n++;
    closedir(d);
    return n;
}

static MT_UNUSED void mt_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Detached threads are gone from /proc/self/task only after their
 * destructors (and the allocator's thread-exit work) have run. */
static MT_UNUSED void mt_wait_threads_at_most(int n)
{
    while (mt_nthreads() > n)
        mt_sleep_ms(2);
}
/* Threads that are neither the test's nor the allocator's and never go
 * away: the sanitizer build declares its runtime's own background thread
 * with TIDE_TEST_EXTRA_THREADS (TSan starts it lazily, so it cannot be
 * counted at the start).                                               */
static MT_UNUSED int mt_extra_threads(void)
{
    const char *e = getenv("TIDE_TEST_EXTRA_THREADS");
    return e ? atoi(e) : 0;
}
static MT_UNUSED void mt_wait_single_threaded(void)
{
    mt_wait_threads_at_most(1 + mt_extra_threads());
}

static MT_UNUSED long mt_ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    long c = sysconf(_SC_NPROCESSORS_CONF);
    cpu_set_t set;
    long a = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        a = CPU_COUNT(&set);
    if (c > n)
        n = c;
    if (a > n)
        n = a;
    return n > 0 ? n : 1;
}

/* ---- seccomp filters (test_bgfail, test_fork, test_quiet) ----------------
 * A filter's first instructions: another architecture than x86-64 gets
 * the action `other`; then the system call's number is loaded.  The
 * allow / errno rules compare it and return.                           */
#define MT_SECCOMP_PROLOGUE(other)                                              \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),   \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),              \
    BPF_STMT(BPF_RET | BPF_K, (other)),                                        \
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define MT_SECCOMP_ALLOW(nr) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define MT_SECCOMP_ERRNO(nr, e) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
/* no_new_privs, then the filter f of n instructions, for good: 0 or -1. */
static MT_UNUSED int mt_seccomp_load(struct sock_filter *f, size_t n)
{
    struct sock_fprog prog = { (unsigned short)n, f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0 ? 0 : -1;
}

#endif /* TIDE_MT_COMMON_H */
