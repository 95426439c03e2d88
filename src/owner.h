/*
 * owner.h - which addresses are chunks this allocator handed out
 * (issue 11, "ownership").  free, realloc and malloc_usable_size ask here
 * before they read a header, so that a pointer to the stack, a global,
 * another allocator's block or an unmapped page aborts with a message
 * naming it instead of being taken for a chunk.
 *
 * Three registries, all in memory of their own (the os layer; never the
 * heap, so a heap overflow cannot edit them):
 *   main arena  the bounds [lo, hi) of its brk segments (contiguous in
 *               practice); once brk fails it grows in sub-heaps (below);
 *   sub-heaps   one byte per TM_HEAP_MAX_SIZE-aligned slot of the address
 *               space (2^47 / 64 MiB = 2 Mi bytes of .bss that stay
 *               untouched zero pages but for the one or two 4 KiB pages
 *               that hold the slots in use: 256 GiB of address space per
 *               page): 1 while a sub-heap lives there.  A byte rather
 *               than a bit: the test is a compare with memory, not a
 *               load, a shift and a bit test (free and malloc's hit
 *               paths of threads of other arenas make it);
 *   mmapped     an open-addressing hash set of the chunk addresses of
 *               mmapped chunks, each with its mapping (start, length), so
 *               that munmap uses what was mapped, never what a header says.
 * The first two are read on the free fast path with relaxed atomics (a
 * chunk handed to another thread was registered before the hand-over);
 * the hash set is guarded by its lock (an mmapped chunk's free is a
 * system call anyway).  Lock order: arena locks before the set's lock.
 */
#ifndef TM_OWNER_H
#define TM_OWNER_H

#include "internal.h"

#define TM_OWN_ADDR_BITS 47
#define TM_OWN_SUB_SHIFT 26                    /* log2(TM_HEAP_MAX_SIZE) */
#define TM_OWN_SUB_SLOTS ((size_t)1 << (TM_OWN_ADDR_BITS - TM_OWN_SUB_SHIFT))

_Static_assert(((size_t)1 << TM_OWN_SUB_SHIFT) == TM_HEAP_MAX_SIZE, "sub-heap slot size");

/* The main arena's brk range as [lo, lo + span): one subtraction and one
 * unsigned compare on the hot paths (an address below lo wraps to a huge
 * offset).  Writers (the main arena's lock holder) store lo before span,
 * span with release; readers load span (acquire: a plain load on
 * x86-64) before lo.  A reader that sees the new span sees the new lo; one
 * that sees a new lo with the old span checks [new lo, new lo + old span),
 * inside the union of both ranges whenever lo only moves down or span
 * only grows, the only moves that happen together (tm_own_main_brk).  So
 * a racing reader can miss (the slow path is exact), never accept an
 * address outside what was ever registered.                          */
struct tm_own_fast {
    _Atomic uintptr_t main_lo, main_span;      /* brk segments of the main arena */
    /* span >> 4, written after span (release), the same way: the hit
     * paths' aligned test (tm_own_aligned_in_heaps).                  */
    _Atomic uintptr_t main_span16;
};
extern struct tm_own_fast tm_own TM_HIDDEN;
extern _Atomic uint8_t tm_own_sub[TM_OWN_SUB_SLOTS] TM_HIDDEN;

static TM_INLINE bool tm_own_in_sub(uintptr_t a)
{
    uintptr_t g = a >> TM_OWN_SUB_SHIFT;
    if (g >= (uintptr_t)TM_OWN_SUB_SLOTS)
        return false;
    return atomic_load_explicit(&tm_own_sub[g], memory_order_relaxed) != 0;
}
/* Inside one of our heaps: the main arena's brk bounds or one of our
 * sub-heaps (the main arena's too, once brk has failed: sysmem.c).  No
 * call (so no registers to save on the hot paths); a sub-heap counts
 * whole, its 64 MiB slot with the guard and the reserve (both readable:
 * heap.h), so reading a header there is safe; tm_own_classify is exact.
 * Mmapped chunks are not in heaps: tm_own_classify.                  */
static TM_INLINE bool tm_own_in_main(uintptr_t a)
{
    uintptr_t span = atomic_load_explicit(&tm_own.main_span, memory_order_acquire);
    return a - atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed) < span;
}
static TM_INLINE bool tm_own_in_heaps(uintptr_t a)
{
    return tm_own_in_main(a) || tm_own_in_sub(a);
}
/* a 16-byte aligned and inside one of our heaps: aligned_ok(a) &&
 * tm_own_in_heaps(a), but with one test fewer on the main arena's range,
 * where the hit paths of malloc and free find nearly all chunks.  lo is
 * 16-aligned (sysmem.c aligns a brk segment's start), so x = a - lo has
 * a's low four bits; rotated right by 4 they land at the top and any
 * of them set makes the value larger than any span: one subtraction, one
 * rotate and one compare test both.  (An aligned x < span with x >> 4 ==
 * span >> 4 - the last 1..15 bytes of an odd span - is refused: no
 * header fits there.)                                                */
static TM_INLINE bool tm_own_aligned_in_heaps(uintptr_t a)
{
    uintptr_t span16 = atomic_load_explicit(&tm_own.main_span16, memory_order_acquire);
    uintptr_t x = a - atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
    if (likely(((x >> 4) | (x << 60)) < span16))
        return true;
    return (a & 15) == 0 && tm_own_in_sub(a);
}
/* [a, a + len) inside one of our heaps (0 < len <= a sub-heap slot): one
 * range test where two tm_own_in_heaps (of a and a + len - 1) would be
 * two - a walk that reads a header and the word after the user pointer
 * (tcache.c chain_check) makes it per chunk.  In the brk range: a's
 * offset inside it and len more bytes left (no wrap: span - x > 0); in
 * a sub-heap: both ends in the same slot (a span across two slots is
 * refused even if both are ours: no chunk's first 32 bytes straddle a
 * slot boundary, the slot starts with the sub-heap's header).        */
static TM_INLINE bool tm_own_span_in_heaps(uintptr_t a, size_t len)
{
    uintptr_t span = atomic_load_explicit(&tm_own.main_span, memory_order_acquire);
    uintptr_t x = a - atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
    if (likely(x < span))
        return span - x >= len;
    return ((a ^ (a + len - 1)) >> TM_OWN_SUB_SHIFT) == 0 && tm_own_in_sub(a);
}

enum { TM_OWN_NONE = 0, TM_OWN_HEAP = 1, TM_OWN_MMAP = 2 };
/* Where the chunk at p lies: in a heap of ours (a brk segment of the main
 * arena - not a foreign sbrk's memory between two -, or a sub-heap within
 * its size), exactly at one of our mmapped chunks, or neither.
 * Reads no memory at p (a sub-heap's header, for its size).           */
TM_HIDDEN int tm_own_classify(const tm_chunk *p);

/* Main arena (its lock held): a brk segment now spans [lo, hi) - extended,
 * new or trimmed.                                                     */
TM_HIDDEN void tm_own_main_brk(uintptr_t lo, uintptr_t hi);
TM_HIDDEN void tm_own_main_brk_trim(uintptr_t old_hi, uintptr_t new_hi);
/* Sub-heaps: h is (no longer) one. */
TM_HIDDEN void tm_own_sub_add(const void *h);
TM_HIDDEN void tm_own_sub_del(const void *h);

/* Mmapped chunks.  add: false if the set cannot grow (no memory). */
TM_HIDDEN bool tm_own_mmap_add(const tm_chunk *p, uintptr_t block, size_t len);
/* Is p an mmapped chunk of ours?  Its mapping in *block, *len. */
TM_HIDDEN bool tm_own_mmap_find(const tm_chunk *p, uintptr_t *block, size_t *len);
TM_HIDDEN void tm_own_mmap_del(const tm_chunk *p);

/* Fork: the set's lock is held across fork by the forking thread, which
 * passes it in the window (other atfork handlers may allocate).       */
TM_HIDDEN void tm_own_fork_lock(void);
TM_HIDDEN void tm_own_fork_unlock(void);
TM_HIDDEN void tm_own_fork_child(void);

#endif
