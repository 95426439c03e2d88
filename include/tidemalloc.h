/*
 * tidemalloc.h - public interface of tidemalloc.
 *
 * tidemalloc replaces the C library's malloc: linking it in or loading it
 * with LD_PRELOAD makes malloc, free, calloc, realloc, ... its own.  The same
 * functions are also exported with a `tide_` prefix so a program can use
 * tidemalloc beside the system allocator.  The `tide_` names below behave
 * exactly like their glibc counterparts (see malloc(3), mallopt(3), ...).
 */
#ifndef TIDEMALLOC_H
#define TIDEMALLOC_H

#include <stddef.h>
#include <stdio.h>
#include <malloc.h> /* struct mallinfo, struct mallinfo2, M_* constants */

#ifdef __cplusplus
extern "C" {
#endif

#define TIDEMALLOC_VERSION "0.1.0"

/* ---- the glibc API, prefixed ------------------------------------------ */
void  *tide_malloc(size_t size);
void   tide_free(void *ptr);
void  *tide_calloc(size_t nmemb, size_t size);
void  *tide_realloc(void *ptr, size_t size);
void  *tide_reallocarray(void *ptr, size_t nmemb, size_t size);
void  *tide_memalign(size_t alignment, size_t size);
int    tide_posix_memalign(void **memptr, size_t alignment, size_t size);
void  *tide_aligned_alloc(size_t alignment, size_t size);
void  *tide_valloc(size_t size);
void  *tide_pvalloc(size_t size);
size_t tide_malloc_usable_size(void *ptr);
void   tide_free_sized(void *ptr, size_t size);
void   tide_free_aligned_sized(void *ptr, size_t alignment, size_t size);
int    tide_mallopt(int param, int value);
struct mallinfo  tide_mallinfo(void);
struct mallinfo2 tide_mallinfo2(void);
int    tide_malloc_trim(size_t pad);
void   tide_malloc_stats(void);
int    tide_malloc_info(int options, FILE *fp);

/* ---- tidemalloc's own mallopt parameters -------------------------------- */
/* Milliseconds a free page stays resident before it is given back to the
 * system (0 = at once, -1 = never).  Environment: TIDEMALLOC_DECAY_MS.      */
#define TIDE_M_DECAY_MS          (-1001)
/* 1 starts a background thread that releases decayed pages; 0 stops it.
 * Environment: TIDEMALLOC_BACKGROUND_THREAD=1.                               */
#define TIDE_M_BACKGROUND_THREAD (-1002)
/* Per-thread cache: chunks kept per size class, largest cached request in
 * bytes, and the cache's total byte budget.                                */
#define TIDE_M_TCACHE_COUNT      (-1003)
#define TIDE_M_TCACHE_MAX        (-1004)
#define TIDE_M_TCACHE_BYTES      (-1005)
/* The strong hardening mode: 1 on, 0 off.  Freed memory is poisoned and
 * checked when it is reused, freed chunks wait in a bounded quarantine
 * before reuse, mmapped chunks get a PROT_NONE guard page after them, and
 * the thread caches are off.  Environment: TIDEMALLOC_HARDEN=1.  Costs are
 * in docs/design.md ("The strong mode").                                  */
#define M_TIDE_HARDEN            (-1006)
#define TIDE_M_HARDEN            M_TIDE_HARDEN
/* Transparent huge pages: 1 (the default) marks each range the allocator
 * gives back MADV_NOHUGEPAGE, in 2 MiB units, where huge pages may back
 * the heap (THP "always", or glibc.malloc.hugetlb=1), so that khugepaged
 * does not make it resident again; 0 leaves huge pages alone.
 * Environment: TIDEMALLOC_THP=0.                                          */
#define TIDE_M_THP               (-1007)
/* dlopen with RTLD_DEEPBIND, whose libraries would otherwise bind malloc
 * and free to the C library's (a block that crosses between them and the
 * program is freed by the wrong allocator: PHP's extensions).  1 (the
 * default): the flag is dropped, the library binds as any other; 2: deep
 * binding kept, but the malloc-family references of the objects loaded
 * are pointed at tidemalloc once dlopen returns (their constructors, run
 * before, are not reached); 0: as the C library binds them.
 * Environment: TIDEMALLOC_DEEPBIND.                                       */
#define TIDE_M_DEEPBIND          (-1008)
/* Fresh heap pages: 1 (the default) faults in the pages of the top chunk
 * that small blocks are about to be carved from, and up to 64 KiB after
 * them, with one madvise(MADV_POPULATE_WRITE) instead of a page fault
 * per page (Linux >= 5.14; nothing where the kernel or a seccomp filter
 * refuses it); a block above 16 KiB carved from the top is left to fault
 * page by page as the program writes it.  0: every page faults when it
 * is first written, as with glibc.  Environment: TIDEMALLOC_POPULATE=0. */
#define TIDE_M_POPULATE          (-1009)

/* ---- introspection ------------------------------------------------------ */
struct tide_stats {
    size_t system_bytes;     /* bytes the arenas hold from the OS (brk and mmap
                                segments of the main arena, sub-heaps)            */
    size_t mmapped_bytes;    /* bytes in mmapped chunks                              */
    size_t mmapped_chunks;   /* number of mmapped chunks                             */
    size_t in_use_bytes;     /* bytes in chunks not in a bin: handed to the program,
                                or held in a thread cache (as glibc counts them)   */
    size_t free_bytes;       /* bytes in free chunks (bins, fast bins, top)          */
    size_t free_resident_bytes; /* free bytes whose pages are still resident         */
    size_t released_bytes;   /* free bytes not resident (given back with madvise,
                                or never touched since the heap grew)             */
    size_t cached_bytes;     /* bytes in the *calling* thread's cache                */
    size_t narenas;          /* arenas created so far                                */
    size_t nheaps;           /* heaps of all arenas: main-arena segments, sub-heaps  */
    size_t madvise_calls;    /* page releases done so far                            */
};
void tide_get_stats(struct tide_stats *out);

/* Walk every arena, sub-heap, chunk and bin and verify every invariant
 * (boundary tags, bin membership, sizes, counts, binmap, large-bin order).
 * On a violation it prints "tide_check_heap(): <what failed>" to stderr and
 * aborts.  Returns the number of arenas and chunks it examined (> 0).  Takes every arena lock
 * in turn; safe to call from any thread at any time.                      */
long tide_check_heap(void);

/* Allocation-site profiling (TIDEMALLOC_PROFILE=1 or =rate:BYTES,out:PREFIX,
 * top:N,seed:N in the environment at start; see tidemalloc(3)): write the
 * live sampled allocations now, as <prefix>.collapsed (collapsed stacks,
 * "module+0xoff;...;module+0xoff BYTES", root first, for flame graphs) and
 * <prefix>.txt (totals and the top sites).  prefix NULL: the configured
 * one (default "tidemalloc-prof.%p", %p = pid).  0 on success; -1 with
 * errno EINVAL when profiling is off, or the error of open(2).  The same
 * report is written at exit.                                              */
int tide_profile_dump(const char *prefix);

/* Empty the calling thread's cache back to the arenas. */
void tide_thread_cache_flush(void);

/* ---- fault injection (tests) ------------------------------------------- */
/* After `after` more successful OS calls of `kind`, every further call of
 * that kind fails with ENOMEM, until called again with after = -1.         */
#define TIDE_FAULT_MMAP 1 /* mmap, mremap, and growing a sub-heap (mprotect) */
#define TIDE_FAULT_BRK  2 /* growing the main heap with brk/sbrk             */
#define TIDE_FAULT_BRK_SHRINK 3 /* giving the main heap's top back (sbrk < 0)  */
#define TIDE_FAULT_CHANNEL 4 /* memory for the statistics channel's pages    */
void tide_fault_inject(int kind, long after);

/* Non-zero when `ptr`'s chunk was produced by tidemalloc (cheap range test);
 * lets a test or benchmark prove which allocator served it.                */
int tide_owns(const void *ptr);

#ifdef __cplusplus
}
#endif
#endif /* TIDEMALLOC_H */
