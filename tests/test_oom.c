/*
 * test_oom.c - running out of memory, for real and by injected faults.
 *
 * (a) RLIMIT_AS, each case in a forked child: the address-space limit is
 *     set to the current size + 64 MiB, then blocks are allocated until
 *     malloc returns NULL.  Checked: errno == ENOMEM; malloc, calloc,
 *     realloc (the old block stays intact), realloc(NULL), memalign,
 *     posix_memalign (returns ENOMEM), aligned_alloc and valloc fail cleanly
 *     too; tide_check_heap() passes at the limit; every block is intact; after
 *     freeing everything, half as many blocks and a 1 MiB block can be
 *     allocated again.  Cases: 100-byte and 4000-byte blocks (main arena,
 *     brk / top growth), 300 KiB blocks (mmapped chunks), and 4000-byte and
 *     300 KiB blocks from a non-main thread (sub-heaps).
 * (b) tide_fault_inject(TIDE_FAULT_MMAP / TIDE_FAULT_BRK / both, n) for
 *     n = 0..12: blocks allocated before stay intact; every allocation
 *     either succeeds or returns NULL with errno ENOMEM (posix_memalign:
 *     ENOMEM); with only brk failing everything must still succeed (the main
 *     arena falls back to mmap); with both failing, allocating 8 MiB blocks
 *     must hit NULL once the free memory the allocator holds and the OS calls
 *     still allowed are used up, and then a 64 MiB realloc must fail leaving
 *     the old block intact (calloc too); tide_check_heap() passes while the
 *     faults are active; and after
 *     tide_fault_inject(kind, -1) everything works again, threads included.
 * (c) impossible sizes (SIZE_MAX, calloc overflow) fail with ENOMEM.
 */
#include "harness.h"
#include "mt_common.h"
#include "tidemalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define MiB ((size_t)1 << 20)

/* ---- (a) RLIMIT_AS ---------------------------------------------------------------- */
static int ofail;

static void ocheck(int ok, const char *label, const char *what, long a, long b)
{
    if (ok)
        return;
    char buf[300];
    snprintf(buf, sizeof buf, "  [%s] FAIL: %s (%ld, %ld)\n", label, what, a, b);
    mt_say(buf);
    ofail++;
}

static void mark(void *p, size_t size, size_t idx)
{
    uint64_t v = idx * 0x9E3779B97F4A7C15ull + size;
    memcpy(p, &v, sizeof v);
    ((unsigned char *)p)[size - 1] = (unsigned char)(idx * 31 + 7);
}

static int marked(const void *p, size_t size, size_t idx)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v == idx * 0x9E3779B97F4A7C15ull + size &&
           ((const unsigned char *)p)[size - 1] == (unsigned char)(idx * 31 + 7);
}

struct oom_case {
    const char *label;
    size_t size;
    int in_thread;
};

static void oom_body(const struct oom_case *c)
{
    const char *L = c->label;
    const size_t size = c->size;
    const size_t cap = (size_t)4 << 20;   /* pointer slots */
    void **ptrs = mmap(NULL, cap * sizeof(void *), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ptrs == MAP_FAILED) {
        ocheck(0, L, "mmap of the pointer table", errno, 0);
        return;
    }
    free(malloc(size));                   /* the arena exists before the limit */

    long vm_kb = harness_status_kb("VmSize");
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)vm_kb * 1024 + 64 * MiB;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        ocheck(0, L, "setrlimit(RLIMIT_AS)", errno, 0);
        return;
    }

    size_t n = 0;
    int err = 0;
    void *p;
    for (;;) {
        if (n == cap)
            break;
        errno = 0;
        p = malloc(size);
        if (!p) {
            err = errno;
            break;
        }
        mark(p, size, n);
        ptrs[n++] = p;
    }
    ocheck(n < cap, L, "malloc never returned NULL under RLIMIT_AS", (long)n, 0);
    ocheck(n > 0, L, "not a single block before NULL", 0, 0);
    ocheck(err == ENOMEM, L, "errno after malloc returned NULL (expected ENOMEM)", err, ENOMEM);
    if (n == 0 || n == cap)
        return;

    errno = 0;
    p = malloc(size);
    ocheck(!p && errno == ENOMEM, L, "second malloc at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    errno = 0;
    p = calloc(1, size);
    ocheck(!p && errno == ENOMEM, L, "calloc(1, size) at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    errno = 0;
    p = calloc(size, 1);
    ocheck(!p && errno == ENOMEM, L, "calloc(size, 1) at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    errno = 0;
    p = realloc(NULL, size);
    ocheck(!p && errno == ENOMEM, L, "realloc(NULL, size) at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);

    void *last = ptrs[n - 1];
    errno = 0;
    p = realloc(last, 2 * size + 64 * 1024);
    ocheck(!p && errno == ENOMEM, L, "growing realloc at the limit: NULL/ENOMEM", p != NULL, errno);
    if (p) {
        ptrs[n - 1] = p;
        last = p;
    }
    ocheck(marked(last, size, n - 1), L, "failed realloc left the old block intact", 0, 0);
    ocheck(malloc_usable_size(last) >= size, L, "old block's usable size after failed realloc",
           (long)malloc_usable_size(last), (long)size);

    errno = 0;
    p = memalign(64, size);
    ocheck(!p && errno == ENOMEM, L, "memalign(64) at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    errno = 0;
    p = memalign(4096, size);
    ocheck(!p && errno == ENOMEM, L, "memalign(4096) at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    p = NULL;
    int rc = posix_memalign(&p, 64, size);
    ocheck(rc == ENOMEM, L, "posix_memalign at the limit returns ENOMEM", rc, ENOMEM);
    if (rc == 0)
        free(p);
    errno = 0;
    p = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
    ocheck(!p && errno == ENOMEM, L, "aligned_alloc at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    errno = 0;
    p = valloc(size);
    ocheck(!p && errno == ENOMEM, L, "valloc at the limit: NULL/ENOMEM", p != NULL, errno);
    free(p);
    errno = 0;
    p = malloc((size_t)1 << 40);
    ocheck(!p && errno == ENOMEM, L, "malloc(1 TiB) at the limit: NULL/ENOMEM", p != NULL, errno);

    ocheck(tide_check_heap() >= 0, L, "tide_check_heap at the limit", 0, 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!marked(ptrs[i], size, i))
            bad++;
    ocheck(bad == 0, L, "blocks intact at the limit", (long)bad, (long)n);
    for (size_t i = 0; i < n; i++)
        free(ptrs[i]);
    ocheck(tide_check_heap() >= 0, L, "tide_check_heap after freeing everything", 0, 0);

    /* Usable again (the limit is still in force). */
    size_t again = n / 2, got = 0;
    for (; got < again; got++) {
        ptrs[got] = malloc(size);
        if (!ptrs[got])
            break;
        mark(ptrs[got], size, got);
    }
    ocheck(got == again, L, "after freeing, half as many blocks fit again", (long)got, (long)again);
    for (size_t i = 0; i < got; i++) {
        if (!marked(ptrs[i], size, i))
            bad++;
        free(ptrs[i]);
    }
    ocheck(bad == 0, L, "re-allocated blocks intact", (long)bad, 0);
    p = malloc(MiB);
    ocheck(p != NULL, L, "malloc(1 MiB) works again", 0, 0);
    free(p);
    p = calloc(1, MiB);
    ocheck(p != NULL && mt_is_zero(p, MiB), L, "calloc(1 MiB) works again", p != NULL, 0);
    free(p);
    ocheck(tide_check_heap() >= 0, L, "tide_check_heap at the end", 0, 0);

    char buf[200];
    snprintf(buf, sizeof buf, "  [%s] %zu blocks of %zu bytes before ENOMEM\n", L, n, size);
    mt_say(buf);
    munmap(ptrs, cap * sizeof(void *));
}

static void *oom_thread(void *arg)
{
    oom_body(arg);
    return NULL;
}

static void oom_child(void *arg)
{
    const struct oom_case *c = arg;
    if (c->in_thread) {
        pthread_t t;
        if (pthread_create(&t, NULL, oom_thread, arg) != 0)
            ocheck(0, c->label, "pthread_create", 0, 0);
        else
            pthread_join(t, NULL);
    } else {
        oom_body(c);
    }
    _exit(ofail ? 1 : 0);
}

static void test_rlimit(void)
{
    static const struct oom_case cases[] = {
        { "main arena, 100-byte blocks", 100, 0 },
        { "main arena, 4000-byte blocks", 4000, 0 },
        { "mmapped, 300 KiB blocks", 300 * 1024, 0 },
        { "thread, 4000-byte blocks", 4000, 1 },
        { "thread, 300 KiB blocks", 300 * 1024, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ok = expect_exit(oom_child, (void *)&cases[i], 0);
        if (ok)
            fputs(harness_child_output, stdout);
        CHECKF("RLIMIT_AS: allocation fails cleanly and recovers", ok, "%s\n%s\n  child stderr:\n%s",
               cases[i].label, harness_child_diag, harness_child_output);
    }
}

/* ---- (b) injected faults ------------------------------------------------------------ */
enum { F_MMAP = 1, F_BRK = 2, F_BOTH = 3 };

static const char *mode_name(int m)
{
    return m == F_MMAP ? "mmap" : m == F_BRK ? "brk" : "mmap+brk";
}

static void inject(int mode, long after)
{
    if (mode & F_MMAP)
        tide_fault_inject(TIDE_FAULT_MMAP, after);
    if (mode & F_BRK)
        tide_fault_inject(TIDE_FAULT_BRK, after);
}

struct fstate {
    char label[64];
    int must_succeed;
    long nulls, successes;
};

/* Record a result; a NULL is allowed unless must_succeed, and must come with
 * ENOMEM (`err` is errno, or posix_memalign's return value). */
static int fresult(struct fstate *f, const void *p, int err, const char *what, size_t n)
{
    if (p) {
        f->successes++;
        return 1;
    }
    f->nulls++;
    CHECKF("fault: a failed allocation reports ENOMEM", err == ENOMEM, "[%s] %s(%zu): errno %d",
           f->label, what, n, err);
    if (f->must_succeed)
        CHECKF("fault: with only brk failing, allocation still succeeds (mmap fallback)", 0,
               "[%s] %s(%zu) returned NULL", f->label, what, n);
    return 0;
}

struct fthread_res {
    struct fstate *f;
    long nulls, bad_errno, ok;
};

static void *fault_thread(void *arg)
{
    struct fthread_res *r = arg;
    static const size_t sz[] = { 64, 500, 2000, 300 * 1024, 2 * MiB };
    void *keep[64];
    int nk = 0;
    for (int i = 0; i < 50; i++) {
        size_t n = sz[i % 5];
        if (n > 4096 && i >= 25)
            continue;
        errno = 0;
        void *p = malloc(n);
        if (!p) {
            r->nulls++;
            if (errno != ENOMEM)
                r->bad_errno++;
            continue;
        }
        mt_fill(p, n, (uint64_t)i);
        keep[nk++] = p;
        r->ok++;
    }
    for (int i = 0; i < nk; i++) {
        if (!mt_verify(keep[i], NULL))
            r->bad_errno += 1000;   /* corruption: reported as a big number */
        free(keep[i]);
    }
    return NULL;
}

struct early {
    void *p;
    size_t n;
    uint64_t seed;
};

static void fault_round(int mode, long after)
{
    struct fstate f;
    memset(&f, 0, sizeof f);
    snprintf(f.label, sizeof f.label, "%s fails after %ld calls", mode_name(mode), after);
    f.must_succeed = (mode == F_BRK);

    /* Blocks allocated before the faults start. */
    static const size_t esz[] = { 24, 200, 1000, 5000, 70000, 300 * 1024, 2 * MiB };
    enum { NE = sizeof esz / sizeof esz[0] };
    struct early E[NE];
    for (int i = 0; i < NE; i++) {
        E[i].n = esz[i];
        E[i].seed = (uint64_t)(mode * 1000 + after * 10 + i);
        E[i].p = malloc(E[i].n);
        if (!CHECKF("fault: allocation before injection", E[i].p != NULL, "%zu", E[i].n))
            return;
        mt_fill(E[i].p, E[i].n, E[i].seed);
    }

    /* A small block for the shrink below (not in E: E's are reallocated). */
    void *sm = malloc(1000);
    if (!CHECK("fault: small block before injection", sm != NULL))
        return;
    mt_fill(sm, 1000, (uint64_t)mode * 7 + 1);

    inject(mode, after);

    void *w[256];
    int nw = 0;
    static const size_t wsz[] = { 16, 100, 600, 1100, 3000, 20000, 100000, 140000,
                                  500000, 1 * MiB, 3 * MiB, 9 * MiB };
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < (int)(sizeof wsz / sizeof wsz[0]); i++) {
            size_t n = wsz[i];
            void *p = NULL;
            int how = (rep + i) % 4, err;
            errno = 0;
            if (how == 0) {
                p = malloc(n);
                err = errno;
                fresult(&f, p, err, "malloc", n);
            } else if (how == 1) {
                p = calloc(1, n);
                err = errno;
                if (fresult(&f, p, err, "calloc", n))
                    CHECKF("fault: calloc memory is zeroed", mt_is_zero(p, n), "[%s] %zu", f.label, n);
            } else if (how == 2) {
                p = memalign(4096, n);
                err = errno;
                if (fresult(&f, p, err, "memalign", n))
                    CHECK("fault: memalign alignment", ((uintptr_t)p & 4095) == 0);
            } else {
                err = posix_memalign(&p, 65536, n);
                if (err)
                    p = NULL;
                if (fresult(&f, p, err, "posix_memalign", n))
                    CHECK("fault: posix_memalign alignment", ((uintptr_t)p & 65535) == 0);
            }
            if (p) {
                if (n >= MT_HDR)
                    mt_fill(p, n, (uint64_t)(rep * 100 + i));
                w[nw++] = p;
            }
        }
    }

    /* Many main-arena-sized blocks: forces top growth (brk, or its fallback). */
    for (int i = 0; i < 2000 && nw < 256; i++) {
        errno = 0;
        void *p = malloc(4000);
        int err = errno;
        if (!fresult(&f, p, err, "malloc", 4000))
            break;
        mt_fill(p, 4000, (uint64_t)i);
        if (i % 10 == 0)
            w[nw++] = p;          /* keep every 10th, free the rest */
        else
            free(p);
    }

    /* realloc of blocks from before: on failure the old block is intact. */
    static const size_t rsz[NE] = { 40, 400 * 1024, 1500, 4000, 140000, 5 * MiB, 1 * MiB };
    for (int i = 0; i < NE; i++) {
        errno = 0;
        void *q = realloc(E[i].p, rsz[i]);
        int err = errno;
        if (fresult(&f, q, err, "realloc", rsz[i])) {
            size_t keep = rsz[i] < E[i].n ? rsz[i] : E[i].n;
            CHECKF("fault: realloc kept the content", mt_verify_prefix(q, E[i].n, E[i].seed, keep),
                   "[%s] %zu -> %zu", f.label, E[i].n, rsz[i]);
            E[i].p = q;
            E[i].n = rsz[i];
            mt_fill(q, E[i].n, E[i].seed);
        } else {
            CHECKF("fault: failed realloc left the block intact", mt_verify(E[i].p, NULL),
                   "[%s] %zu -> %zu", f.label, E[i].n, rsz[i]);
        }
    }

    /* A new thread (a new arena: needs mmap for a sub-heap). */
    struct fthread_res tr = { &f, 0, 0, 0 };
    pthread_t t;
    int e = pthread_create(&t, NULL, fault_thread, &tr);
    if (e == 0) {
        pthread_join(t, NULL);
        CHECKF("fault: thread's failed allocations report ENOMEM, no corruption", tr.bad_errno == 0,
               "[%s] %ld bad", f.label, tr.bad_errno);
        if (f.must_succeed)
            CHECKF("fault: with only brk failing, a thread's allocations succeed", tr.nulls == 0,
                   "[%s] %ld NULLs", f.label, tr.nulls);
    } else if (f.must_succeed) {
        CHECKF("fault: with only brk failing, pthread_create works", 0, "[%s] %s", f.label,
               strerror(e));
    }

    /* Big blocks: with both kinds failing this must run into NULL - once the
     * free memory the allocator already holds (it need not give freed memory
     * back) and the few OS calls still allowed are used up. */
    enum { MAXBIG = 400 };
    void *big[MAXBIG];
    int nbig = 0, hit_null = 0;
    int maxbig = 6;
    if (mode == F_BOTH) {
        struct tide_stats st;
        tide_get_stats(&st);
        size_t bound = st.free_bytes / (8 * MiB) + 4 * (size_t)(after + 1) + 8;
        maxbig = bound < MAXBIG ? (int)bound : MAXBIG;
    }
    for (int i = 0; i < maxbig; i++) {
        errno = 0;
        void *p = malloc(8 * MiB);
        int err = errno;
        if (!p) {
            hit_null = 1;
            if (mode == F_BOTH)
                CHECKF("fault: failed allocation reports ENOMEM", err == ENOMEM, "[%s] errno %d",
                       f.label, err);
            else
                fresult(&f, p, err, "malloc", 8 * MiB);
            break;
        }
        f.successes++;
        mark(p, 8 * MiB, (size_t)i);
        big[nbig++] = p;
    }
    if (mode == F_BOTH) {
        CHECKF("fault: with mmap and brk failing, 8 MiB allocations run into NULL", hit_null,
               "[%s] %d x 8 MiB succeeded", f.label, nbig);
    }
    if (mode == F_BOTH && hit_null) {
        /* Nothing left to get memory from: a large realloc must fail. */
        errno = 0;
        void *q = realloc(E[1].p, 64 * MiB);
        int err = errno;
        CHECKF("fault: with mmap and brk failing, realloc(64 MiB) fails with ENOMEM",
               q == NULL && err == ENOMEM, "[%s] %p errno %d", f.label, q, err);
        if (q)
            E[1].p = q, E[1].n = 64 * MiB, mt_fill(q, E[1].n, E[1].seed);
        CHECKF("fault: block intact after the failed realloc", mt_verify(E[1].p, NULL), "[%s]",
               f.label);
        errno = 0;
        q = calloc(64, MiB);
        err = errno;
        CHECKF("fault: with mmap and brk failing, calloc(64 MiB) fails with ENOMEM",
               q == NULL && err == ENOMEM, "[%s] %p errno %d", f.label, q, err);
        free(q);

        /* A shrinking realloc never fails (glibc splits the block in
         * place): a small block's shrink moves it through the thread's
         * cache when a block of the new size is to be had (api.c
         * realloc_via_cache), and stays in place when none is.  Every
         * block of that size taken first (a list through the blocks
         * themselves), the shrink must still succeed, in place, with its
         * contents and errno as they were. */
        void *taken = NULL;
        long ntaken = 0;
        for (; ntaken < 8L * 1024 * 1024; ntaken++) {
            void **b = malloc(200);
            if (!b)
                break;
            *b = taken;
            taken = b;
        }
        CHECKF("fault: with mmap and brk failing, 200-byte blocks run out", ntaken < 8L * 1024 * 1024,
               "[%s] %ld taken", f.label, ntaken);
        errno = EDOM;
        void *s = realloc(sm, 200);
        err = errno;
        CHECKF("fault: with no block to be had, a shrinking realloc stays in place", s == sm,
               "[%s] %p -> %p after %ld blocks", f.label, sm, s, ntaken);
        CHECKF("fault: the shrink in place keeps errno", err == EDOM, "[%s] errno %d", f.label, err);
        if (s) {
            CHECKF("fault: the shrink in place keeps the contents", mt_verify_prefix(s, 1000, (uint64_t)mode * 7 + 1, 200),
                   "[%s]", f.label);
            sm = s;
        }
        while (taken) {
            void *next = *(void **)taken;
            free(taken);
            taken = next;
        }
    }

    /* Everything from before is intact, the heap is consistent. */
    int bad = 0;
    for (int i = 0; i < NE; i++)
        if (!mt_verify(E[i].p, NULL))
            bad++;
    CHECKF("fault: blocks from before the faults are intact", bad == 0, "[%s] %d", f.label, bad);
    CHECKF("fault: tide_check_heap while faults are active", tide_check_heap() >= 0, "[%s]", f.label);

    /* Freeing and trimming while the faults are still active. */
    for (int i = 0; i < nbig; i++) {
        if (!marked(big[i], 8 * MiB, (size_t)i))
            bad++;
        free(big[i]);
    }
    for (int i = 0; i < nw; i++)
        free(w[i]);
    malloc_trim(0);
    tide_thread_cache_flush();
    CHECKF("fault: big blocks intact", bad == 0, "[%s] %d", f.label, bad);
    CHECKF("fault: tide_check_heap after frees under faults", tide_check_heap() >= 0, "[%s]",
           f.label);

    inject(mode, -1);

    /* Usable again. */
    static const size_t asz[] = { 100, 5000, 300 * 1024, 9 * MiB };
    for (int i = 0; i < 4; i++) {
        void *p = malloc(asz[i]);
        CHECKF("fault: malloc works again after tide_fault_inject(kind, -1)", p != NULL,
               "[%s] %zu", f.label, asz[i]);
        if (p)
            mt_fill(p, asz[i], 5);
        free(p);
    }
    void *c = calloc(1, 2 * MiB);
    CHECKF("fault: calloc works again", c && mt_is_zero(c, 2 * MiB), "[%s]", f.label);
    free(c);
    struct fthread_res tr2 = { &f, 0, 0, 0 };
    e = pthread_create(&t, NULL, fault_thread, &tr2);
    CHECKF("fault: threads work again", e == 0, "[%s] %s", f.label, strerror(e));
    if (e == 0) {
        pthread_join(t, NULL);
        CHECKF("fault: a thread's allocations all succeed again", tr2.nulls == 0 && tr2.bad_errno == 0,
               "[%s] %ld NULL, %ld bad", f.label, tr2.nulls, tr2.bad_errno);
    }
    for (int i = 0; i < NE; i++) {
        if (!mt_verify(E[i].p, NULL))
            bad++;
        free(E[i].p);
    }
    free(sm);
    CHECKF("fault: early blocks intact at the end", bad == 0, "[%s]", f.label);
    CHECKF("fault: tide_check_heap after recovery", tide_check_heap() >= 0, "[%s]", f.label);
    if (after == 0 || after == 12)
        printf("  [%s] %ld successes, %ld NULLs\n", f.label, f.successes, f.nulls);
}

static void test_fault_injection(void)
{
    static const int modes[] = { F_MMAP, F_BRK, F_BOTH };
    for (int m = 0; m < 3; m++)
        for (long n = 0; n <= 12; n++)
            fault_round(modes[m], n);
}

/* ---- (c) impossible sizes --------------------------------------------------------------- */
static void test_impossible(void)
{
    /* volatile: keeps the compiler from warning about (and folding) sizes it
     * can see are impossible - being impossible is the point here. */
    volatile size_t huge = SIZE_MAX, over = (size_t)PTRDIFF_MAX + 1, half = SIZE_MAX / 2;
    void *p;
    errno = 0;
    p = malloc(huge);
    CHECK("malloc(SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);
    errno = 0;
    p = malloc(over);
    CHECK("malloc(PTRDIFF_MAX + 1) fails with ENOMEM", p == NULL && errno == ENOMEM);
    errno = 0;
    p = calloc(half, 3);
    CHECK("calloc overflow fails with ENOMEM", p == NULL && errno == ENOMEM);
    void *q = malloc(10);
    errno = 0;
    p = realloc(q, huge - 4096);
    CHECK("realloc(SIZE_MAX - 4096) fails with ENOMEM", p == NULL && errno == ENOMEM);
    CHECK("block intact after the failed realloc", malloc_usable_size(q) >= 10);
    free(p ? p : q);
    errno = 0;
    p = memalign(64, huge - 100);
    CHECK("memalign(huge) fails with ENOMEM", p == NULL && errno == ENOMEM);
    q = NULL;
    CHECK("posix_memalign(huge) returns ENOMEM", posix_memalign(&q, 64, huge - 100) == ENOMEM);
}

int main(void)
{
    mt_watchdog(200, "test_oom");
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("test_oom\n");
    test_impossible();
    test_rlimit();
    test_fault_injection();
    tide_fault_inject(TIDE_FAULT_MMAP, -1);
    tide_fault_inject(TIDE_FAULT_BRK, -1);
    CHECK("final tide_check_heap", tide_check_heap() >= 0);
    return harness_finish();
}
