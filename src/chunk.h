/*
 * chunk.h - the chunk layout and its invariants.  The only place that knows
 * how a chunk is laid out; everything else uses these accessors.
 *
 *  An allocated chunk                         A free chunk (in a bin)
 *
 *  chunk-> +---------------------------+      chunk-> +---------------------------+
 *          | prev_size (if P == 0)     |              | prev_size (if P == 0)     |
 *          +---------------------------+              +---------------------------+
 *          | size              |A|M|P| |              | size              |A|0|P| |
 *    mem-> +---------------------------+              +---------------------------+
 *          | user data ...             |              | fd  (next in bin)         |
 *          .                           .              | bk  (previous in bin)     |
 *          .                           .              | fd_nextsize  (large bins) |
 *          |                           |              | bk_nextsize  (large bins) |
 *  next -> +---------------------------+              .  (unused, maybe released) .
 *          | user data (last 8 bytes:  |      next -> +---------------------------+
 *          | the borrowed prev_size)   |              | prev_size == size (footer)|
 *          +---------------------------+              +---------------------------+
 *          | size of next      |A|M|1| |              | size of next      |A|M|0| |
 *          +---------------------------+              +---------------------------+
 *
 *  P (0x1) PREV_INUSE   the chunk *before* this one is in use (or a fencepost);
 *                       only when P == 0 is prev_size valid.
 *  M (0x2) IS_MMAPPED   the chunk is a mapping of its own; prev_size then
 *                       holds the offset from the mapping's start.
 *  A (0x4) NON_MAIN     the chunk lives in a sub-heap of a non-main arena;
 *                       its heap (and arena) is found by masking the address.
 *  An mmapped chunk has no neighbours, so its P bit means something else:
 *  set, a PROT_NONE guard page follows the chunk and the mapping is one
 *  page longer than prev_size + size (the strong mode, sysmem.c).
 *
 * Invariants (verified by check.c):
 *  - chunk addresses and sizes are multiples of 16; sizes >= 32, except
 *    fenceposts (16 bytes, or 0 for the very last word of a segment);
 *  - an in-use chunk may use the next chunk's prev_size word for data, so
 *    usable size = chunksize - 8 (mmapped: chunksize - 16);
 *  - a free chunk's footer equals its size and the next chunk's P bit is 0;
 *    two free chunks are never adjacent (they are coalesced), except chunks
 *    held in fast bins or thread caches, which are "in use" as far as the
 *    boundary tags go;
 *  - the top chunk borders the end of its segment and always has P == 1;
 *  - a free chunk of at least TM_RELEASE_MIN bytes carries page-release
 *    metadata (below) and lies only in the unsorted or a large bin.
 */
#ifndef TM_CHUNK_H
#define TM_CHUNK_H

#include "base.h"
#include "config.h"

typedef struct tm_chunk {
    size_t prev_size;             /* size of previous chunk, if it is free     */
    size_t size;                  /* size in bytes, with the A|M|P bits        */
    struct tm_chunk *fd, *bk;     /* free chunks only: bin list                */
    struct tm_chunk *fd_nextsize; /* large free chunks only: next larger size  */
    struct tm_chunk *bk_nextsize; /*                          next smaller size */
} tm_chunk;

enum {
    TM_PREV_INUSE = 0x1,
    TM_IS_MMAPPED = 0x2,
    TM_NON_MAIN   = 0x4,
    TM_SIZE_BITS  = 0x7,
};

/* ---- conversions -------------------------------------------------------- */
static inline void *chunk2mem(const tm_chunk *p) { return (char *)p + TM_HDR; }
static inline tm_chunk *mem2chunk(const void *mem) { return (tm_chunk *)((char *)mem - TM_HDR); }
static inline tm_chunk *chunk_at(const void *p, size_t off) { return (tm_chunk *)((char *)p + off); }

static inline bool aligned_ok(uintptr_t x) { return (x & TM_ALIGN_MASK) == 0; }
static inline bool misaligned_chunk(const tm_chunk *p) { return !aligned_ok((uintptr_t)chunk2mem(p)); }

/* ---- size word ----------------------------------------------------------
 * A chunk's size word is shared with its neighbour: the P bit of chunk q
 * says whether the chunk before q is in use, and is written by whoever
 * frees or allocates that chunk (under the arena lock) while q's owner may
 * read q's size without any lock (free's fast path).  The other bits of an
 * allocated chunk never change while it is allocated, so the reader does
 * not care which P it sees, but the accesses must not be a data race:
 * every access is a relaxed atomic (a plain mov on x86-64).  Only lock
 * holders write.                                                         */
#if defined(__GNUC__) && !defined(__clang__)
/* gcc 12 takes an atomic load 16 bytes before a malloc result (a chunk
 * header) for a write past an object: wrong here, the header is ours.  */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
static inline size_t size_word(const tm_chunk *p) { return __atomic_load_n(&p->size, __ATOMIC_RELAXED); }
static inline void set_size_word(tm_chunk *p, size_t v) { __atomic_store_n(&p->size, v, __ATOMIC_RELAXED); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
static inline size_t chunksize(const tm_chunk *p) { return size_word(p) & ~(size_t)TM_SIZE_BITS; }
static inline size_t chunk_raw_size(const tm_chunk *p) { return size_word(p); }
static inline bool prev_inuse(const tm_chunk *p) { return size_word(p) & TM_PREV_INUSE; }
static inline bool chunk_is_mmapped(const tm_chunk *p) { return size_word(p) & TM_IS_MMAPPED; }
static inline bool chunk_non_main(const tm_chunk *p) { return size_word(p) & TM_NON_MAIN; }
/* M and P: an mmapped chunk with a guard page after it (see the top). */
#define TM_MMAP_GUARD TM_PREV_INUSE
static inline bool chunk_mmap_guarded(const tm_chunk *p)
{
    return (size_word(p) & (TM_IS_MMAPPED | TM_MMAP_GUARD)) == (TM_IS_MMAPPED | TM_MMAP_GUARD);
}
/* Add bits (the A bit of a chunk handed out); lock holder only. */
static inline void set_size_bits(tm_chunk *p, size_t bits) { set_size_word(p, size_word(p) | bits); }

static inline tm_chunk *next_chunk(const tm_chunk *p) { return chunk_at(p, chunksize(p)); }
static inline tm_chunk *prev_chunk(const tm_chunk *p) { return (tm_chunk *)((char *)p - p->prev_size); }

static inline void set_head(tm_chunk *p, size_t size_and_bits) { set_size_word(p, size_and_bits); }
/* Change the size, keep the bits. */
static inline void set_head_size(tm_chunk *p, size_t size)
{
    set_size_word(p, (size_word(p) & TM_SIZE_BITS) | size);
}
/* Write the footer of a free chunk: the next chunk's prev_size. */
static inline void set_foot(tm_chunk *p, size_t size) { chunk_at(p, size)->prev_size = size; }

/* "p is in use" is recorded in the P bit of the chunk after it. */
static inline bool inuse(const tm_chunk *p) { return prev_inuse(next_chunk(p)); }
static inline void set_inuse(tm_chunk *p) { set_size_bits(next_chunk(p), TM_PREV_INUSE); }
static inline void clear_inuse(tm_chunk *p)
{
    set_size_word(next_chunk(p), size_word(next_chunk(p)) & ~(size_t)TM_PREV_INUSE);
}
static inline bool inuse_at(const tm_chunk *p, size_t off) { return prev_inuse(chunk_at(p, off)); }
static inline void set_inuse_at(tm_chunk *p, size_t off) { set_size_bits(chunk_at(p, off), TM_PREV_INUSE); }
static inline void clear_inuse_at(tm_chunk *p, size_t off)
{
    set_size_word(chunk_at(p, off), size_word(chunk_at(p, off)) & ~(size_t)TM_PREV_INUSE);
}

/* ---- safe-linking of singly linked lists (fast bins, thread caches) ----
 * The stored link is the pointer XOR the address of the slot holding it,
 * shifted right by 12 bits: a use-after-free write of a plain pointer (or
 * a partial overwrite) yields a misaligned or wild pointer that the
 * checks catch.  The same operation protects and reveals.              */
static inline uintptr_t tm_protect_ptr(const void *slot, uintptr_t p)
{
    return ((uintptr_t)slot >> 12) ^ p;
}
static inline tm_chunk *fastbin_next(const tm_chunk *p)
{
    return (tm_chunk *)tm_protect_ptr(&p->fd, (uintptr_t)p->fd);
}
static inline void fastbin_link(tm_chunk *p, tm_chunk *next)
{
    p->fd = (tm_chunk *)tm_protect_ptr(&p->fd, (uintptr_t)next);
}

/* ---- page-release metadata of large free chunks ------------------------
 * A free chunk of at least TM_RELEASE_MIN bytes (config.h) keeps two words
 * after its nextsize links.  The bin code never writes there, and the
 * footer lies beyond the interior, so the whole pages between TM_META_END
 * and the chunk's end (the "interior") can be given back to the system
 * while the chunk waits in its bin:
 *
 *   +0 prev_size  +8 size  +16 fd  +24 bk  +32 fd_nextsize  +40 bk_nextsize
 *   +48 meta[0]: when the chunk became free (ms, CLOCK_MONOTONIC_COARSE)
 *   +56 meta[1]: bytes of the interior already given back
 *   +64 .. interior (whole pages, page aligned) .. footer             */
#define TM_META_OFF 48u
#define TM_META_END 64u
static inline uint64_t chunk_free_stamp(const tm_chunk *p)
{
    return ((const uint64_t *)((const char *)p + TM_META_OFF))[0];
}
static inline void set_chunk_free_stamp(tm_chunk *p, uint64_t ms)
{
    ((uint64_t *)((char *)p + TM_META_OFF))[0] = ms;
}
static inline size_t chunk_released(const tm_chunk *p)
{
    return (size_t)((const uint64_t *)((const char *)p + TM_META_OFF))[1];
}
static inline void set_chunk_released(tm_chunk *p, size_t bytes)
{
    ((uint64_t *)((char *)p + TM_META_OFF))[1] = bytes;
}
/* The interior of a chunk of `size` bytes at p: [*lo, *hi), maybe empty. */
static inline void chunk_interior(const tm_chunk *p, size_t size, size_t page, uintptr_t *lo,
                                  uintptr_t *hi)
{
    *lo = align_up((uintptr_t)p + TM_META_END, page);
    *hi = align_down((uintptr_t)p + size, page);
}
static inline size_t chunk_interior_bytes(const tm_chunk *p, size_t size, size_t page)
{
    uintptr_t lo, hi;
    chunk_interior(p, size, page, &lo, &hi);
    return hi > lo ? hi - lo : 0;
}

/* ---- request sizes ------------------------------------------------------ */
/* Largest request we accept: keeps every size computation below free of
 * overflow and, like glibc, refuses anything that cannot be a valid object
 * size (PTRDIFF_MAX).                                                       */
#define TM_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * TM_MINSIZE)

/* Chunk size needed for a request: add the size word, round up to 16, at
 * least MINSIZE.  Only valid for req <= TM_MAX_REQUEST.                     */
static inline size_t request2size(size_t req)
{
    size_t s = (req + TM_SIZE_SZ + TM_ALIGN_MASK) & ~(size_t)TM_ALIGN_MASK;
    return s < TM_MINSIZE ? TM_MINSIZE : s;
}

/* Bytes of a chunk the program may use. */
static inline size_t chunk_usable(const tm_chunk *p)
{
    return chunksize(p) - (chunk_is_mmapped(p) ? TM_HDR : TM_SIZE_SZ);
}

#endif
