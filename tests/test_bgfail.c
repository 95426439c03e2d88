/*
 * test_bgfail.c - the background thread cannot be created.
 *
 * A sandbox that forbids clone (seccomp: clone3 answers ENOSYS, so that
 * glibc falls back to clone, and clone answers EPERM) makes every
 * pthread_create fail.  The allocator must go on working without its
 * thread, and must not try again at every slow path: with the thread
 * asked for (mallopt TIDE_M_BACKGROUND_THREAD 1, which tries at every
 * slow path) and a swinging arena (which also tries from the cache's
 * refill path), a failed start waits TM_BG_RETRY_MS before the next.
 * Checked in a child (the filter is for good): thousands of slow paths
 * in well under a second try at most once per second plus one; the
 * memory still goes back at free time (the cap, no thread to defer to);
 * the heap checks.  Exit 77 (SKIP) where seccomp is not available.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "mt_common.h"
#include "control.h"
#include "internal.h"
#include "tidemalloc.h"

static int deny_clone(void)
{
    struct sock_filter f[] = {
        MT_SECCOMP_PROLOGUE(SECCOMP_RET_ALLOW),
        MT_SECCOMP_ERRNO(__NR_clone3, ENOSYS),
        MT_SECCOMP_ERRNO(__NR_clone, EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    return mt_seccomp_load(f, sizeof f / sizeof f[0]);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

enum { ROUNDS = 8, BLOCKS = 14000 };
static void *blk[BLOCKS];

static int child(void)
{
#if !defined(__x86_64__)
    return 77;                      /* the filter below knows x86-64's calls only */
#endif
    if (deny_clone() != 0)
        return 77;
    double t0 = now_s();
    CHECK("the thread asked for (TIDE_M_BACKGROUND_THREAD 1)", mallopt(TIDE_M_BACKGROUND_THREAD, 1) == 1);
    long bad = 0, slow = 0;
    /* Slow paths that try to start the thread: uncached sizes (arena_alloc). */
    for (int k = 0; k < 4000; k++) {
        void *p = malloc(20000 + (size_t)(k % 64) * 16);
        if (!p)
            bad++;
        free(p);
        slow++;
    }
    /* Swings: small and medium blocks built and freed, the cache's refill path. */
    mt_rng r;
    mt_seed(&r, 7);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            size_t n = mt_swing_size(&r, (size_t)i);
            blk[i] = malloc(n);
            if (!blk[i])
                bad++;
            else
                memset(blk[i], 0x5a, n);
        }
        for (int i = BLOCKS - 1; i >= 0; i -= 2)
            free(blk[i]);
        for (int i = BLOCKS - 2; i >= 0; i -= 2)
            free(blk[i]);
    }
    double el = now_s() - t0;
    unsigned long fails = atomic_load(&tm_bg_start_failures);
    char name[200];
    snprintf(name, sizeof name, "failed starts at most one per %u ms (+1)", TM_BG_RETRY_MS);
    CHECKF(name, fails >= 1 && fails <= 1 + (unsigned long)(el * 1000.0 / TM_BG_RETRY_MS) + 1,
           "%lu failed starts in %.2f s (%ld arena slow paths and %d rounds)", fails, el, slow, ROUNDS);
    CHECK("no background thread", !atomic_load(&tm_bg_active));
    CHECKF("every allocation succeeded", bad == 0, "%ld failed", bad);
    struct tide_stats s;
    tide_get_stats(&s);
    CHECKF("the memory went back at free time all the same (free resident <= 16 MiB)",
           s.free_resident_bytes <= 16u * 1024 * 1024, "%.1f MiB free and resident",
           (double)s.free_resident_bytes / 1048576.0);
    CHECK("tide_check_heap", tide_check_heap() > 0);
    return 0;
}

int main(void)
{
    free(malloc(1));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int r = child();
        fflush(stdout);
        fflush(stderr);
        if (r == 77)
            _exit(77);
        printf("child: ");
        int rc = harness_finish();
        fflush(stdout);
        _exit(rc);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        printf("SKIP: seccomp filters are not available here\n");
        return 77;
    }
    char how[128];
    harness_describe_status(st, how, sizeof how);
    CHECKF("child: every check passed", pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", how);
    return harness_finish();
}
