/*
 * test_channel_fd.c - the statistics channel's descriptor belongs to the
 * program once the program takes its number (observe.c channel_ready).
 *
 * tidemalloc keeps its statistics channel, a memfd, open at a number >= 56
 * and gives the mapping pages with fallocate on it as the heap map grows.
 * A program that puts a file of its own on that number (dup2), or closes
 * it and gets it back from open, must find its file as it left it: before
 * the fix the background thread's fallocate grew the program's file with
 * zeros (a helper session: 6 bytes written, 458752 bytes found).  And the
 * channel must come back at another number, so that `tidemalloc stats`
 * still finds it.  Each stage runs in a child with a second thread (the
 * background thread refreshes the heap map: TIDEMALLOC_HEAPMAP_MS=100 in
 * the test's environment) and a heap fragmented so that the map text
 * grows past what is backed:
 *   dup2     the program's file dup2'd onto the channel's number;
 *   reopen   the number closed, then taken by the program's next
 *            descriptor at or above it (F_DUPFD, as bash asks for 10+).
 */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

static char path[256];


static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void churn(double secs)
{
    static void *v[4096];
    unsigned s = 1;
    double end = now_s() + secs;
    do {
        for (int k = 0; k < 20000; k++) {
            unsigned i = (unsigned)rand_r(&s) % 4096;
            free(v[i]);
            v[i] = malloc((size_t)rand_r(&s) % 3000 + (rand_r(&s) % 100 == 0 ? 200000 : 0));
        }
    } while (now_s() < end);
}

static void *thread_churn(void *arg)
{
    (void)arg;
    churn(0.2);
    return NULL;
}

/* Many live chunks with holes between them: a long heap map. */
static void fragment(void)
{
    size_t n = 300000;
    void **keep = malloc(n * sizeof *keep);
    unsigned s = 5;
    for (size_t i = 0; i < n; i++)
        keep[i] = malloc(16 + (size_t)rand_r(&s) % 2000);
    for (size_t i = 0; i < n; i += 2)
        free(keep[i]);
    harness_sink(keep);
}

static void stage(void *arg)
{
    int reopen = arg != NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, thread_churn, NULL) != 0 || pthread_join(t, NULL) != 0)
        _exit(80);
    int ch = -1;
    for (int i = 0; i < 100 && (ch = harness_channel_fd()) < 0; i++)
        churn(0.05);
    if (ch < 0)
        _exit(81);                 /* no channel was made: nothing to test */
    int fd;
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (reopen) {
        close(ch);                         /* the lowest free number >= ch: ch */
        fd = fcntl(f, F_DUPFD, ch);
    } else {
        fd = dup2(f, ch);
    }
    close(f);
    if (fd != ch)
        _exit(83);
    if (write(fd, "hello\n", 6) != 6)
        _exit(84);
    fragment();
    churn(2.5);
    struct stat st;
    CHECKF("the program's file on the channel's old number is as it left it", fstat(fd, &st) == 0 &&
           st.st_size == 6, "size %lld (wrote 6)", (long long)st.st_size);
    char l[64], buf[64] = "";
    snprintf(l, sizeof l, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(l, buf, sizeof buf - 1);
    CHECK("that number still refers to the program's file", n > 0 && strstr(buf, "tidemalloc") == NULL);
    int again = harness_channel_fd();
    CHECKF("the channel is back, at another number", again >= 0 && again != fd, "channel at %d", again);
    _exit(harness_finish());
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/tide_channel_fd.%d", (int)getpid());
    CHECK_EXIT("dup2 onto the channel's number", stage, NULL, 0);
    CHECK_EXIT("the number closed and reopened by the program", stage, (void *)1, 0);
    unlink(path);
    return harness_finish();
}
