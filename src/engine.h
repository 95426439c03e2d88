/*
 * engine.h - the bin/chunk engine of one arena: ptmalloc2's _int_malloc,
 * _int_free, _int_realloc and _int_memalign.  Every function requires
 * av->lock held and takes no lock.  Below it: bins.h (the free lists),
 * sysmem.h (top growth and trimming, mmapped chunks).
 */
#ifndef TM_ENGINE_H
#define TM_ENGINE_H

#include "internal.h"

/* A chunk of nb bytes (nb = request2size(n)); its memory or NULL (ENOMEM).
 * z, if not NULL, receives the part of it known to read as zero.       */
TM_HIDDEN void *tm_int_malloc(tm_arena *av, size_t nb, tm_zrange *z);
/* p: an in-use, non-mmapped chunk of av, already checked by the caller
 * for pointer/size sanity.                                              */
TM_HIDDEN void  tm_int_free(tm_arena *av, tm_chunk *p);
/* The same for a chunk whose in-use header the caller has just verified
 * (free's slow path): size is the size that verified word carries.    */
TM_HIDDEN void  tm_int_free_verified(tm_arena *av, tm_chunk *p, size_t size);
TM_HIDDEN void *tm_int_realloc(tm_arena *av, tm_chunk *oldp, size_t oldsize, size_t nb);
/* alignment: a power of two > 16. */
TM_HIDDEN void *tm_int_memalign(tm_arena *av, size_t alignment, size_t bytes);
/* malloc_consolidate, then give back the top's excess beyond pad and the
 * pages of every free chunk (malloc_trim for one arena).              */
TM_HIDDEN bool  tm_int_trim(tm_arena *av, size_t pad);

#endif
