/*
 * chunk.h - the chunk layout and its invariants.  The only place that knows
 * how a chunk is laid out; everything else uses these accessors.
 *
 *  An allocated chunk                         A free chunk (in a bin)
 *
 *  chunk-> +---------------------------+      chunk-> +---------------------------+
 *          | prev_size (if P == 0)     |              | prev_size (if P == 0)     |
 *          +---------------------------+              +---------------------------+
 *          |cks| size          |A|M|P| |              |cks| size          |A|0|P| |
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
 *  S (0x8) SAMPLED      an allocated chunk recorded by the allocation-site
 *                       profiler (prof.h).  Set after the chunk is handed
 *                       out and cleared when it is freed, before the chunk
 *                       goes back to a cache or bin, so free chunks never
 *                       carry it.  free's fast path sends any chunk with
 *                       this bit to the slow path (api.c), which removes
 *                       the record.
 *  cks     bits 48..63  keyed checksum of the header (below, TIDE_CHECKS).
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
 *    metadata (below) and lies only in the unsorted or a large bin;
 *  - every header's checksum matches its state: FREE in a doubly linked
 *    bin, FAST in a fast bin, TOP for the top, CACHED in a thread cache
 *    or parked on a remote list, INUSE otherwise (handed out,
 *    fenceposts).
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
    TM_SAMPLED    = 0x8,
    TM_SIZE_BITS  = 0x7,          /* the flags the engine itself sets             */
    TM_FLAG_BITS  = 0xF,          /* all flag bits: chunksize() masks them        */
};
#define TM_CKS_SHIFT 48
#define TM_CKS_MASK  (~(size_t)0 << TM_CKS_SHIFT)             /* bits 48..63 */
#define TM_SIZE_MASK ((((size_t)1 << TM_CKS_SHIFT) - 1) & ~(size_t)TM_FLAG_BITS)

/* ---- per-process secrets ------------------------------------------------
 * Random per process (control.c fills them at initialization, before any
 * header is written, from getrandom, else AT_RANDOM and the clock), kept
 * outside the heap on a page of their own that is made read-only once
 * filled, and inherited unchanged by fork (a child's headers stay valid).
 * A heap overflow cannot reach them and a heap read does not reveal them. */
struct tm_secrets {
    uint64_t hdr_a, hdr_b;    /* header checksum keys                       */
    uint64_t link;            /* mixed into every singly linked link        */
    uint64_t parked;          /* marks chunks parked on remote/spill lists  */
    uint64_t tag_mul;         /* odd: binds a cache entry's key to its address (tcache.h) */
    uint64_t cached;          /* bits 48..63, nonzero: INUSE's checksum XOR this is CACHED's */
};
union tm_secret_page {
    struct tm_secrets s;
    char page[4096];
};
extern union tm_secret_page tm_secret_page TM_HIDDEN;
#define tm_sec (tm_secret_page.s)

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
 * every access is a relaxed atomic (a plain mov on x86-64).  Two writers
 * may meet on one word without a common lock, so each writes only bytes
 * of its own:
 *   - a lock holder changing a neighbour's P bit stores byte 0 alone
 *     (set_p_bit, clear_p_bit);
 *   - the thread that moves a chunk between the program and a cache or
 *     remote list flips the checksum's state, bytes 4..7 alone (the
 *     size's bits 32..47, unchanged, and the checksum)
 *     (hdr_flip_cached, below);
 * whole-word stores (set_head_st) are for a chunk no other thread can
 * reach: under the arena lock a chunk not in use, or one being handed
 * out or taken back.  (x86-64 stores of distinct bytes of a word do not
 * disturb each other; the C11 view is atomics of mixed sizes, which gcc,
 * clang and ThreadSanitizer accept.)                                   */
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

/* ---- tamper-evident headers (TIDE_CHECKS) --------------------------------
 *   bits 0..3 flags (P M A, 0x8 reserved) | bits 4..47 size | bits 48..63 checksum
 *
 * The checksum is a keyed 16-bit hash of (secret, chunk address, size,
 * flags except P, state).  Only this file writes size words, and every
 * writer of a whole header (set_head_st and the wrappers below) computes
 * it; a forged, moved, enlarged, shrunk or null-byte-clipped header fails
 * verification with probability 1 - 2^-16 unless the secret is known.
 *
 * State: what the allocator believes the chunk is, so that a header
 * copied or replayed from another moment of the chunk's life fails too:
 *   TM_ST_INUSE  handed out, or a fencepost;
 *   TM_ST_FREE   in the unsorted, a small or a large bin;
 *   TM_ST_FAST   in a fast bin;
 *   TM_ST_TOP    the top chunk;
 *   TM_ST_CACHED held by a thread cache, an outbox, a class list or a
 *                remote stack: out of the program's hands, in use to the
 *                arena.  Its checksum is INUSE's XOR the secret
 *                tm_sec.cached (bits 48..63), so the move between the
 *                program and a cache is one 32-bit XOR of the word's
 *                upper half by the thread making it (hdr_flip_cached), no
 *                multiply, and a free of a cached chunk fails free's
 *                header test whatever the chunk's words say: its key
 *                wiped by a use-after-free write and its cached words
 *                read earlier written back once it was handed out again
 *                (misuse double_free/tcache_key_wiped_replayed) made a
 *                chunk cached twice, handed out twice, when only the key
 *                in its body said "cached".
 * Every transition between INUSE or CACHED and the others happens under
 * the arena lock and rewrites the header anyway (the bins rewrite sizes
 * and bits on every move), so the state costs nothing extra there.
 * INUSE <-> CACHED happens without it (the thread cache and the remote
 * lists are entered lock-free), as the 32-bit XOR above, while a lock
 * holder may update the P bit of the same word: see "size word" for why
 * the two writes cannot lose each other.  Which list a CACHED chunk is on
 * (a cache slot, a class list, a remote stack) a key in its second word
 * says (tcache.h, arena.h tm_park_key).
 *
 * P is not covered: it belongs to the *neighbour's* story, is rewritten
 * whenever the previous chunk changes state (by a lock holder, while the
 * owner may read its header), and its truth is checked where it is
 * trusted instead: P == 0 must be backed by a previous chunk, found at
 * prev_size, whose own verified header says FREE with that size (bins.c
 * coalescing); P == 1 where the previous chunk's header says FREE is a
 * double free or corruption; an in-use header over a chunk whose
 * successor's P is clear is a replayed header (free's paths test it,
 * api.c fast_given).  So a null byte that clears only P leads nowhere.
 *
 * S (0x8) is not covered either: the profiler sets and clears it with an
 * atomic OR/AND on an allocated chunk without the arena lock (prof.c),
 * which could not recompute the checksum without racing a lock holder's
 * P update.  A chunk with S set always takes free's slow path, which
 * requires the profiler's record of the chunk (tm_prof_forget) and clears
 * S before the chunk goes back to a cache or bin; a forged S on a chunk
 * with no record aborts there.
 *
 * With -DTIDE_CHECKS=OFF (cost measurement only) the checksum is 0 and
 * never verified.                                                       */
enum { TM_ST_INUSE = 0, TM_ST_FREE = 1, TM_ST_FAST = 2, TM_ST_TOP = 3, TM_ST_CACHED = 4 };

static TM_INLINE size_t hdr_cks(const tm_chunk *p, size_t sizebits, unsigned st)
{
#if TIDE_CHECKS
    /* One 64x64->128 multiply of the keyed address by the keyed header
     * content, folded (the "mum" mix): non-linear in both, so neither the
     * checksum of a nearby size nor of a nearby address can be derived
     * from a known one without the keys.                              */
    unsigned base = st == TM_ST_CACHED ? TM_ST_INUSE : st;
    uint64_t a = (uint64_t)(uintptr_t)p ^ tm_sec.hdr_a;
    uint64_t b = ((uint64_t)(sizebits & ~(size_t)(TM_PREV_INUSE | TM_SAMPLED | TM_CKS_MASK)) |
                  ((uint64_t)base << TM_CKS_SHIFT)) ^ tm_sec.hdr_b;
    unsigned __int128 r = (unsigned __int128)a * b;
    size_t c = (size_t)(((uint64_t)(r >> 64) ^ (uint64_t)r) & TM_CKS_MASK);
    return st == TM_ST_CACHED ? c ^ (size_t)tm_sec.cached : c;
#else
    (void)p, (void)sizebits, (void)st;
    return 0;
#endif
}
/* Does the size word w, read from p, carry the checksum of state st? */
static TM_INLINE bool hdr_ok(const tm_chunk *p, size_t w, unsigned st)
{
#if TIDE_CHECKS
    return (w & TM_CKS_MASK) == hdr_cks(p, w, st);
#else
    (void)p, (void)w, (void)st;
    return true;
#endif
}
/* A header left behind inside a bigger free chunk - p merged backward
 * into its free predecessor (bins.c bins_free) - must stop verifying as
 * in use, or a second free of p (a double free) passes every header test
 * and free's fast path caches p inside free memory.  It is overwritten
 * with one fixed word: M set, which no chunk inside a heap carries (free,
 * realloc and malloc_usable_size test M against the ownership registry
 * before they trust a header, and free's fast path excludes M), no size,
 * and nothing of the header it replaces.  A store, no multiply.  Until
 * 2026-12-04 one checksum bit was flipped instead, which a use-after-free
 * read and write through the predecessor's stale pointer undid: the flip
 * is public, so the in-use header came back (misuse
 * `double_free/merged_backward_unretired`); now what is left to read is
 * the same word at every address, and an in-use header put back must be
 * one leaked while p was live (a replay, which no checksum of the header
 * alone can tell, Scudo's neither).  hdr_state reads it as FREE, so the
 * misuse is named a double free.                                      */
#define TM_CKS_RETIRED ((size_t)1 << TM_CKS_SHIFT)
#define TM_RETIRED_WORD (TM_CKS_RETIRED | (size_t)TM_IS_MMAPPED)
static inline void retire_hdr(tm_chunk *p)
{
#if TIDE_CHECKS
    set_size_word(p, TM_RETIRED_WORD);
#else
    (void)p;
#endif
}
/* Is w (a size word, its P bit aside) a retired header?  Never without
 * the checks, which alone retire.                                    */
static inline bool hdr_retired(size_t w)
{
    return TIDE_CHECKS && (w & ~(size_t)TM_PREV_INUSE) == TM_RETIRED_WORD;
}
/* Which state's checksum does p's header carry?  -1: none (forged).
 * (A retired in-use header: FREE, above.)                           */
static inline int hdr_state(const tm_chunk *p)
{
    size_t w = size_word(p);
    if (hdr_retired(w))
        return TM_ST_FREE;
    for (unsigned st = TM_ST_INUSE; st <= TM_ST_CACHED; st++)
        if (hdr_ok(p, w, st))
            return (int)st;
    return -1;
}
static inline bool chunk_hdr_ok(const tm_chunk *p, unsigned st) { return hdr_ok(p, size_word(p), st); }
/* In use to the arena: INUSE (the program's) or CACHED (a cache's or a
 * list's, which another thread may flip meanwhile) - what a neighbour
 * of a chunk being freed may be.  One multiply for both. */
static TM_INLINE bool hdr_live_ok(const tm_chunk *p, size_t w)
{
#if TIDE_CHECKS
    size_t x = (w & TM_CKS_MASK) ^ hdr_cks(p, w, TM_ST_INUSE);
    return x == 0 || x == (size_t)tm_sec.cached;
#else
    (void)p, (void)w;
    return true;
#endif
}
/* The size word read in the halves its lock-free writers store (above):
 * bytes 0..3, then 4..7.  A load of the whole word right after the
 * narrower store of hdr_flip_cached (the cache handing p out, then the
 * program freeing it) waits for that store to reach the cache instead
 * of taking its value from the store buffer: with a 16-bit flip and one
 * 64-bit load, wl_pairs took 1.17x and wl_glibc_simple 1.16x the CPU
 * time of the key-only cache (128427e); with the halves 1.075x and
 * 1.067x.  For free's fast path.                                     */
static TM_INLINE size_t size_word_split(const tm_chunk *p)
{
    if (!TIDE_CHECKS)
        return size_word(p);          /* (no flips without the checks) */
    const char *b = (const char *)&p->size;
    uint32_t lo = __atomic_load_n((const uint32_t *)b, __ATOMIC_RELAXED);
    uint32_t hi = __atomic_load_n((const uint32_t *)(b + 4), __ATOMIC_RELAXED);
    return (size_t)lo | (size_t)hi << 32;
}
/* Byte 0 of q's size word, P's (the size word's writers, above). */
static inline unsigned char *p_byte(const tm_chunk *q) { return (unsigned char *)&q->size; }
/* q's P bit, from byte 0 alone (size_word_split says why). */
static TM_INLINE bool prev_inuse_byte(const tm_chunk *q)
{
    return __atomic_load_n(p_byte(q), __ATOMIC_RELAXED) & TM_PREV_INUSE;
}

/* Move p between the program's hands (INUSE) and a cache's or a list's
 * (CACHED), either way: bytes 4..7 XOR tm_sec.cached's, by the
 * thread making the move, which owns p (a cache's owner, or a freeing
 * thread before the push), while a lock holder may store byte 0 (P).
 * No test: the caller knows the state (a header it verified, wrote, or
 * an entry whose list verified), and a forged header stays forged. */
static TM_INLINE void hdr_flip_upper(tm_chunk *p, uint32_t upper)
{
#if TIDE_CHECKS
    __atomic_store_n((uint32_t *)((char *)&p->size + 4), upper ^ (uint32_t)(tm_sec.cached >> 32), __ATOMIC_RELAXED);
#else
    (void)p, (void)upper;
#endif
}
static TM_INLINE void hdr_flip_cached(tm_chunk *p)
{
#if TIDE_CHECKS
    hdr_flip_upper(p, __atomic_load_n((const uint32_t *)((const char *)&p->size + 4), __ATOMIC_RELAXED));
#else
    (void)p;
#endif
}
/* The same for a caller that holds p's size word w, read since p's last
 * flip (free's fast path): no second load.  Bytes 4..7 change only by
 * flips, made by the thread that owns p, this one.                   */
static TM_INLINE void hdr_flip_cached_from(tm_chunk *p, size_t w) { hdr_flip_upper(p, (uint32_t)(w >> 32)); }

static inline size_t chunksize(const tm_chunk *p) { return size_word(p) & TM_SIZE_MASK; }
static inline size_t word_size(size_t w) { return w & TM_SIZE_MASK; }
/* Size and flags without the checksum (glibc's raw size checks). */
static inline size_t chunk_raw_size(const tm_chunk *p) { return size_word(p) & ~TM_CKS_MASK; }
static inline bool prev_inuse(const tm_chunk *p) { return size_word(p) & TM_PREV_INUSE; }
static inline bool chunk_is_mmapped(const tm_chunk *p) { return size_word(p) & TM_IS_MMAPPED; }
static inline bool chunk_non_main(const tm_chunk *p) { return size_word(p) & TM_NON_MAIN; }

/* The S bit of an allocated chunk, set and cleared by the thread that owns
 * the allocation, without the arena lock.  The P bit of the same word may
 * be written meanwhile by a lock holder freeing or allocating the chunk
 * before it, so these are atomic read-modify-writes (a plain load-or-store
 * could lose that P update).  Rare: one per profile sample.             */
static inline bool chunk_is_sampled(const tm_chunk *p) { return size_word(p) & TM_SAMPLED; }
static inline void chunk_set_sampled(tm_chunk *p)
{
    __atomic_fetch_or(&p->size, (size_t)TM_SAMPLED, __ATOMIC_RELAXED);
}
static inline void chunk_clear_sampled(tm_chunk *p)
{
    __atomic_fetch_and(&p->size, ~(size_t)TM_SAMPLED, __ATOMIC_RELAXED);
}
/* M and P: an mmapped chunk with a guard page after it (see the top).
 * P is outside the checksum: the ownership registry's length of the
 * mapping (data + guard) is what munmap trusts (sysmem.c).            */
#define TM_MMAP_GUARD TM_PREV_INUSE
static inline bool word_mmap_guarded(size_t w)   /* (a header word read elsewhere: observe.c) */
{
    return (w & (TM_IS_MMAPPED | TM_MMAP_GUARD)) == (TM_IS_MMAPPED | TM_MMAP_GUARD);
}
static inline bool chunk_mmap_guarded(const tm_chunk *p) { return word_mmap_guarded(size_word(p)); }

static inline tm_chunk *next_chunk(const tm_chunk *p) { return chunk_at(p, chunksize(p)); }
static inline tm_chunk *prev_chunk(const tm_chunk *p) { return (tm_chunk *)((char *)p - p->prev_size); }

/* Write a whole header: size | flags, in state st, with its checksum.
 * Lock holder only (or the sole owner of an mmapped chunk).          */
static inline void set_head_st(tm_chunk *p, size_t size_and_bits, unsigned st)
{
    size_and_bits &= ~TM_CKS_MASK;
    set_size_word(p, size_and_bits | hdr_cks(p, size_and_bits, st));
}
static inline void set_head(tm_chunk *p, size_t size_and_bits) { set_head_st(p, size_and_bits, TM_ST_INUSE); }
static inline void set_head_free(tm_chunk *p, size_t size_and_bits) { set_head_st(p, size_and_bits, TM_ST_FREE); }
static inline void set_head_top(tm_chunk *p, size_t size_and_bits) { set_head_st(p, size_and_bits, TM_ST_TOP); }
/* An in-use chunk (re)written: keep its flags, new size (or new flags). */
static inline void set_head_size(tm_chunk *p, size_t size)
{
    set_head(p, (size_word(p) & TM_FLAG_BITS) | size);
}
/* A chunk leaving a bin for use: keep P and the size, add bits (the A bit). */
static inline void set_head_inuse_bits(tm_chunk *p, size_t bits)
{
    set_head(p, (size_word(p) & ~TM_CKS_MASK) | bits);
}
/* Write the footer of a free chunk: the next chunk's prev_size. */
static inline void set_foot(tm_chunk *p, size_t size) { chunk_at(p, size)->prev_size = size; }

/* The P bit: not covered by the checksum (above), so flipping it keeps the
 * rest of the word - checksum included - as it is.  Byte 0 alone (the
 * size word's writers, above): q may be cached by another thread, which
 * flips its checksum bytes meanwhile.                                 */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "P is in byte 0, the checksum in bytes 6..7");
static inline void set_p_bit(tm_chunk *q)
{
    __atomic_store_n(p_byte(q), (unsigned char)(__atomic_load_n(p_byte(q), __ATOMIC_RELAXED) | TM_PREV_INUSE),
                     __ATOMIC_RELAXED);
}
static inline void clear_p_bit(tm_chunk *q)
{
    __atomic_store_n(p_byte(q), (unsigned char)(__atomic_load_n(p_byte(q), __ATOMIC_RELAXED) & ~TM_PREV_INUSE),
                     __ATOMIC_RELAXED);
}

/* "p is in use" is recorded in the P bit of the chunk after it. */
static inline bool inuse(const tm_chunk *p) { return prev_inuse(next_chunk(p)); }
static inline void set_inuse(tm_chunk *p) { set_p_bit(next_chunk(p)); }
static inline void clear_inuse(tm_chunk *p) { clear_p_bit(next_chunk(p)); }
static inline bool inuse_at(const tm_chunk *p, size_t off) { return prev_inuse(chunk_at(p, off)); }
static inline void set_inuse_at(tm_chunk *p, size_t off) { set_p_bit(chunk_at(p, off)); }
static inline void clear_inuse_at(tm_chunk *p, size_t off) { clear_p_bit(chunk_at(p, off)); }

/* ---- safe-linking of singly linked lists (fast bins, thread caches) ----
 * The stored link is the pointer XOR the address of the slot holding it,
 * shifted right by 12 bits, XOR a per-process secret (TIDE_CHECKS): a
 * use-after-free write of a plain pointer (or a partial overwrite) yields
 * a wild pointer that the checks catch, and a leaked link reveals neither
 * the heap's addresses (glibc's safe-linking gives them away from one
 * leaked link: the slot's high bits are the pointer's) nor how to forge
 * one.  The same operation protects and reveals.                        */
static inline uintptr_t tm_protect_ptr(const void *slot, uintptr_t p)
{
#if TIDE_CHECKS
    return ((uintptr_t)slot >> 12) ^ p ^ (uintptr_t)tm_sec.link;
#else
    return ((uintptr_t)slot >> 12) ^ p;
#endif
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
