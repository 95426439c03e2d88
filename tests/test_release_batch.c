/*
 * test_release_batch.c - page release of many scattered free chunks in
 * batches (os.c tm_os_release_many: process_madvise with PIDFD_SELF where
 * the kernel takes it), and the seccomp guard around it.
 *
 * Every scenario runs in a forked child (its own batching state) on N
 * free chunks of 80 KiB, each pinned by a live 20000-byte block after it
 * (no coalescing, no trim from the top: N separate ranges to give back).
 * What must hold with or without batching: after malloc_trim(0) no page
 * inside a freed chunk is resident (mincore), calloc over that memory
 * reads zero (the accounting is done when a range is queued, the madvise
 * before the lock is left), the checker passes.  With batching (kernel
 * >= 6.15): far fewer process_madvise calls than ranges.  And a process
 * that confines itself with a seccomp filter that kills on
 * process_madvise - through prctl, as sshd does; libseccomp's way
 * (prctl for no_new_privs, then the seccomp system call); with bare
 * system calls only; without no_new_privs where the test may (systemd's
 * way, CAP_SYS_ADMIN) - or that started under one (exec) goes on
 * living: batching is off.  A control child that calls process_madvise
 * itself under the filter shows the filter does kill for it.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <limits.h>
#include <unistd.h>
#include "harness.h"
#include "os.h"
#include "tidemalloc.h"

enum { N = 600, BLK = 80 * 1024, PIN = 20000 };
static char *blk[N], *pin[N];

static void scatter(void)
{
    for (int k = 0; k < N; k++) {
        blk[k] = malloc(BLK);
        pin[k] = malloc(PIN);            /* above the cache classes: from the arena, right after */
        if (!blk[k] || !pin[k])
            _exit(90);
        memset(blk[k], 0x5a, BLK);
    }
    for (int k = 0; k < N; k++)
        free(blk[k]);
}

/* Resident pages among those wholly inside the freed blocks. */
static size_t resident(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = 0;
    unsigned char vec[BLK / 4096 + 2];
    for (int k = 0; k < N; k++) {
        uintptr_t lo = ((uintptr_t)blk[k] + 64 + pg - 1) & ~(pg - 1);
        uintptr_t hi = ((uintptr_t)blk[k] + BLK - 16) & ~(pg - 1);
        if (hi <= lo || mincore((void *)lo, hi - lo, vec) != 0)
            continue;
        for (size_t i = 0; i < (hi - lo) / pg; i++)
            n += vec[i] & 1;
    }
    return n;
}

/* Trim, then what must hold in every mode; *calls: process_madvise calls made. */
static void trim_and_check(const char *label, unsigned long *calls)
{
    unsigned long pm0 = atomic_load(&tm_os_calls.process_madvise);
    unsigned long m0 = atomic_load(&tm_os_calls.released_ranges);
    malloc_trim(0);
    *calls = atomic_load(&tm_os_calls.process_madvise) - pm0;
    unsigned long ranges = atomic_load(&tm_os_calls.released_ranges) - m0;
    char name[160];
    snprintf(name, sizeof name, "%s: every page inside the %d freed chunks given back", label, N);
    size_t left = resident();
    CHECKF(name, left == 0, "%zu pages resident, %lu ranges released", left, ranges);
    snprintf(name, sizeof name, "%s: at least one range per freed chunk released", label);
    CHECKF(name, ranges >= N, "%lu", ranges);
    CHECK("heap consistent after the trim", tide_check_heap() > 0);
    int nonzero = 0;
    for (int k = 0; k < N; k++) {
        unsigned char *c = calloc(1, BLK);
        if (!c)
            _exit(91);
        for (size_t i = 0; i < BLK; i += 64)
            nonzero += c[i] != 0 || c[i + 63] != 0;
    }
    snprintf(name, sizeof name, "%s: calloc over the released memory reads zero", label);
    CHECKF(name, nonzero == 0, "%d nonzero", nonzero);
    CHECK("heap consistent after the callocs", tide_check_heap() > 0);
}

static void batched_child(void *arg)
{
    (void)arg;
    bool on = tm_os_release_batch_on();
    scatter();
    unsigned long calls;
    trim_and_check("batched", &calls);
    if (!on) {
        printf("batched: no process_madvise batching here (a sanitizer build, or a filter or "
               "no_new_privs at start): one madvise per range checked instead\n");
    } else if (!tm_os_release_batch_on()) {
        printf("batched: this kernel refuses process_madvise(PIDFD_SELF, MADV_DONTNEED) "
               "(Linux < 6.15): the fallback checked instead\n");
    } else {
        CHECKF("batched: the ranges went in a few process_madvise calls (64 a batch at most)",
               calls >= N / 64 && calls <= N / 8, "%lu calls", calls);
    }
    _exit(harness_finish());
}

static void nnp_child(void *arg)
{
    (void)arg;
    CHECK("prctl(PR_SET_NO_NEW_PRIVS) succeeds", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CHECK("batching off after no_new_privs", !tm_os_release_batch_on());
    scatter();
    unsigned long calls;
    trim_and_check("no_new_privs", &calls);
    CHECKF("no_new_privs: no process_madvise", calls == 0, "%lu calls", calls);
    _exit(harness_finish());
}

/* Kills the process at process_madvise, allows everything else. */
static struct sock_filter kill_pm[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 440 /* process_madvise */, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};
static struct sock_fprog kill_pm_prog = { sizeof kill_pm / sizeof kill_pm[0], kill_pm };

enum { VIA_PRCTL, VIA_SECCOMP_CALL, BEHIND_OUR_BACK, PRIVILEGED };

static void filter_child(void *arg)
{
    int how = (int)(intptr_t)arg;
    int r;
    if (how == PRIVILEGED)             /* no no_new_privs (CAP_SYS_ADMIN), the bare call: systemd's way */
        r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kill_pm_prog);
    else if (how == BEHIND_OUR_BACK)   /* the bare system calls: the prctl guard sees neither */
        r = (int)syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
            (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kill_pm_prog);
    else if (how == VIA_SECCOMP_CALL)  /* libseccomp's way */
        r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
            (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kill_pm_prog);
    else                               /* sshd's way */
        r = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &kill_pm_prog);
    if (r != 0)
        _exit(92);
    scatter();
    unsigned long calls;
    trim_and_check("under a filter", &calls);
    _exit(harness_finish());
}

/* Can this process install a filter without no_new_privs?  (A child,
 * with a filter that allows everything.)                             */
static bool privileged_filter_allowed(void)
{
    static struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
    static struct sock_fprog allow_prog = { 1, allow };
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &allow_prog) == 0 ? 0 : 1);
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Installs the filter, then calls process_madvise itself: killed. */
static void control_child(void *arg)
{
    (void)arg;
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kill_pm_prog) != 0)
        _exit(92);
    char *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct iovec v = { p, 1 << 16 };
    syscall(440, -10000, &v, 1, MADV_DONTNEED, 0);
    _exit(0);
}

/* argv[1] "exec-child": started under the filter (exec below). */
static int exec_child_main(void)
{
    mallopt(TIDE_M_DECAY_MS, -1);        /* (as main: and the library is initialized) */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    CHECK("a filter at start: batching off", !tm_os_release_batch_on());
    CHECK("a filter at start: no populating either (os.c tm_os_populate)", !tm_os_populate_on());
    scatter();
    unsigned long calls;
    trim_and_check("filter at start", &calls);
    CHECKF("filter at start: no process_madvise", calls == 0, "%lu calls", calls);
    return harness_finish();
}

static void exec_under_filter(void *arg)
{
    (void)arg;
    if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kill_pm_prog) != 0)
        _exit(92);
    execl("/proc/self/exe", "test_release_batch", "exec-child", (char *)NULL);
    _exit(93);
}

/* tm_os_seccomp_now (the status file, line by line) says what prctl
 * says: unconfined, then no_new_privs, then a filter (bare system calls,
 * so that no guard of the library's is involved). */
static void status_child(void *arg)
{
    (void)arg;
    int mode, nnp;
    CHECK("status: read", tm_os_seccomp_now(&mode, &nnp));
    CHECKF("status: as prctl at start", mode == (int)syscall(SYS_prctl, PR_GET_SECCOMP, 0, 0, 0, 0) &&
           nnp == (int)syscall(SYS_prctl, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), "mode %d nnp %d", mode, nnp);
    CHECK("status: prctl(PR_SET_NO_NEW_PRIVS)", syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CHECK("status: no_new_privs seen", tm_os_seccomp_now(&mode, &nnp) && nnp == 1);
    CHECK("status: seccomp filter installed", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &kill_pm_prog) == 0);
    CHECKF("status: filter mode seen", tm_os_seccomp_now(&mode, &nnp) && mode == 2 && nnp == 1,
           "mode %d nnp %d", mode, nnp);
    _exit(harness_finish());
}

/* A thread on a PTHREAD_STACK_MIN (16 KiB) stack, 7 KiB of it taken by
 * the program's own frames, frees scattered chunks and trims: the
 * release pass (a batch, the status read before it) must fit in what is
 * left, as glibc's malloc_trim does (it survives 8 KiB of frames here).
 * The status read once had a 4 KiB buffer on the stack: SIGSEGV. */
static void *small_stack_work(void *arg)
{
    (void)arg;
    scatter();
    malloc_trim(0);
    return (void *)1;
}
static __attribute__((noinline)) void *use_stack(int kib)
{
    volatile char pad[1000];
    pad[0] = (char)kib;
    void *r = kib > 1 ? use_stack(kib - 1) : small_stack_work(NULL);
    return pad[0] == (char)kib ? r : NULL;
}
static void *small_stack_thread(void *arg)
{
    return use_stack((int)(intptr_t)arg);
}
static void small_stack_child(void *arg)
{
    (void)arg;
    pthread_attr_t at;
    pthread_attr_init(&at);
    CHECK("small stack: attr", pthread_attr_setstacksize(&at, PTHREAD_STACK_MIN) == 0);
    pthread_t t;
    void *r = NULL;
    CHECK("small stack: thread", pthread_create(&t, &at, small_stack_thread, (void *)(intptr_t)7) == 0);
    CHECK("small stack: joined", pthread_join(t, &r) == 0 && r == (void *)1);
    CHECK("heap consistent", tide_check_heap() > 0);
    _exit(harness_finish());
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0)
        return exec_child_main();
    mallopt(TIDE_M_DECAY_MS, -1);        /* nothing released until the trim */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    fflush(stdout);
    CHECK_EXIT("scattered chunks released in batches", batched_child, NULL, 0);
    CHECK_EXIT("the status file read line by line agrees with prctl", status_child, NULL, 0);
    if (!UNDER_SANITIZER)               /* (their frames are several times larger) */
        CHECK_EXIT("a release pass on a 16 KiB thread stack with 7 KiB in use", small_stack_child, NULL, 0);
    CHECK_EXIT("no_new_privs set through prctl turns batching off", nnp_child, NULL, 0);
    CHECK_EXIT("a filter installed through prctl (sshd) does not kill the process",
               filter_child, (void *)VIA_PRCTL, 0);
    CHECK_EXIT("a filter installed through the seccomp call after prctl (libseccomp) does not kill it",
               filter_child, (void *)VIA_SECCOMP_CALL, 0);
    CHECK_EXIT("a filter present at exec turns batching off", exec_under_filter, NULL, 0);
    CHECK_EXIT("a filter installed behind the prctl guard (bare system calls) does not kill it",
               filter_child, (void *)BEHIND_OUR_BACK, 0);
    if (privileged_filter_allowed())
        CHECK_EXIT("a filter installed without no_new_privs (privileged, systemd's way) does not kill it",
                   filter_child, (void *)PRIVILEGED, 0);
    else
        printf("no filter without no_new_privs here (needs CAP_SYS_ADMIN): that case not run\n");
    /* The control: the filter does kill for process_madvise (so the
     * children above lived because the library made none).           */
    int lived = expect_exit(control_child, NULL, 0);
    CHECKF("control: the filter kills a process_madvise",
           !lived && strstr(harness_child_diag, "killed by signal 31") != NULL, "%s", harness_child_diag);
    return harness_finish();
}
