/* family.h - the C library's malloc-family names that tidemalloc defines.
 *
 * One list, two users: api.c and stats.c export each name as another name
 * of its tide_ function (TM_ALIAS), and dlopen.c (TIDEMALLOC_DEEPBIND=2)
 * points a deep-bound library's references to these names at the same
 * functions.  A name added here is both exported and patched.
 * X(name, function): api.c's functions, then stats.c's.               */
#ifndef TM_FAMILY_H
#define TM_FAMILY_H

#define TM_FAMILY_API(X)                                                       \
    X(malloc, tide_malloc) X(free, tide_free) X(calloc, tide_calloc)           \
    X(realloc, tide_realloc) X(reallocarray, tide_reallocarray)                \
    X(memalign, tide_memalign) X(posix_memalign, tide_posix_memalign)          \
    X(aligned_alloc, tide_aligned_alloc) X(valloc, tide_valloc)                \
    X(pvalloc, tide_pvalloc) X(malloc_usable_size, tide_malloc_usable_size)    \
    X(free_sized, tide_free_sized) X(free_aligned_sized, tide_free_aligned_sized) \
    X(cfree, tide_free)                                                        \
    /* glibc-internal names some programs and libc.a objects use */          \
    X(__libc_malloc, tide_malloc) X(__libc_free, tide_free)                    \
    X(__libc_calloc, tide_calloc) X(__libc_realloc, tide_realloc)              \
    X(__libc_memalign, tide_memalign) X(__libc_valloc, tide_valloc)            \
    X(__libc_pvalloc, tide_pvalloc)

#define TM_FAMILY_STATS(X)                                                     \
    X(mallinfo, tide_mallinfo) X(mallinfo2, tide_mallinfo2)                    \
    X(malloc_trim, tide_malloc_trim) X(mallopt, tide_mallopt)                  \
    X(malloc_stats, tide_malloc_stats) X(malloc_info, tide_malloc_info)

#endif
