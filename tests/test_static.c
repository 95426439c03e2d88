/*
 * test_static.c - libtidemalloc.a linked into a program.
 *
 * Built twice (tests/threads.cmake): fully static (-static, glibc's libc.a)
 * as test_static, and into an ordinary dynamic executable as
 * test_static_dynexe.  That the link succeeds at all shows the archive
 * provides every allocation entry point that libc.a's malloc.o would
 * otherwise be pulled in for (a missing one gives duplicate-symbol errors),
 * so this program references all of them.
 *
 * At run time: tide_owns() is true for blocks from malloc, calloc, realloc,
 * memalign, posix_memalign, aligned_alloc, valloc, pvalloc, reallocarray and
 * for memory libc allocates internally (strdup, asprintf, getline, open_memstream,
 * fopen's buffer), threads allocate and free across each other, fork works,
 * and tide_check_heap() passes.
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define NT 4
static void *handoff[NT][100];

static void *thr(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    mt_rng r;
    mt_seed(&r, id + 1);
    long bad = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = mt_range(&r, MT_HDR, it % 500 == 0 ? 400000 : 2000);
        void *p = malloc(n);
        if (!p || !tide_owns(p)) {
            bad++;
            continue;
        }
        mt_fill(p, n, (uint64_t)it);
        if (!mt_verify(p, NULL))
            bad++;
        if (it % 200 == 0 && handoff[id][it / 200] == NULL)
            handoff[id][it / 200] = p;       /* freed by another thread */
        else
            free(p);
    }
    return (void *)(intptr_t)bad;
}

static void *thr_free(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    long bad = 0;
    for (int i = 0; i < 100; i++) {
        void *p = handoff[(id + 1) % NT][i];
        handoff[(id + 1) % NT][i] = NULL;
        if (p && !mt_verify(p, NULL))
            bad++;
        free(p);
    }
    return (void *)(intptr_t)bad;
}

int main(void)
{
    mt_watchdog(100, "test_static");

    void *m = malloc(100);
    CHECK("tide_owns(malloc(100))", m && tide_owns(m));
    void *c = calloc(10, 10);
    CHECK("tide_owns(calloc)", c && tide_owns(c) && mt_is_zero(c, 100));
    void *r = realloc(NULL, 50);
    CHECK("tide_owns(realloc(NULL, 50))", r && tide_owns(r));
    r = realloc(r, 5000);
    CHECK("tide_owns(realloc grown)", r && tide_owns(r));
    void *ra = reallocarray(NULL, 10, 20);
    CHECK("tide_owns(reallocarray)", ra && tide_owns(ra));
    void *ma = memalign(64, 100);
    CHECK("tide_owns(memalign)", ma && tide_owns(ma) && ((uintptr_t)ma & 63) == 0);
    void *pa = NULL;
    CHECK("tide_owns(posix_memalign)", posix_memalign(&pa, 256, 100) == 0 && tide_owns(pa));
    void *aa = aligned_alloc(128, 256);
    CHECK("tide_owns(aligned_alloc)", aa && tide_owns(aa));
    void *va = valloc(100);
    CHECK("tide_owns(valloc)", va && tide_owns(va) && ((uintptr_t)va & 4095) == 0);
    void *pv = pvalloc(100);
    CHECK("tide_owns(pvalloc)", pv && tide_owns(pv));
    void *big = malloc(1 << 20);
    CHECK("tide_owns(malloc(1 MiB))", big && tide_owns(big));
    CHECK("malloc_usable_size", malloc_usable_size(m) >= 100 && malloc_usable_size(big) >= (1 << 20));
    CHECK("tide_malloc_usable_size agrees", tide_malloc_usable_size(m) == malloc_usable_size(m));

    /* The rest of the malloc API, so that nothing pulls in libc's malloc.o. */
    mallopt(M_TRIM_THRESHOLD, 256 * 1024);
    struct mallinfo2 mi = mallinfo2();
    CHECK("mallinfo2 reports memory in use", mi.uordblks + mi.hblkhd > 0);
    malloc_trim(0);
    FILE *devnull = fopen("/dev/null", "w");
    CHECK("fopen works", devnull != NULL);
    if (devnull) {
        malloc_info(0, devnull);
        fprintf(devnull, "%d\n", 42);
        fclose(devnull);
    }
    void *t1 = tide_malloc(64);
    CHECK("tide_malloc", t1 && tide_owns(t1));
    tide_free(t1);

    /* libc's own allocations go through tidemalloc too. */
    char *s = strdup("static linking works");
    CHECK("tide_owns(strdup)", s && tide_owns(s));
    char *as = NULL;
    CHECK("tide_owns(asprintf)", asprintf(&as, "%s %d", "x", 12345) > 0 && tide_owns(as));
    char *ms = NULL;
    size_t mslen = 0;
    FILE *mf = open_memstream(&ms, &mslen);
    if (CHECK("open_memstream", mf != NULL)) {
        for (int i = 0; i < 1000; i++)
            fprintf(mf, "line %d\n", i);
        fclose(mf);
        CHECK("tide_owns(open_memstream buffer)", ms && tide_owns(ms) && mslen > 5000);
    }
    free(ms);
    FILE *self = fopen("/proc/self/maps", "r");
    if (CHECK("fopen /proc/self/maps", self != NULL)) {
        char *line = NULL;
        size_t cap = 0;
        CHECK("getline", getline(&line, &cap, self) > 0 && tide_owns(line));
        free(line);
        fclose(self);
    }

    /* Threads, with frees across threads. */
    pthread_t th[NT];
    long bad = 0;
    for (uintptr_t i = 0; i < NT; i++)
        CHECK("pthread_create", pthread_create(&th[i], NULL, thr, (void *)i) == 0);
    for (int i = 0; i < NT; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        bad += (long)(intptr_t)ret;
    }
    for (uintptr_t i = 0; i < NT; i++)
        CHECK("pthread_create", pthread_create(&th[i], NULL, thr_free, (void *)i) == 0);
    for (int i = 0; i < NT; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        bad += (long)(intptr_t)ret;
    }
    CHECKF("threads allocate and free (tidemalloc's blocks, intact)", bad == 0, "%ld bad", bad);

    /* fork */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        void *q = malloc(1000);
        void *q2 = malloc(300000);
        int ok = q && q2 && tide_owns(q) && tide_owns(q2);
        free(q);
        free(q2);
        free(s);                              /* parent's block, in the child */
        tide_check_heap();
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("fork: child allocates", WIFEXITED(st) && WEXITSTATUS(st) == 0);

    struct tide_stats ts;
    tide_get_stats(&ts);
    CHECKF("tide_get_stats: arenas", ts.narenas >= 1, "%zu", ts.narenas);
    free(m);
    free(c);
    free(r);
    free(ra);
    free(ma);
    free(pa);
    free(aa);
    free(va);
    free(pv);
    free(big);
    free(s);
    free(as);
    CHECK("tide_check_heap", tide_check_heap() >= 0);
    return harness_finish();
}
