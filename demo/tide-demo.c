/*
 * tide-demo - what tidemalloc is for, shown side by side with glibc.
 *
 *   build/demo/tide-demo --lib build/libtidemalloc.so [--peers] [--quick]
 *
 * 1. Lazy allocation: in a child process per allocator, malloc(1 GiB),
 *    touch half of it, then all of it, then free it, printing VmSize and
 *    VmRSS at each step: the address space is reserved at malloc, the
 *    memory only when a page is first written.
 * 2. The seed-002 scenario (bench/wl_seed002.c, linked in): a NoSQL-like
 *    server under load, then drained to ~5 % of its data, then idle; RSS is
 *    compared with the bytes still live after each phase.
 * 3. Which library really served malloc() in each child (dladdr on the
 *    malloc symbol, plus tide_owns() on a fresh block for tidemalloc).
 *
 * Every child is this program itself, re-executed (/proc/self/exe) with
 * LD_PRELOAD=<library> - or without LD_PRELOAD for glibc.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int seed002_main(int argc, char **argv);   /* bench/wl_seed002.c */

#define MAX_ALLOC 5
#define LAZY_SIZE ((size_t)1 << 30)

struct allocator {
    const char *name;
    char lib[PATH_MAX];        /* "" = glibc, no preload */
};

static const char *lib_dirs[] = { "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                                  "/usr/lib64", "/lib64", "/usr/local/lib", "/usr/lib", NULL };
static const struct { const char *name, *soname; } peers[] = {
    { "jemalloc", "libjemalloc.so.2" },
    { "tcmalloc", "libtcmalloc_minimal.so.4" },
    { "mimalloc", "libmimalloc.so.2" },
};

static char self_exe[PATH_MAX];
static int failures;

/* ======================================================================
 * child side
 * ==================================================================== */

/* Prints the line the parent uses for section 3. */
static void child_identify(void)
{
    const char *lib = alloc_lib();
    int (*owns)(const void *) = (int (*)(const void *))alloc_sym("tide_owns");
    void *p = malloc(100);
    int owned = owns && p ? owns(p) : -1;
    free(p);
    printf("ALLOC lib=%s tide_owns=%d\n", lib, owned);
    fflush(stdout);
}

static void lazy_report(const char *phase)
{
    printf("LAZY phase=%s vmsize_kb=%ld vmrss_kb=%ld\n", phase, status_kb("VmSize"),
           status_kb("VmRSS"));
    fflush(stdout);
}

static int child_lazy(void)
{
    child_identify();
    long page = sysconf(_SC_PAGESIZE);
    lazy_report("before");
    volatile char *p = malloc(LAZY_SIZE);
    if (!p) {
        fprintf(stderr, "tide-demo: malloc(1 GiB) returned NULL\n");
        return 2;
    }
    lazy_report("malloc");
    for (size_t off = 0; off < LAZY_SIZE / 2; off += (size_t)page)
        p[off] = (char)(off >> 12);
    lazy_report("half");
    for (size_t off = LAZY_SIZE / 2; off < LAZY_SIZE; off += (size_t)page)
        p[off] = (char)(off >> 12);
    lazy_report("all");
    for (size_t off = 0; off < LAZY_SIZE; off += (size_t)page)
        if (p[off] != (char)(off >> 12)) {
            fprintf(stderr, "tide-demo: 1 GiB block corrupted at offset %zu\n", off);
            return 2;
        }
    free((void *)p);
    lazy_report("free");
    return 0;
}

/* ======================================================================
 * parent side
 * ==================================================================== */

struct child_out {
    char text[16384];
    int status;         /* wait status */
    int timed_out;
};

/* Runs self_exe with args under `lib` (NULL/"" = no preload), collecting
 * stdout; stderr goes straight through.  Kills the child after timeout_s. */
static void run_child(const char *lib, char *const args[], double timeout_s, struct child_out *out)
{
    int fd[2];
    memset(out, 0, sizeof *out);
    if (pipe(fd) != 0) {
        perror("tide-demo: pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("tide-demo: fork");
        exit(1);
    }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        close(fd[1]);
        if (lib && lib[0])
            setenv("LD_PRELOAD", lib, 1);
        else
            unsetenv("LD_PRELOAD");
        unsetenv("BENCH_QUICK");
        execv(self_exe, args);
        fprintf(stderr, "tide-demo: cannot execute %s: %s\n", self_exe, strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    double deadline = now_s() + timeout_s;
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) {
            kill(pid, SIGKILL);
            out->timed_out = 1;
            break;
        }
        struct pollfd pf = { .fd = fd[0], .events = POLLIN };
        int r = poll(&pf, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        char tmp[4096];
        ssize_t n = read(fd[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t room = sizeof out->text - 1 - len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(out->text + len, tmp, take);
        len += take;
    }
    out->text[len] = '\0';
    close(fd[0]);
    while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
        ;
}

static int child_ok(const struct child_out *c, const char *what, const char *alloc)
{
    if (c->timed_out) {
        printf("  !! %s under %s: no answer in time, child killed\n", what, alloc);
        return 0;
    }
    if (WIFSIGNALED(c->status)) {
        printf("  !! %s under %s: child killed by signal %d (%s)\n", what, alloc,
               WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
        return 0;
    }
    if (WIFEXITED(c->status) && WEXITSTATUS(c->status) != 0) {
        printf("  !! %s under %s: child exited with status %d (see its message above)\n",
               what, alloc, WEXITSTATUS(c->status));
        return 0;
    }
    return 1;
}

/* Value of key=... in the line of `text` starting with `prefix` (and, if
 * `match` is not NULL, containing it); copies into buf, returns buf or NULL. */
static const char *field(const char *text, const char *prefix, const char *match,
                         const char *key, char *buf, size_t bufsz)
{
    size_t plen = strlen(prefix), klen = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol ? (size_t)(eol - line) : strlen(line);
        int in_line = 1;
        if (match) {
            const char *m = strstr(line, match);
            in_line = m && m < line + llen;
        }
        if (llen >= plen && strncmp(line, prefix, plen) == 0 && in_line) {
            for (const char *t = line; t < line + llen; t++) {
                if ((t == line || t[-1] == ' ') && strncmp(t, key, klen) == 0 && t[klen] == '=') {
                    const char *v = t + klen + 1;
                    size_t n = 0;
                    while (v + n < line + llen && v[n] != ' ')
                        n++;
                    if (n >= bufsz)
                        n = bufsz - 1;
                    memcpy(buf, v, n);
                    buf[n] = '\0';
                    return buf;
                }
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return NULL;
}

static double fnum(const char *text, const char *prefix, const char *match, const char *key)
{
    char b[256];
    if (!field(text, prefix, match, key, b, sizeof b))
        return -1;
    char *end;
    double v = strtod(b, &end);
    return end == b ? -1 : v;
}

/* --- section 3 bookkeeping ------------------------------------------- */
struct identity {
    const char *alloc, *what;
    char lib[PATH_MAX];
    int owns;
    int ok;
};
static struct identity ids[2 * MAX_ALLOC];
static int nids;

static void note_identity(const struct allocator *a, const char *what, const char *text)
{
    struct identity *id = &ids[nids++];
    id->alloc = a->name;
    id->what = what;
    if (!field(text, "ALLOC ", NULL, "lib", id->lib, sizeof id->lib))
        snprintf(id->lib, sizeof id->lib, "?");
    id->owns = (int)fnum(text, "ALLOC ", NULL, "tide_owns");
    if (a->lib[0]) {
        char r1[PATH_MAX], r2[PATH_MAX];
        id->ok = realpath(id->lib, r1) && realpath(a->lib, r2) && strcmp(r1, r2) == 0;
        /* tide_owns() is a second opinion when the library exports it */
        if (id->ok && strcmp(a->name, "tidemalloc") == 0 && id->owns == 0)
            id->ok = 0;
    } else {
        const char *base = strrchr(id->lib, '/');
        base = base ? base + 1 : id->lib;
        id->ok = strncmp(base, "libc.so", 7) == 0;
    }
    if (!id->ok)
        failures++;
}

static const char *mib(double kb, char *buf, size_t n)
{
    if (kb < 0)
        snprintf(buf, n, "n/a");
    else
        snprintf(buf, n, "%.0f MiB", kb / 1024.0);
    return buf;
}

/* ---- section 1 ---------------------------------------------------------- */
static void section_lazy(struct allocator *al, int nal)
{
    printf("\n== 1. Lazy allocation: is memory committed by malloc() or by the first write? ==\n");
    printf("   (seed 000 asks to verify \"内存延迟分配\": Linux gives a process pages only when it\n"
           "    touches them.)  Each allocator, in its own process: malloc(1 GiB) - above every\n"
           "    mmap threshold - then write one byte per page to the first half, then to the rest,\n"
           "    then free().\n");
    static const char *phase[] = { "before", "malloc", "half", "all", "free" };
    static const char *label[] = { "before malloc", "after malloc(1 GiB)", "after touching 512 MiB",
                                   "after touching 1 GiB", "after free()" };
    for (int i = 0; i < nal; i++) {
        struct child_out c;
        char *args[] = { self_exe, "--child", "lazy", NULL };
        run_child(al[i].lib, args, 120, &c);
        printf("\n  %s%s%s%s\n", al[i].name, al[i].lib[0] ? " (LD_PRELOAD=" : " (no preload",
               al[i].lib[0] ? al[i].lib : "", ")");
        note_identity(&al[i], "lazy", c.text);
        if (!child_ok(&c, "the lazy-allocation test", al[i].name)) {
            failures++;
            continue;
        }
        double vs[5], rs[5];
        for (int k = 0; k < 5; k++) {
            char m[32];
            snprintf(m, sizeof m, "phase=%s ", phase[k]);
            vs[k] = fnum(c.text, "LAZY ", m, "vmsize_kb") / 1024.0;
            rs[k] = fnum(c.text, "LAZY ", m, "vmrss_kb") / 1024.0;
        }
        printf("    %-24s %12s %12s   %s\n", "", "VmSize", "VmRSS", "change since the previous line");
        for (int k = 0; k < 5; k++) {
            printf("    %-24s %8.0f MiB %8.0f MiB", label[k], vs[k], rs[k]);
            if (k)
                printf("   VmSize %+6.0f MiB, VmRSS %+6.0f MiB", vs[k] - vs[k - 1], rs[k] - rs[k - 1]);
            printf("\n");
        }
        double dv = vs[1] - vs[0], dr = rs[1] - rs[0];
        double dh = rs[2] - rs[1], da = rs[3] - rs[1], df = rs[4] - rs[3];
        int lazy = dr < 16 && dh > 400 && da > 900;
        /* virtual size need not grow if the allocator had the range reserved */
        printf("    -> malloc(1 GiB): VmSize %+.0f MiB, VmRSS %+.0f MiB; first writes: %+.0f MiB for half,"
               " %+.0f MiB for all\n       => lazy allocation: %s\n",
               dv, dr, dh, da,
               lazy ? "CONFIRMED (memory becomes resident only when a page is first written)"
                    : "NOT observed (RSS grew at malloc time or did not follow the writes)");
        if (df < -900)
            printf("    -> free(): VmRSS %+.0f MiB => given back to the OS at once\n", df);
        else
            printf("    -> free(): VmRSS %+.0f MiB => kept by the allocator for reuse "
                   "(not returned to the OS yet)\n", df);
    }
}

/* ---- section 2 ---------------------------------------------------------- */
struct seedrun {
    int ok;
    double load_s, rps, peak_kb, live_load, rss_load, live, drain, r1, r5, trim, wall;
    double idle_s, idle_l;
    double base_kb;
};

static void row(const char *label, struct seedrun *sr, int nal, const char *(*cell)(struct seedrun *, char *, size_t))
{
    printf("  %-30s", label);
    for (int i = 0; i < nal; i++) {
        char b[64];
        printf(" %22s", sr[i].ok ? cell(&sr[i], b, sizeof b) : "(failed)");
    }
    printf("\n");
}

static const char *c_wall(struct seedrun *s, char *b, size_t n) { snprintf(b, n, "%.2f s", s->load_s); return b; }
static const char *c_rps(struct seedrun *s, char *b, size_t n) { snprintf(b, n, "%.0f req/s", s->rps); return b; }
static const char *c_peak(struct seedrun *s, char *b, size_t n) { return mib(s->peak_kb, b, n); }
static const char *c_liveload(struct seedrun *s, char *b, size_t n) { return mib(s->live_load / 1024, b, n); }
static const char *c_live(struct seedrun *s, char *b, size_t n) { return mib(s->live / 1024, b, n); }
static const char *rss_vs(double kb, double live, char *b, size_t n)
{
    if (kb < 0)
        snprintf(b, n, "n/a");
    else
        snprintf(b, n, "%.0f MiB = %5.1fx", kb / 1024, kb * 1024 / live);
    return b;
}
static const char *c_rload(struct seedrun *s, char *b, size_t n) { return rss_vs(s->rss_load, s->live_load, b, n); }
static const char *c_drain(struct seedrun *s, char *b, size_t n) { return rss_vs(s->drain, s->live, b, n); }
static const char *c_r1(struct seedrun *s, char *b, size_t n) { return rss_vs(s->r1, s->live, b, n); }
static const char *c_r5(struct seedrun *s, char *b, size_t n) { return rss_vs(s->r5, s->live, b, n); }
static const char *c_trim(struct seedrun *s, char *b, size_t n)
{
    if (s->trim < 0) {
        snprintf(b, n, "n/a (no malloc_trim)");
        return b;
    }
    return rss_vs(s->trim, s->live, b, n);
}
static const char *c_total(struct seedrun *s, char *b, size_t n) { snprintf(b, n, "%.1f s", s->wall); return b; }

static void section_seed(struct allocator *al, int nal, const char *scale, const char *threads,
                         int quick)
{
    struct seedrun sr[MAX_ALLOC];
    memset(sr, 0, sizeof sr);
    printf("\n== 2. Seed 002: a NoSQL-like server returns its memory to malloc - does it reach the OS? ==\n");
    printf("   %s worker threads; a pool carving 64 KiB units out of 2 MiB blocks it never frees,\n"
           "   2 MiB network buffers per request, a cache of 2 MiB blocks replaced one at a time,\n"
           "   64K/100K/64K patterns (100 KiB freed between two kept 64 KiB blocks).  After the load\n"
           "   the server frees all but ~5 %% of its blocks (spread over the heap) and goes quiet:\n"
           "   every worker parks in pthread_cond_wait and nothing calls the allocator any more, so\n"
           "   whatever comes back comes back because the allocator returns it on its own.\n",
           threads);
    for (int i = 0; i < nal; i++) {
        struct child_out c;
        char *args[16];
        int k = 0;
        args[k++] = self_exe;
        args[k++] = "--child";
        args[k++] = "seed002";
        args[k++] = "--scale";
        args[k++] = (char *)scale;
        args[k++] = "--threads";
        args[k++] = (char *)threads;
        if (quick) {
            args[k++] = "--idle-short=0.2";
            args[k++] = "--idle-long=1";
            args[k++] = "--requests=600";
        }
        args[k] = NULL;
        printf("   running under %-10s ...", al[i].name);
        fflush(stdout);
        double t0 = now_s();
        run_child(al[i].lib, args, 300, &c);
        sr[i].wall = now_s() - t0;
        printf(" %.1f s\n", sr[i].wall);
        note_identity(&al[i], "seed002", c.text);
        if (!child_ok(&c, "the seed-002 workload", al[i].name) ||
            fnum(c.text, "RESULT ", NULL, "time_s") < 0) {
            failures++;
            continue;
        }
        struct seedrun *s = &sr[i];
        const char *t = c.text;
        s->ok = 1;
        s->load_s = fnum(t, "RESULT ", NULL, "time_s");
        s->rps = fnum(t, "RESULT ", NULL, "ops_per_s");
        s->peak_kb = fnum(t, "RESULT ", NULL, "peak_rss_kb");
        s->live_load = fnum(t, "RESULT ", NULL, "live_load_bytes");
        s->rss_load = fnum(t, "RESULT ", NULL, "rss_load_kb");
        s->live = fnum(t, "RESULT ", NULL, "live_bytes");
        s->drain = fnum(t, "RESULT ", NULL, "rss_drain_kb");
        s->r1 = fnum(t, "RESULT ", NULL, "rss_1s_kb");
        s->r5 = fnum(t, "RESULT ", NULL, "rss_5s_kb");
        s->trim = fnum(t, "RESULT ", NULL, "rss_trim_kb");
        s->idle_s = fnum(t, "RESULT ", NULL, "idle_short_s");
        s->idle_l = fnum(t, "RESULT ", NULL, "idle_long_s");
        s->base_kb = fnum(t, "RESULT ", NULL, "base_rss_kb");
    }

    double idle_s = 1, idle_l = 5;
    for (int i = 0; i < nal; i++)
        if (sr[i].ok) {
            idle_s = sr[i].idle_s;
            idle_l = sr[i].idle_l;
            break;
        }
    char l1[64], l5[64];
    snprintf(l1, sizeof l1, "RSS after %g s idle", idle_s);
    snprintf(l5, sizeof l5, "RSS after %g s idle", idle_l);

    printf("\n  %-30s", "");
    for (int i = 0; i < nal; i++)
        printf(" %22s", al[i].name);
    printf("\n  %-30s", "");
    for (int i = 0; i < nal; i++)
        printf(" %22s", "----------------------");
    printf("\n");
    row("load phase: wall time", sr, nal, c_wall);
    row("load phase: throughput", sr, nal, c_rps);
    row("peak RSS (VmHWM)", sr, nal, c_peak);
    row("live bytes at end of load", sr, nal, c_liveload);
    row("RSS at end of load  (x live)", sr, nal, c_rload);
    row("live bytes after the drain", sr, nal, c_live);
    row("RSS right after the drain", sr, nal, c_drain);
    row(l1, sr, nal, c_r1);
    row(l5, sr, nal, c_r5);
    row("RSS after malloc_trim(0)", sr, nal, c_trim);
    row("child process wall time", sr, nal, c_total);
    printf("  (\"= N.Nx\": RSS divided by the bytes the program still has allocated; 1x is ideal)\n\n");

    /* conclusions */
    int g = -1;
    for (int i = 0; i < nal; i++)
        if (!al[i].lib[0] && sr[i].ok)
            g = i;
    for (int i = 0; i < nal; i++) {
        struct seedrun *s = &sr[i];
        if (!s->ok)
            continue;
        double ratio = s->r5 * 1024 / s->live;
        printf("  %-11s %g s after the drain: %.0f MiB resident for %.0f MiB live (%.1fx)\n",
               al[i].name, idle_l, s->r5 / 1024, s->live / 1048576, ratio);
        if (ratio <= 2.0)
            printf("  %-11s => freed memory went back to the OS: no seed-002 bloat.\n", "");
        else if (s->trim >= 0 && s->trim * 1024 / s->live <= 2.0)
            printf("  %-11s => BLOAT: the memory was free inside the allocator (malloc_trim(0) takes\n"
                   "  %-11s    RSS down to %.0f MiB) but was not given back by itself: the seed-002 problem.\n",
                   "", "", s->trim / 1024);
        else
            printf("  %-11s => BLOAT: freed memory stays resident.\n", "");
        if (g >= 0 && i != g && sr[g].ok) {
            printf("  %-11s    vs glibc: load throughput %.2fx glibc's; after %g s idle ", "",
                   s->rps / sr[g].rps, idle_l);
            if (sr[g].r5 > s->r5)
                printf("%.0f MiB less resident (%.1fx smaller).\n", (sr[g].r5 - s->r5) / 1024,
                       sr[g].r5 / s->r5);
            else
                printf("%.0f MiB more resident.\n", (s->r5 - sr[g].r5) / 1024);
        }
    }
}

/* ---- section 3 ---------------------------------------------------------- */
static void section_identity(void)
{
    printf("\n== 3. Which library served malloc() in each child? ==\n");
    printf("   (dladdr() on the address dlsym(RTLD_DEFAULT, \"malloc\") resolves to in the child;\n"
           "    for tidemalloc also tide_owns() on a freshly malloc'ed block)\n");
    for (int i = 0; i < nids; i++) {
        struct identity *id = &ids[i];
        printf("  %-10s %-8s malloc() from %s", id->alloc, id->what, id->lib);
        if (id->owns >= 0)
            printf(", tide_owns(p) = %d", id->owns);
        else if (strcmp(id->alloc, "tidemalloc") == 0)
            printf(" (no tide_owns() exported to double-check)");
        if (id->ok)
            printf("  -> OK\n");
        else if (strcmp(id->alloc, "tidemalloc") == 0 && id->owns == 0)
            printf("  -> WRONG: tide_owns() disowns a block malloc() returned\n");
        else
            printf("  -> WRONG ALLOCATOR (LD_PRELOAD did not take effect?)\n");
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tide-demo [--lib PATH] [--peers] [--quick] [--scale X] [--threads N]\n"
            "                 [--skip-lazy] [--skip-seed]\n"
            "  --lib PATH    libtidemalloc.so to compare (default: <dir of tide-demo>/../libtidemalloc.so)\n"
            "  --peers       also run jemalloc, tcmalloc and mimalloc if they are installed\n"
            "  --quick       smaller seed-002 run with short idle times (0.2 s / 1 s)\n"
            "  --scale X     seed-002 memory scale (default 0.4: ~0.55 GiB live at peak; 1.0: ~1.4 GiB)\n"
            "  --threads N   seed-002 worker threads (default 8)\n");
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
        if (strcmp(argv[2], "lazy") == 0)
            return child_lazy();
        if (strcmp(argv[2], "seed002") == 0) {
            child_identify();
            argv[2] = argv[0];
            return seed002_main(argc - 2, argv + 2);
        }
        fprintf(stderr, "tide-demo: unknown child mode %s\n", argv[2]);
        return 2;
    }

    const char *lib = NULL, *scale = "0.4", *threads = "8";
    int want_peers = 0, quick = 0, skip_lazy = 0, skip_seed = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lib") == 0 && i + 1 < argc)
            lib = argv[++i];
        else if (strncmp(argv[i], "--lib=", 6) == 0)
            lib = argv[i] + 6;
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            scale = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = argv[++i];
        else if (strcmp(argv[i], "--peers") == 0)
            want_peers = 1;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--skip-lazy") == 0)
            skip_lazy = 1;
        else if (strcmp(argv[i], "--skip-seed") == 0)
            skip_seed = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tide-demo: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (quick && strcmp(scale, "0.4") == 0)
        scale = "0.15";
    if (atof(scale) <= 0 || atof(scale) > 2.0 || atoi(threads) < 1 || atoi(threads) > 64) {
        fprintf(stderr, "tide-demo: --scale must be in (0, 2], --threads in 1..64\n");
        return 2;
    }

    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0) {
        perror("tide-demo: readlink /proc/self/exe");
        return 1;
    }
    self_exe[n] = '\0';

    struct allocator al[MAX_ALLOC];
    int nal = 0;
    memset(al, 0, sizeof al);
    al[nal++].name = "glibc";

    char deflib[PATH_MAX];
    if (!lib) {
        snprintf(deflib, sizeof deflib, "%s", self_exe);
        char *slash = strrchr(deflib, '/');
        if (slash)
            *slash = '\0';
        size_t l = strlen(deflib);
        snprintf(deflib + l, sizeof deflib - l, "/../libtidemalloc.so");
        lib = deflib;
    }
    char real[PATH_MAX];
    int have_tide = realpath(lib, real) != NULL && access(real, R_OK) == 0;
    if (have_tide) {
        al[nal].name = "tidemalloc";
        snprintf(al[nal].lib, sizeof al[nal].lib, "%s", real);
        nal++;
    }
    if (want_peers) {
        for (size_t p = 0; p < sizeof peers / sizeof peers[0]; p++) {
            for (int d = 0; lib_dirs[d]; d++) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", lib_dirs[d], peers[p].soname);
                if (access(path, R_OK) == 0) {
                    al[nal].name = peers[p].name;
                    snprintf(al[nal].lib, sizeof al[nal].lib, "%s", path);
                    nal++;
                    break;
                }
            }
        }
    }

    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    printf("tidemalloc demo (%s, %ld CPUs)\n", date, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  allocators:");
    for (int i = 0; i < nal; i++)
        printf(" %s%s%s%s", al[i].name, al[i].lib[0] ? " [" : " [no preload", al[i].lib, "]");
    printf("\n");
    if (!have_tide) {
        printf("  !! tidemalloc library not found at %s\n"
               "     build it first (make build), or pass --lib PATH.  Showing glibc only.\n", lib);
        failures++;
    }
    if (want_peers && nal < 2 + (int)(sizeof peers / sizeof peers[0]) - !have_tide)
        printf("  (some peers are missing: apt-get install libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0)\n");

    if (!skip_lazy)
        section_lazy(al, nal);
    if (!skip_seed)
        section_seed(al, nal, scale, threads, quick);
    section_identity();

    if (failures) {
        printf("\ntide-demo: %d problem(s) - see the lines marked !! or WRONG above.\n", failures);
        return 1;
    }
    printf("\ntide-demo: all children ran and were served by the allocator they were meant to use.\n");
    return 0;
}
