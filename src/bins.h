/*
 * bins.h - the free lists of an arena: fast bins, the unsorted bin, 62
 * small bins, 63 large bins with their nextsize skip list, and the binmap.
 * This module is the only code that links a free chunk into a list or
 * unlinks it, so the page-release bookkeeping (release.h) hooks in here
 * and nowhere else: a chunk entering the free state gets its metadata in
 * tm_bins_free / tm_bins_split, a chunk leaving it gives its released
 * share back in tm_bins_unlink / tm_unsorted_take (and the searches built
 * on them).
 * Every function runs with av->lock held.
 *
 *   bins[1]          unsorted: every freed, coalesced or split-off chunk
 *                    lands here first (front = newest); large ones with
 *                    NULL nextsize links
 *   bins[127]        the same for chunks of TM_RELEASE_MIN and more (the
 *                    releasable ones), apart: see unsorted_list_of
 *   bins[2..63]      small, exact chunk size = 16 * index (32..1008);
 *                    insert at the front, take from the back (FIFO)
 *   bins[64..126]    large, ranges (largebin_index); sorted by decreasing
 *                    size; the first chunk of each size is in a circular
 *                    nextsize list (fd_nextsize: next smaller size)
 *   fastbins[0..9]   chunk sizes 32..176, singly linked LIFO, safe-linked;
 *                    their chunks stay "in use" in the boundary tags
 *   binmap           one bit per bin, set when a chunk is sorted into it,
 *                    cleared lazily when a search finds it empty
 */
#ifndef TM_BINS_H
#define TM_BINS_H

#include "internal.h"
#include "owner.h"
#include "release.h"

/* A bin's header is treated as a chunk whose fd/bk are the bin's: the
 * list is circular through it, so insert and unlink need no special cases. */
static inline tm_chunk *bin_at(tm_arena *av, unsigned i)
{
    return (tm_chunk *)((char *)&av->bins[i] - offsetof(tm_chunk, fd));
}
static inline tm_chunk *unsorted_bin(tm_arena *av) { return bin_at(av, 1); }
/* The unsorted chunks are kept in two lists by size: those of at least
 * TM_RELEASE_MIN (which carry release metadata) in bins[TM_UNSORTED_BIG],
 * the others in bins[1].  Malloc's scan reads both, the big list first
 * (tm_unsorted_last); the walks that look for releasable chunks read
 * only the big one.  They walked all of bins[1] before (2026-12-07):
 * the cache's refills sort few chunks and a flush pushes a run for
 * every chunk it merges, so bins[1] held 10^4-10^5 small chunks in
 * bench's perl and wl_frag, and each purge passed them all under the
 * arena lock, one cache miss each, 13-24 ms.  A chunk's list follows
 * from its size, which does not change while it is binned.           */
static inline tm_chunk *unsorted_big_bin(tm_arena *av) { return bin_at(av, TM_UNSORTED_BIG); }
static inline tm_chunk *unsorted_list_of(tm_arena *av, size_t size)
{
    return size >= TM_RELEASE_MIN ? unsorted_big_bin(av) : unsorted_bin(av);
}
static inline tm_chunk *initial_top(tm_arena *av) { return (tm_chunk *)av->top_dummy; }
static inline size_t arena_bit(const tm_arena *av) { return av == &tm_main_arena ? 0 : TM_NON_MAIN; }

static inline bool in_smallbin_range(size_t sz) { return sz < TM_MIN_LARGE_SIZE; }
static inline unsigned smallbin_index(size_t sz) { return (unsigned)(sz >> 4); }

/* glibc's logarithmic spacing of the 63 large bins (64-bit): bins 64..96
 * are 64 bytes wide (1 KiB .. 3135 B), 97..111 512 bytes (.. 10 KiB),
 * 112..120 4 KiB (.. 44 KiB, bin 120 reaching 64 KiB), 121..123 32 KiB
 * (.. 160 KiB), 124..126 256 KiB and beyond (126: all larger).
 * docs/design.md has the exact table.                                  */
static inline unsigned largebin_index(size_t sz)
{
    if ((sz >> 6) <= 48)  return 48 + (unsigned)(sz >> 6);
    if ((sz >> 9) <= 20)  return 91 + (unsigned)(sz >> 9);
    if ((sz >> 12) <= 10) return 110 + (unsigned)(sz >> 12);
    if ((sz >> 15) <= 4)  return 119 + (unsigned)(sz >> 15);
    if ((sz >> 18) <= 2)  return 124 + (unsigned)(sz >> 18);
    return 126;
}
static inline unsigned bin_index(size_t sz)
{
    return in_smallbin_range(sz) ? smallbin_index(sz) : largebin_index(sz);
}
static inline unsigned fastbin_index(size_t sz) { return (unsigned)(sz >> 4) - 2; }

static inline void mark_bin(tm_arena *av, unsigned i)   { av->binmap[i >> TM_BINMAPSHIFT] |= 1u << (i & 31); }
static inline void unmark_bin(tm_arena *av, unsigned i) { av->binmap[i >> TM_BINMAPSHIFT] &= ~(1u << (i & 31)); }
static inline bool bin_marked(const tm_arena *av, unsigned i)
{
    return av->binmap[i >> TM_BINMAPSHIFT] & (1u << (i & 31));
}

/* The top chunk's header is intact (TIDE_CHECKS; always true without). */
static inline bool tm_top_ok(tm_arena *av)
{
    return av->top == initial_top(av) || chunk_hdr_ok(av->top, TM_ST_TOP);
}

/* A link of a doubly linked bin list about to be followed: a bin header
 * of av or a chunk in one of our heaps, aligned (TIDE_CHECKS).        */
/* q aligned and among the chunks of av's last heap (internal.h own_lo):
 * most links lead there, and the range is av's own, read under its lock
 * - plain loads, where the global tests load atomics and try the brk
 * range before a sub-heap's slot (16 instructions for a chunk of a
 * thread's arena).                                                    */
static TM_INLINE bool tm_arena_owns(const tm_arena *av, const tm_chunk *q)
{
    return tm_own_rot_below((uintptr_t)q - av->own_lo, av->own_span16);
}
static inline bool tm_bin_link_ok(tm_arena *av, const tm_chunk *q)
{
#if TIDE_CHECKS
    if (likely(tm_arena_owns(av, q)))
        return true;
    if ((const char *)q >= (const char *)bin_at(av, 0) && (const char *)q <= (const char *)bin_at(av, TM_NBINS - 1))
        return true;
    return tm_own_aligned_in_heaps((uintptr_t)q);
#else
    (void)av, (void)q;
    return true;
#endif
}
/* A link to a chunk (a large bin's nextsize ring) about to be read
 * through: ours and aligned (TIDE_CHECKS), nothing about its header.
 * Walks use this on the chunks they pass over and verify the header of
 * the chunk they stop at (tm_free_chunk_ok), which is the one whose size
 * and links are used: a forged size on the way can only move the stop,
 * never make it a chunk of the wrong size.  The checksum of every chunk
 * passed had made the sorted insert and the best-fit search 5x dearer
 * (wl_frag: 45 M -> 230 M instructions).                            */
static inline bool tm_chunk_link_ok(const tm_arena *av, const tm_chunk *q)
{
#if TIDE_CHECKS
    return likely(tm_arena_owns(av, q)) || tm_own_aligned_in_heaps((uintptr_t)q);
#else
    (void)av, (void)q;
    return true;
#endif
}
/* A chunk whose address the allocator holds itself: a bin header's first
 * or last link, or the neighbour of a chunk whose size was verified.
 * Every pointer stored in a bin header was such a chunk or passed
 * tm_bin_link_ok before it was stored, and bin headers are out of reach
 * of the heap (the arena is in .bss or behind a sub-heap's guard), so
 * only the header needs verifying: intact and free (TIDE_CHECKS).     */
static inline bool tm_free_hdr_ok(const tm_chunk *q)
{
#if TIDE_CHECKS
    return chunk_hdr_ok(q, TM_ST_FREE);
#else
    (void)q;
    return true;
#endif
}
/* A chunk reached through a bin list: ours, aligned, header intact, free. */
static inline bool tm_free_chunk_ok(const tm_arena *av, const tm_chunk *q)
{
    return tm_chunk_link_ok(av, q) && tm_free_hdr_ok(q);
}

/* ---- fast bins ---------------------------------------------------------- */
/* A fast chunk about to be followed (popped or consolidated): ours, its
 * header intact, in the FAST state and of bin idx's size.             */
static inline void tm_fast_check(const tm_chunk *victim, unsigned idx, const char *unaligned,
                                 const char *badsize)
{
    if (unlikely(misaligned_chunk(victim)))
        tm_corrupt(unaligned, victim);
#if TIDE_CHECKS
    if (unlikely(!tm_own_in_heaps((uintptr_t)victim) || !chunk_hdr_ok(victim, TM_ST_FAST)))
        tm_corrupt("malloc(): corrupted fastbin link", victim);
#endif
    if (unlikely(fastbin_index(chunksize(victim)) != idx))
        tm_corrupt(badsize, victim);
}

static inline tm_chunk *tm_fast_pop(tm_arena *av, unsigned idx)
{
    tm_chunk *victim = av->fastbins[idx];
    if (victim) {
        tm_fast_check(victim, idx, "malloc(): unaligned fastbin chunk detected",
                      "malloc(): memory corruption (fast)");
        av->fastbins[idx] = fastbin_next(victim);
        av->fast_bytes -= chunksize(victim);
        set_head(victim, size_word(victim));      /* FAST -> in use */
    }
    return victim;
}

static inline void tm_fast_push(tm_arena *av, tm_chunk *p, size_t size)
{
    unsigned idx = fastbin_index(size);
    tm_chunk *old = av->fastbins[idx];
    if (unlikely(old == p))
        tm_corrupt("double free or corruption (fasttop)", p);
    if (unlikely(old != NULL && fastbin_index(chunksize(old)) != idx))
        tm_corrupt("invalid fastbin entry (free)", old);
    /* Without S: free's slow path cleared it (tm_prof_forget), but a lock
     * holder's plain P update of this then in-use chunk may have raced
     * that atomic AND and put it back; in a fast bin S would read as
     * consolidation's pending mark (bins.c).                          */
    set_head_st(p, size_word(p) & ~(size_t)TM_SAMPLED, TM_ST_FAST);
    fastbin_link(p, old);
    av->fastbins[idx] = p;
    av->have_fastchunks = true;
    av->fast_bytes += size;
}

/* ---- small bins --------------------------------------------------------- */
/* The oldest chunk of small bin idx (exact size), marked in use; or NULL. */
static inline tm_chunk *tm_bins_take_small(tm_arena *av, unsigned idx)
{
    tm_chunk *bin = bin_at(av, idx);
    tm_chunk *victim = bin->bk;
    if (victim == bin)
        return NULL;
    if (unlikely(!tm_free_hdr_ok(victim) || chunksize(victim) != (size_t)idx * TM_SMALLBIN_WIDTH))
        tm_corrupt("malloc(): corrupted chunk header", victim);
    tm_chunk *bck = victim->bk;
    if (unlikely(!tm_bin_link_ok(av, bck) || bck->fd != victim))
        tm_corrupt("malloc(): smallbin double linked list corrupted", victim);
    TM_ASSERT(chunksize(victim) == (size_t)idx * TM_SMALLBIN_WIDTH && !inuse(victim));
    set_inuse(victim);
    bin->bk = bck;
    bck->fd = bin;
    set_head_inuse_bits(victim, arena_bit(av));
    return victim;
}

/* Is a chunk of exactly nb bytes waiting in a fast or small bin? */
static inline bool tm_bins_has_exact(tm_arena *av, size_t nb)
{
    if (nb <= TM_P(max_fast) && av->fastbins[fastbin_index(nb)])
        return true;
    if (!in_smallbin_range(nb))
        return false;
    tm_chunk *b = bin_at(av, smallbin_index(nb));
    return b->bk != b;
}

/* ---- the unsorted bin --------------------------------------------------- */
/* The oldest chunk of the unsorted bin, checked as glibc checks it; NULL
 * when empty.                                                           */
TM_HIDDEN tm_chunk *tm_unsorted_last(tm_arena *av);
static inline void unsorted_remove_last(tm_arena *av, tm_chunk *victim)
{
    /* (the last chunk's fd is its list's head: tm_unsorted_last checked it) */
    tm_chunk *unsorted = victim->fd, *bck = victim->bk;
    TM_ASSERT(unsorted == unsorted_list_of(av, chunksize(victim)) && unsorted->bk == victim);
    (void)av;
    unsorted->bk = bck;
    bck->fd = unsorted;
}
/* Is victim (the chunk tm_unsorted_last returned) the only unsorted
 * chunk, in either list? */
static inline bool tm_unsorted_alone(tm_arena *av, const tm_chunk *victim)
{
    tm_chunk *u = unsorted_bin(av), *g = unsorted_big_bin(av);
    return victim->fd == victim->bk && (victim->bk == u ? g->fd == g : u->fd == u);
}
/* Take `victim` (the chunk tm_unsorted_last returned) out of the bin to
 * hand it out.  Returns whether its interior was entirely released (reads
 * as zero).                                                            */
static inline bool tm_unsorted_take(tm_arena *av, tm_chunk *victim)
{
    unsorted_remove_last(av, victim);
    return tm_release_take(av, victim);
}
/* Move `victim` (the chunk tm_unsorted_last returned) into its small or
 * large bin; its release state goes with it.                           */
TM_HIDDEN void tm_unsorted_sort(tm_arena *av, tm_chunk *victim, size_t size);

/* ---- any bin ------------------------------------------------------------ */
/* Take a free chunk out of whichever doubly linked bin holds it.  Returns
 * whether its interior was entirely released (reads as zero).         */
TM_HIDDEN bool tm_bins_unlink(tm_arena *av, tm_chunk *p);
/* The same for a chunk the allocator holds itself (tm_free_hdr_ok). */
TM_HIDDEN bool tm_bins_unlink_held(tm_arena *av, tm_chunk *p);
/* The smallest chunk >= nb of large bin idx (best fit), unlinked; NULL if
 * none.  *released: its interior was entirely released.               */
TM_HIDDEN tm_chunk *tm_bins_best_large(tm_arena *av, unsigned idx, size_t nb, bool *released);
/* The smallest chunk of the first non-empty bin above idx (binmap),
 * unlinked; NULL if none.                                              */
TM_HIDDEN tm_chunk *tm_bins_search(tm_arena *av, unsigned idx, bool *released);

/* Hand out `victim` (unlinked, `size` bytes) for a chunk of nb bytes: the
 * rest, if it can stand alone, goes to the unsorted bin (and becomes the
 * last remainder if set_last_remainder).  Returns the chunk (in use, its
 * size possibly up to 31 bytes over nb); *z gets its known-zero range.  */
TM_HIDDEN tm_chunk *tm_bins_split(tm_arena *av, tm_chunk *victim, size_t size, size_t nb,
                                  bool released, bool set_last_remainder, tm_zrange *z);

/* p (*size bytes, not in any list) becomes free: merge it with its free
 * neighbours and put the result at the front of the unsorted bin, or into
 * top.  The two messages name the caller's checks (glibc words them
 * differently for free and malloc_consolidate).  *size becomes the merged
 * size; returns the merged chunk, NULL if it joined the top.
 * next_free: the caller verified the header of the chunk after p as
 * FREE (TIDE_CHECKS), so taking it out of its bin does not again.
 * (A batch of frees - a cache flush - merges run by run instead:
 * pending chunks, below.)                                           */
TM_HIDDEN tm_chunk *tm_bins_free(tm_arena *av, tm_chunk *p, size_t *size, bool next_free,
                                 const char *prev_check, const char *unsorted_check);

/* Empty every fast bin into free chunks, each run of neighbours merged
 * into one (malloc_consolidate; bins.c).                              */
TM_HIDDEN void tm_bins_consolidate(tm_arena *av);

/* ---- pending chunks: frees merged run by run -------------------------
 * Consolidation's two passes (bins.c), shared with a cache flush, which
 * frees up to a class limit of chunks at once - most of them carved side
 * by side.  Pass 1 makes each chunk *pending*: a FAST header with S set
 * (a free chunk carries S nowhere else; S is outside the checksum), its
 * next neighbour's P cleared and prev_size written, so that to both
 * neighbours it is free from now on, and it joins a local list through
 * fd/bk.  Pass 2 (tm_bins_settle) grows each pending chunk still on the
 * list into the whole run of free chunks around it and pushes the run
 * once.  Freed one by one, each chunk instead unlinked the run merged so
 * far and pushed it again (bench's python: 826 k chunks flushed, 264
 * instructions each).  Between the passes nothing else may touch the
 * arena's bins, fast bins aside (tm_bins_consolidate takes a pending
 * neighbour off whatever list holds it).                              */
typedef struct {
    tm_chunk head;          /* the list's sentinel: fd/bk only */
    size_t fast_bytes0;     /* the arena's fast bytes when the batch began
                             * (engine.c: the cap's look, fast bins on) */
} tm_pending;
static inline void tm_pending_init(tm_pending *l) { l->head.fd = l->head.bk = &l->head; }
static inline bool tm_pending_empty(const tm_pending *l) { return l->head.fd == &l->head; }
/* p (its header S-marked by the caller) onto l; pend_link: and free to
 * its neighbours from now on (size bytes). */
static inline void tm_pending_link(tm_pending *l, tm_chunk *p)
{
    p->fd = l->head.fd;
    p->bk = &l->head;
    l->head.fd->bk = p;
    l->head.fd = p;
}
static inline void pend_link(tm_pending *l, tm_chunk *p, size_t size)
{
    tm_chunk *next = chunk_at(p, size);
    next->prev_size = size;
    clear_p_bit(next);
    tm_pending_link(l, p);
}
/* Pass 2: every chunk still pending on l merged with its free neighbours
 * into the unsorted bin or top; l is empty after.  Returns the largest
 * size a run settled with (the top's for a run that joined it).     */
TM_HIDDEN size_t tm_bins_settle(tm_arena *av, tm_pending *l);

/* Release the pages of every free chunk that became free at or before
 * `cutoff` (ms), and of the top if it grew by a free before then
 * (keeping top_keep bytes of it resident).  Returns the bytes released;
 * *oldest (if not NULL) gets the free time of the oldest releasable
 * memory left (UINT64_MAX: none), so a caller knows when to come back. */
TM_HIDDEN size_t tm_bins_purge(tm_arena *av, uint64_t cutoff, size_t top_keep, uint64_t *oldest);

/* The cap on resident free memory (release.h): if a free pushed the
 * arena over it, consolidate and release everything releasable now.  */
TM_HIDDEN void tm_bins_enforce_cap_slow(tm_arena *av);
static inline void tm_bins_enforce_cap(tm_arena *av)
{
    size_t top = chunksize(av->top), pad = TM_P(top_pad);
    size_t top_x = top > pad ? top - pad : 0;
    size_t excess = av->dirty + top_x;   /* an upper bound */
    size_t other = tm_release_other(av);
    if (unlikely(other > av->other_hwm))
        av->other_hwm = other;
    /* (The flag, and `strict` below, count the whole top as `other`;
     * the cap itself counts it without the top beyond its pad (other_c,
     * as the slow path does), so the two can disagree while a big free
     * top stands: the flag then says "not drained" - and
     * tm_release_swing_note, which reads it, does not count the drain.) */
    bool deep = tm_release_deep(av, other);
    if (unlikely(deep != atomic_load_explicit(&av->drained, memory_order_relaxed)))
        atomic_store_explicit(&av->drained, deep, memory_order_relaxed);
    bool strict = deep && !atomic_load_explicit(&tm_bg_active, memory_order_relaxed);
    /* The cap is of the bytes other than the releasable ones, the top's
     * beyond its pad among them (as the slow path counts): `other` holds
     * the top, and a top of 31 MiB let a drained arena keep 110 MiB of
     * free chunks under a loose cap of four times it (wl_realloc's end,
     * once its top grew big: the slow path would have released them). */
    size_t other_c = other > top_x ? other - top_x : 0;
    /* Under the least cap there is, no need to work the cap out (a
     * division by the arena count; ~25 of the instructions of every free
     * of a big chunk into the top). */
    bool over = excess > tm_release_cap_least() && excess > tm_release_cap_of(av, other_c);
    if (unlikely(over) || unlikely(av->fast_bytes > TM_FAST_BYTES_MAX && strict))
        tm_bins_enforce_cap_slow(av);
}

/* Empty bins and no top (a new arena, before its first heap). */
TM_HIDDEN void tm_bins_init(tm_arena *av);

#endif
