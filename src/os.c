/*
 * os.c - the OS layer.  The only file that calls mmap, munmap, mprotect,
 * mremap, madvise and sbrk.  Each function returns NULL / false on
 * failure with errno set (ENOMEM), and is where tests inject failures
 * (tide_fault_inject).  Nothing here allocates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <string.h>
#include "os.h"
#include "params.h"

/* System calls made for the heap, counted with relaxed atomics (a few
 * cycles beside the syscall itself; statistics only).                 */
struct tm_os_calls tm_os_calls;
#define COUNT(field) atomic_fetch_add_explicit(&tm_os_calls.field, 1, memory_order_relaxed)

/* open, read, write, close and nanosleep are cancellation points in libc:
 * called from malloc (the statistics refresh's /proc reads, the
 * initialization's sysfs reads) they let a thread with a cancel pending
 * be cancelled inside malloc or free, which POSIX says are no
 * cancellation points - with the statistics lock held, and in a program
 * that holds a lock of its own around malloc without a cleanup handler,
 * with that one too (a pending cancel acted on inside malloc under
 * TIDEMALLOC_BACKGROUND_THREAD=0, 2026-12-05, test_cancel).  The bare
 * system calls through syscall(2) are not cancellation points (glibc's
 * malloc uses its own non-cancelling variants the same way).  getrandom
 * too (tm_os_random: initialization, with its lock held). */
static int nc_open(const char *path, int flags, int mode)
{
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}
static ssize_t nc_read(int fd, void *buf, size_t n) { return (ssize_t)syscall(SYS_read, fd, buf, n); }
static ssize_t nc_write(int fd, const void *buf, size_t n) { return (ssize_t)syscall(SYS_write, fd, buf, n); }
static int nc_close(int fd) { return (int)syscall(SYS_close, fd); }

/* Fault injection: -1 = off; n >= 0 = n more successes, then failures. */
static _Atomic long fail_after[TM_FAULT_KINDS] = { -1, -1, -1, -1, -1 };

void tm_os_fault_inject(int kind, long after)
{
    if (kind >= TM_FAULT_MMAP && kind < TM_FAULT_KINDS)
        atomic_store(&fail_after[kind], after < 0 ? -1 : after);
}

static bool injected_failure(int kind)
{
    long v = atomic_load_explicit(&fail_after[kind], memory_order_relaxed);
    while (v >= 0) {
        if (v == 0) {
            errno = ENOMEM;
            return true;
        }
        if (atomic_compare_exchange_weak(&fail_after[kind], &v, v - 1))
            return false;
    }
    return false;
}

static size_t os_ncpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (size_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* Called once by initialization, before it is published (params.h). */
void tm_os_init(void)
{
    unsigned long ps = getauxval(AT_PAGESZ);
    tm_fix.pagesize = ps ? ps : 4096;
    tm_fix.ncpus = os_ncpus();
}

/* getrandom; without it (old kernel, seccomp), the kernel's 16 random
 * bytes for this process (AT_RANDOM) mixed with the clock, a counter and
 * an address (ASLR), through a splitmix64 finalizer.                   */
uintptr_t tm_os_random(void)
{
    uintptr_t k = 0;
    /* (the system call: libc's getrandom is a cancellation point, and
     * initialization calls this with its lock held; nc_open's note) */
    if (syscall(SYS_getrandom, &k, sizeof k, GRND_NONBLOCK) != (long)sizeof k) {
        static _Atomic uint64_t calls;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)(uintptr_t)&k ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec;
        const uint64_t *at = (const uint64_t *)getauxval(AT_RANDOM);
        uint64_t n = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
        if (at)
            x ^= at[n & 1] + n * 0x9e3779b97f4a7c15ull;
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        k = (uintptr_t)(x ^ (x >> 31));
    }
    return k ? k : 1;
}

bool tm_os_protect_ro(void *p, size_t size)
{
    return mprotect(p, size, PROT_READ) == 0;
}

void *tm_os_map(size_t size)
{
    if (injected_failure(TM_FAULT_MMAP))
        return NULL;
    COUNT(mmap);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Reserve `size` bytes of address space aligned to `align` (a power of two
 * >= page), read-only until committed: map twice the size and cut.
 * Read-only, not PROT_NONE: a write faults (the guards of heap.h and
 * meta.h), but reading a bad pointer's header there reads zeros (the zero
 * page; nothing is charged or made resident for a private read-only
 * mapping), fails its checksum and takes the slow path that names the
 * pointer, where PROT_NONE would fault in free's fast path.              */
void *tm_os_reserve_aligned(size_t size, size_t align)
{
    if (injected_failure(TM_FAULT_MMAP))
        return NULL;
    size_t span = size + align;
    COUNT(mmap);
    char *p = mmap(NULL, span, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *a = (char *)align_up((uintptr_t)p, align);
    if (a > p) {
        COUNT(munmap);
        munmap(p, (size_t)(a - p));
    }
    char *end = p + span, *aend = a + size;
    if (end > aend) {
        COUNT(munmap);
        munmap(aend, (size_t)(end - aend));
    }
    return a;
}

bool tm_os_commit(void *p, size_t size)
{
    if (injected_failure(TM_FAULT_MMAP))
        return false;
    COUNT(mprotect);
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

bool tm_os_guard(void *p, size_t size)
{
    return mprotect(p, size, PROT_NONE) == 0;
}

void tm_os_unmap(void *p, size_t size)
{
    COUNT(munmap);
    munmap(p, size);
}

void *tm_os_remap(void *p, size_t old, size_t new_size)
{
    if (injected_failure(TM_FAULT_MMAP))
        return NULL;
    COUNT(mremap);
    void *q = mremap(p, old, new_size, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}

_Atomic unsigned long tm_os_release_refusals;

/* Give pages back: the range stays mapped and reads as zero afterwards.
 * Every caller relies on the range reading as zero afterwards: calloc
 * skips zeroing released interiors and the top's clean part, regrown
 * heaps count as fresh, metadata pages are reused as zeroed.  The kernel
 * refuses MADV_DONTNEED on locked pages (EINVAL): under
 * mlockall(MCL_FUTURE) every release failed, and calloc handed out a
 * block full of the bytes freed there (2026-12-05, test_release
 * test_release_refused).  What it refuses is zeroed here instead. */
void tm_os_release(void *p, size_t size)
{
    if (size == 0)
        return;
    COUNT(madvise);
    COUNT(released_ranges);
    if (madvise(p, size, MADV_DONTNEED) != 0) {
        memset(p, 0, size);
        atomic_fetch_add_explicit(&tm_os_release_refusals, 1, memory_order_relaxed);
    }
}

/* Batched release.  Giving back the pages of many scattered free chunks
 * one madvise each costs a TLB flush each; on a virtual machine (this
 * project's: a paravirtualized one) that flush is dear, and a range of
 * fewer than 33 pages is flushed page by page: 600 MiB in 76 KiB ranges
 * took 0.64 s, in 2 MiB ranges 0.12 s.  process_madvise takes a vector
 * of ranges, and since Linux 6.16 gathers their TLB flushes into one:
 * the same 7680 ranges in 8 calls, 0.095 s (/tmp experiment, kernel
 * 6.18; docs/design.md section 7).  Its pidfd is PIDFD_SELF (6.15): no
 * descriptor of ours in the program's table.  Older kernels refuse the
 * sentinel (EBADF) or MADV_DONTNEED (EINVAL): the first failure turns it
 * off for good and everything goes one range at a time, as before.
 *
 * A seccomp filter is the danger: glibc's malloc never calls
 * process_madvise, and a filter that allows what it does call may kill
 * the process for it (an sshd-like sandbox).  So never with a filter or
 * no_new_privs at start (control.c), never once the program sets either
 * through prctl (api.c), and not without asking the kernel first
 * (still_unconfined, below). */
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#define TM_PIDFD_SELF (-10000)        /* PIDFD_SELF_THREAD (linux/pidfd.h, 6.15) */
#if defined(TM_SANITIZER_INTERPOSES)
static _Atomic bool batch_ok = false; /* (the sanitizer's prctl, not api.c's, sees the filters) */
#else
static _Atomic bool batch_ok = true;
#endif

/* Populating (tm_os_populate, below) follows the same rule: glibc's
 * malloc never asks for MADV_POPULATE_WRITE.  Off with the batching. */
#if defined(TM_SANITIZER_INTERPOSES)
static _Atomic bool populate_ok = false;
#else
static _Atomic bool populate_ok = true;
#endif

void tm_os_release_batch_off(void)
{
    atomic_store(&batch_ok, false);
    atomic_store(&populate_ok, false);
}

bool tm_os_release_batch_on(void)
{
    return atomic_load_explicit(&batch_ok, memory_order_relaxed);
}

/* Still no filter and no no_new_privs, asked of the kernel right before
 * a batch: the guards above see what goes through prctl, not a filter
 * that a privileged process installs with the bare seccomp system call
 * (libseccomp does that when told not to set no_new_privs, as systemd
 * tells it, in the child it forks before exec) or no_new_privs set the
 * same way.  A read of /proc/self/status (~14 us here): only for a batch
 * of TM_OS_BATCH_MIN ranges or more, which saves far more.  A filter
 * shows there; a sandbox that refuses the read (sshd's: EACCES) or a
 * process without /proc turns the batching off for good, and so does a
 * filter or no_new_privs seen.  (A filter that kills for the read itself
 * would have killed for process_madvise without it.)                   */
static bool still_unconfined(void)
{
    int mode, nnp;
    if (tm_os_seccomp_now(&mode, &nnp) && mode == 0 && nnp == 0)
        return true;
    atomic_store(&batch_ok, false);
    return false;
}

/* Fresh anonymous memory costs a page fault per page at its first
 * write: the exception, the kernel's fault path, the return - ~10 us a
 * page on this project's machine (a virtual one; 20000 pages written
 * one by one 9.7-14.0 us a page, the same pages populated first in
 * ranges of 16 or more 5.3-5.7 us a page, populate and first write
 * together; scratch test of 2026-12-07).  MADV_POPULATE_WRITE (Linux
 * 5.14) faults a whole range in, writable, in one call: what the writes
 * would have done, without an exception per page.  Older kernels answer
 * EINVAL; a seccomp filter that refuses the advice EPERM (or ENOSYS):
 * off for good then.  Other failures (ENOMEM: the memory cgroup or
 * the commit limit) leave the pages to fault one by one, as they would
 * have; nothing depends on the call. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
bool tm_os_populate(void *p, size_t size)
{
    if (size == 0 || !atomic_load_explicit(&populate_ok, memory_order_relaxed))
        return false;
    int saved = errno;                 /* (malloc keeps errno on success) */
    int r = madvise(p, size, MADV_POPULATE_WRITE);
    COUNT(populate);
    if (r != 0 && (errno == EINVAL || errno == EPERM || errno == ENOSYS))
        atomic_store(&populate_ok, false);
    errno = saved;
    return r == 0;
}

bool tm_os_populate_on(void)
{
    return atomic_load_explicit(&populate_ok, memory_order_relaxed);
}

void tm_os_release_many(struct iovec *v, size_t n)
{
    int saved = errno;                 /* (free keeps errno) */
    size_t i = 0;
    bool batch = n >= TM_OS_BATCH_MIN && atomic_load_explicit(&batch_ok, memory_order_relaxed) &&
                 still_unconfined();  /* (else all one by one, below) */
    while (batch && n - i >= 2 && atomic_load_explicit(&batch_ok, memory_order_relaxed)) {
        size_t m = n - i < TM_OS_IOV_MAX ? n - i : TM_OS_IOV_MAX, want = 0;
        for (size_t k = 0; k < m; k++)
            want += v[i + k].iov_len;
        long r = syscall(SYS_process_madvise, TM_PIDFD_SELF, v + i, m, MADV_DONTNEED, 0u);
        if (r < 0) {
            atomic_store(&batch_ok, false);
            break;
        }
        COUNT(process_madvise);
        /* (the kernel goes range by range and stops at the first it
         * refuses: those before it are done, the rest go one by one) */
        size_t done = (size_t)r;
        while (i < n && v[i].iov_len <= done) {
            done -= v[i].iov_len;
            COUNT(released_ranges);
            i++;
        }
        if ((size_t)r < want)
            break;
    }
    for (; i < n; i++)
        tm_os_release(v[i].iov_base, v[i].iov_len);
    errno = saved;
}

int tm_os_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
    return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}

bool tm_os_advise_huge(void *p, size_t size, bool huge)
{
    if (size == 0)
        return true;
    COUNT(madvise);
    return madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0;
}

/* Read a small file (sysfs, sysctl, /proc status) into buf, NUL
 * terminated: its length, or -1.  Through os.c's non-cancelling calls. */
static long read_small(const char *path, char *buf, size_t cap)
{
    int fd = nc_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    long n = tm_os_read(fd, buf, cap - 1);
    nc_close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return n;
}

long tm_os_read_number(const char *path)
{
    int saved = errno;
    char buf[32];
    long v = -1;
    if (read_small(path, buf, sizeof buf) > 0 && buf[0] >= '0' && buf[0] <= '9') {
        v = 0;
        for (const char *c = buf; *c >= '0' && *c <= '9' && v < (1L << 50); c++)
            v = v * 10 + (*c - '0');
    }
    errno = saved;
    return v;
}

/* The bracketed word of a sysfs THP setting ("always [madvise] never"):
 * TM_THP_*, -1 for "inherit", -2 if unreadable. */
static int thp_setting(const char *path)
{
    char buf[128];
    if (read_small(path, buf, sizeof buf) <= 0)
        return -2;
    if (strstr(buf, "[always]"))
        return TM_THP_ALWAYS;
    if (strstr(buf, "[madvise]"))
        return TM_THP_MADVISE;
    if (strstr(buf, "[never]"))
        return TM_THP_NEVER;
    if (strstr(buf, "[inherit]"))
        return -1;
    return -2;
}

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

/* (At initialization, inside a malloc: errno as it was.) */
int tm_os_thp_mode(size_t *unit)
{
    int saved = errno;
    char path[128];
    long pmd = tm_os_read_number("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    size_t u = pmd >= (long)tm_fix.pagesize && (pmd & (pmd - 1)) == 0 ? (size_t)pmd : (size_t)2 << 20;
    *unit = u;
    /* The PMD size's own setting (mTHP, kernel 6.8+); "inherit" (or no
     * such file) defers to the global one. */
    tm_fmt(path, sizeof path, "/sys/kernel/mm/transparent_hugepage/hugepages-%lukB/enabled",
           (unsigned long)(u >> 10));
    int mode = thp_setting(path);
    if (mode < 0)
        mode = thp_setting("/sys/kernel/mm/transparent_hugepage/enabled");
    if (mode < 0)
        mode = TM_THP_NEVER;
    int off = tm_os_prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    if (off > 0)
        mode = (off & PR_THP_DISABLE_EXCEPT_ADVISED) && mode != TM_THP_NEVER ? TM_THP_MADVISE : TM_THP_NEVER;
    errno = saved;
    return mode;
}

void *tm_os_sbrk(intptr_t incr)
{
    if (incr > 0 && injected_failure(TM_FAULT_BRK))
        return (void *)-1;
    if (incr < 0 && injected_failure(TM_FAULT_BRK_SHRINK))
        return (void *)-1;
    if (incr != 0)              /* sbrk(0) reads glibc's cached break: no call */
        COUNT(brk);
    return sbrk(incr);
}

uint64_t tm_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the statistics channel and reports (observe.c) ------------------------
 * Not counted in tm_os_calls: they are not the heap.                       */

/* A sealed memfd of `size` bytes mapped shared and writable at *out; the
 * descriptor (close-on-exec, moved up to >= TM_OS_CHANNEL_FD_MIN, so that
 * it does not take the low numbers a program may expect; none where the
 * descriptor limit is below twice that) or -1.  The number stays below 64, inside the descriptor table
 * every process starts with: a descriptor beyond it makes the kernel grow
 * the table, and in a process with threads that waits for an RCU grace
 * period (13 ms measured here, for a 15 ms program: wl_alloc_test
 * --quick, a refresh made by its first thread's slow path).  The mapping is not inherited by fork (MADV_DONTFORK).
 * Seals: the size is fixed (nobody can shrink it under us, which would
 * make our stores fault), and, where the kernel has F_SEAL_FUTURE_WRITE
 * (5.1), nobody who opens the file later can write it or map it writable:
 * the process's own mapping is the only writer.                           */
#define TM_OS_CHANNEL_FD_MIN 56
/* The identity of an open file: device and inode. */
static bool fd_identity(int fd, uint64_t id[2])
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    id[0] = (uint64_t)st.st_dev;
    id[1] = (uint64_t)st.st_ino;
    return true;
}

/* Bytes a file of ours may reach: RLIMIT_FSIZE.  Writing or truncating
 * past it raises SIGXFSZ, which kills the process: a program run under
 * `ulimit -f 1024` died at the channel's ftruncate to 2 MiB (2026-12-05,
 * test_limits), where glibc's malloc writes no file. */
size_t tm_os_file_room(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return (size_t)rl.rlim_cur;
}

int tm_os_channel_create(const char *name, size_t size, void **out, uint64_t id[2])
{
    if (tm_os_file_room() < size)
        return -1;
    /* A process allowed few descriptors (a sandbox's RLIMIT_NOFILE of 64,
     * `ulimit -n 4`) keeps them all: under `ulimit -n 4` the channel took
     * the last one and the program's own open failed with EMFILE, where
     * glibc's malloc holds none (2026-12-05, test_limits). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur <= 2 * TM_OS_CHANNEL_FD_MIN)
        return -1;
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, TM_OS_CHANNEL_FD_MIN);
    if (hi >= 0) {
        nc_close(fd);
        fd = hi;
    }
    void *p = MAP_FAILED;
    /* The first page (the header) backed before anything is written. */
    if (ftruncate(fd, (off_t)size) == 0 && fd_identity(fd, id) &&
        tm_os_channel_back(fd, 0, size < 4096 ? size : 4096))
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        nc_close(fd);
        return -1;
    }
    madvise(p, size, MADV_DONTFORK);
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0)
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    *out = p;
    return fd;
}

bool tm_os_channel_back(int fd, size_t off, size_t len)
{
    if (injected_failure(TM_FAULT_CHANNEL))
        return false;
    /* (the system call: libc's fallocate is a cancellation point) */
    return syscall(SYS_fallocate, fd, 0, (off_t)off, (off_t)len) == 0;
}

bool tm_os_channel_ours(int fd, const uint64_t id[2])
{
    uint64_t now[2];
    return fd >= 0 && fd_identity(fd, now) && now[0] == id[0] && now[1] == id[1];
}

void tm_os_channel_close_if_ours(int fd, const uint64_t id[2])
{
    if (tm_os_channel_ours(fd, id))
        nc_close(fd);
}

/* Scratch memory for a report (not counted; the caller frees it). */
void *tm_os_scratch(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void tm_os_scratch_free(void *p, size_t size)
{
    munmap(p, size);
}

int tm_os_create(const char *path)
{
    return nc_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

int tm_os_open_read(const char *path)
{
    return nc_open(path, O_RDONLY | O_CLOEXEC, 0);
}

long tm_os_read(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = nc_read(fd, buf, n);
        if (r >= 0 || errno != EINTR)
            return (long)r;
    }
}

void tm_os_close(int fd)
{
    nc_close(fd);
}

/* Write a whole file (created 0600, replaced if present); false on error. */
bool tm_os_write_file(const char *path, const char *buf, size_t n)
{
    int fd = nc_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = true;
    if (n > tm_os_file_room()) {
        n = tm_os_file_room();           /* cut, rather than SIGXFSZ */
        ok = false;
    }
    while (n > 0) {
        ssize_t w = nc_write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ok = false;
            break;
        }
        buf += w;
        n -= (size_t)w;
    }
    return nc_close(fd) == 0 && ok;
}

/* Copy n bytes at addr of our own address space, or false if any of it is
 * not mapped readable right now (another thread may unmap it at any time:
 * process_vm_readv reports EFAULT where a plain load would crash).       */
bool tm_os_peek(const void *addr, void *buf, size_t n)
{
    struct iovec local = { buf, n }, remote = { (void *)addr, n };
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

uint64_t tm_os_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t tm_os_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int tm_os_getpid(void)
{
    return (int)getpid();
}

int tm_os_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

/* tgkill with signal 0 tests that the thread exists, sends nothing.  A
 * thread that has exited is gone (ESRCH) once the kernel released it,
 * which is also when it leaves the thread group that unshare and setns
 * count. */
bool tm_os_thread_alive(int tid)
{
    return syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH;
}

void tm_os_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, &ts) != 0 && errno == EINTR)
        ;
}

int tm_os_unshare(int flags)
{
    return (int)syscall(SYS_unshare, flags);
}

int tm_os_setns(int fd, int nstype)
{
    return (int)syscall(SYS_setns, fd, nstype);
}

bool tm_os_secure(void)
{
    return getauxval(AT_SECURE) != 0;
}

/* If the /proc status line is `key`'s, the digit after it (and blanks)
 * in *out: the seccomp mode and no_new_privs are one digit each. */
static void line_digit(const char *line, const char *key, int *out)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0)
        return;
    const char *s = line + k;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s >= '0' && *s <= '9')
        *out = *s - '0';
}
static void status_line(const char *line, int *mode, int *nnp)
{
    line_digit(line, "Seccomp:", mode);
    line_digit(line, "NoNewPrivs:", nnp);
}

/* Line by line through a 512-byte buffer, not the whole file at once:
 * this runs in free's and malloc_trim's release passes
 * (still_unconfined), and a 4 KiB buffer there overflowed a thread on
 * a PTHREAD_STACK_MIN stack that glibc's malloc_trim served (8 KiB of
 * the program's own frames: /tmp experiment, 2026-12-06).  Lines longer
 * than the buffer (Groups, Cpus_allowed on a big machine) are skipped. */
bool tm_os_seccomp_now(int *mode, int *nnp)
{
    int fd = nc_open("/proc/self/status", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return false;
    char buf[512];
    size_t have = 0;
    bool skipping = false, any = false;
    *mode = *nnp = -1;
    for (;;) {
        long n = tm_os_read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) {
            if (n == 0 && have && !skipping) {          /* a last line without '\n' */
                buf[have] = 0;
                status_line(buf, mode, nnp);
            }
            any = any && n == 0;
            break;
        }
        any = true;
        have += (size_t)n;
        buf[have] = 0;
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', (size_t)(buf + have - line))) != NULL) {
            *nl = 0;
            if (!skipping)
                status_line(line, mode, nnp);
            skipping = false;
            line = nl + 1;
        }
        size_t rest = (size_t)(buf + have - line);
        if (rest == sizeof buf - 1) {                   /* a long line: drop it */
            skipping = true;
            rest = 0;
        }
        memmove(buf, line, rest);
        have = rest;
    }
    nc_close(fd);
    return any;
}

void tm_os_seccomp_start(int *mode, int *nnp)
{
    *mode = tm_os_prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    *nnp = tm_os_prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
}
