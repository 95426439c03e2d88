/* bench_common.c - see bench_common.h */
#define _GNU_SOURCE
#include "bench_common.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *g_name = "bench";

void rng_order(rng_t *r, size_t *order, size_t n)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

size_t rng_logsize(rng_t *r, size_t lo, size_t hi)
{
    /* exp(uniform(log lo, log hi)) without libm: pick a power-of-two octave
     * uniformly, then a uniform size inside it, clamped to [lo, hi].      */
    unsigned lo_b = 0, hi_b = 0;
    while (((size_t)1 << (lo_b + 1)) <= lo) lo_b++;
    while (((size_t)1 << hi_b) < hi) hi_b++;
    for (;;) {
        unsigned b = lo_b + (unsigned)(rng_next(r) % (hi_b - lo_b + 1u));
        size_t base = (size_t)1 << b;
        size_t s = base + (size_t)(rng_next(r) % base);
        if (s >= lo && s <= hi)
            return s;
    }
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Reads /proc/self/status with open(2)/read(2) into a stack buffer: no
 * malloc at all (fopen would allocate its FILE), so sampling RSS does not
 * wake the allocator under test (wl_seed002's quiet idle phase relies on
 * this).                                                                */
long status_kb(const char *field)
{
    char buf[8192];
    size_t len = 0, flen = strlen(field);
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (len < sizeof buf - 1) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    for (const char *line = buf; *line;) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            return strtol(line + flen + 1, NULL, 10);
        const char *nl = strchr(line, '\n');
        if (!nl)
            break;
        line = nl + 1;
    }
    return -1;
}

const char *alloc_lib(void)
{
    static char path[4096];
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (!m || !dladdr(m, &info) || !info.dli_fname || !info.dli_fname[0])
        return "unknown";
    snprintf(path, sizeof path, "%s", info.dli_fname);
    return path;
}

void *alloc_sym(const char *name)
{
    Dl_info mi, si;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    void *s = dlsym(RTLD_DEFAULT, name);
    if (!m || !s || !dladdr(m, &mi) || !dladdr(s, &si))
        return NULL;
    return mi.dli_fbase == si.dli_fbase ? s : NULL;
}

int alloc_trim(void)
{
    int (*trim)(size_t) = (int (*)(size_t))alloc_sym("malloc_trim");
    if (!trim)
        return 0;
    trim(0);
    return 1;
}

/* jemalloc's sdallocx takes (ptr, size, flags): called through a wrapper
 * with flags 0 so that every sized free has the same signature.          */
static void (*g_sdallocx)(void *, size_t, int);
static void sdallocx0(void *p, size_t size) { g_sdallocx(p, size, 0); }

sized_free_fn alloc_sized_free(const char **name)
{
    static const char *plain[] = { "free_sized", "tc_free_sized", "mi_free_size" };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        void *f = alloc_sym(plain[i]);
        if (f) {
            *name = plain[i];
            return (sized_free_fn)f;
        }
    }
    void *f = alloc_sym("sdallocx");
    if (f) {
        g_sdallocx = (void (*)(void *, size_t, int))f;
        *name = "sdallocx";
        return sdallocx0;
    }
    *name = "none";
    return NULL;
}

void bench_run_threads(int n, void *(*fn)(void *), void *arg, size_t arg_stride)
{
    pthread_t th[64];
    if (n < 1 || n > 64)
        bench_fail("thread count %d out of range 1..64", n);
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, fn, (char *)arg + (size_t)i * arg_stride))
            bench_fail("pthread_create failed");
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

static inline uint64_t stamp_word(uint64_t tag, size_t off)
{
    uint64_t x = tag ^ ((uint64_t)off * 0x9E3779B97F4A7C15ull);
    return x ^ (x >> 29);
}

void stamp_block(void *p, size_t n, uint64_t tag, size_t stride)
{
    unsigned char *b = p;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)stamp_word(tag, i);
        return;
    }
    for (size_t off = 0; off + 8 <= n; off += stride) {
        uint64_t w = stamp_word(tag, off);
        __builtin_memcpy(b + off, &w, 8);
    }
    uint64_t w = stamp_word(tag, n - 8) ^ 0x5A5A5A5A5A5A5A5Aull;
    __builtin_memcpy(b + n - 8, &w, 8);
}

int stamp_ok(const void *p, size_t n, uint64_t tag, size_t stride)
{
    const unsigned char *b = p;
    uint64_t w;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (b[i] != (unsigned char)stamp_word(tag, i))
                return 0;
        return 1;
    }
    /* The tail word may overlap the last strided word: check it first, then
     * the strided words that lie entirely before it.                      */
    __builtin_memcpy(&w, b + n - 8, 8);
    if (w != (stamp_word(tag, n - 8) ^ 0x5A5A5A5A5A5A5A5Aull))
        return 0;
    for (size_t off = 0; off + 16 <= n; off += stride) {
        __builtin_memcpy(&w, b + off, 8);
        if (w != stamp_word(tag, off))
            return 0;
    }
    return 1;
}

int bench_quick(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            return 1;
    const char *e = getenv("BENCH_QUICK");
    return e && e[0] && strcmp(e, "0") != 0;
}

const char *bench_arg(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], name, n) != 0)
            continue;
        if (argv[i][n] == '=')
            return argv[i] + n + 1;
        if (argv[i][n] == '\0' && i + 1 < argc)
            return argv[i + 1];
    }
    return NULL;
}

long bench_arg_long(int argc, char **argv, const char *name, long def)
{
    const char *v = bench_arg(argc, argv, name);
    if (!v)
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end == 'k' || *end == 'K')
        x *= 1000, end++;
    else if (*end == 'M')
        x *= 1000000, end++;
    if (*end || end == v)
        bench_fail("bad value %s for %s", v, name);
    return x;
}

void bench_set_name(const char *name) { g_name = name; }

void bench_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "wl_%s: FAILED: ", g_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

void bench_result(double time_s, uint64_t ops, const char *extra_fmt, ...)
{
    char extra[2048] = "";
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(extra, sizeof extra, extra_fmt, ap);
        va_end(ap);
    }
    long hwm = status_kb("VmHWM");
    long rss = status_kb("VmRSS");
    printf("RESULT name=%s alloc_lib=%s time_s=%.6f ops=%llu ops_per_s=%.1f "
           "peak_rss_kb=%ld final_rss_kb=%ld%s%s\n",
           g_name, alloc_lib(), time_s, (unsigned long long)ops,
           time_s > 0 ? (double)ops / time_s : 0.0, hwm, rss,
           extra[0] ? " " : "", extra);
    fflush(stdout);
}
