/*
 * heap.h - sub-heaps: the address space of non-main arenas.
 *
 *   slot = p & ~(HEAP_MAX-1)     heap_for_ptr(p) = slot + TM_HEAP_GUARD
 *   v       v
 *   +-------+---------+----------+-----------------------+......+
 *   | guard | tm_heap | tm_arena | chunks ...   | top    | read-only reserve
 *   +-------+---------+----------+-----------------------+......+
 *           ^ the arena lives only in its first heap h->size ^  HEAP_MAX ^
 *
 * A sub-heap is TM_HEAP_MAX_SIZE (64 MiB) of address space aligned to its
 * size, so a chunk finds its heap (and arena) by masking its address.  It
 * is reserved read-only (os.c says why not PROT_NONE) and made read/write
 * as it grows; shrinking gives
 * pages back with madvise and keeps them read/write.  The slot's first
 * TM_HEAP_GUARD bytes (64 KiB: a page on every Linux page size) are
 * never made writable: whatever mapping lies below the slot (a
 * full sub-heap, an mmapped chunk), a linear overflow from it faults there
 * before it reaches the heap header and the arena (issue 11: metadata out
 * of reach of a heap overflow).  So a heap spans at most
 * TM_HEAP_MAX_SIZE - TM_HEAP_GUARD from its header.  This layer knows address
 * space only: which chunks a heap holds is sysmem.c's business.
 * Main-arena brk segments share the tm_heap header and the accessors
 * below, but are never masked.
 */
#ifndef TM_HEAP_H
#define TM_HEAP_H

#include "internal.h"

static inline tm_heap *heap_for_ptr(const void *p)
{
    return (tm_heap *)(((uintptr_t)p & ~((uintptr_t)TM_HEAP_MAX_SIZE - 1)) + TM_HEAP_GUARD);
}
static inline tm_arena *arena_for_chunk(const tm_chunk *p)
{
    return chunk_non_main(p) ? heap_for_ptr(p)->ar : &tm_main_arena;
}
/* First chunk of a heap: after the header (and the arena, in an arena's
 * first sub-heap).                                                      */
static inline tm_chunk *heap_first_chunk(const tm_heap *h)
{
    /* The arena lives right after its first heap's header
     * (tm_sys_new_arena), and nowhere else does h->ar point there.  A
     * relaxed atomic: tm_own_classify asks without the arena's lock, of
     * any pointer, while a new heap's owner may be being written
     * (heap_set_ar).                                                  */
    uintptr_t a = (uintptr_t)(h + 1);
    if (__atomic_load_n(&h->ar, __ATOMIC_RELAXED) == (const struct tm_arena *)(h + 1))
        a += sizeof(tm_arena);
    return (tm_chunk *)((a + TM_ALIGN_MASK) & ~(uintptr_t)TM_ALIGN_MASK);
}
static inline void heap_set_ar(tm_heap *h, struct tm_arena *av) { __atomic_store_n(&h->ar, av, __ATOMIC_RELAXED); }
static inline char *heap_end(const tm_heap *h) { return (char *)h + h->size; }
/* A sub-heap's size is written under its arena's lock and read without it
 * by tm_own_classify (a pointer's extent): relaxed atomics, both sides.  */
static inline void heap_set_size(tm_heap *h, size_t size) { __atomic_store_n(&h->size, size, __ATOMIC_RELAXED); }

/* A new sub-heap with at least `size` bytes (+ top_pad if it fits)
 * committed; NULL if the system refuses or size > TM_HEAP_SPAN.        */
TM_HIDDEN tm_heap *tm_heap_new(size_t size, size_t top_pad);
/* Grow h->size by diff + top_pad if that fits (else by diff),
 * page-rounded, committing as needed. */
TM_HIDDEN bool tm_heap_grow(tm_heap *h, size_t diff, size_t top_pad);
/* Shrink h->size to new_size, giving the pages beyond it back. */
TM_HIDDEN void tm_heap_shrink(tm_heap *h, size_t new_size);
/* Unmap the whole reservation of h. */
TM_HIDDEN void tm_heap_delete(tm_heap *h);

#endif
