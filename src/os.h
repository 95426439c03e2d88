/*
 * os.h - the OS layer: the only code that calls mmap, munmap, mprotect,
 * mremap, madvise and sbrk.  Every function returns NULL / false /
 * (void *)-1 on failure with errno set (ENOMEM), never allocates, and is
 * where tests inject failures (tide_fault_inject).
 */
#ifndef TM_OS_H
#define TM_OS_H

#include <stdatomic.h>
#include "base.h"

/* Kinds of OS call whose failure tests can inject (tide_fault_inject). */
enum tm_fault_kind {
    TM_FAULT_MMAP = 1,   /* mmap, the sub-heap reservation, mremap, mprotect commits */
    TM_FAULT_BRK  = 2,   /* brk growth                                               */
    TM_FAULT_KINDS
};

TM_HIDDEN void  tm_os_init(void);                          /* page size, CPU count */
TM_HIDDEN void *tm_os_map(size_t size);                    /* RW anonymous */
TM_HIDDEN void *tm_os_reserve_aligned(size_t size, size_t align); /* PROT_NONE */
TM_HIDDEN bool  tm_os_commit(void *p, size_t size);        /* make RW */
TM_HIDDEN bool  tm_os_guard(void *p, size_t size);         /* make PROT_NONE */
TM_HIDDEN void  tm_os_unmap(void *p, size_t size);
TM_HIDDEN void *tm_os_remap(void *p, size_t old, size_t new_size);
TM_HIDDEN void  tm_os_release(void *p, size_t size);       /* madvise(DONTNEED): reads 0 after */
TM_HIDDEN void *tm_os_sbrk(intptr_t incr);                 /* (void *)-1 on failure */
TM_HIDDEN uint64_t tm_os_now_ms(void);                     /* CLOCK_MONOTONIC_COARSE */
TM_HIDDEN void  tm_os_fault_inject(int kind, long after);  /* -1: off */
TM_HIDDEN uintptr_t tm_os_random(void);                    /* never 0 */

/* madvise calls made by the allocator, all arenas (statistics). */
extern _Atomic long tm_os_madvise_count TM_HIDDEN;

#endif
