/*
 * test_regress.c - one regression check per defect of issue 8.
 *
 * Every scenario that can crash or hang runs in a child (harness.h's
 * expect_exit, or a re-exec of this program) under an alarm, so a
 * deadlock or a crash becomes a failed check, never a stuck test.  The
 * child reports through its exit status (0 = fine) and explains a failure
 * on stderr, which the harness captures and prints.
 *
 *  1. fork deadlock: pthread_atfork(prepare, parent, child) is registered
 *     in a constructor (priority 101) BEFORE the program's first malloc,
 *     and every handler calls malloc/free (sizes that bypass the thread
 *     cache, so they need an arena lock).  Then fork() must not hang and
 *     the child must allocate and exit 0 - single-threaded, and with four
 *     threads allocating while the main thread forks (as glibc's
 *     tst-malloc-fork-deadlock).  The constructor must run before anything
 *     allocates, so these scenarios re-exec this program
 *     (/proc/self/exe) with TIDE_REGRESS_PRE=atfork in the environment.
 *  2. 40 pthread keys created and set in the main thread before the
 *     first malloc (TIDE_REGRESS_PRE=keys, same re-exec): the allocator's
 *     own key then lies beyond the first 32, whose values live in a
 *     second-level block that pthread_setspecific allocates with calloc.
 *     A new thread's first malloc/free must complete.
 *  3. memalign / posix_memalign / aligned_alloc with alignment 2^63 (and
 *     2^62+1 for memalign, rounded up to 2^63; 2^62) and small or huge
 *     sizes: NULL + ENOMEM (posix_memalign returns ENOMEM), as glibc 2.36;
 *     alignment > 2^63: EINVAL.  Each call in a child (it used to crash).
 *  4. mallopt(TIDE_M_TCACHE_COUNT, ...) moving the cache limits up and
 *     down while three threads malloc/free 16..1024 bytes (and check
 *     their blocks' contents): no crash, tide_check_heap() passes.
 *     Bounded iterations (a few seconds at most).
 *  5. malloc_trim(pad) with pad near SIZE_MAX (SIZE_MAX, SIZE_MAX-k for
 *     small k, SIZE_MAX-4096, SIZE_MAX/2, ...) with a live block ending
 *     just below the top chunk (the top starting at several page
 *     offsets), filled with a pattern: the pattern survives, the heap
 *     checks, malloc/free work afterwards.  Main arena, and a non-main
 *     arena (block allocated by a second thread, trim from main).
 *  6. mallopt(unknown parameter) returns 1, as glibc's.
 *  7. (suspected) a foreign sbrk moving the break by a non-page-aligned
 *     amount: the foreign bytes keep their contents through big mallocs,
 *     frees and malloc_trim(0) - after the heap exists, and before the
 *     first malloc (re-exec, TIDE_REGRESS_PRE=sbrk).
 *
 * No timing checks: alarms only turn a hang into a failure.
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

static void child_fail(const char *fmt, ...) HARNESS_PRINTF(1, 2);
/* Reports a failure from a child (no stdio: the child may have been forked
 * from a multithreaded process) and exits with status 1. */
static void child_fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mt_say(buf);
    mt_say("\n");
    _exit(1);
}

/* ======================================================================
 * What runs before main in a re-exec'd copy (TIDE_REGRESS_PRE=...).
 * ====================================================================== */
enum { NKEYS = 40 };
static pthread_key_t user_keys[NKEYS];
static int nkeys_made;
static atomic_long handler_calls[3];     /* prepare, parent, child */
static char *foreign_pre;                /* bytes sbrk'd before the first malloc */
static size_t foreign_pre_len;

/* Allocations the thread cache cannot serve (bigger than its largest
 * class, 1032 bytes): they need an arena lock, which is what deadlocked. */
static int handler_allocs(void)
{
    static const size_t sizes[] = { 24, 200, 1500, 5000, 70000, 300000 };
    int bad = 0;
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = malloc(sizes[i]);
        if (!p[i])
            bad++;
        else
            memset(p[i], 0x5a, sizes[i]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free(p[i]);
    return bad;
}
static void atfork_prepare(void) { handler_calls[0] += 1 + 1000 * handler_allocs(); }
static void atfork_parent(void)  { handler_calls[1] += 1 + 1000 * handler_allocs(); }
static void atfork_child(void)   { handler_calls[2] += 1 + 1000 * handler_allocs(); }

static unsigned char foreign_byte(size_t i) { return (unsigned char)(i * 131u + 7u); }

__attribute__((constructor(101))) static void early_setup(void)
{
    const char *pre = getenv("TIDE_REGRESS_PRE");   /* getenv does not allocate */
    if (!pre)
        return;
    if (strcmp(pre, "atfork") == 0) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    } else if (strcmp(pre, "keys") == 0) {
        for (int i = 0; i < NKEYS; i++) {
            if (pthread_key_create(&user_keys[i], NULL) != 0)
                break;
            nkeys_made++;
            /* keys 32.. make glibc calloc a second-level block: the
             * program's first malloc happens in here. */
            pthread_setspecific(user_keys[i], (void *)(uintptr_t)(i + 1));
        }
    } else if (strcmp(pre, "sbrk") == 0) {
        foreign_pre_len = 3 * 4096 + 123;          /* not a page multiple */
        char *p = sbrk((intptr_t)foreign_pre_len);
        if (p != (char *)-1) {
            foreign_pre = p;
            for (size_t i = 0; i < foreign_pre_len; i++)
                p[i] = (char)foreign_byte(i);
        }
    }
}

/* ---- 1. fork with atfork handlers registered before the first malloc ---- */
static void fork_and_check(int rounds, const char *what)
{
    for (int r = 0; r < rounds; r++) {
        mt_stage = r;
        pid_t pid = fork();
        if (pid < 0)
            child_fail("%s: fork failed: %s", what, strerror(errno));
        if (pid == 0) {
            if (handler_calls[2] < 1 || handler_calls[2] >= 1000)
                child_fail("%s: child handler calls %ld", what, (long)handler_calls[2]);
            if (handler_allocs() != 0)
                child_fail("%s: malloc failed in the fork child", what);
            void *q = calloc(1, 2 * MiB);
            if (!q)
                child_fail("%s: calloc(2 MiB) failed in the fork child", what);
            free(q);
            _exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                child_fail("%s: waitpid: %s", what, strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            child_fail("%s: fork child %d: status 0x%x", what, r, st);
    }
    if (handler_calls[0] != rounds || handler_calls[1] != rounds)
        child_fail("%s: prepare/parent handlers: %ld/%ld calls (expected %d each, "
                   ">= 1000 means a malloc in a handler failed)",
                   what, (long)handler_calls[0], (long)handler_calls[1], rounds);
}

static atomic_int fork_stop;
static void *fork_busy(void *arg)
{
    mt_rng r;
    mt_seed(&r, (uintptr_t)arg);
    void *slot[32] = { 0 };
    while (!atomic_load_explicit(&fork_stop, memory_order_relaxed)) {
        unsigned k = (unsigned)(mt_next(&r) % 32);
        free(slot[k]);
        size_t n = (mt_next(&r) % 4 == 0) ? mt_range(&r, 2000, 300000) : mt_range(&r, 1, 1024);
        slot[k] = malloc(n);
        if (slot[k])
            memset(slot[k], (int)k, n < 64 ? n : 64);
    }
    for (int k = 0; k < 32; k++)
        free(slot[k]);
    return NULL;
}

static int pre_atfork_main(const char *mode)
{
    /* The program's first malloc: the allocator initialises now, after the
     * handlers above were registered. */
    free(malloc(100));
    free(malloc(100000));
    if (strcmp(mode, "st") == 0) {
        fork_and_check(20, "atfork-st");
        return 0;
    }
    enum { NT = 4 };
    pthread_t t[NT];
    for (uintptr_t i = 0; i < NT; i++)
        if (pthread_create(&t[i], NULL, fork_busy, (void *)(i + 1)) != 0)
            child_fail("pthread_create failed");
    fork_and_check(100, "atfork-mt");
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < NT; i++)
        pthread_join(t[i], NULL);
    tide_check_heap();
    return 0;
}

/* ---- 2. 40 pthread keys before the first malloc ------------------------ */
static void *keys_thread(void *arg)
{
    (void)arg;
    static const size_t sizes[] = { 16, 100, 1000, 5000, 100000, 1 << 20 };
    for (int round = 0; round < 50; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *p = malloc(sizes[i]);
            if (!p)
                return (void *)1;
            memset(p, 1, sizes[i]);
            free(p);
        }
    /* The thread's own values for the user keys (beyond 32 too). */
    for (int i = 0; i < nkeys_made; i++)
        if (pthread_setspecific(user_keys[i], (void *)(uintptr_t)(1000 + i)) != 0)
            return (void *)2;
    for (int i = 0; i < nkeys_made; i++)
        if (pthread_getspecific(user_keys[i]) != (void *)(uintptr_t)(1000 + i))
            return (void *)3;
    return NULL;
}

static int pre_keys_main(void)
{
    if (nkeys_made != NKEYS)
        child_fail("keys: only %d pthread keys could be created", nkeys_made);
    for (int i = 0; i < NKEYS; i++)
        if (pthread_getspecific(user_keys[i]) != (void *)(uintptr_t)(i + 1))
            child_fail("keys: main thread's value of key %d lost", i);
    for (int n = 0; n < 4; n++) {
        mt_stage = n;
        pthread_t t;
        if (pthread_create(&t, NULL, keys_thread, NULL) != 0)
            child_fail("keys: pthread_create failed");
        void *ret;
        pthread_join(t, &ret);
        if (ret)
            child_fail("keys: thread %d failed (step %ld)", n, (long)(uintptr_t)ret);
    }
    for (int i = 0; i < NKEYS; i++)
        if (pthread_getspecific(user_keys[i]) != (void *)(uintptr_t)(i + 1))
            child_fail("keys: main thread's value of key %d changed", i);
    tide_check_heap();
    return 0;
}

/* ---- 7b. foreign sbrk before the first malloc ------------------------- */
static void verify_foreign(const char *what, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] != foreign_byte(i))
            child_fail("%s: foreign sbrk byte %zu of %zu changed (0x%02x)", what, i, len,
                       (unsigned char)p[i]);
}

static void big_churn(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);   /* big blocks from brk */
    for (int r = 0; r < 3; r++) {
        char *b[4];
        for (int k = 0; k < 4; k++) {
            b[k] = malloc((size_t)(k + 1) * 3 * MiB + 777);
            if (!b[k])
                child_fail("sbrk: malloc of a big block failed");
            memset(b[k], 0xee, (size_t)(k + 1) * 3 * MiB + 777);
        }
        for (int k = 0; k < 4; k++)
            free(b[k]);
        malloc_trim(0);
    }
}

static int pre_sbrk_main(void)
{
    if (!foreign_pre)
        child_fail("sbrk: the constructor's sbrk failed");
    verify_foreign("sbrk-pre (before any malloc)", foreign_pre, foreign_pre_len);
    big_churn();
    verify_foreign("sbrk-pre after malloc/free/malloc_trim", foreign_pre, foreign_pre_len);
    tide_check_heap();
    return 0;
}

/* Runs this program again with TIDE_REGRESS_PRE=pre and argv[1] = mode.
 * The alarm the harness set survives execve (its handler does not: the
 * default action kills the process, which the check reports). */
static const char *self_argv0;
struct reexec { const char *pre; const char *mode; unsigned alarm_s; };
static void reexec_fn(void *arg)
{
    const struct reexec *r = arg;
    setenv("TIDE_REGRESS_PRE", r->pre, 1);
    alarm(r->alarm_s);
    char *argv[] = { (char *)self_argv0, (char *)"pre", (char *)r->mode, NULL };
    execv("/proc/self/exe", argv);
    child_fail("execv(/proc/self/exe): %s", strerror(errno));
}

/* ---- 3. memalign with alignment 2^63 --------------------------------- */
enum afn { F_MEMALIGN, F_POSIX, F_ALIGNED };
struct acase { enum afn fn; size_t align; size_t size; int want; };
static const char *afn_name(enum afn f)
{
    return f == F_MEMALIGN ? "memalign" : f == F_POSIX ? "posix_memalign" : "aligned_alloc";
}
static void align_child(void *arg)
{
    const struct acase *c = arg;
    void *p = NULL;
    int err;
    errno = 0;
    if (c->fn == F_POSIX) {
        err = posix_memalign(&p, c->align, c->size);
        if (err == 0)
            child_fail("posix_memalign(%#zx, %#zx) succeeded (%p)", c->align, c->size, p);
    } else {
        p = c->fn == F_MEMALIGN ? memalign(c->align, c->size) : aligned_alloc(c->align, c->size);
        err = errno;
        if (p)
            child_fail("%s(%#zx, %#zx) returned %p", afn_name(c->fn), c->align, c->size, p);
    }
    if (err != c->want)
        child_fail("%s(%#zx, %#zx): error %d (%s), expected %d", afn_name(c->fn), c->align,
                   c->size, err, strerror(err), c->want);
    /* The heap is fine and usable afterwards. */
    free(malloc(100));
    free(malloc(200000));
    tide_check_heap();
    _exit(0);
}

static void test_huge_alignment(void)
{
    const size_t a63 = (size_t)1 << 63, a62 = (size_t)1 << 62;
    /* Around 2^63 the sizes once wrapped (size + alignment) to a small
     * request that succeeded, and the split then wrote far outside it. */
    const size_t sizes[] = { 1, 4096, 1 << 20, SIZE_MAX / 2 - 40, SIZE_MAX / 2, SIZE_MAX / 2 + 1,
                             SIZE_MAX / 2 + 4097, SIZE_MAX / 2 + (1 << 20), SIZE_MAX - 4096,
                             SIZE_MAX };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        struct acase cases[] = {
            { F_MEMALIGN, a63, sizes[s], ENOMEM },
            { F_MEMALIGN, a62 + 1, sizes[s], ENOMEM },   /* rounded up to 2^63 */
            { F_MEMALIGN, a62, sizes[s], ENOMEM },
            { F_POSIX, a63, sizes[s], ENOMEM },
            { F_POSIX, a62, sizes[s], ENOMEM },
            { F_ALIGNED, a63, sizes[s], ENOMEM },
            { F_ALIGNED, a62, sizes[s], ENOMEM },
            { F_MEMALIGN, a63 + 1, sizes[s], EINVAL },
            { F_MEMALIGN, SIZE_MAX, sizes[s], EINVAL },
            { F_POSIX, a63 + 1, sizes[s], EINVAL },
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            char name[160];
            snprintf(name, sizeof name, "regress-3 %s(%#zx, %#zx) -> NULL, %s",
                     afn_name(cases[k].fn), cases[k].align, cases[k].size,
                     cases[k].want == ENOMEM ? "ENOMEM" : "EINVAL");
            CHECK_EXIT(name, align_child, &cases[k], 0);
        }
    }
}

/* ---- 4. mallopt(TIDE_M_TCACHE_COUNT) while threads allocate ----------- */
static atomic_int tc_stop;
static atomic_long tc_ops, tc_bursts;
static void *tc_worker(void *arg)
{
    mt_rng r;
    mt_seed(&r, 77 + (uintptr_t)arg);
    enum { SLOTS = 512 };
    unsigned char *slot[SLOTS] = { 0 };
    size_t len[SLOTS] = { 0 };
    long ops = 0;
    while (!atomic_load_explicit(&tc_stop, memory_order_relaxed)) {
        /* Bursts of frees then bursts of mallocs: classes fill up and run
         * dry, so the full/empty slow paths run constantly. */
        int burst = (int)(mt_next(&r) % 64) + 1;
        for (int b = 0; b < burst; b++) {
            unsigned k = (unsigned)(mt_next(&r) % SLOTS);
            if (slot[k]) {
                unsigned char tag = (unsigned char)k;
                if (slot[k][0] != tag || slot[k][len[k] - 1] != tag)
                    child_fail("tcache-count: block %u (%zu B) corrupted", k, len[k]);
                free(slot[k]);
                slot[k] = NULL;
            }
        }
        for (int b = 0; b < burst; b++) {
            unsigned k = (unsigned)(mt_next(&r) % SLOTS);
            if (slot[k])
                continue;
            size_t n = (mt_next(&r) % 4 == 0) ? mt_range(&r, 16, 1024) : 16u << (mt_next(&r) % 7);
            slot[k] = malloc(n);
            if (!slot[k])
                child_fail("tcache-count: malloc(%zu) failed", n);
            len[k] = n;
            memset(slot[k], (int)k, n);
        }
        ops++;
        atomic_fetch_add_explicit(&tc_bursts, 1, memory_order_relaxed);
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    atomic_fetch_add(&tc_ops, ops);
    return NULL;
}

static void tcache_count_child(void *arg)
{
    (void)arg;
    enum { NT = 3 };
    pthread_t t[NT];
    for (uintptr_t i = 0; i < NT; i++)
        if (pthread_create(&t[i], NULL, tc_worker, (void *)i) != 0)
            child_fail("pthread_create failed");
    static const int values[] = { 0, 1, 65535, 2, 1000, 7, 3, 100, 1, 32, 0, 500, 5 };
    const int nv = (int)(sizeof values / sizeof values[0]);
    /* 30000 changes, each after the workers made progress (a few bursts,
     * waited for by spinning a bounded number of times): the limits move
     * while frees and mallocs are in flight, not between them. */
    /* TIDE_TEST_REGRESS_CHANGES: fewer under TSan (every access is slow). */
    const char *nch = getenv("TIDE_TEST_REGRESS_CHANGES");
    int changes = nch && atoi(nch) > 0 ? atoi(nch) : 30000;
    for (int it = 0; it < changes; it++) {
        int v = values[it % nv];
        if (mallopt(TIDE_M_TCACHE_COUNT, v) != 1)
            child_fail("mallopt(TIDE_M_TCACHE_COUNT, %d) refused", v);
        long seen = atomic_load(&tc_bursts);
        for (long spin = 0; spin < 2000000 && atomic_load(&tc_bursts) < seen + 3; spin++)
            __asm__ volatile("pause");
    }
    atomic_store(&tc_stop, 1);
    for (int i = 0; i < NT; i++)
        pthread_join(t[i], NULL);
    mallopt(TIDE_M_TCACHE_COUNT, 32);
    if (tide_check_heap() <= 0)
        child_fail("tide_check_heap failed");
    char buf[128];
    snprintf(buf, sizeof buf, "tcache-count: %ld worker bursts\n", (long)atomic_load(&tc_ops));
    mt_say(buf);
    _exit(0);
}

/* ---- 5. malloc_trim(pad) with pad near SIZE_MAX ---------------------- */
/* The pattern is copied from and compared against a reference made once
 * (memcpy/memcmp rather than byte loops: under TSan every byte access of a
 * loop is instrumented, and this group's 360 blocks of 1 MiB took 40 s). */
#define PAT_MAX (2 * MiB)
static unsigned char pat_byte(size_t i) { return (unsigned char)(i * 7u + 3u); }
static const unsigned char *pat_ref(size_t n)
{
    static unsigned char *ref;
    if (n > PAT_MAX)
        child_fail("trim: pattern of %zu B longer than the reference", n);
    if (!ref) {
        ref = mmap(NULL, PAT_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ref == MAP_FAILED)
            child_fail("trim: mmap of the pattern reference failed");
        /* pat_byte has period 256: write one period, then double by copies. */
        for (size_t i = 0; i < 256; i++)
            ref[i] = pat_byte(i);
        for (size_t k = 256; k < PAT_MAX; k *= 2)
            memcpy(ref + k, ref, k < PAT_MAX - k ? k : PAT_MAX - k);
    }
    return ref;
}
static void pat_fill(unsigned char *p, size_t n)
{
    memcpy(p, pat_ref(n), n);
}
static long pat_bad(const unsigned char *p, size_t n)
{
    const unsigned char *ref = pat_ref(n);
    if (memcmp(p, ref, n) == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (p[i] != ref[i])
            return (long)i;
    return -1;
}

/* A block of about `base` bytes that ends right below the top chunk, the
 * top starting at page offset `off`.  The block comes from the top (it is
 * bigger than any free chunk the test left around); the end of a chunk
 * carved from top is where the new top starts: mem + usable - 8. */
static unsigned char *block_below_top(size_t base, size_t off, size_t *len)
{
    unsigned char *p = malloc(base);
    if (!p)
        child_fail("trim: malloc(%zu) failed", base);
    uintptr_t top = (uintptr_t)p + malloc_usable_size(p) - 8;
    size_t cur = top & 4095;
    size_t n = base + ((off - cur) & 4095);
    free(p);
    p = malloc(n);
    if (!p)
        child_fail("trim: malloc(%zu) failed", n);
    *len = malloc_usable_size(p);
    return p;
}

struct trimcase { size_t pad; bool thread; };

static void *trim_thread(void *arg)
{
    size_t *io = arg;     /* in: offset; out: pointer, length */
    size_t len;
    unsigned char *p = block_below_top(MiB, io[0], &len);
    pat_fill(p, len);
    io[1] = (size_t)(uintptr_t)p;
    io[2] = len;
    return NULL;
}

static void trim_child(void *arg)
{
    const struct trimcase *c = arg;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);   /* the block comes from a heap */
    static const size_t offsets[] = { 16, 32, 48, 64, 2048, 4032, 4064, 4080, 0 };
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        unsigned char *p;
        size_t len;
        if (c->thread) {
            size_t io[3] = { offsets[o], 0, 0 };
            pthread_t t;
            if (pthread_create(&t, NULL, trim_thread, io) != 0)
                child_fail("trim: pthread_create failed");
            pthread_join(t, NULL);
            p = (unsigned char *)(uintptr_t)io[1];
            len = io[2];
            if (!tide_owns(p))
                child_fail("trim: block not ours");
        } else {
            p = block_below_top(MiB, offsets[o], &len);
            pat_fill(p, len);
        }
        malloc_trim(c->pad);
        long bad = pat_bad(p, len);
        if (bad >= 0)
            child_fail("trim(%#zx), top at page offset %zu: live block of %zu B changed at "
                       "byte %ld (%ld B before its end)", c->pad, offsets[o], len, bad,
                       (long)len - bad);
        tide_check_heap();
        /* Still usable: allocate around it, trim normally, check again. */
        void *q[8];
        for (int k = 0; k < 8; k++) {
            q[k] = malloc((size_t)k * 50000 + 17);
            if (!q[k])
                child_fail("trim(%#zx): malloc failed afterwards", c->pad);
            memset(q[k], 0x11, (size_t)k * 50000 + 17);
        }
        for (int k = 0; k < 8; k++)
            free(q[k]);
        malloc_trim(0);
        bad = pat_bad(p, len);
        if (bad >= 0)
            child_fail("trim(%#zx) then trim(0): live block changed at byte %ld", c->pad, bad);
        tide_check_heap();
        free(p);
        tide_check_heap();
    }
    _exit(0);
}

static void test_trim_pad(void)
{
    const size_t pads[] = {
        SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 16, SIZE_MAX - 24,
        SIZE_MAX - 31, SIZE_MAX - 32, SIZE_MAX - 33, SIZE_MAX - 63, SIZE_MAX - 64,
        SIZE_MAX - 100, SIZE_MAX - 4095, SIZE_MAX - 4096, SIZE_MAX - 4097, SIZE_MAX - 8192,
        SIZE_MAX - MiB, SIZE_MAX / 2 + 1, SIZE_MAX / 2, (size_t)1 << 62, (size_t)1 << 48,
    };
    for (int th = 0; th < 2; th++)
        for (size_t k = 0; k < sizeof pads / sizeof pads[0]; k++) {
            struct trimcase c = { pads[k], th != 0 };
            char name[160];
            snprintf(name, sizeof name,
                     "regress-5 malloc_trim(%#zx) (%s arena) keeps a live block intact",
                     pads[k], th ? "non-main" : "main");
            CHECK_EXIT(name, trim_child, &c, 0);
        }
}

/* ---- 7a. foreign sbrk after the heap exists ---------------------------- */
static void sbrk_child(void *arg)
{
    (void)arg;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    free(malloc(5 * MiB));              /* the brk heap exists and has grown */
    char *f[3];
    size_t flen[3] = { 4096 + 123, 77, 2 * 4096 + 4001 };
    for (int k = 0; k < 3; k++) {
        void *keep = malloc(3 * MiB + (size_t)k * 4096);   /* grows the heap between */
        if (!keep)
            child_fail("sbrk: malloc failed");
        f[k] = sbrk((intptr_t)flen[k]);
        if (f[k] == (char *)-1)
            child_fail("sbrk(%zu) failed", flen[k]);
        for (size_t i = 0; i < flen[k]; i++)
            f[k][i] = (char)foreign_byte(i);
        free(keep);
    }
    big_churn();
    for (int k = 0; k < 3; k++)
        verify_foreign("sbrk-post: after malloc/free/malloc_trim", f[k], flen[k]);
    /* Memory next to the foreign bytes that calloc hands out reads zero. */
    for (int k = 0; k < 4; k++) {
        size_t n = (size_t)(k + 1) * MiB + 4001;
        unsigned char *z = calloc(1, n);
        if (!z)
            child_fail("sbrk: calloc(%zu) failed", n);
        for (size_t i = 0; i < n; i++)
            if (z[i])
                child_fail("sbrk: calloc(%zu) byte %zu is 0x%02x", n, i, z[i]);
        memset(z, 0xcc, n);
        free(z);
    }
    for (int k = 0; k < 3; k++)
        verify_foreign("sbrk-post: after calloc", f[k], flen[k]);
    tide_check_heap();
    _exit(0);
}

/* ---- 6. mallopt with an unknown parameter ----------------------------- */
static void test_mallopt_unknown(void)
{
    static const int params[] = { 12345, -12345, 999, -999, -1099, 0x7fffffff };
    for (size_t k = 0; k < sizeof params / sizeof params[0]; k++) {
        int r = mallopt(params[k], 1);
        char name[96];
        snprintf(name, sizeof name, "regress-6 mallopt(%d, 1) returns 1 like glibc", params[k]);
        CHECKF(name, r == 1, "returned %d", r);
    }
}

int main(int argc, char **argv)
{
    const char *pre = getenv("TIDE_REGRESS_PRE");
    if (pre && argc >= 3 && strcmp(argv[1], "pre") == 0) {
        /* The harness's alarm survived execve; report a hang as one. */
        unsigned left = alarm(0);
        mt_watchdog_progress(left ? left : 20, pre);   /* (each stage, not the whole) */
        if (strcmp(pre, "atfork") == 0)
            return pre_atfork_main(argv[2]);
        if (strcmp(pre, "keys") == 0)
            return pre_keys_main();
        if (strcmp(pre, "sbrk") == 0)
            return pre_sbrk_main();
        return 3;
    }
    self_argv0 = argv[0];
    unsetenv("TIDE_REGRESS_PRE");
    /* (argv[1], if given, selects one group: fork keys align tcache trim
     * mallopt sbrk.) */
    const char *only = argc > 1 ? argv[1] : NULL;
#define WANT(g) (!only || strcmp(only, (g)) == 0)

    if (WANT("fork")) {
        struct reexec st = { "atfork", "st", 10 }, mt = { "atfork", "mt", 20 };
        CHECK_EXIT("regress-1 fork: atfork handlers registered before the first malloc "
                   "call malloc/free, fork does not hang (single thread)",
                   reexec_fn, &st, 0);
        CHECK_EXIT("regress-1 fork: the same while 4 threads allocate (100 forks)",
                   reexec_fn, &mt, 0);
    }
    if (WANT("keys")) {
        struct reexec k = { "keys", "-", 10 };
        CHECK_EXIT("regress-2 keys: 40 pthread keys set before the first malloc, "
                   "a new thread's first malloc completes", reexec_fn, &k, 0);
    }
    if (WANT("align"))
        test_huge_alignment();
    if (WANT("tcache"))
        CHECK_EXIT("regress-4 mallopt(TIDE_M_TCACHE_COUNT) up and down while 3 threads "
                   "malloc/free: no crash, heap checks", tcache_count_child, NULL, 0);
    if (WANT("trim"))
        test_trim_pad();
    if (WANT("mallopt"))
        test_mallopt_unknown();
    if (WANT("sbrk")) {
        CHECK_EXIT("regress-7 foreign non-page-aligned sbrk after the heap exists: its bytes "
                   "survive big malloc/free/malloc_trim(0)", sbrk_child, NULL, 0);
        struct reexec s = { "sbrk", "-", 20 };
        CHECK_EXIT("regress-7 foreign non-page-aligned sbrk before the first malloc: its "
                   "bytes survive big malloc/free/malloc_trim(0)", reexec_fn, &s, 0);
    }
    return harness_finish();
}
