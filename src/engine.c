/*
 * engine.c - the bin/chunk engine of one arena (ptmalloc2's _int_malloc,
 * _int_free, malloc_consolidate, _int_realloc, _int_memalign).
 *
 * Every function here runs with av->lock held and never takes another lock.
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
 *      or grow from the system (sysmem.c)
 * Remainders of splits go to the unsorted bin.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

static inline size_t arena_bit(tm_arena *av) { return av == &tm_main_arena ? 0 : TM_NON_MAIN; }

static inline void perturb_alloc(void *mem, size_t n)
{
    if (unlikely(tm_mp.perturb))
        memset(mem, (tm_mp.perturb ^ 0xff) & 0xff, n);
}
static inline void perturb_free(void *mem, size_t n)
{
    if (unlikely(tm_mp.perturb))
        memset(mem, tm_mp.perturb & 0xff, n);
}

void tm_arena_init(tm_arena *av)
{
    for (unsigned i = 1; i < TM_NBINS; i++) {
        tm_chunk *b = bin_at(av, i);
        b->fd = b->bk = b;
    }
    memset(av->binmap, 0, sizeof av->binmap);
    memset(av->fastbins, 0, sizeof av->fastbins);
    av->have_fastchunks = false;
    av->top_dummy[0] = av->top_dummy[1] = 0;
    av->top = initial_top(av);
    av->last_remainder = NULL;
    av->top_clean = NULL;
}

/* Insert a free chunk at the front of the unsorted bin. */
static inline void unsorted_push(tm_arena *av, tm_chunk *p, size_t size, const char *who)
{
    tm_chunk *bck = unsorted_bin(av);
    tm_chunk *fwd = bck->fd;
    if (unlikely(fwd->bk != bck))
        tm_corrupt(who, p);
    p->fd = fwd;
    p->bk = bck;
    if (!in_smallbin_range(size)) {
        p->fd_nextsize = NULL;   /* "not in a nextsize list" (see tm_unlink_chunk) */
        p->bk_nextsize = NULL;
    }
    bck->fd = p;
    fwd->bk = p;
}

/* Take a free chunk out of whichever doubly linked bin holds it. */
void tm_unlink_chunk(tm_arena *av, tm_chunk *p)
{
    size_t size = chunksize(p);
    if (unlikely(size != next_chunk(p)->prev_size))
        tm_corrupt("corrupted size vs. prev_size", p);
    tm_chunk *fd = p->fd, *bk = p->bk;
    if (unlikely(fd->bk != p || bk->fd != p))
        tm_corrupt("corrupted double-linked list", p);
    fd->bk = bk;
    bk->fd = fd;
    if (!in_smallbin_range(size) && p->fd_nextsize != NULL) {
        /* p leads its size group in a large bin's nextsize ring. */
        if (unlikely(p->fd_nextsize->bk_nextsize != p || p->bk_nextsize->fd_nextsize != p))
            tm_corrupt("corrupted double-linked list (not small)", p);
        tm_chunk *bin = bin_at(av, largebin_index(size));
        if (fd != bin && fd->fd_nextsize == NULL) {
            /* The next chunk has the same size: it takes p's place. */
            if (p->fd_nextsize == p) {
                fd->fd_nextsize = fd->bk_nextsize = fd;
            } else {
                fd->fd_nextsize = p->fd_nextsize;
                fd->bk_nextsize = p->bk_nextsize;
                p->fd_nextsize->bk_nextsize = fd;
                p->bk_nextsize->fd_nextsize = fd;
            }
        } else {
            p->fd_nextsize->bk_nextsize = p->bk_nextsize;
            p->bk_nextsize->fd_nextsize = p->fd_nextsize;
        }
    }
    tm_release_forget(av, p);
}

/* Sort a chunk out of the unsorted bin into its small or large bin. */
static void place_in_bin(tm_arena *av, tm_chunk *victim, size_t size)
{
    unsigned idx;
    tm_chunk *bck, *fwd;
    if (in_smallbin_range(size)) {
        idx = smallbin_index(size);
        bck = bin_at(av, idx);
        fwd = bck->fd;
    } else {
        idx = largebin_index(size);
        bck = bin_at(av, idx);
        fwd = bck->fd;
        if (fwd != bck) {
            /* Bin kept in decreasing size order; the nextsize ring links the
             * first chunk of each distinct size. */
            if (size < chunksize(bck->bk)) {
                /* Smaller than everything: append at the end. */
                fwd = bck;
                bck = bck->bk;
                victim->fd_nextsize = fwd->fd;
                victim->bk_nextsize = fwd->fd->bk_nextsize;
                fwd->fd->bk_nextsize = victim;
                victim->bk_nextsize->fd_nextsize = victim;
            } else {
                while (size < chunksize(fwd))
                    fwd = fwd->fd_nextsize;
                if (size == chunksize(fwd)) {
                    /* Same size exists: insert second, keep the ring as is. */
                    victim->fd_nextsize = victim->bk_nextsize = NULL;
                    fwd = fwd->fd;
                } else {
                    victim->fd_nextsize = fwd;
                    victim->bk_nextsize = fwd->bk_nextsize;
                    if (unlikely(fwd->bk_nextsize->fd_nextsize != fwd))
                        tm_corrupt("malloc(): largebin double linked list corrupted (nextsize)", fwd);
                    fwd->bk_nextsize = victim;
                    victim->bk_nextsize->fd_nextsize = victim;
                }
                bck = fwd->bk;
                if (unlikely(bck->fd != fwd))
                    tm_corrupt("malloc(): largebin double linked list corrupted (bk)", fwd);
            }
        } else {
            victim->fd_nextsize = victim->bk_nextsize = victim;
        }
    }
    mark_bin(av, idx);
    victim->bk = bck;
    victim->fd = fwd;
    fwd->bk = victim;
    bck->fd = victim;
}

/* Hand out `victim` (already unlinked, `size` bytes) for a request of nb:
 * split off the rest into the unsorted bin when it can stand alone.      */
static void *split_victim(tm_arena *av, tm_chunk *victim, size_t size, size_t nb,
                          bool was_released, bool set_last_remainder)
{
    /* Read before the remainder's header can overwrite it. */
    uint64_t stamp = size >= TM_RELEASE_MIN ? chunk_meta(victim)[0] : 0;
    size_t rsize = size - nb;
    if (rsize < TM_MINSIZE) {
        set_inuse_at(victim, size);
        victim->size |= arena_bit(av);
        nb = size;
    } else {
        tm_chunk *rem = chunk_at(victim, nb);
        unsorted_push(av, rem, rsize, "malloc(): corrupted unsorted chunks");
        if (set_last_remainder)
            av->last_remainder = rem;
        set_head(victim, nb | TM_PREV_INUSE | arena_bit(av));
        set_head(rem, rsize | TM_PREV_INUSE);
        set_foot(rem, rsize);
        tm_release_split(av, rem, rsize, was_released, stamp);
    }
    if (was_released)
        tm_release_fresh_range(av, victim, nb);
    void *mem = chunk2mem(victim);
    perturb_alloc(mem, nb - TM_SIZE_SZ);
    return mem;
}

/* p (size bytes) is becoming free: merge it with a free chunk before and
 * after it, then put the result at the front of the unsorted bin, or make
 * it part of top.  Returns the merged size.  The two messages name the
 * caller's checks (glibc words them differently for free and
 * malloc_consolidate).                                                   */
static size_t coalesce_and_place(tm_arena *av, tm_chunk *p, size_t size, const char *prev_check,
                                 const char *unsorted_check)
{
    tm_chunk *next = chunk_at(p, size);
    size_t nextsize = chunksize(next);
    tm_relcarry carried = TM_RELCARRY_INIT;
    if (!prev_inuse(p)) {
        size_t prevsize = p->prev_size;
        size += prevsize;
        p = chunk_at(p, -prevsize);
        if (unlikely(chunksize(p) != prevsize))
            tm_corrupt(prev_check, p);
        tm_release_absorb(&carried, p);
        tm_unlink_chunk(av, p);
    }
    if (next != av->top) {
        if (!inuse_at(next, nextsize)) {
            tm_release_absorb(&carried, next);
            tm_unlink_chunk(av, next);
            size += nextsize;
        } else {
            clear_inuse_at(next, 0);
        }
        unsorted_push(av, p, size, unsorted_check);
        set_head(p, size | TM_PREV_INUSE);
        set_foot(p, size);
        tm_release_on_free(av, p, size, &carried);
    } else {
        size += nextsize;
        set_head(p, size | TM_PREV_INUSE);
        tm_release_top_grew(av);
        av->top = p;
    }
    return size;
}

/* ---- malloc_consolidate -------------------------------------------------
 * Empty every fast bin, coalescing each chunk with its free neighbours and
 * putting the result in the unsorted bin (or merging it into top).        */
void tm_consolidate(tm_arena *av)
{
    av->have_fastchunks = false;
    for (unsigned i = 0; i < TM_NFASTBINS; i++) {
        tm_chunk *p = av->fastbins[i];
        av->fastbins[i] = NULL;
        while (p) {
            if (unlikely(misaligned_chunk(p)))
                tm_corrupt("malloc_consolidate(): unaligned fastbin chunk detected", p);
            if (unlikely(fastbin_index(chunksize(p)) != i))
                tm_corrupt("malloc_consolidate(): invalid chunk size", p);
            tm_chunk *nextp = fastbin_next(p);
            coalesce_and_place(av, p, chunksize(p), "corrupted size vs. prev_size in fastbins",
                               "malloc_consolidate(): corrupted unsorted chunks");
            p = nextp;
        }
    }
}

/* ---- _int_malloc -------------------------------------------------------- */
void *tm_int_malloc(tm_arena *av, size_t nb)
{
    av->fresh_lo = av->fresh_hi = NULL;

    /* 1. fast bins */
    if (nb <= tm_mp.max_fast) {
        unsigned idx = fastbin_index(nb);
        tm_chunk *victim = av->fastbins[idx];
        if (victim) {
            if (unlikely(misaligned_chunk(victim)))
                tm_corrupt("malloc(): unaligned fastbin chunk detected", victim);
            if (unlikely(fastbin_index(chunksize(victim)) != idx))
                tm_corrupt("malloc(): memory corruption (fast)", victim);
            av->fastbins[idx] = fastbin_next(victim);
            void *mem = chunk2mem(victim);
            perturb_alloc(mem, nb - TM_SIZE_SZ);
            return mem;
        }
    }

    unsigned idx;
    /* 2. small bins: every chunk in a small bin has exactly this size */
    if (in_smallbin_range(nb)) {
        idx = smallbin_index(nb);
        tm_chunk *bin = bin_at(av, idx);
        tm_chunk *victim = bin->bk;
        if (victim != bin) {
            tm_chunk *bck = victim->bk;
            if (unlikely(bck->fd != victim))
                tm_corrupt("malloc(): smallbin double linked list corrupted", victim);
            set_inuse_at(victim, nb);
            bin->bk = bck;
            bck->fd = bin;
            victim->size |= arena_bit(av);
            void *mem = chunk2mem(victim);
            perturb_alloc(mem, nb - TM_SIZE_SZ);
            return mem;
        }
    } else {
        idx = largebin_index(nb);
        if (av->have_fastchunks)
            tm_consolidate(av);
    }

    for (;;) {
        /* 3. the unsorted bin */
        tm_chunk *unsorted = unsorted_bin(av);
        tm_chunk *victim;
        int iters = 0;
        while ((victim = unsorted->bk) != unsorted) {
            tm_chunk *bck = victim->bk;
            size_t size = chunksize(victim);
            tm_chunk *next = chunk_at(victim, size);
            if (unlikely(chunk_raw_size(victim) <= 2 * TM_SIZE_SZ || size > av->system_mem))
                tm_corrupt("malloc(): invalid size (unsorted)", victim);
            if (unlikely(chunk_raw_size(next) < 2 * TM_SIZE_SZ || chunksize(next) > av->system_mem))
                tm_corrupt("malloc(): invalid next size (unsorted)", next);
            if (unlikely(next->prev_size != size))
                tm_corrupt("malloc(): mismatching next->prev_size (unsorted)", victim);
            if (unlikely(bck->fd != victim || victim->fd != unsorted))
                tm_corrupt("malloc(): unsorted double linked list corrupted", victim);
            if (unlikely(prev_inuse(next)))
                tm_corrupt("malloc(): invalid next->prev_inuse (unsorted)", victim);

            /* A small request and the only chunk is the last remainder:
             * keep splitting it, which keeps runs of small requests close. */
            if (in_smallbin_range(nb) && bck == unsorted && victim == av->last_remainder &&
                size > nb + TM_MINSIZE) {
                unsorted->bk = unsorted->fd = unsorted;
                bool rel = tm_release_take(av, victim);   /* also forgets its accounting */
                return split_victim(av, victim, size, nb, rel, true);
            }

            unsorted->bk = bck;
            bck->fd = unsorted;

            if (size == nb) {
                set_inuse_at(victim, size);
                victim->size |= arena_bit(av);
                bool rel = tm_release_take(av, victim);
                if (rel)
                    tm_release_fresh_range(av, victim, size);
                void *mem = chunk2mem(victim);
                perturb_alloc(mem, nb - TM_SIZE_SZ);
                return mem;
            }
            place_in_bin(av, victim, size);
            if (++iters >= TM_MAX_UNSORTED_ITERS)
                break;
        }

        /* 4. the large bin of nb: best fit, smallest first */
        if (!in_smallbin_range(nb)) {
            tm_chunk *bin = bin_at(av, idx);
            victim = bin->fd;
            if (victim != bin && chunksize(victim) >= nb) {
                victim = victim->bk_nextsize;          /* the smallest size */
                while (chunksize(victim) < nb)
                    victim = victim->bk_nextsize;
                /* Take the second of a size group: no nextsize rerouting. */
                if (victim != bin->bk && chunksize(victim) == chunksize(victim->fd))
                    victim = victim->fd;
                size_t size = chunksize(victim);
                bool rel = tm_release_take(av, victim);
                tm_unlink_chunk(av, victim);
                return split_victim(av, victim, size, nb, rel, false);
            }
        }

        /* 5. the binmap: smallest non-empty bin above idx */
        for (unsigned i = idx + 1; i < TM_NBINS;) {
            unsigned block = i >> TM_BINMAPSHIFT;
            uint32_t map = av->binmap[block] & (~0u << (i & 31));
            while (map == 0) {
                if (++block >= TM_BINMAPSIZE)
                    goto use_top;
                map = av->binmap[block];
            }
            i = (block << TM_BINMAPSHIFT) + (unsigned)__builtin_ctz(map);
            tm_chunk *bin = bin_at(av, i);
            victim = bin->bk;
            if (victim == bin) {          /* stale bit: the bin emptied */
                unmark_bin(av, i);
                i++;
                continue;
            }
            size_t size = chunksize(victim);
            TM_ASSERT(size >= nb);
            bool rel = tm_release_take(av, victim);
            tm_unlink_chunk(av, victim);
            return split_victim(av, victim, size, nb, rel, in_smallbin_range(nb));
        }

    use_top:
        /* 6. the top chunk */
        victim = av->top;
        size_t size = chunksize(victim);
        if (unlikely(size > av->system_mem))
            tm_corrupt("malloc(): corrupted top size", victim);
        if (size >= nb + TM_MINSIZE) {
            tm_chunk *rem = chunk_at(victim, nb);
            av->top = rem;
            set_head(victim, nb | TM_PREV_INUSE | arena_bit(av));
            set_head(rem, (size - nb) | TM_PREV_INUSE);
            tm_release_top_used(av, victim, nb);
            void *mem = chunk2mem(victim);
            perturb_alloc(mem, nb - TM_SIZE_SZ);
            return mem;
        }
        if (av->have_fastchunks) {
            tm_consolidate(av);
            idx = in_smallbin_range(nb) ? smallbin_index(nb) : largebin_index(nb);
            continue;
        }
        void *mem = tm_sysmalloc(av, nb);
        if (mem)
            perturb_alloc(mem, chunk_usable(mem2chunk(mem)));
        return mem;
    }
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

/* ---- _int_free ----------------------------------------------------------
 * p is a validated, non-mmapped chunk of this arena.                      */
void tm_int_free(tm_arena *av, tm_chunk *p)
{
    size_t size = chunksize(p);

    if (size <= tm_mp.max_fast) {
        tm_chunk *next = chunk_at(p, size);
        if (unlikely(chunk_raw_size(next) <= 2 * TM_SIZE_SZ || chunksize(next) >= av->system_mem))
            tm_corrupt("free(): invalid next size (fast)", p);
        perturb_free(chunk2mem(p), size - TM_HDR);
        unsigned idx = fastbin_index(size);
        tm_chunk *old = av->fastbins[idx];
        if (unlikely(old == p))
            tm_corrupt("double free or corruption (fasttop)", p);
        if (unlikely(old != NULL && fastbin_index(chunksize(old)) != idx))
            tm_corrupt("invalid fastbin entry (free)", old);
        fastbin_link(p, old);
        av->fastbins[idx] = p;
        av->have_fastchunks = true;
        return;
    }

    tm_chunk *next = chunk_at(p, size);
    if (unlikely(p == av->top))
        tm_corrupt("double free or corruption (top)", p);
    if (unlikely(chunk_outside_heap(av, p, next)))
        tm_corrupt("double free or corruption (out)", p);
    if (unlikely(!prev_inuse(next)))
        tm_corrupt("double free or corruption (!prev)", p);
    size_t nextsize = chunksize(next);
    if (unlikely(chunk_raw_size(next) <= 2 * TM_SIZE_SZ || nextsize >= av->system_mem))
        tm_corrupt("free(): invalid next size (normal)", p);

    perturb_free(chunk2mem(p), size - TM_HDR);

    size = coalesce_and_place(av, p, size, "corrupted size vs. prev_size while consolidating",
                              "free(): corrupted unsorted chunks");

    /* A big free chunk: a chance to give memory back. */
    if (size >= TM_CONSOLIDATE_THRESHOLD) {
        if (av->have_fastchunks)
            tm_consolidate(av);
        if (av == &tm_main_arena) {
            /* Trim when what would be given back (beyond the pad) reaches
             * the threshold: trimming as soon as top passes the threshold
             * gives back a page or two at a time, only to grow again.    */
            if (tm_top_worth_trimming(av, chunksize(av->top), tm_mp.top_pad))
                tm_systrim(av, tm_mp.top_pad);
        } else {
            tm_heap_trim(av, av->last_heap, tm_mp.top_pad);
        }
    }
}

/* ---- _int_realloc: oldp is a non-mmapped chunk of this arena ------------ */
void *tm_int_realloc(tm_arena *av, tm_chunk *oldp, size_t oldsize, size_t nb)
{
    if (unlikely(chunk_raw_size(oldp) <= 2 * TM_SIZE_SZ || oldsize >= av->system_mem))
        tm_corrupt("realloc(): invalid old size", oldp);
    tm_chunk *next = chunk_at(oldp, oldsize);
    size_t nextsize = chunksize(next);
    if (unlikely(chunk_raw_size(next) <= 2 * TM_SIZE_SZ || nextsize >= av->system_mem))
        tm_corrupt("realloc(): invalid next size", oldp);
    if (unlikely(!prev_inuse(next)))
        tm_corrupt("realloc(): invalid pointer", oldp);

    tm_chunk *newp = oldp;
    size_t newsize = oldsize;
    if (oldsize < nb) {
        if (next == av->top && oldsize + nextsize >= nb + TM_MINSIZE) {
            /* Grow into top. */
            set_head_size(oldp, nb);
            av->top = chunk_at(oldp, nb);
            set_head(av->top, (oldsize + nextsize - nb) | TM_PREV_INUSE);
            tm_release_top_used(av, next, nb - oldsize);
            return chunk2mem(oldp);
        }
        if (next != av->top && !inuse_at(next, nextsize) && oldsize + nextsize >= nb) {
            /* Grow into the free chunk after it. */
            tm_unlink_chunk(av, next);
            newsize = oldsize + nextsize;
        } else {
            void *newmem = tm_int_malloc(av, nb);
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
        tm_int_free(av, rem);
    }
    return chunk2mem(newp);
}

/* ---- _int_memalign: alignment is a power of two > 16 -------------------- */
void *tm_int_memalign(tm_arena *av, size_t alignment, size_t bytes)
{
    size_t nb = request2size(bytes);
    /* Room to find an aligned spot with a free-able leader in front. */
    void *m = tm_int_malloc(av, request2size(nb + alignment + TM_MINSIZE));
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
            set_head(newp, newsize | TM_IS_MMAPPED);
            return chunk2mem(newp);
        }
        set_head(newp, newsize | TM_PREV_INUSE | arena_bit(av));
        set_inuse_at(newp, newsize);
        set_head_size(p, leadsize);
        tm_int_free(av, p);
        p = newp;
    }
    if (!chunk_is_mmapped(p)) {
        size_t size = chunksize(p);
        if (size > nb + TM_MINSIZE) {
            tm_chunk *rem = chunk_at(p, nb);
            set_head(rem, (size - nb) | TM_PREV_INUSE | arena_bit(av));
            set_head_size(p, nb);
            tm_int_free(av, rem);
        }
    }
    return chunk2mem(p);
}
