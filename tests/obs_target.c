/*
 * obs_target.c - a threaded program for the `tidemalloc stats` and
 * `heapmap` tests (tests/test_tool.py): it holds a known number of bytes
 * and keeps allocating, and the test compares what the statistics
 * channel says with what the program says it holds.
 *
 *   obs_target PHASES
 * For phase k = 1..PHASES: 4 threads hold k x 8 MiB in all (blocks of
 * 2-64 KiB), the main thread prints "held <bytes> pid <pid>" and every
 * thread churns (free + malloc of one of its blocks, most sizes above
 * the thread cache's classes (8 KiB) so most are slow paths) until a line
 * arrives on stdin; "fork" instead forks a child that holds 24 MiB more,
 * prints "child <pid> held <bytes>", and waits for its stdin to close.
 * At EOF everything is freed and the program exits 0.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NT 4
#define MAXB 8192

struct worker {
    pthread_t th;
    void *blk[MAXB];
    size_t sz[MAXB];
    size_t n, held, want;
    unsigned seed;
};
static struct worker w[NT];
static _Atomic int phase, stop;
static _Atomic int ready;

static size_t pick(unsigned *seed)
{
    return 2048 + (size_t)(rand_r(seed) % (62 * 1024));
}

static void grow_to(struct worker *x)
{
    while (x->held < x->want && x->n < MAXB) {
        size_t s = pick(&x->seed);
        char *p = malloc(s);
        if (!p)
            abort();
        memset(p, 0x5a, s);
        x->blk[x->n] = p;
        x->sz[x->n++] = s;
        x->held += s;
    }
}

static void *run(void *arg)
{
    struct worker *x = arg;
    int seen = 0;
    while (!atomic_load(&stop)) {
        int ph = atomic_load(&phase);
        if (ph != seen) {
            grow_to(x);
            seen = ph;
            atomic_fetch_add(&ready, 1);
        }
        if (x->n == 0) {
            usleep(1000);
            continue;
        }
        /* churn: replace one block by one of the same size */
        size_t i = (size_t)rand_r(&x->seed) % x->n;
        free(x->blk[i]);
        x->blk[i] = malloc(x->sz[i]);
        if (!x->blk[i])
            abort();
        memset(x->blk[i], 0x33, 64);
        usleep(200);
    }
    for (size_t i = 0; i < x->n; i++)
        free(x->blk[i]);
    return NULL;
}

static size_t total_held(void)
{
    size_t t = 0;
    for (int i = 0; i < NT; i++)
        t += w[i].held;
    return t;
}

int main(int argc, char **argv)
{
    int phases = argc > 1 ? atoi(argv[1]) : 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < NT; i++) {
        w[i].seed = 1234u + (unsigned)i;
        pthread_create(&w[i].th, NULL, run, &w[i]);
    }
    char line[64];
    for (int k = 1; k <= phases; k++) {
        for (int i = 0; i < NT; i++)
            w[i].want = (size_t)k * 8 * 1024 * 1024 / NT;
        atomic_store(&ready, 0);
        atomic_fetch_add(&phase, 1);     /* every thread grows to `want` */
        while (atomic_load(&ready) < NT)
            usleep(1000);
        printf("held %zu pid %d\n", total_held(), (int)getpid());
        if (!fgets(line, sizeof line, stdin))
            break;
        if (strncmp(line, "fork", 4) == 0) {
            pid_t c = fork();
            if (c == 0) {
                /* the child: single-threaded, its own heap figures */
                size_t held = 0;
                void *keep[400];
                for (int i = 0; i < 384; i++) {
                    keep[i] = malloc(64 * 1024);
                    memset(keep[i], 1, 64 * 1024);
                    held += 64 * 1024;
                }
                /* slow-path calls (16 KiB: not cached) enough for the
                 * channel to be made; then,
                 * 150 ms later, more: a process with no background thread
                 * refreshes its figures from its slow paths, at most every
                 * 100 ms, so these bring them up to date.                 */
                for (int i = 0; i < 2000; i++)
                    free(malloc(16384 + (size_t)i));
                usleep(150000);
                for (int i = 0; i < 200; i++)
                    free(malloc(16384 + (size_t)i));
                printf("child %d held %zu\n", (int)getpid(), held);
                while (fgets(line, sizeof line, stdin) && strncmp(line, "exit", 4) != 0)
                    for (int i = 0; i < 200; i++)
                        free(malloc(16384 + (size_t)i));
                for (int i = 0; i < 384; i++)
                    free(keep[i]);
                _exit(0);
            }
            /* the parent waits for the child to finish (stdin says when) */
            int st;
            waitpid(c, &st, 0);
            printf("child-exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
            k--;                         /* the same phase again */
            continue;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NT; i++)
        pthread_join(w[i].th, NULL);
    return 0;
}
