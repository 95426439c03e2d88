/*
 * test_limits.c - resource limits glibc's malloc never meets kill no
 * program under tidemalloc either.
 *
 * The statistics channel is a 2 MiB memfd, and reports and profiles are
 * files: things glibc's malloc does not have.  Two limits met them:
 *   - RLIMIT_FSIZE (`ulimit -f`, build sandboxes, judges): growing a
 *     file past it raises SIGXFSZ, which kills.  Under `ulimit -f 1024`
 *     every program died at the channel's ftruncate (2026-12-05).  Now
 *     the channel is not made where it would not fit, and a report that
 *     would not fit is replaced by a note that says so;
 *   - memory for the channel's pages: a shared memfd page is charged when
 *     first touched, and where the system has none to give
 *     (vm.overcommit_memory=2 at the commit limit) the touch is a SIGBUS.
 *     A program that took the whole commit limit with mmap and then
 *     called malloc died (glibc's malloc returned NULL).  Now each page
 *     is given its memory with fallocate before it is written, and a
 *     refusal cuts the text (and a channel that could not be made is
 *     tried again 2 s later); the test injects the refusal
 *     (TIDE_FAULT_CHANNEL) at every step of the channel's life, since
 *     the commit limit is the whole machine's.
 * And a process allowed few descriptors (RLIMIT_NOFILE <= 112) gets no
 * channel: it keeps every descriptor for itself (under `ulimit -n 4` the
 * channel took the last one).
 * Every stage runs in a child and must exit 0 having allocated normally.
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "tidemalloc.h"

/* Slow-path calls for about `ms` milliseconds: the statistics refresh
 * (every 100 ms at most, made by the allocating thread in a process of
 * one thread) runs several times, the first one making the channel. */
static void churn(int ms)
{
    for (int r = 0; r < ms / 5; r++) {
        for (int k = 0; k < 100; k++) {
            void *p = malloc(150000 + (size_t)k * 512);        /* mapped: slow paths */
            void *q = malloc((size_t)k * 40 + 1);
            if (!p || !q)
                _exit(20);
            free(p);
            free(q);
        }
        usleep(5000);
    }
}

/* Is the statistics channel's memfd open in this process? */
static int channel_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char path[300], target[300];
    int found = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = 0;
            found |= strstr(target, "memfd:tidemalloc-stats") != NULL;
        }
    }
    closedir(d);
    return found;
}

static void fsize_stage(void *arg)
{
    (void)arg;
    struct rlimit rl = { 64 << 10, 64 << 10 };
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(10);
    churn(600);
    if (channel_open())
        _exit(11);                       /* it could not fit: not made */
    _exit(tide_check_heap() > 0 ? 0 : 12);
}

/* Few descriptors allowed: the program keeps them all. */
static void nofile_stage(void *arg)
{
    (void)arg;
    struct rlimit rl = { 64, 64 };
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(10);
    churn(600);
    if (channel_open())
        _exit(17);
    _exit(tide_check_heap() > 0 ? 0 : 12);
}

/* The channel's pages refused from the k-th request on. */
static void channel_stage(void *arg)
{
    long k = (long)(intptr_t)arg;
    tide_fault_inject(TIDE_FAULT_CHANNEL, k);
    churn(600);
    int open = channel_open();
    if (k == 0 && open)
        _exit(13);                       /* no page for its header: not made */
    if (k > 0 && !open)
        _exit(14);
    tide_fault_inject(TIDE_FAULT_CHANNEL, -1);
    /* The pages can be had again: a channel that could not be made is
     * made at a refresh 2 s later (TM_OBS_RETRY_MS). */
    churn(k == 0 ? 2600 : 300);
    if (k == 0 && channel_open() != 1)
        _exit(16);
    _exit(tide_check_heap() > 0 ? 0 : 15);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "report") == 0) {
        /* Re-executed with TIDEMALLOC_REPORT set: the report at exit,
         * under a 1 KiB file-size limit, is the note that it did not fit. */
        struct rlimit rl = { 1024, 1024 };
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            return 10;
        churn(300);
        return 0;
    }
    if (!getenv("TIDEMALLOC_STATS") || strcmp(getenv("TIDEMALLOC_STATS"), "0") != 0) {
        CHECK_EXIT("RLIMIT_FSIZE below the channel's size: no SIGXFSZ, no channel", fsize_stage, NULL, 0);
        CHECK_EXIT("RLIMIT_NOFILE of 64: no channel, every descriptor the program's", nofile_stage, NULL, 0);
        for (long k = 0; k <= 3; k++) {
            char name[96];
            snprintf(name, sizeof name, "channel pages refused from request %ld on: no SIGBUS", k);
            CHECK_EXIT(name, channel_stage, (void *)(intptr_t)k, 0);
        }
    }
    char rep[64];
    snprintf(rep, sizeof rep, "/tmp/tide-limits-%d.txt", (int)getpid());
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TIDEMALLOC_REPORT", rep, 1);
        execl("/proc/self/exe", argv[0], "report", rep, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    struct stat sb;
    CHECKF("report under RLIMIT_FSIZE: no SIGXFSZ", WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    CHECKF("report within the limit", stat(rep, &sb) == 0 && sb.st_size > 0 && sb.st_size <= 1024,
           "size %ld", (long)sb.st_size);
    /* ... and still JSON: the note that the report did not fit. */
    char text[1100] = "";
    FILE *f = fopen(rep, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
    }
    CHECKF("report says the limit", text[0] == '{' && strstr(text, "\"file_limit\":1") != NULL, "%.200s", text);
    unlink(rep);
    return harness_finish();
}
