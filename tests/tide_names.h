/*
 * tide_names.h - forced into every test program (gcc/clang `-include`) of a
 * build configured with -DTIDE_SANITIZE=address or =thread.
 *
 * ASan and TSan replace malloc, free, ... themselves (their runtime comes
 * first in the symbol search order), so a test calling malloc() would test
 * the sanitizer's allocator, not ours.  Here the glibc names are turned into
 * the tide_ names every function of tidemalloc is also exported under: the
 * tests exercise tidemalloc, while the C library's own allocations (stdio
 * buffers, thread stacks' TLS, open_memstream, strdup, ...) are served by
 * the sanitizer runtime.
 *
 * Consequence for test code: memory the C library allocated must go back to
 * the C library, not to tide_free.  harness.h's harness_libc_free() is for
 * that (see there); gcc's -Wmismatched-dealloc points at most other mixes.
 *
 * Ordering: the feature macro and every system header that declares one of
 * these names come first, so their prototypes keep the glibc names; only
 * then the #defines.  Headers a test includes later are already guarded, and
 * a later redeclaration of one of these names would become a redeclaration
 * of the tide_ function with the same signature, which is harmless.
 */
#ifndef TIDE_NAMES_H
#define TIDE_NAMES_H

/* The tests ask for _GNU_SOURCE themselves, but after this header: it must be
 * on before the first system header (features.h is read once).  The value 1
 * matches the tests' own `#define _GNU_SOURCE 1`. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidemalloc.h"

/* free() of the C library (the sanitizer's allocator), for memory it
 * allocated itself.  Defined before the #define of free below. */
static inline __attribute__((unused)) void tide_names_libc_free(void *p)
{
    free(p);
}

/* Object-like, so that a function used as a value (a table of allocation
 * functions) is renamed too. */
#define malloc              tide_malloc
#define free                tide_free
#define calloc              tide_calloc
#define realloc             tide_realloc
#define reallocarray        tide_reallocarray
#define memalign            tide_memalign
#define posix_memalign      tide_posix_memalign
#define aligned_alloc       tide_aligned_alloc
#define valloc              tide_valloc
#define pvalloc             tide_pvalloc
#define malloc_usable_size  tide_malloc_usable_size
#define free_sized          tide_free_sized
#define free_aligned_sized  tide_free_aligned_sized
#define mallopt             tide_mallopt
#define malloc_trim         tide_malloc_trim
#define malloc_stats        tide_malloc_stats
#define malloc_info         tide_malloc_info
/* Function-like: `struct mallinfo` / `struct mallinfo2` must keep their tag. */
#define mallinfo()          tide_mallinfo()
#define mallinfo2()         tide_mallinfo2()

#endif /* TIDE_NAMES_H */
