/*
 * engine.c - the bin/chunk engine of one arena (see engine.h).
 *
 * How a request of chunk size nb is served (tm_int_malloc):
 *   1. fast bin of exactly nb                  (nb <= max_fast)
 *   2. small bin of exactly nb                 (nb < 1024)
 *      -- a large request first consolidates the fast bins --
 *   3. the unsorted bin, oldest first: the last remainder is split for a
 *      small request; an exact fit is returned; everything else is sorted
 *      into its small or large bin
 *   4. the large bin of nb: smallest chunk that fits (best fit)
 *   5. the binmap: the smallest non-empty bin above nb's, split
 *   6. the top chunk, split; if too small: consolidate fast bins and retry,
 *      or grow from the system (sysmem.c) - unless the caller said not
 *      to (tm_int_malloc_run: NULL)
 * Remainders of splits go to the unsorted bin.
 */
#include <string.h>
#include "bins.h"
#include "engine.h"
#include "heap.h"
#include "owner.h"
#include "release.h"
#include "sysmem.h"

static inline void perturb_alloc(void *mem, size_t n)
{
    int pb = TM_P(perturb);
    if (unlikely(pb))
        memset(mem, (pb ^ 0xff) & 0xff, n);
}
static inline void perturb_free(void *mem, size_t n)
{
    int pb = TM_P(perturb);
    if (unlikely(pb))
        memset(mem, pb & 0xff, n);
}

/* Every chunk of the heap the engine hands out passes here or
 * tm_sysmalloc's split of a grown top (counted by the caller): both
 * count it in av->inuse, which int_free (and realloc's growth in place)
 * keep in step.                                                        */
static inline void *hand_out(tm_arena *av, tm_chunk *victim, size_t nb)
{
    TM_ASSERT(inuse(victim) && chunksize(victim) >= nb && !chunk_is_mmapped(victim));
    av->inuse += chunksize(victim);
    void *mem = chunk2mem(victim);
    perturb_alloc(mem, nb - TM_SIZE_SZ);
    return mem;
}

/* How much of a free chunk of `size` bytes a request of nb bytes that
 * would take up to `run` bytes (a multiple of nb, tm_int_malloc_run)
 * takes: as many nb pieces as the chunk holds, at most run / nb of them
 * (tm_bins_split hands out the whole chunk if what is left could not
 * stand alone).                                                        */
static inline size_t run_take(size_t size, size_t nb, size_t run)
{
    if (run == nb || size < nb + nb)
        return nb;
    return size < run ? size - size % nb : run;  /* (a remainder < 32 bytes stays on) */
}

/* ---- _int_malloc -------------------------------------------------------- */
/* run > nb: the caller wants up to run bytes in pieces of nb (a thread
 * cache refill).  Where the path below takes a single chunk of exactly
 * nb (a fast or small bin, an exact fit in the unsorted bin) it still
 * does; where it splits a bigger chunk it keeps up to run bytes of it.
 * So a refill goes where a single malloc would - into the hole the bins
 * offer first, the last remainder, top last - and its pieces lie side by
 * side.  (A refill used to ask for the whole run at once: the bins then
 * skipped every hole smaller than the run, the heap grew past them, and
 * a run of 1 KiB or more consolidated the fast bins first.  python:
 * 8 MiB more peak RSS than glibc, 15 % more CPU time.)               */
static TM_INLINE void *int_malloc(tm_arena *av, size_t nb, size_t run, bool grow, tm_zrange *z)
{
    if (z)
        z->lo = z->hi = NULL;

    /* 1. fast bins */
    if (nb <= TM_P(max_fast)) {
        tm_chunk *victim = tm_fast_pop(av, fastbin_index(nb));
        if (victim)
            return hand_out(av, victim, nb);
    }

    unsigned idx;
    /* 2. small bins: every chunk in a small bin has exactly this size */
    if (in_smallbin_range(nb)) {
        idx = smallbin_index(nb);
        tm_chunk *victim = tm_bins_take_small(av, idx);
        if (victim)
            return hand_out(av, victim, nb);
    } else {
        idx = largebin_index(nb);
        if (av->have_fastchunks)
            tm_bins_consolidate(av);
    }

    for (;;) {
        /* 3. the unsorted bin */
        tm_chunk *victim;
        bool rel;
        int iters = 0;
        while ((victim = tm_unsorted_last(av)) != NULL) {
            size_t size = chunksize(victim);
            /* A small request and the only chunk is the last remainder:
             * keep splitting it, which keeps runs of small requests close. */
            if (in_smallbin_range(nb) && tm_unsorted_alone(av, victim) &&
                victim == av->last_remainder && size > nb + TM_MINSIZE) {
                rel = tm_unsorted_take(av, victim);
                return hand_out(av, tm_bins_split(av, victim, size, run_take(size, nb, run), rel,
                                                  true, z), nb);
            }
            if (size == nb) {
                rel = tm_unsorted_take(av, victim);
                set_inuse_at(victim, size);
                set_head_inuse_bits(victim, arena_bit(av));
                if (rel)
                    tm_release_zero_range(victim, size, z);
                return hand_out(av, victim, nb);
            }
            tm_unsorted_sort(av, victim, size);
            if (++iters >= TM_MAX_UNSORTED_ITERS)
                break;
        }

        /* 4. the large bin of nb: best fit (the smallest size >= nb) */
        if (!in_smallbin_range(nb)) {
            victim = tm_bins_best_large(av, idx, nb, &rel);
            if (victim) {
                size_t size = chunksize(victim);
                return hand_out(av, tm_bins_split(av, victim, size, run_take(size, nb, run), rel,
                                                  false, z), nb);
            }
        }

        /* 5. the binmap: smallest non-empty bin above idx */
        victim = tm_bins_search(av, idx, &rel);
        if (victim) {
            size_t size = chunksize(victim);
            TM_ASSERT(size >= nb);
            return hand_out(av, tm_bins_split(av, victim, size, run_take(size, nb, run), rel,
                                              in_smallbin_range(nb), z), nb);
        }

        /* 6. the top chunk */
        victim = av->top;
        size_t size = chunksize(victim);
        if (unlikely(size > av->system_mem || !tm_top_ok(av)))
            tm_corrupt("malloc(): corrupted top size", victim);
        if (size >= nb + TM_MINSIZE) {
            size_t take = run_take(size - TM_MINSIZE, nb, run);   /* (top keeps MINSIZE) */
            tm_chunk *rem = chunk_at(victim, take);
            tm_release_top_used(av, victim, take, nb, (char *)victim + size, z);
            av->top = rem;
            set_head(victim, take | TM_PREV_INUSE | arena_bit(av));
            set_head_top(rem, (size - take) | TM_PREV_INUSE);
            return hand_out(av, victim, nb);
        }
        if (av->have_fastchunks) {
            tm_bins_consolidate(av);
            idx = in_smallbin_range(nb) ? smallbin_index(nb) : largebin_index(nb);
            continue;
        }
        if (!grow)
            return NULL;
        void *mem = tm_sysmalloc(av, run, nb, z);
        if (!mem && run > nb)
            mem = tm_sysmalloc(av, nb, nb, z);
        if (mem && !chunk_is_mmapped(mem2chunk(mem))) {
            av->inuse += chunksize(mem2chunk(mem));      /* (as hand_out) */
            if (av->inuse > av->inuse_hwm)
                av->inuse_hwm = av->inuse;
        }
        if (mem)
            perturb_alloc(mem, chunk_usable(mem2chunk(mem)));
        return mem;
    }
}

void *tm_int_malloc(tm_arena *av, size_t nb, tm_zrange *z)
{
    return int_malloc(av, nb, nb, true, z);
}

void *tm_int_malloc_run(tm_arena *av, size_t nb, size_t run, bool grow)
{
    TM_ASSERT(run >= nb && run % nb == 0);
    return int_malloc(av, nb, run, grow, NULL);
}

/* A chunk about to be freed must lie inside a heap of its arena: a
 * sub-heap's chunk inside its (masked) heap; in the heap that holds top,
 * before top; with a single main heap, inside it.                        */
static inline bool chunk_outside_heap(tm_arena *av, tm_chunk *p, tm_chunk *next)
{
    if (av != &tm_main_arena)
        return (char *)next >= heap_end(heap_for_ptr(p));
    tm_heap *h = av->last_heap;
    if (!h || av->top == initial_top(av))
        return false;
    bool in_last = (char *)p >= (char *)h && (char *)p < heap_end(h);
    if (in_last || av->nheaps == 1)
        return !in_last || (char *)next > (char *)av->top;
    return false;
}

/* p's header did not verify in the state its caller expected (INUSE
 * from the program, CACHED from a cache or a list): name it - a state
 * the chunk has when it is not the program's (a bin, a fast bin, a
 * cache) is a double free, anything else `who`.  Never returns.     */
static TM_NORETURN TM_COLD TM_NOINLINE void bad_hdr(const tm_chunk *p, const char *who)
{
    int st = hdr_state(p);
    tm_corrupt(st == TM_ST_FREE || st == TM_ST_FAST || st == TM_ST_CACHED ? "free(): double free detected" : who, p);
}

/* The header of p, a chunk of av about to be freed or resized: intact
 * and in use (TIDE_CHECKS).  Every way into the arena checks it here,
 * whoever sent the chunk (free, a cache flush, a remote list, realloc). */
static inline void check_inuse_hdr(const tm_chunk *p, const char *who)
{
#if TIDE_CHECKS
    if (unlikely(!chunk_hdr_ok(p, TM_ST_INUSE)))
        bad_hdr(p, who);
#else
    (void)p, (void)who;
#endif
}
/* The neighbour after a chunk being freed: its header intact, in any
 * state but top (the top is verified where its size is used,
 * tm_bins_free), before its size leads anywhere.  Returns whether it
 * verified as FREE, so that tm_bins_free, which takes a free neighbour
 * out of its bin, does not compute the same checksum again.  The likely
 * states first, each try a checksum: in use, then free (a flush's runs
 * of neighbours), fast only where fast bins are on (M_MXFAST).       */
static inline bool check_next_hdr(tm_arena *av, const tm_chunk *next, const char *who)
{
#if TIDE_CHECKS
    if (next == av->top)
        return false;
    size_t w = size_word(next);
    if (likely(hdr_live_ok(next, w)))      /* (in use, or cached: chunk.h) */
        return false;
    if (likely(hdr_ok(next, w, TM_ST_FREE)))
        return true;
    if (!hdr_ok(next, w, TM_ST_FAST))
        tm_corrupt(who, next);
    return false;
#else
    (void)av, (void)next, (void)who;
    return false;
#endif
}

/* ---- _int_free ---------------------------------------------------------- */
/* glibc's tests of a chunk p (size bytes, header verified) about to be
 * freed: for a chunk above the fast sizes not top, inside its heap (both
 * before the next chunk's word is read) and marked in use by that next
 * chunk's P bit; for all, a sane next size.  Returns the next chunk's
 * size word.  (Not the next chunk's header: check_next_hdr.)          */
static TM_INLINE size_t free_tests(tm_arena *av, tm_chunk *p, size_t size, bool fast)
{
    tm_chunk *next = chunk_at(p, size);
    if (!fast) {
        if (unlikely(p == av->top))
            tm_corrupt("double free or corruption (top)", p);
        if (unlikely(chunk_outside_heap(av, p, next)))
            tm_corrupt("double free or corruption (out)", p);
    }
    size_t nw = size_word(next);
    if (unlikely(!fast && !(nw & TM_PREV_INUSE)))
        tm_corrupt("double free or corruption (!prev)", p);
    if (unlikely((nw & ~TM_CKS_MASK) <= 2 * TM_SIZE_SZ || word_size(nw) >= av->system_mem))
        tm_corrupt(fast ? "free(): invalid next size (fast)" : "free(): invalid next size (normal)", p);
    return nw;
}

/* A chunk at most max_fast bytes (fast bins on: M_MXFAST), its tests
 * passed: into its fast bin.  next's header is not verified here: a fast
 * chunk stays in use in the boundary tags, so nothing of next is used
 * until it is freed or coalesced itself, where it is verified.        */
static inline void free_to_fast_bin(tm_arena *av, tm_chunk *p, size_t size)
{
    p->bk = NULL;       /* no cache or parked key survives in free memory */
    perturb_free(chunk2mem(p), size - TM_HDR);
    tm_fast_push(av, p, size);
}

/* Beyond the bound, the cap is looked at once per 64 KiB of fast chunks,
 * not at every fast free (58 instructions each in a burst of small
 * frees): is it due, the fast bytes having been `before`?  A fast free
 * leaves the arena's dirty and other bytes as they were: between two
 * looks only the fast bytes move the verdict, and the drained flag and
 * the mark the look also refreshes wait at most 64 KiB of such frees. */
static inline bool fast_cap_due(const tm_arena *av, size_t before)
{
    return unlikely(av->fast_bytes > TM_FAST_BYTES_MAX) &&
           ((av->fast_bytes ^ before) >> TM_FAST_CAP_STEP_SHIFT) != 0;
}

/* After a free that left a free chunk of `size` bytes (merged; the top's
 * if it joined top): a big one is a chance to give memory back. */
static void freed_big(tm_arena *av, size_t size)
{
    if (size >= TM_CONSOLIDATE_THRESHOLD) {
        if (av->have_fastchunks)
            tm_bins_consolidate(av);
        tm_sys_trim(av, TM_P(top_pad), false);
    }
    if (size >= TM_RELEASE_MIN)
        tm_bins_enforce_cap(av);
}

static TM_INLINE void int_free(tm_arena *av, tm_chunk *p, size_t size);

void tm_int_free(tm_arena *av, tm_chunk *p)
{
    check_inuse_hdr(p, "free(): corrupted chunk header");
    int_free(av, p, chunksize(p));
}

void tm_int_free_begin(tm_arena *av, tm_pending *l)
{
    tm_pending_init(l);
    l->fast_bytes0 = av->fast_bytes;
}

/* tm_int_free_pend, out of its hot path: a header that does not verify
 * (bad_hdr, above), a chunk for a fast bin (fast bins are
 * off by default), M_PERTURB's fill.  The hot path then calls nothing
 * that returns, so it saves no registers: a push and a pop of six of
 * them were 14 of its ~85 instructions a chunk (a cache flush of
 * python's: 826 k chunks).                                            */
static TM_NOINLINE void pend_fast(tm_arena *av, tm_chunk *p, size_t size)
{
    free_to_fast_bin(av, p, size);     /* (the settle looks at the cap) */
}
static TM_NOINLINE void pend_perturb(tm_chunk *p, size_t size)
{
    /* (after the link: fd and bk, the first 16 bytes, hold it) */
    perturb_free((char *)chunk2mem(p) + 2 * TM_SIZE_SZ, size - TM_HDR - 2 * TM_SIZE_SZ);
}

void tm_int_free_pend(tm_arena *av, tm_chunk *p, tm_pending *l)
{
    /* (each header word read once: the relaxed atomic loads of size_word
     * are not merged by the compiler) */
    size_t w = size_word(p);
    if (unlikely(!hdr_ok(p, w, TM_ST_CACHED)))   /* (every caller takes cache or list entries) */
        bad_hdr(p, "free(): corrupted chunk header");
    size_t size = word_size(w);
    bool fast = size <= TM_P(max_fast);
    (void)free_tests(av, p, size, fast);   /* (the next chunk's word: its P cleared below, byte 0 alone) */
    av->inuse -= size;
    if (unlikely(fast)) {
        pend_fast(av, p, size);
        return;
    }
    /* Pending (bins.h), with the words in hand.  The next chunk's header
     * is not verified here: the settle verifies that of the chunk after
     * each run, before its size leads anywhere, and every free neighbour
     * it absorbs (bins.c). */
    set_head_st(p, w | TM_SAMPLED, TM_ST_FAST);
    tm_chunk *next = chunk_at(p, size);
    next->prev_size = size;
    clear_p_bit(next);                 /* (byte 0 alone: next may be cached) */
    tm_pending_link(l, p);
    if (unlikely(TM_P(perturb)))
        pend_perturb(p, size);
}

void tm_int_free_settle(tm_arena *av, tm_pending *l)
{
    size_t big = tm_pending_empty(l) ? 0 : tm_bins_settle(av, l);
    freed_big(av, big);                /* (what int_free does after, once) */
    if (big < TM_RELEASE_MIN && fast_cap_due(av, l->fast_bytes0))
        tm_bins_enforce_cap(av);
}

void tm_int_free_verified(tm_arena *av, tm_chunk *p, size_t size)
{
    int_free(av, p, size);
}

static TM_INLINE void int_free(tm_arena *av, tm_chunk *p, size_t size)
{
    TM_ASSERT(!chunk_is_mmapped(p) && arena_for_chunk(p) == av && size == chunksize(p));
    TM_ASSERT(av->inuse >= size);
    av->inuse -= size;

    if (size <= TM_P(max_fast)) {
        (void)free_tests(av, p, size, true);
        free_to_fast_bin(av, p, size);
        if (fast_cap_due(av, av->fast_bytes - size))
            tm_bins_enforce_cap(av);
        return;
    }

    p->bk = NULL;       /* no cache or parked key survives in free memory */
    (void)free_tests(av, p, size, false);
    bool next_free = check_next_hdr(av, chunk_at(p, size), "free(): corrupted chunk header");

    perturb_free(chunk2mem(p), size - TM_HDR);

    (void)tm_bins_free(av, p, &size, next_free, "corrupted size vs. prev_size while consolidating",
                       "free(): corrupted unsorted chunks");
    freed_big(av, size);
}

/* ---- _int_realloc: oldp is a non-mmapped chunk of this arena ------------ */
void *tm_int_realloc(tm_arena *av, tm_chunk *oldp, size_t oldsize, size_t nb)
{
    if (unlikely(chunk_raw_size(oldp) <= 2 * TM_SIZE_SZ || oldsize >= av->system_mem))
        tm_corrupt("realloc(): invalid old size", oldp);
    check_inuse_hdr(oldp, "realloc(): corrupted chunk header");
    tm_chunk *next = chunk_at(oldp, oldsize);
    size_t nextsize = chunksize(next);
    if (unlikely(chunk_raw_size(next) <= 2 * TM_SIZE_SZ || nextsize >= av->system_mem))
        tm_corrupt("realloc(): invalid next size", oldp);
    check_next_hdr(av, next, "realloc(): corrupted chunk header");
    if (unlikely(!prev_inuse(next)))
        tm_corrupt("realloc(): invalid pointer", oldp);

    tm_chunk *newp = oldp;
    size_t newsize = oldsize;
    if (oldsize < nb) {
        if (next == av->top && oldsize + nextsize >= nb + TM_MINSIZE) {
            /* Grow into top. */
            if (unlikely(!tm_top_ok(av)))
                tm_corrupt("malloc(): corrupted top size", next);
            set_head_size(oldp, nb);
            av->top = chunk_at(oldp, nb);
            set_head_top(av->top, (oldsize + nextsize - nb) | TM_PREV_INUSE);
            tm_release_top_used(av, next, nb - oldsize, 0, NULL, NULL);
            av->inuse += nb - oldsize;
            return chunk2mem(oldp);
        }
        if (next != av->top && !inuse_at(next, nextsize) && oldsize + nextsize >= nb) {
            /* Grow into the free chunk after it (oldp's size is verified). */
            tm_bins_unlink_held(av, next);
            av->inuse += nextsize;
            newsize = oldsize + nextsize;
        } else {
            void *newmem = tm_int_malloc(av, nb, NULL);
            if (!newmem)
                return NULL;
            tm_chunk *q = mem2chunk(newmem);
            if (q == next) {
                /* It came from right after us (a consolidated fast chunk). */
                newsize = oldsize + chunksize(q);
            } else {
                memcpy(newmem, chunk2mem(oldp), oldsize - TM_SIZE_SZ);
                tm_int_free(av, oldp);
                return newmem;
            }
        }
    }

    /* Shrink to nb, freeing the tail if it can stand alone. */
    size_t rsize = newsize - nb;
    if (rsize < TM_MINSIZE) {
        set_head_size(newp, newsize);
        set_inuse_at(newp, newsize);
    } else {
        tm_chunk *rem = chunk_at(newp, nb);
        set_head_size(newp, nb);
        set_head(rem, rsize | TM_PREV_INUSE | arena_bit(av));
        set_inuse_at(rem, rsize);
        tm_int_free_verified(av, rem, rsize);   /* (its header written just now) */
    }
    return chunk2mem(newp);
}

/* ---- _int_memalign: alignment is a power of two > 16 -------------------- */
void *tm_int_memalign(tm_arena *av, size_t alignment, size_t bytes)
{
    size_t nb = request2size(bytes);
    /* Room to find an aligned spot with a free-able leader in front. */
    void *m = tm_int_malloc(av, request2size(nb + alignment + TM_MINSIZE), NULL);
    if (!m)
        return NULL;
    tm_chunk *p = mem2chunk(m);
    if (((uintptr_t)m & (alignment - 1)) != 0) {
        char *brk = (char *)mem2chunk((void *)align_up((uintptr_t)m, alignment));
        if ((size_t)(brk - (char *)p) < TM_MINSIZE)
            brk += alignment;
        tm_chunk *newp = (tm_chunk *)brk;
        size_t leadsize = (size_t)(brk - (char *)p);
        size_t newsize = chunksize(p) - leadsize;
        if (chunk_is_mmapped(p)) {
            newp->prev_size = p->prev_size + leadsize;
            set_head(newp, newsize | (size_word(p) & (TM_IS_MMAPPED | TM_MMAP_GUARD)));
            tm_mmap_chunk_moved(p, newp);
            return chunk2mem(newp);
        }
        set_head(newp, newsize | TM_PREV_INUSE | arena_bit(av));
        set_inuse_at(newp, newsize);
        set_head_size(p, leadsize);
        tm_int_free_verified(av, p, leadsize);
        p = newp;
    }
    if (!chunk_is_mmapped(p)) {
        size_t size = chunksize(p);
        if (size > nb + TM_MINSIZE) {
            tm_chunk *rem = chunk_at(p, nb);
            set_head(rem, (size - nb) | TM_PREV_INUSE | arena_bit(av));
            set_head_size(p, nb);
            tm_int_free_verified(av, rem, size - nb);
        }
    }
    return chunk2mem(p);
}

bool tm_int_trim(tm_arena *av, size_t pad)
{
    tm_bins_consolidate(av);
    bool did = tm_sys_trim(av, pad, true);
    if (tm_bins_purge(av, UINT64_MAX, pad, NULL))
        did = true;
    return did;
}
