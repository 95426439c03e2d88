/*
 * harness.h - a tiny, header-only test harness shared by tidemalloc's tests.
 *
 * Usage:
 *
 *     #include "harness.h"
 *
 *     int main(void)
 *     {
 *         void *p = malloc(10);
 *         CHECK("malloc(10) succeeds", p != NULL);
 *         CHECKF("usable size", malloc_usable_size(p) >= 10,
 *                "got %zu", malloc_usable_size(p));
 *         CHECK_ABORT("double free", do_double_free, NULL,
 *                     "double free detected");
 *         return harness_finish();     // prints "N passed, N failed"
 *     }
 *
 * Checks:
 *   CHECK(name, expr)            counts one pass or one failure; a failure is
 *                                reported on stderr with file and line.
 *   CHECKF(name, expr, fmt, ...) the same, and on failure also prints the
 *                                printf-style detail (observed values).
 *   harness_finish()             prints the final line "N passed, N failed"
 *                                on stdout and returns the exit status to use
 *                                (0 when nothing failed, 1 otherwise).
 *   harness_exit()               harness_finish() followed by exit().
 *   HARNESS_VERBOSE=1 in the environment also prints every passing check.
 *
 * The counters are atomic, so checks may be made from several threads.  They
 * are weak definitions, so a test built from several .c files that all
 * include this header shares one pair of counters.  A forked child must not
 * rely on its counts reaching the parent: use expect_abort()/expect_exit()
 * or report through the exit status.
 *
 * Process helpers:
 *   expect_abort(fn, arg, substr)   runs fn(arg) in a forked child whose stderr
 *                                   goes to a pipe; returns 1 when the child
 *                                   died of SIGABRT and its stderr contains
 *                                   substr, else 0.  Either way it prints
 *                                   nothing: what was expected and what
 *                                   happened is left in harness_child_diag.
 *   expect_abort_any(fn, arg, list) the same with a NULL-terminated list of
 *                                   accepted substrings (any one suffices).
 *   expect_exit(fn, arg, code)      1 when fn(arg) in a child exits with code.
 *   CHECK_ABORT(name, fn, arg, substr) / CHECK_ABORT_ANY(name, fn, arg, s1,
 *   s2, ...) / CHECK_EXIT(name, fn, arg, code) make them checks that print
 *   harness_child_diag on failure.
 *   The child: has MALLOC_CHECK_ unset and LIBC_FATAL_STDERR_=1 (so glibc's
 *   fatal messages go to stderr, not /dev/tty), core dumps disabled, and an
 *   alarm of HARNESS_CHILD_TIMEOUT seconds (default 20) so a hang shows up as
 *   a death by SIGALRM.  If fn returns, the child exits with status 0.
 *   The captured stderr of the last child is kept in harness_child_output.
 *
 * Memory helpers:
 *   harness_status_kb("VmRSS")   a field of /proc/self/status in kB (-1 when
 *   harness_vm_rss_kb()          missing); read with open/read into a stack
 *   harness_vm_hwm_kb()          buffer, so it does not allocate.
 *
 * Misc:
 *   harness_libc_free(p)         frees memory the C library allocated itself
 *                                (open_memstream's buffer, getline, strdup):
 *                                free() in a normal build; in a sanitizer
 *                                build, where free is tide_free (tide_names.h)
 *                                but the C library allocates with the
 *                                sanitizer's allocator, the C library's free.
 *   harness_sink(p)              keeps an unused result alive.
 *   harness_launder(p)           hides a pointer's provenance from the
 *                                compiler (no use-after-free warnings or
 *                                optimisations on deliberate misuse).
 *   harness_capture_fd_begin(fd) / harness_capture_fd_end(&cap, buf, size)
 *                                redirect a file descriptor (e.g. 2 for
 *                                stderr) to a temporary file and read back
 *                                what was written to it.
 */
#ifndef TIDE_TEST_HARNESS_H
#define TIDE_TEST_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__)
#define HARNESS_WEAK   __attribute__((weak))
#define HARNESS_UNUSED __attribute__((unused))
#define HARNESS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HARNESS_WEAK
#define HARNESS_UNUSED
#define HARNESS_PRINTF(a, b)
#endif

/* UNDER_SANITIZER: 1 in an ASan or TSan build (their runtimes replace or
 * watch the allocator and make system calls of their own). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* Shared counters (weak: one copy per program). */
HARNESS_WEAK long harness_passed;
HARNESS_WEAK long harness_failed;
/* stderr of the last expect_abort()/expect_exit() child, and a description
 * of how it differed from what was expected (empty when it did not). */
HARNESS_WEAK char harness_child_output[8192];
HARNESS_WEAK char harness_child_diag[9000];

static HARNESS_UNUSED int harness_verbose(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("HARNESS_VERBOSE");
        v = (e && *e && *e != '0') ? 1 : 0;
    }
    return v;
}

/* Records one check; returns ok so checks can be chained in conditions. */
static HARNESS_UNUSED HARNESS_PRINTF(5, 6)
int harness_check(int ok, const char *name, const char *file, int line,
                  const char *fmt, ...)
{
    if (ok) {
        __atomic_fetch_add(&harness_passed, 1, __ATOMIC_RELAXED);
        if (harness_verbose())
            fprintf(stderr, "ok:   %s\n", name);
    } else {
        __atomic_fetch_add(&harness_failed, 1, __ATOMIC_RELAXED);
        fprintf(stderr, "FAIL: %s (%s:%d)", name, file, line);
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            fputs(": ", stderr);
            vfprintf(stderr, fmt, ap);
            va_end(ap);
        }
        fputc('\n', stderr);
        fflush(stderr);
    }
    return ok;
}

#define CHECK(name, expr) \
    harness_check(!!(expr), (name), __FILE__, __LINE__, NULL)
#define CHECKF(name, expr, ...) \
    harness_check(!!(expr), (name), __FILE__, __LINE__, __VA_ARGS__)

/* Prints "N passed, N failed" and returns the exit status to use. */
static HARNESS_UNUSED int harness_finish(void)
{
    long p = __atomic_load_n(&harness_passed, __ATOMIC_RELAXED);
    long f = __atomic_load_n(&harness_failed, __ATOMIC_RELAXED);
    fflush(stderr);
    printf("%ld passed, %ld failed\n", p, f);
    fflush(stdout);
    return f ? 1 : 0;
}

static HARNESS_UNUSED void harness_exit(void)
{
    exit(harness_finish());
}

/* ---- memory allocated by the C library itself ---------------------------- */
static inline HARNESS_UNUSED void harness_libc_free(void *p)
{
#ifdef TIDE_NAMES_H
    tide_names_libc_free(p);
#else
    free(p);
#endif
}

/* ---- MALLOC_CHECK_ -------------------------------------------------------- */
/* Programs whose children must run without MALLOC_CHECK_ (an allocator reads
 * it at start-up) call this first in main: it starts the program again
 * without it.  Returns only when the variable is not set. */
static HARNESS_UNUSED void harness_reexec_without_malloc_check(char **argv)
{
    if (getenv("MALLOC_CHECK_")) {
        unsetenv("MALLOC_CHECK_");
        execv("/proc/self/exe", argv);
        perror("re-exec without MALLOC_CHECK_");
        exit(2);
    }
}

/* ---- pointer laundering ------------------------------------------------- */
static inline HARNESS_UNUSED void *harness_launder(void *p)
{
#if defined(__GNUC__)
    __asm__ volatile("" : "+r"(p) : : "memory");
#endif
    return p;
}
/* Keep a result the test never uses (the compiler may not drop the call). */
static inline HARNESS_UNUSED void harness_sink(void *p)
{
    volatile uintptr_t v = (uintptr_t)p;
    (void)v;
}

/* ---- /proc/self/status -------------------------------------------------- */
/* A numeric field ("Name:   123 ...") of a /proc status file, read with
 * open/read into a stack buffer (no allocation); -1 when missing.     */
static HARNESS_UNUSED long harness_proc_field(const char *path, const char *field)
{
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    size_t flen = strlen(field);
    for (char *line = buf; line && *line;) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            char *q = line + flen + 1;
            while (*q == ' ' || *q == '\t')
                q++;
            return strtol(q, NULL, 10);
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

static HARNESS_UNUSED long harness_status_kb(const char *field)
{
    return harness_proc_field("/proc/self/status", field);
}

static inline HARNESS_UNUSED long harness_vm_rss_kb(void) { return harness_status_kb("VmRSS"); }
static inline HARNESS_UNUSED long harness_vm_hwm_kb(void) { return harness_status_kb("VmHWM"); }

/* The statistics channel's descriptor (its /proc link names the memfd),
 * the lowest one, or -1.  readlink allocates nothing. */
static HARNESS_UNUSED int harness_channel_fd(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        char path[64], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = 0;
        if (strstr(link, "memfd:tidemalloc-stats"))
            return fd;
    }
    return -1;
}

/* ---- running code in a child ------------------------------------------- */
typedef void (*harness_fn)(void *arg);

/* Forks; the child runs fn(arg) with stderr on a pipe.  Collects the output
 * into harness_child_output and returns the wait status (-1 on error). */
static HARNESS_UNUSED int harness_run_child(harness_fn fn, void *arg)
{
    int pfd[2];
    harness_child_output[0] = '\0';
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], STDERR_FILENO);
        close(pfd[1]);
        struct rlimit rl = { 0, 0 };
        setrlimit(RLIMIT_CORE, &rl);
        unsetenv("MALLOC_CHECK_");
        setenv("LIBC_FATAL_STDERR_", "1", 1);
        const char *t = getenv("HARNESS_CHILD_TIMEOUT");
        alarm(t && atoi(t) > 0 ? (unsigned)atoi(t) : 20u);
        /* The child counts its own checks: one that ends with
         * _exit(harness_finish()) must not report the parent's earlier
         * failures as its own (every later child of a program failed
         * after one real failure). */
        __atomic_store_n(&harness_passed, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&harness_failed, 0, __ATOMIC_RELAXED);
        fn(arg);
        _exit(0);
    }
    close(pfd[1]);
    size_t len = 0;
    char sink[512];
    for (;;) {
        ssize_t n;
        if (len < sizeof harness_child_output - 1)
            n = read(pfd[0], harness_child_output + len,
                     sizeof harness_child_output - 1 - len);
        else
            n = read(pfd[0], sink, sizeof sink);   /* drain the rest */
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (len < sizeof harness_child_output - 1)
            len += (size_t)n;
    }
    harness_child_output[len] = '\0';
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

static HARNESS_UNUSED void harness_describe_status(int status, char *buf, size_t n)
{
    if (status == -1)
        snprintf(buf, n, "fork/pipe/wait failed");
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, n, "wait status 0x%x", status);
}

/* 1 when fn(arg) dies of SIGABRT in a child and its stderr contains one of
 * the strings of the NULL-terminated list `accept`. */
static HARNESS_UNUSED int expect_abort_any(harness_fn fn, void *arg,
                                           const char *const *accept)
{
    int status = harness_run_child(fn, arg);
    int aborted = status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    int matched = 0;
    for (const char *const *a = accept; *a; a++)
        if (strstr(harness_child_output, *a))
            matched = 1;
    harness_child_diag[0] = '\0';
    if (aborted && matched)
        return 1;
    char how[128];
    harness_describe_status(status, how, sizeof how);
    size_t n = (size_t)snprintf(harness_child_diag, sizeof harness_child_diag,
                                "\n  expected: SIGABRT with a message containing");
    for (const char *const *a = accept; *a && n < sizeof harness_child_diag; a++)
        n += (size_t)snprintf(harness_child_diag + n, sizeof harness_child_diag - n,
                              "%s \"%s\"", a == accept ? "" : " or", *a);
    if (n < sizeof harness_child_diag)
        snprintf(harness_child_diag + n, sizeof harness_child_diag - n,
                 "\n  observed: %s; child stderr: \"%s\"", how, harness_child_output);
    return 0;
}

static HARNESS_UNUSED int expect_abort(harness_fn fn, void *arg, const char *substr)
{
    const char *list[2] = { substr, NULL };
    return expect_abort_any(fn, arg, list);
}

/* 1 when fn(arg) in a child exits normally with `code`. */
static HARNESS_UNUSED int expect_exit(harness_fn fn, void *arg, int code)
{
    int status = harness_run_child(fn, arg);
    harness_child_diag[0] = '\0';
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code)
        return 1;
    char how[128];
    harness_describe_status(status, how, sizeof how);
    snprintf(harness_child_diag, sizeof harness_child_diag,
             "\n  expected: exit status %d\n  observed: %s; child stderr: \"%s\"",
             code, how, harness_child_output);
    return 0;
}

#define CHECK_ABORT(name, fn, arg, substr) \
    CHECKF(name, expect_abort((fn), (arg), (substr)), "%s", harness_child_diag)
#define CHECK_ABORT_ANY(name, fn, arg, ...)                                            \
    CHECKF(name, expect_abort_any((fn), (arg), (const char *const[]){ __VA_ARGS__, NULL }), \
           "%s", harness_child_diag)
#define CHECK_EXIT(name, fn, arg, code) \
    CHECKF(name, expect_exit((fn), (arg), (code)), "%s", harness_child_diag)

/* ---- capturing what is written to a file descriptor --------------------- */
struct harness_capture {
    int fd;       /* the descriptor being captured             */
    int saved;    /* a duplicate of its original target         */
    int tmp;      /* the temporary file it writes to meanwhile  */
};

/* Redirects fd to an anonymous temporary file; returns 0, or -1 (nothing
 * redirected).  stdout and stderr are flushed first. */
static HARNESS_UNUSED int harness_capture_fd_begin(struct harness_capture *c, int fd)
{
    char path[] = "/tmp/tide-capture-XXXXXX";
    fflush(stdout);
    fflush(stderr);
    c->fd = fd;
    c->saved = -1;
    c->tmp = mkstemp(path);
    if (c->tmp < 0)
        return -1;
    unlink(path);
    c->saved = dup(fd);
    if (c->saved < 0 || dup2(c->tmp, fd) < 0) {
        if (c->saved >= 0)
            close(c->saved);
        close(c->tmp);
        c->saved = c->tmp = -1;
        return -1;
    }
    return 0;
}

/* Restores fd and copies what was written (NUL-terminated, truncated to
 * size-1) into buf.  Returns the number of bytes copied. */
static HARNESS_UNUSED size_t harness_capture_fd_end(struct harness_capture *c,
                                                    char *buf, size_t size)
{
    fflush(stdout);
    fflush(stderr);
    buf[0] = '\0';
    if (c->saved < 0 || c->tmp < 0)
        return 0;   /* _begin failed: nothing was redirected */
    dup2(c->saved, c->fd);
    close(c->saved);
    size_t len = 0;
    if (lseek(c->tmp, 0, SEEK_SET) == 0) {
        for (;;) {
            ssize_t n = read(c->tmp, buf + len, size - 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            len += (size_t)n;
            if (len == size - 1)
                break;
        }
    }
    buf[len] = '\0';
    close(c->tmp);
    return len;
}

#endif /* TIDE_TEST_HARNESS_H */
