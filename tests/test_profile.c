/*
 * test_profile - allocation-site profiling (TIDEMALLOC_PROFILE, src/prof.h).
 *
 * Run with TIDEMALLOC_PROFILE=seed:N,out:PREFIX (tests/profile.cmake).
 * The program keeps, beside each other:
 *   keep_big      64 MiB in 4 KiB blocks      (the known top site)
 *   keep_small     4 MiB in 512-byte blocks   (through the thread cache)
 *   keep_large     8 MiB in 512 KiB blocks    (mmapped chunks)
 *   keep_grown     4 MiB grown with realloc   (64 blocks, 1 KiB -> 64 KiB)
 * while churn() allocates and frees 512 MiB (never live at a report), and
 * two threads churn at the same time (the table under concurrency).
 *
 * Checks, on the reports written by tide_profile_dump():
 *   1. the top site of PREFIX-1.txt resolves (dladdr: the program is
 *      linked with -rdynamic) to keep_big;
 *   2. its estimated bytes are within 25% of the true 64 MiB, and the
 *      total estimate within 25% of the true live bytes.  With the
 *      default rate (512 KiB) keep_big holds ~128 samples: the relative
 *      standard deviation of the estimate is ~1/sqrt(128) = 9%, so 25% is
 *      2.8 sigma; the seed is fixed, so the run is reproducible;
 *   3. the .collapsed lines add up to the .txt total, each frame has the
 *      form module+0xoff;
 *   4. after keep_big's blocks are freed, a second report (PREFIX-2) no
 *      longer shows keep_big, and its total dropped by about 64 MiB:
 *      frees remove their samples;
 *   5. a fork child can dump too (the profile lock is fork-safe);
 *   6. tide_check_heap() accepts the sampled chunks (S bit).
 * Without TIDEMALLOC_PROFILE, tide_profile_dump() fails with EINVAL.
 * `test_profile --keep` only allocates the four sites and exits with them
 * live, for the command's test (tests/profile.sh).
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tidemalloc.h"

#define KIB 1024ul
#define MIB (1024ul * 1024)

static int failures;
#define CHECK(c, ...)                                                  \
    do {                                                               \
        if (!(c)) {                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                \
            printf(__VA_ARGS__);                                       \
            printf("\n");                                              \
            failures++;                                                \
        }                                                              \
    } while (0)

static void *big[64 * MIB / (4 * KIB)];
static void *small[4 * MIB / 512];
static void *large[8 * MIB / (512 * KIB)];
static void *grown[64];

__attribute__((noinline)) void keep_big(void)
{
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        big[i] = malloc(4 * KIB);
        memset(big[i], 1, 64);
    }
}
__attribute__((noinline)) void keep_small(void)
{
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        small[i] = malloc(512);
}
__attribute__((noinline)) void keep_large(void)
{
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
        large[i] = malloc(512 * KIB);
}
__attribute__((noinline)) void keep_grown(void)
{
    for (size_t i = 0; i < 64; i++) {
        void *p = NULL;
        for (size_t sz = 1 * KIB; sz <= 64 * KIB; sz *= 2)
            p = realloc(p, sz);
        grown[i] = p;
    }
}
__attribute__((noinline)) void churn(size_t total, unsigned seed)
{
    size_t done = 0;
    void *ring[32] = { 0 };
    for (unsigned k = 0; done < total; k++) {
        seed = seed * 1103515245u + 12345u;
        size_t sz = 16 + (seed >> 8) % 8192;
        free(ring[k % 32]);
        ring[k % 32] = malloc(sz);
        done += sz;
    }
    for (int k = 0; k < 32; k++)
        free(ring[k]);
}
static void *churn_thread(void *arg)
{
    churn(128 * MIB, (unsigned)(uintptr_t)arg);
    return NULL;
}

/* The estimated total of a PREFIX.txt report, and its top site's leaf. */
struct report {
    unsigned long total, top_bytes;
    char top_site[600];
};

static int read_report(const char *prefix, struct report *r)
{
    char path[600], line[1024];
    snprintf(path, sizeof path, "%s.txt", prefix);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    memset(r, 0, sizeof *r);
    int in_top = 0;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "estimated live bytes: %lu", &r->total);
        if (strncmp(line, "top ", 4) == 0)
            in_top = 1;
        else if (in_top == 1) {
            unsigned long rank, bytes, pct, samples;
            if (sscanf(line, "%lu %lu %lu%% %lu samples %599s", &rank, &bytes, &pct, &samples,
                       r->top_site) == 5) {
                r->top_bytes = bytes;
                in_top = 2;
            }
        }
    }
    fclose(f);
    return 0;
}

/* module+0xoff -> the runtime address, through the module's load bias. */
struct find { const char *name; uintptr_t bias; int found; };
static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct find *fm = arg;
    char exe[512];
    const char *name = info->dlpi_name;
    if (!name || !*name) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        name = exe;
    }
    if (strcmp(name, fm->name) == 0) {
        fm->bias = info->dlpi_addr;
        fm->found = 1;
        return 1;
    }
    return 0;
}
static const char *site_function(const char *site)
{
    static char mod[600];
    const char *plus = strrchr(site, '+');
    if (!plus || strncmp(plus, "+0x", 3) != 0)
        return "(malformed)";
    snprintf(mod, sizeof mod, "%.*s", (int)(plus - site), site);
    struct find fm = { mod, 0, 0 };
    dl_iterate_phdr(find_module, &fm);
    if (!fm.found)
        return "(module not loaded)";
    Dl_info info;
    uintptr_t addr = fm.bias + strtoul(plus + 1, NULL, 16);
    if (!dladdr((void *)addr, &info) || !info.dli_sname)
        return "(no symbol)";
    return info.dli_sname;
}

/* Sum of the .collapsed values; -1 on a malformed line. */
static long collapsed_sum(const char *prefix, int *lines)
{
    char path[600];
    static char line[1 << 16];
    snprintf(path, sizeof path, "%s.collapsed", prefix);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long sum = 0;
    *lines = 0;
    while (fgets(line, sizeof line, f)) {
        char *sp = strrchr(line, ' ');
        if (!sp || !strstr(line, "+0x"))
            return -1;
        sum += strtol(sp + 1, NULL, 10);
        (*lines)++;
    }
    fclose(f);
    return sum;
}

static double ratio(unsigned long est, unsigned long truth)
{
    return (double)est / (double)truth;
}

int main(int argc, char **argv)
{
    const char *prefix = argc > 1 ? argv[1] : NULL;
    if (prefix && strcmp(prefix, "--keep") == 0) {
        /* For tests/profile.sh: the known sites, still live at exit. */
        keep_big();
        churn(64 * MIB, 1);
        keep_small();
        keep_large();
        keep_grown();
        churn(64 * MIB, 2);
        printf("kept %lu bytes\n", 64 * MIB + 4 * MIB + 8 * MIB + 64 * 64 * KIB);
        return 0;
    }
    if (!prefix) {   /* profiling off: the call says so */
        errno = 0;
        int rc = tide_profile_dump("unused");
        CHECK(rc == -1 && errno == EINVAL, "dump without profiling: rc %d errno %d", rc, errno);
        printf("%s\n", failures ? "FAILED" : "1 passed, 0 failed");
        return failures != 0;
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, churn_thread, (void *)(uintptr_t)(i + 7));
    keep_big();
    churn(256 * MIB, 1);
    keep_small();
    keep_large();
    keep_grown();
    churn(256 * MIB, 2);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    unsigned long live = 64 * MIB + 4 * MIB + 8 * MIB + 64 * 64 * KIB;

    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s-1", prefix);
    snprintf(p2, sizeof p2, "%s-2", prefix);
    CHECK(tide_profile_dump(p1) == 0, "dump 1: %s", strerror(errno));
    struct report r1;
    CHECK(read_report(p1, &r1) == 0, "no %s.txt", p1);
    const char *fn = site_function(r1.top_site);
    printf("report 1: total %lu (true >= %lu, ratio %.3f); top site %s = %s, %lu bytes (ratio %.3f to 64 MiB)\n",
           r1.total, live, ratio(r1.total, live), r1.top_site, fn, r1.top_bytes,
           ratio(r1.top_bytes, 64 * MIB));
    CHECK(strcmp(fn, "keep_big") == 0, "top site is %s, expected keep_big", fn);
    CHECK(ratio(r1.top_bytes, 64 * MIB) > 0.75 && ratio(r1.top_bytes, 64 * MIB) < 1.25,
          "keep_big estimated at %lu bytes", r1.top_bytes);
    CHECK(ratio(r1.total, live) > 0.75 && ratio(r1.total, live) < 1.25,
          "total estimated at %lu bytes, true %lu", r1.total, live);
    int lines = 0;
    long sum = collapsed_sum(p1, &lines);
    printf("report 1: %d stacks in %s.collapsed, sum %ld\n", lines, p1, sum);
    CHECK(sum > 0 && labs(sum - (long)r1.total) <= lines, "collapsed sum %ld vs total %lu", sum, r1.total);

    /* Sampled chunks (S bit in their size word) pass the heap check. */
    CHECK(tide_check_heap() > 0, "heap check");
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        free(big[i]);
    CHECK(tide_profile_dump(p2) == 0, "dump 2: %s", strerror(errno));
    struct report r2;
    CHECK(read_report(p2, &r2) == 0, "no %s.txt", p2);
    fn = site_function(r2.top_site);
    printf("report 2 (keep_big freed): total %lu (true >= %lu), top site %s\n", r2.total, live - 64 * MIB, fn);
    CHECK(strcmp(fn, "keep_big") != 0, "keep_big still on top after its blocks were freed");
    CHECK(r1.total - r2.total > 48 * MIB && r1.total - r2.total < 80 * MIB,
          "freeing 64 MiB lowered the estimate by %lu", r1.total - r2.total);

    pid_t pid = fork();
    if (pid == 0) {
        char p3[600];
        snprintf(p3, sizeof p3, "%s-child", prefix);
        void *x = malloc(3 * MIB);
        _exit(tide_profile_dump(p3) == 0 && x ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child could not dump");

    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        free(small[i]);
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
        free(large[i]);
    for (size_t i = 0; i < 64; i++)
        free(grown[i]);
    printf("%s\n", failures ? "FAILED" : "1 passed, 0 failed");
    return failures != 0;
}
