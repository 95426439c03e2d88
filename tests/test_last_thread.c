/*
 * test_last_thread.c - a process ends when its last thread of its own
 * ends, background thread or not (control.c thread_exit_hook).
 *
 * glibc ends a process when the last of its threads exits (pthread_exit,
 * or a start routine that returns), counting every thread made with
 * pthread_create - tidemalloc's background thread too.  Before the fix,
 * with that thread running, such a process never ended, and as the
 * background thread blocks every signal, neither did SIGTERM end it.
 * Each stage runs in a child, which must exit with status 0 (glibc's
 * exit(0), atexit handlers included: checked through a pipe) within
 * 15 s; the parent kills it otherwise.  Each child first makes sure the
 * background thread runs (a thread named tidemalloc-bg), or the stage
 * would prove nothing.
 *   joined     main starts a thread that allocates, joins it, then calls
 *              pthread_exit;
 *   detached   main calls pthread_exit while a detached thread still
 *              allocates, which then returns;
 *   forced     TIDEMALLOC_BACKGROUND_THREAD=1 (mallopt), one thread;
 *   silent     the last thread is one that never allocated (its exit
 *              runs no hook of ours; main's hook stopped the thread);
 *   late       that last thread allocates after main left (the
 *              background thread may start again), then returns;
 *   forked     a thread forks; the child's only thread starts and joins
 *              a thread, then returns from its start routine (CPython's
 *              test_threading hung there).
 */
#define _GNU_SOURCE 1
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "tidemalloc.h"

static int atexit_fd = -1;       /* the pipe the child's atexit handler writes */

static void say_exited(void)
{
    if (atexit_fd >= 0 && write(atexit_fd, "x", 1) != 1)
        _exit(90);
}

/* Is a thread named tidemalloc-bg running in this process? */
static int bg_running(void)
{
    for (int tries = 0; tries < 200; tries++) {
        DIR *d = opendir("/proc/self/task");
        if (!d)
            return 0;
        struct dirent *e;
        int found = 0;
        while ((e = readdir(d)) != NULL && !found) {
            char path[64], comm[32] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, comm, sizeof comm - 1);
            close(fd);
            if (n > 0 && strncmp(comm, "tidemalloc-bg", 13) == 0)
                found = 1;
        }
        closedir(d);
        if (found)
            return 1;
        usleep(10000);          /* started, not yet named */
    }
    return 0;
}

static void churn(int n)
{
    void *p[256];
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < 256; i++)
            p[i] = malloc(16 + (size_t)(i * 37 + r) % 3000);
        for (int i = 0; i < 256; i++)
            free(p[i]);
    }
}

static void *allocating(void *arg)
{
    churn(arg ? 200 : 20);
    return NULL;
}

static void *sleeper(void *arg)
{
    usleep(200000);
    if (arg)
        churn(50);               /* "late": allocates after main left */
    return NULL;
}

/* The child's common start: the handler, a thread that allocates (the
 * second thread starts the background one), the check that it runs. */
static void two_threads_and_bg(void)
{
    churn(5);
    pthread_t t;
    if (pthread_create(&t, NULL, allocating, NULL) != 0 || pthread_join(t, NULL) != 0)
        _exit(80);
    if (!bg_running())
        _exit(81);
}
static void start(void)
{
    atexit(say_exited);
    two_threads_and_bg();
}

static void stage(const char *which)
{
    if (strcmp(which, "joined") == 0) {
        start();
        pthread_exit(NULL);
    }
    if (strcmp(which, "detached") == 0) {
        start();
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, allocating, (void *)1) != 0)
            _exit(82);
        pthread_exit(NULL);
    }
    if (strcmp(which, "forced") == 0) {
        atexit(say_exited);
        if (mallopt(TIDE_M_BACKGROUND_THREAD, 1) != 1)
            _exit(83);
        churn(5);
        if (!bg_running())
            _exit(81);
        pthread_exit(NULL);
    }
    if (strcmp(which, "silent") == 0 || strcmp(which, "late") == 0) {
        start();
        pthread_t t;
        if (pthread_create(&t, NULL, sleeper, strcmp(which, "late") == 0 ? (void *)1 : NULL) != 0)
            _exit(82);
        pthread_exit(NULL);
    }
    _exit(89);
}

/* "forked": the grandchild's only thread is the one that forked. */
static void *forking(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0)
        _exit(84);
    if (pid == 0) {
        two_threads_and_bg();
        return NULL;             /* the grandchild's last thread ends */
    }
    for (int k = 0; k < 1500; k++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 86);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    _exit(85);                   /* the grandchild did not end */
}

static void forked_stage(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, forking, NULL) != 0)
        _exit(82);
    pthread_join(t, NULL);
    _exit(87);                   /* (forking exits the child itself) */
}

/* Run a stage in a child; 0 if it exited with status 0 within 15 s and
 * its atexit handler ran (the "forked" stage: its own exit).          */
static void run(const char *which)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        CHECK("pipe", 0);
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        atexit_fd = pfd[1];
        if (strcmp(which, "forked") == 0)
            forked_stage();
        stage(which);
        _exit(88);
    }
    close(pfd[1]);
    int st = 0, done = 0;
    for (int k = 0; k < 1500 && !done; k++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            done = 1;
        else
            usleep(10000);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    char c;
    int said = read(pfd[0], &c, 1) == 1;
    close(pfd[0]);
    int forked = strcmp(which, "forked") == 0;
    CHECKF(which, done && WIFEXITED(st) && WEXITSTATUS(st) == 0 && (said || forked),
           "%s; exit status %d; atexit handler %s", done ? "ended" : "still running after 15 s: killed",
           WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), said ? "ran" : "did not run");
}

int main(void)
{
    run("joined");
    run("detached");
    run("forced");
    run("silent");
    run("late");
    run("forked");
    return harness_finish();
}
