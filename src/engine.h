/*
 * engine.h - the bin/chunk engine of one arena: ptmalloc2's _int_malloc,
 * _int_free, _int_realloc and _int_memalign.  Every function requires
 * av->lock held and takes no lock.  Below it: bins.h (the free lists),
 * sysmem.h (top growth and trimming, mmapped chunks).
 */
#ifndef TM_ENGINE_H
#define TM_ENGINE_H

#include "internal.h"
#include "bins.h"

/* A chunk of nb bytes (nb = request2size(n)); its memory or NULL (ENOMEM).
 * z, if not NULL, receives the part of it known to read as zero.       */
TM_HIDDEN void *tm_int_malloc(tm_arena *av, size_t nb, tm_zrange *z);
/* The same, for pieces of nb bytes (a thread cache refill): a chunk of
 * nb to run bytes (run a multiple of nb), as much of the run as the free
 * chunk that a single malloc of nb would split holds; its size may
 * exceed a multiple of nb by less than 32 bytes.  grow: false - NULL
 * where the heap would have to grow (the caller may free what it holds
 * elsewhere first: tm_tcache_refill).                                */
TM_HIDDEN void *tm_int_malloc_run(tm_arena *av, size_t nb, size_t run, bool grow);
/* p: an in-use, non-mmapped chunk of av, already checked by the caller
 * for pointer/size sanity.                                              */
TM_HIDDEN void  tm_int_free(tm_arena *av, tm_chunk *p);
/* The same for a batch of chunks freed under one lock hold (a cache
 * flush): tm_int_free_begin starts it on l; each chunk - a cache or list
 * entry, its header CACHED (chunk.h) - is checked as tm_int_free checks
 * an in-use one and left pending on l (bins.h) - or in a fast
 * bin, where fast bins are on; tm_int_free_settle then merges the batch,
 * run by run, and does what a free does after (trim, the cap), once.
 * Nothing else may touch the arena's bins in between.                 */
TM_HIDDEN void  tm_int_free_begin(tm_arena *av, tm_pending *l);
TM_HIDDEN void  tm_int_free_pend(tm_arena *av, tm_chunk *p, tm_pending *l);
TM_HIDDEN void  tm_int_free_settle(tm_arena *av, tm_pending *l);
/* The same for a chunk whose in-use header the caller has just verified
 * (free's slow path) or written itself under this lock hold (the tail a
 * realloc or memalign cuts off): size is the size that word carries. */
TM_HIDDEN void  tm_int_free_verified(tm_arena *av, tm_chunk *p, size_t size);
TM_HIDDEN void *tm_int_realloc(tm_arena *av, tm_chunk *oldp, size_t oldsize, size_t nb);
/* alignment: a power of two > 16. */
TM_HIDDEN void *tm_int_memalign(tm_arena *av, size_t alignment, size_t bytes);
/* malloc_consolidate, then give back the top's excess beyond pad and the
 * pages of every free chunk (malloc_trim for one arena).              */
TM_HIDDEN bool  tm_int_trim(tm_arena *av, size_t pad);

#endif
