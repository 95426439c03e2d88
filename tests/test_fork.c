/*
 * test_fork.c - fork() while other threads are inside the allocator.
 *
 *  1. 8 busy threads allocate/free continuously (sizes up to 1 MiB, blocks
 *     published through a shared exchange array); the main thread forks 1000
 *     times (TIDE_TEST_FORKS overrides it: 300 in the sanitizer builds).
 *     Each child, right away: frees blocks the busy threads published (other
 *     arenas), allocates and frees a block of every size class from 0
 *     to 1100 bytes and geometric sizes up to 1 MiB plus an 8 MiB one, calloc
 *     / realloc / memalign, every 10th child also starts a thread that
 *     allocates, every 50th forks a grandchild that does the same; then
 *     tide_check_heap() and _exit(0).  The parent checks every exit status.
 *  2. posix_spawn() and vfork()+execve() of /bin/true, and fork()+execve(),
 *     while the busy threads allocate.
 *  3. The parent's heap is consistent afterwards.
 *  5. A fork child that installs a seccomp filter as sshd's pre-auth child
 *     does (the system calls glibc's malloc makes, getpid, clock_gettime
 *     and a few more allowed; open/openat refused with EACCES; anything
 *     else kills the process) and then allocates a lot survives: the
 *     library makes the child's statistics channel inside fork, not later.
 *  4. A descriptor number the program reused survives a fork: the program
 *     closes the statistics channel's descriptor (a daemon closing all it
 *     did not open) and puts a file of its own at that number; a fork
 *     child must find that file open (the fork handler closes the
 *     inherited channel descriptor only while it still is the channel).
 *
 * Deadlocks: each child arms alarm(30), the parent alarm(240); the SIGALRM
 * handler reports "watchdog: ..." and exits non-zero.  No timing checks.
 * Children report with write(2) only (stdio locks may be held by threads
 * that do not exist in the child).
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>

extern char **environ;

#ifndef NBUSY
#define NBUSY     8
#endif
#ifndef NFORKS
#define NFORKS    1000
#endif
#define NSHARED   256
#define NSPAWN    200

static _Atomic(void *) shared[NSHARED];
static atomic_int stop_busy;
static atomic_long busy_bad;
static atomic_long busy_ops;

/* ---- busy threads -------------------------------------------------------------- */
static size_t busy_size(mt_rng *r)
{
    unsigned c = (unsigned)(mt_next(r) % 1000);
    if (c < 700)
        return mt_range(r, MT_HDR, 512);
    if (c < 950)
        return mt_range(r, 513, 32 * 1024);
    if (c < 995)
        return mt_range(r, 32 * 1024, 256 * 1024);
    return mt_range(r, 256 * 1024, 1024 * 1024);
}

static void *busy_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, 4242 + id);
    void *local[16] = { 0 };
    uint64_t seq = id << 48;
    /* Lowest priority: they run whenever a CPU is free (so some are always
     * inside malloc/free when the main thread forks) without slowing the
     * forking thread and its children down. */
    setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
    while (!atomic_load_explicit(&stop_busy, memory_order_relaxed)) {
        size_t n = busy_size(&r);
        void *p = (mt_next(&r) % 8 == 0) ? calloc(1, n) : malloc(n);
        if (!p) {
            atomic_fetch_add(&busy_bad, 1);
            continue;
        }
        mt_fill(p, n, ++seq);
        if (mt_next(&r) % 2) {
            /* published only once completely written */
            void *old = atomic_exchange(&shared[mt_next(&r) % NSHARED], p);
            if (old) {
                if (!mt_verify(old, NULL))
                    atomic_fetch_add(&busy_bad, 1);
                free(old);
            }
        } else {
            int k = (int)(mt_next(&r) % 16);
            if (local[k]) {
                if (!mt_verify(local[k], NULL))
                    atomic_fetch_add(&busy_bad, 1);
                if (mt_next(&r) % 4 == 0) {
                    void *q = realloc(local[k], busy_size(&r));
                    if (q)
                        local[k] = q;
                    else
                        atomic_fetch_add(&busy_bad, 1);
                }
                free(local[k]);
            }
            local[k] = p;
        }
        atomic_fetch_add_explicit(&busy_ops, 1, memory_order_relaxed);
    }
    for (int k = 0; k < 16; k++)
        free(local[k]);
    return NULL;
}

/* ---- what a child does ------------------------------------------------------------ */
static int child_errors;

static void cfail(const char *what, long a, long b)
{
    char buf[256];
    snprintf(buf, sizeof buf, "child %ld: FAIL %s (%ld, %ld)\n", (long)getpid(), what, a, b);
    mt_say(buf);
    child_errors++;
}

/* Children fill small blocks completely, big ones only at both ends (page
 * faults on 8 MiB per child would dominate the run time). */
static void cfill(void *p, size_t n, uint64_t seed)
{
    if (n < MT_HDR) {
        mt_fill_tiny(p, n, seed);
    } else if (n <= 4096) {
        mt_fill(p, n, seed);
    } else {
        mt_fill_tiny(p, 2048, seed);
        mt_fill_tiny((char *)p + n - 2048, 2048, seed + 1);
    }
}

static int cverify(const void *p, size_t n, uint64_t seed)
{
    if (n < MT_HDR)
        return mt_verify_tiny(p, n, seed);
    if (n <= 4096)
        return mt_verify(p, NULL);
    return mt_verify_tiny(p, 2048, seed) && mt_verify_tiny((const char *)p + n - 2048, 2048, seed + 1);
}

#define NSIZES 256
static size_t child_sizes[NSIZES];
static int nchild_sizes;

static void init_sizes(void)
{
    int k = 0;
    for (size_t s = 0; s <= 1100; s += 8)          /* every small/tcache class */
        child_sizes[k++] = s;
    for (double s = 1200; s <= 1024.0 * 1024; s *= 1.25)   /* large bins, mmapped */
        child_sizes[k++] = (size_t)s;
    child_sizes[k++] = 128 * 1024 - 1;
    child_sizes[k++] = 128 * 1024;
    child_sizes[k++] = 8 * 1024 * 1024;            /* a big one */
    nchild_sizes = k;
}

static void *child_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        size_t n = MT_HDR + (size_t)i * 37;
        void *p = malloc(n);
        if (!p) {
            cfail("malloc in thread of child", (long)n, 0);
            continue;
        }
        cfill(p, n, (uint64_t)i);
        if (!cverify(p, n, (uint64_t)i))
            cfail("content in thread of child", (long)n, 0);
        free(p);
    }
    void *big = malloc(300 * 1024);
    if (!big)
        cfail("malloc(300K) in thread of child", 0, 0);
    free(big);
    return NULL;
}

/* Returns the number of failures; the caller _exit()s with it. */
static int child_work(int depth, int iter)
{
    mt_watchdog_what = depth == 1 ? "test_fork child" : "test_fork grandchild";
    alarm(30);
    mt_stage = 100 + depth;

    /* Blocks published by the busy threads, allocated in other arenas. */
    int taken = 0;
    for (int i = 0; i < NSHARED && taken < 24; i++) {
        void *p = atomic_exchange(&shared[(iter * 7 + i) % NSHARED], NULL);
        if (!p)
            continue;
        size_t n;
        if (!mt_verify(p, &n))
            cfail("block of a busy thread corrupted in child", (long)n, i);
        free(p);
        taken++;
    }

    /* A block of every size class, all alive at once. */
    void *blk[NSIZES];
    for (int i = 0; i < nchild_sizes; i++) {
        size_t n = child_sizes[i];
        blk[i] = malloc(n);
        if (!blk[i]) {
            cfail("malloc in child returned NULL", (long)n, 0);
            continue;
        }
        cfill(blk[i], n, (uint64_t)i);
    }
    for (int i = 0; i < nchild_sizes; i += 2) {       /* every other one */
        if (!blk[i])
            continue;
        size_t n = child_sizes[i];
        if (!cverify(blk[i], n, (uint64_t)i))
            cfail("content in child", (long)n, i);
        free(blk[i]);
        blk[i] = NULL;
    }
    void *c = calloc(1000, 10);
    if (!c || !mt_is_zero(c, 10000))
        cfail("calloc in child", 10000, 0);
    void *m = memalign(4096, 5000);
    if (!m || ((uintptr_t)m & 4095))
        cfail("memalign in child", 5000, 0);
    void *r = malloc(100);
    if (r) {
        mt_fill(r, 100, 99);
        void *r2 = realloc(r, 200000);
        if (!r2 || !mt_verify(r2, NULL))
            cfail("realloc in child", 200000, 0);
        else
            r = r2;
    }
    free(r);
    free(m);
    free(c);
    for (int i = 1; i < nchild_sizes; i += 2) {
        if (!blk[i])
            continue;
        size_t n = child_sizes[i];
        if (!cverify(blk[i], n, (uint64_t)i))
            cfail("content in child", (long)n, i);
        free(blk[i]);
    }

    if (iter % 10 == 0) {                  /* threads in the child */
        pthread_t t;
        if (pthread_create(&t, NULL, child_thread, NULL) != 0)
            cfail("pthread_create in child", 0, 0);
        else
            pthread_join(t, NULL);
    }

    if (depth == 1 && iter % 50 == 0) {    /* fork from inside the child */
        pid_t g = fork();
        if (g == 0)
            _exit(child_work(2, iter + 1) ? 1 : 0);
        if (g < 0) {
            cfail("fork in child", errno, 0);
        } else {
            int st;
            while (waitpid(g, &st, 0) < 0 && errno == EINTR)
                ;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                cfail("grandchild failed (status)", st, 0);
        }
    }

    mt_stage = 200 + depth;
    if (tide_check_heap() < 0)
        cfail("tide_check_heap in child", 0, 0);
    struct tide_stats st;
    tide_get_stats(&st);
    if (st.narenas < 1)
        cfail("narenas in child", (long)st.narenas, 0);
    return child_errors;
}

static void describe(int st, char *buf, size_t n)
{
    if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d", WTERMSIG(st));
    else if (WIFEXITED(st))
        snprintf(buf, n, "exit status %d", WEXITSTATUS(st));
    else
        snprintf(buf, n, "status 0x%x", st);
}

static int wait_ok(pid_t pid, char *how, size_t n)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            snprintf(how, n, "waitpid: %s", strerror(errno));
            return 0;
        }
    }
    describe(st, how, n);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}


static void reused_descriptor(void)
{
    int chfd = -1;
    for (int t = 0; t < 500 && chfd < 0; t++) {      /* up to ~5 s */
        for (int k = 0; k < 128; k++)
            free(malloc(65536));                     /* slow paths: the first refresh makes it */
        if ((chfd = harness_channel_fd()) < 0)
            mt_sleep_ms(10);
    }
    const char *stats = getenv("TIDEMALLOC_STATS");
    if (chfd < 0 && stats && strcmp(stats, "0") == 0) {
        printf("no statistics channel (TIDEMALLOC_STATS=0): stage 4 not run\n");
        return;
    }
    CHECK("stage 4: the statistics channel has a descriptor", chfd >= 0);
    if (chfd < 0)
        return;
    close(chfd);                                     /* as a daemon closing everything */
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int got = nul == chfd ? nul : dup2(nul, chfd);
    if (nul >= 0 && nul != chfd)
        close(nul);
    CHECKF("stage 4: the program's file at the channel's old number", got == chfd, "%d, %d", got, chfd);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fcntl(chfd, F_GETFD) >= 0 && write(chfd, "x", 1) == 1 ? 0 : 1);
    char how[96] = "fork failed";
    CHECKF("stage 4: a fork child finds the program's file at that number open",
           pid > 0 && wait_ok(pid, how, sizeof how), "%s", how);
    close(chfd);
}

/* Stage 5's child: the filter, then a sandboxed worker's allocations. */
static int sandboxed_child(void)
{
    struct sock_filter f[] = {
        MT_SECCOMP_PROLOGUE(SECCOMP_RET_KILL_PROCESS),
        MT_SECCOMP_ERRNO(__NR_open, EACCES), MT_SECCOMP_ERRNO(__NR_openat, EACCES),
        MT_SECCOMP_ALLOW(__NR_read), MT_SECCOMP_ALLOW(__NR_write), MT_SECCOMP_ALLOW(__NR_close), MT_SECCOMP_ALLOW(__NR_exit),
        MT_SECCOMP_ALLOW(__NR_exit_group), MT_SECCOMP_ALLOW(__NR_brk), MT_SECCOMP_ALLOW(__NR_mmap), MT_SECCOMP_ALLOW(__NR_munmap),
        MT_SECCOMP_ALLOW(__NR_mremap), MT_SECCOMP_ALLOW(__NR_madvise), MT_SECCOMP_ALLOW(__NR_mprotect), MT_SECCOMP_ALLOW(__NR_futex),
        MT_SECCOMP_ALLOW(__NR_clock_gettime), MT_SECCOMP_ALLOW(__NR_clock_nanosleep), MT_SECCOMP_ALLOW(__NR_nanosleep),
        MT_SECCOMP_ALLOW(__NR_getpid), MT_SECCOMP_ALLOW(__NR_gettimeofday), MT_SECCOMP_ALLOW(__NR_getrandom),
        MT_SECCOMP_ALLOW(__NR_rt_sigprocmask), MT_SECCOMP_ALLOW(__NR_rt_sigreturn),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    if (mt_seccomp_load(f, sizeof f / sizeof f[0]) != 0)
        return 77;
    static void *b[2000];
    for (int r = 0; r < 60; r++) {      /* thousands of slow paths: refreshes are due */
        for (int i = 0; i < 2000; i++) {
            b[i] = malloc(16 + (size_t)i * 37 % 70000);
            if (b[i])
                memset(b[i], r, 16);
        }
        for (int i = 0; i < 2000; i++)
            free(b[i]);
    }
    return tide_check_heap() >= 0 ? 0 : 1;
}


static void sandboxed_fork(void)
{
    if (UNDER_SANITIZER) {
        /* (the sanitizer's runtime makes system calls of its own, which
         * the filter, built for a process of glibc and tidemalloc, kills) */
        printf("stage 5: not run under ASan/TSan\n");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(sandboxed_child());
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        printf("stage 5: seccomp filters not available here: not run\n");
        return;
    }
    char how[96];
    describe(st, how, sizeof how);
    CHECKF("stage 5: a fork child under an sshd-like seccomp filter allocates and exits 0",
           pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", how);
}

/* ---- main ------------------------------------------------------------------------ */
int main(void)
{
    mt_watchdog(240, "test_fork (parent)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    init_sizes();

    pthread_t busy[NBUSY];
    for (uintptr_t i = 0; i < (uintptr_t)NBUSY; i++)
        CHECK("pthread_create busy thread", pthread_create(&busy[i], NULL, busy_thread, (void *)i) == 0);
    while (atomic_load(&busy_ops) < 10000)   /* let them get going */
        sched_yield();

    /* TIDE_TEST_FORKS: fewer forks in the sanitizer builds (each fork of a
     * process with 8 busy threads costs ~60 ms there; CI's time budget). */
    const char *nf_env = getenv("TIDE_TEST_FORKS");
    const int nforks = nf_env && atoi(nf_env) > 0 ? atoi(nf_env) : NFORKS;

    /* 1. fork while the busy threads allocate. */
    mt_stage = 1;
    int failed = 0, fork_errors = 0;
    for (int i = 0; i < nforks; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_work(1, i) ? 1 : 0);
        if (pid < 0) {
            fork_errors++;
            continue;
        }
        char how[96];
        if (!wait_ok(pid, how, sizeof how)) {
            if (failed++ < 10)
                fprintf(stderr, "  fork %d: child %s\n", i, how);
        }
    }
    CHECKF("fork: fork() never failed", fork_errors == 0, "%d errors", fork_errors);
    CHECKF("fork: every child allocated, checked its heap and exited 0", failed == 0,
           "%d of %d children failed", failed, nforks);

    /* 2. posix_spawn, vfork+exec and fork+exec of /bin/true. */
    mt_stage = 2;
    int spawn_bad = 0, vfork_bad = 0, forkexec_bad = 0;
    char *const argv_true[] = { (char *)"/bin/true", NULL };
    for (int i = 0; i < NSPAWN; i++) {
        pid_t pid;
        char how[96];
        int e = posix_spawn(&pid, "/bin/true", NULL, NULL, argv_true, environ);
        if (e != 0 || !wait_ok(pid, how, sizeof how)) {
            if (spawn_bad++ < 5)
                fprintf(stderr, "  posix_spawn %d: %s\n", i, e ? strerror(e) : how);
        }
        pid = vfork();
        if (pid == 0) {
            execve("/bin/true", argv_true, environ);
            _exit(127);
        }
        if (pid < 0 || !wait_ok(pid, how, sizeof how)) {
            if (vfork_bad++ < 5)
                fprintf(stderr, "  vfork+exec %d: %s\n", i, pid < 0 ? "vfork failed" : how);
        }
        if (i % 4 == 0) {
            pid = fork();
            if (pid == 0) {
                alarm(30);
                execve("/bin/true", argv_true, environ);
                _exit(127);
            }
            if (pid < 0 || !wait_ok(pid, how, sizeof how)) {
                if (forkexec_bad++ < 5)
                    fprintf(stderr, "  fork+exec %d: %s\n", i, pid < 0 ? "fork failed" : how);
            }
        }
    }
    CHECKF("posix_spawn(/bin/true) while threads allocate", spawn_bad == 0, "%d failed", spawn_bad);
    CHECKF("vfork+execve(/bin/true) while threads allocate", vfork_bad == 0, "%d failed", vfork_bad);
    CHECKF("fork+execve(/bin/true) while threads allocate", forkexec_bad == 0, "%d failed",
           forkexec_bad);

    /* 3. The parent is fine too. */
    mt_stage = 3;
    CHECK("parent: heap consistent while threads run", tide_check_heap() >= 0);
    atomic_store(&stop_busy, 1);
    for (int i = 0; i < NBUSY; i++)
        pthread_join(busy[i], NULL);
    int bad_shared = 0;
    for (int i = 0; i < NSHARED; i++) {
        void *p = atomic_exchange(&shared[i], NULL);
        if (p) {
            if (!mt_verify(p, NULL))
                bad_shared++;
            free(p);
        }
    }
    CHECKF("parent: busy threads saw no corruption or failure", atomic_load(&busy_bad) == 0,
           "%ld", (long)atomic_load(&busy_bad));
    CHECKF("parent: published blocks intact", bad_shared == 0, "%d corrupted", bad_shared);
    CHECK("parent: heap consistent at the end", tide_check_heap() >= 0);

    /* 5. A sandboxed fork child (before stage 4, which closes the channel's
     * descriptor; the parent has its channel by then: stage 4 makes sure). */
    mt_stage = 5;
    if (harness_channel_fd() < 0)
        for (int k = 0; k < 256; k++)
            free(malloc(65536));
    sandboxed_fork();

    /* 4. A reused descriptor number survives fork. */
    mt_stage = 4;
    reused_descriptor();
    printf("forks %d, spawns %d, busy-thread operations %ld\n", nforks, NSPAWN,
           (long)atomic_load(&busy_ops));
    alarm(0);
    return harness_finish();
}
