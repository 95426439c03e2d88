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
 *               that munmap uses what was mapped, never what a header says
 *               (kept without TIDE_CHECKS too: the heap map lists mapped
 *               chunks from it, observe.c).
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
    /* The hit paths' brk range, [fast_lo, fast_lo + fast16 * 16): the
     * first brk segment from its first chunk on, and nothing else.  The
     * range above covers every segment and what lies between two of
     * them - a foreign sbrk's memory, a later segment's header - which
     * the link checks may read but the hit paths, that trust a header
     * once its 16-bit checksum verifies, must never take (owner.c
     * set_fast).  fast_lo is written once, before fast16 is first
     * published; fast16 grows and shrinks with the first segment.    */
    _Atomic uintptr_t fast_lo, fast16;
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
/* x = a - lo (lo 16-aligned) below span16 * 16, and a 16-aligned: the
 * rotate puts a's low four bits at the top (every aligned range test of
 * this file, the caches' and the arenas' ranges too).                */
static TM_INLINE bool tm_own_rot_below(uintptr_t x, uintptr_t span16)
{
    return ((x >> 4) | (x << 60)) < span16;
}
static TM_INLINE bool tm_own_main_aligned(uintptr_t a)
{
    uintptr_t span16 = atomic_load_explicit(&tm_own.main_span16, memory_order_acquire);
    return tm_own_rot_below(a - atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed), span16);
}
/* a 16-byte aligned and in a sub-heap's slot, the same trick: a rotated
 * right by 4 is a >> 4 when a is aligned, and has a low bit at the top
 * otherwise, which makes the slot number out of range: one bound test
 * for both (threads of other arenas than the main one, whose chunks are
 * all in sub-heaps, make this test on both hit paths).               */
static TM_INLINE bool tm_own_sub_aligned(uintptr_t a)
{
    uintptr_t g = ((a >> 4) | (a << 60)) >> (TM_OWN_SUB_SHIFT - 4);
    return g < (uintptr_t)TM_OWN_SUB_SLOTS && atomic_load_explicit(&tm_own_sub[g], memory_order_relaxed) != 0;
}
static TM_INLINE bool tm_own_aligned_in_heaps(uintptr_t a)
{
    return likely(tm_own_main_aligned(a)) || tm_own_sub_aligned(a);
}
/* ---- the hit paths' test: chunks only, never the metadata before them ----
 * The tests above take a sub-heap's whole slot (the guard, the heap
 * header, the arena in its first heap) and the brk range from its
 * first segment's header on: right for the link checks (anything there
 * is readable), too lax for the hit paths, which trust a header once
 * its 16-bit checksum verifies.  A word in the arena with a small value
 * that happened to verify (2^-16 for each; hundreds of candidates) let
 * free cache the arena's own memory for a later malloc to hand out, and
 * a zero word of the guard gave malloc_usable_size a size of 2^64 - 8
 * (test_wild under UBSan, a 1-in-30 flake).  So the hit paths take a
 * sub-heap address only from TM_OWN_SUB_FIRST on (the first chunk of an
 * arena's first heap; a later heap's first chunks, below it, take the
 * slow path, which knows them exactly), and the brk range is registered
 * from the first chunk on (sysmem.c).  Of the brk range they take the
 * first segment only (tm_own_fast above): with a second one, the range
 * spans a foreign sbrk's memory and the new segment's header, where a
 * word that verified would have been taken for a chunk in the same way;
 * chunks of later segments take a cache's range (the exact segment:
 * owner.c range_for) or the slow path.                                */
#define TM_OWN_SUB_FIRST ((TM_HEAP_GUARD + sizeof(tm_heap) + sizeof(tm_arena) + 15) & ~(size_t)15)
static TM_INLINE bool tm_own_main_fast(uintptr_t a)
{
    uintptr_t span16 = atomic_load_explicit(&tm_own.fast16, memory_order_acquire);
    return tm_own_rot_below(a - atomic_load_explicit(&tm_own.fast_lo, memory_order_relaxed), span16);
}
static TM_INLINE bool tm_own_fast_in_heaps(uintptr_t a)
{
    return likely(tm_own_main_fast(a)) ||
           ((a & (TM_HEAP_MAX_SIZE - 1)) >= TM_OWN_SUB_FIRST && tm_own_sub_aligned(a));
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

/* ---- a thread's own range ------------------------------------------------
 * The two tests above suit the main arena's chunks: the brk range first
 * (7 instructions), a sub-heap's slot only after it fails (9 more).  A
 * thread of another arena finds all its chunks in sub-heaps, so both hit
 * paths paid 16 for each ownership test (bench/pair_cost.py --thread:
 * 146 instructions a pair of 64 B against 124 on the main thread).  So
 * each thread cache holds a range of its own, tried first: where its
 * last refill's chunk lay - the brk range as it was then, or that
 * chunk's sub-heap slot - one subtraction, one rotate and one compare,
 * as tm_own_aligned_in_heaps's first test, whichever arena the thread
 * uses.
 *
 * A range must never outlive what it covers: a sub-heap deleted, or the
 * brk range trimmed below its end, would leave a thread taking addresses
 * that are no longer ours for chunks.  So ranges are registered here,
 * and set (tm_own_range_track) and cleared (the deletion, the trim) under
 * the set's lock: a trim or deletion updates the registries first, then
 * clears every range that reaches into what went; a track that follows
 * it sees the updated registries.  A range only shrinks to empty (span16
 * 0), never to a part, and grows back at the owner's next refill.  The
 * owner reads its range with relaxed atomics (a clear may come from any
 * thread); a read that races with a clear is the race every ownership
 * test has with a concurrent trim.                                     */
/* A range stops this many bytes short of its heap's end: a chunk that a
 * cache holds never starts there (top keeps at least the smallest
 * chunk's size after the last chunk, a slot ends in its reserve; a chunk
 * missed would only take the global tests), and the first 40 bytes of a
 * chunk that passes stay inside (tcache.c chain_check: the header, the
 * link and key, the prefetch hint).                                   */
#define TM_OWN_RANGE_TAIL 64
typedef struct tm_own_range {
    _Atomic uintptr_t lo;              /* 16-aligned                         */
    _Atomic uintptr_t span16;          /* length / 16; 0: empty              */
    struct tm_own_range *next, *prev;  /* registry, under the set's lock     */
} tm_own_range;

static TM_INLINE bool tm_own_range_aligned(const tm_own_range *r, uintptr_t a)
{
    uintptr_t span16 = atomic_load_explicit(&r->span16, memory_order_relaxed);
    return tm_own_rot_below(a - atomic_load_explicit(&r->lo, memory_order_relaxed), span16);
}
/* Empty r (its owner, without the lock: an empty range is always safe). */
static inline void tm_own_range_clear(tm_own_range *r)
{
    atomic_store_explicit(&r->span16, 0, memory_order_relaxed);
}
/* The calling thread's range (empty): registered; and let go of (thread
 * exit: the memory that holds it is about to be reused).              */
TM_HIDDEN void tm_own_range_register(tm_own_range *r);
TM_HIDDEN void tm_own_range_unregister(tm_own_range *r);
/* r covers where the chunk at a (one of ours) lies now. */
TM_HIDDEN void tm_own_range_track(tm_own_range *r, uintptr_t a);

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
/* The heap map (observe.c): a copy of at most max entries of the set, in
 * no order.  Returns how many the set holds, which may exceed max.     */
typedef struct { uintptr_t chunk, block; size_t len; } tm_own_mapping;
TM_HIDDEN size_t tm_own_mmap_copy(tm_own_mapping *out, size_t max);

/* Fork: the set's lock is held across fork by the forking thread, which
 * passes it in the window (other atfork handlers may allocate).       */
TM_HIDDEN void tm_own_fork_lock(void);
TM_HIDDEN void tm_own_fork_unlock(void);
TM_HIDDEN void tm_own_fork_child(void);

#endif
