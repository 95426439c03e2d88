/*
 * os.h - the OS layer: the only code that calls mmap, munmap, mprotect,
 * mremap, madvise and sbrk.  Every function returns NULL / false /
 * (void *)-1 on failure with errno set (ENOMEM), never allocates, and is
 * where tests inject failures (tide_fault_inject).
 */
#ifndef TM_OS_H
#define TM_OS_H

#include <stdatomic.h>
#include <sys/uio.h>
#include "base.h"

/* Kinds of OS call whose failure tests can inject (tide_fault_inject). */
enum tm_fault_kind {
    TM_FAULT_MMAP = 1,   /* mmap, the sub-heap reservation, mremap, mprotect commits */
    TM_FAULT_BRK  = 2,   /* brk growth                                               */
    TM_FAULT_BRK_SHRINK = 3, /* a negative brk (main_trim)                               */
    TM_FAULT_CHANNEL = 4,    /* pages for the statistics channel (tm_os_channel_back)   */
    TM_FAULT_KINDS
};

TM_HIDDEN void  tm_os_init(void);                          /* page size, CPU count */
TM_HIDDEN void *tm_os_map(size_t size);                    /* RW anonymous */
TM_HIDDEN void *tm_os_reserve_aligned(size_t size, size_t align); /* PROT_READ */
TM_HIDDEN bool  tm_os_commit(void *p, size_t size);        /* make RW */
TM_HIDDEN bool  tm_os_guard(void *p, size_t size);         /* make PROT_NONE */
TM_HIDDEN void  tm_os_unmap(void *p, size_t size);
TM_HIDDEN void *tm_os_remap(void *p, size_t old, size_t new_size);
TM_HIDDEN void  tm_os_release(void *p, size_t size);       /* madvise(DONTNEED): reads 0 after */
/* tm_os_release of n ranges (iov_base, iov_len), as one process_madvise
 * call per TM_OS_IOV_MAX for TM_OS_BATCH_MIN ranges or more where the
 * kernel takes it (Linux >= 6.15 with
 * PIDFD_SELF: one TLB flush for the lot), one madvise each otherwise.
 * Page release is the only thing the allocator batches this way.     */
#define TM_OS_IOV_MAX 1024
#define TM_OS_BATCH_MIN 8             /* fewer ranges: one madvise each (os.c still_unconfined) */
TM_HIDDEN void  tm_os_release_many(struct iovec *v, size_t n);
/* No process_madvise from now on: the process may be about to confine
 * itself with a seccomp filter that kills on system calls glibc's malloc
 * never makes (api.c's prctl; a filter at start: control.c).  A fork
 * child inherits the setting.                                          */
TM_HIDDEN void  tm_os_release_batch_off(void);   /* (and tm_os_populate) */
TM_HIDDEN bool  tm_os_release_batch_on(void);             /* (tests, statistics) */
/* madvise(MADV_POPULATE_WRITE): fault [p, p + size) in, writable, in
 * one call (os.c); false if not done (the pages then fault one by one
 * when written).  Never where process_madvise is off for a filter or
 * no_new_privs (tm_os_release_batch_off), nor after the kernel refused
 * the advice once.                                                    */
TM_HIDDEN bool  tm_os_populate(void *p, size_t size);
TM_HIDDEN bool  tm_os_populate_on(void);                  /* (tests, statistics) */
/* prctl(2), the bare system call (api.c's prctl stands in for libc's). */
TM_HIDDEN int   tm_os_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                            unsigned long a5);
/* The kernel refused MADV_DONTNEED this many times (locked pages: mlock,
 * mlockall; a seccomp filter).  tm_os_release zeroes what it could not
 * give back, so "reads 0 after" holds either way; past
 * TM_OS_RELEASE_REFUSALS the release paths stop trying (bins.c). */
extern _Atomic unsigned long tm_os_release_refusals TM_HIDDEN;
#define TM_OS_RELEASE_REFUSALS 8
static inline bool tm_os_release_refused(void)
{
    return atomic_load_explicit(&tm_os_release_refusals, memory_order_relaxed) >= TM_OS_RELEASE_REFUSALS;
}
TM_HIDDEN void *tm_os_sbrk(intptr_t incr);                 /* (void *)-1 on failure */
TM_HIDDEN uint64_t tm_os_now_ms(void);                     /* CLOCK_MONOTONIC_COARSE */
TM_HIDDEN void  tm_os_fault_inject(int kind, long after);  /* -1: off */
TM_HIDDEN uintptr_t tm_os_random(void);                    /* never 0 */
TM_HIDDEN bool  tm_os_protect_ro(void *p, size_t size);    /* make read-only */
/* Transparent huge pages for this process's anonymous memory, as the
 * system has them for the PMD size (*unit: 2 MiB on x86-64):
 * /sys/kernel/mm/transparent_hugepage (the PMD size's own mTHP setting
 * where it is not "inherit"), and TM_THP_NEVER where prctl says THP is
 * disabled for the process, TM_THP_MADVISE where it is disabled but for
 * advised regions; TM_THP_NEVER if unreadable.  At initialization.     */
enum { TM_THP_NEVER = 0, TM_THP_MADVISE = 1, TM_THP_ALWAYS = 2 };
TM_HIDDEN int   tm_os_thp_mode(size_t *unit);
/* The number a small file holds (sysctl files: /proc/sys/vm/...), -1 if
 * unreadable.  At initialization (errno kept). */
TM_HIDDEN long  tm_os_read_number(const char *path);
/* madvise(MADV_HUGEPAGE) if huge, else MADV_NOHUGEPAGE; false if the
 * kernel refused any part (a hole in the range: the rest is advised). */
TM_HIDDEN bool  tm_os_advise_huge(void *p, size_t size, bool huge);

/* System calls made by the allocator for the heap, all arenas
 * (statistics; relaxed counters).  brk counts sbrk calls that move the
 * break; the statistics channel's own memfd and mapping are not counted. */
struct tm_os_calls {
    _Atomic unsigned long mmap, munmap, mprotect, mremap, madvise, brk;   /* system calls */
    _Atomic unsigned long process_madvise;   /* system calls: batched releases */
    /* Ranges given back (tm_os_release, tm_os_release_many), by either
     * call: tide_stats.madvise_calls, "page releases".                 */
    _Atomic unsigned long released_ranges;
    _Atomic unsigned long populate;          /* system calls: madvise(MADV_POPULATE_WRITE) */
};
extern struct tm_os_calls tm_os_calls TM_HIDDEN;

/* The statistics channel and reports (observe.c); not counted above. */
TM_HIDDEN int   tm_os_channel_create(const char *name, size_t size, void **out,
                                     uint64_t id[2]);          /* fd or -1; id: the file's */
/* Does fd still refer to the file `id` (tm_os_channel_create's)?  A
 * program may have closed the number, or put a file of its own there
 * (dup2, or a close-everything and an open). */
TM_HIDDEN bool  tm_os_channel_ours(int fd, const uint64_t id[2]);
/* Close fd if it still refers to the file `id`. */
TM_HIDDEN void  tm_os_channel_close_if_ours(int fd, const uint64_t id[2]);
/* Give [off, off + len) of the channel's file its pages before the
 * mapping is written there: false if the system has no memory for them.
 * (A shared memfd page is charged when first touched; under
 * vm.overcommit_memory=2 at the commit limit that touch is a SIGBUS.) */
TM_HIDDEN bool  tm_os_channel_back(int fd, size_t off, size_t len);
TM_HIDDEN void *tm_os_scratch(size_t size);
TM_HIDDEN void  tm_os_scratch_free(void *p, size_t size);
/* Files (reports, /proc, sysfs): no cancellation points (os.c). */
TM_HIDDEN int   tm_os_open_read(const char *path);            /* fd or -1 */
TM_HIDDEN int   tm_os_create(const char *path);               /* 0644, truncated; fd or -1 */
TM_HIDDEN size_t tm_os_file_room(void);         /* RLIMIT_FSIZE: write no further (SIGXFSZ) */
TM_HIDDEN long  tm_os_read(int fd, void *buf, size_t n);
TM_HIDDEN void  tm_os_close(int fd);
TM_HIDDEN bool  tm_os_write_file(const char *path, const char *buf, size_t n);
TM_HIDDEN bool  tm_os_peek(const void *addr, void *buf, size_t n);
TM_HIDDEN uint64_t tm_os_realtime_ms(void);
TM_HIDDEN uint64_t tm_os_cpu_us(void);                     /* this thread's CPU time, us */
TM_HIDDEN int   tm_os_getpid(void);
/* The process runs in secure mode (AT_SECURE): set-user-ID, set-group-ID,
 * or capabilities gained at exec.  Its environment is the caller's. */
TM_HIDDEN bool  tm_os_secure(void);
/* The process's seccomp mode (0 none, 1 strict, 2 filter) and its
 * no_new_privs flag, from /proc/self/status (open, read, close): false
 * if it cannot be read (sandboxes refuse open). */
TM_HIDDEN bool  tm_os_seccomp_now(int *mode, int *nnp);
/* The same from prctl (two calls, no file), -1 where prctl refuses:
 * for the state at start, which initialization records. */
TM_HIDDEN void  tm_os_seccomp_start(int *mode, int *nnp);
/* Threads and namespaces (the background thread, control.c; api.c's
 * one-thread-only calls). */
TM_HIDDEN int   tm_os_gettid(void);
TM_HIDDEN bool  tm_os_thread_alive(int tid);               /* a thread of this process */
TM_HIDDEN void  tm_os_sleep_us(long us);
TM_HIDDEN int   tm_os_unshare(int flags);                  /* -1 and errno on failure */
TM_HIDDEN int   tm_os_setns(int fd, int nstype);           /* -1 and errno on failure */

#endif
