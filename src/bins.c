/* bins.c - linking and unlinking free chunks (see bins.h). */
#include <string.h>
#include "bins.h"
#include "os.h"

void tm_bins_init(tm_arena *av)
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

/* Insert a free chunk at the front of its unsorted list (bins.h). */
static inline void unsorted_push(tm_arena *av, tm_chunk *p, size_t size, const char *who)
{
    tm_chunk *bck = unsorted_list_of(av, size);
    tm_chunk *fwd = bck->fd;            /* a bin header's link: ours */
    if (unlikely(fwd->bk != bck))
        tm_corrupt(who, p);
    p->fd = fwd;
    p->bk = bck;
    if (!in_smallbin_range(size)) {
        p->fd_nextsize = NULL;   /* "not in a nextsize list" (see tm_bins_unlink) */
        p->bk_nextsize = NULL;
    }
    bck->fd = p;
    fwd->bk = p;
}

tm_chunk *tm_unsorted_last(tm_arena *av)
{
    /* The big list first: it is short, and its chunks become visible to
     * best fit once sorted.                                          */
    tm_chunk *unsorted = unsorted_big_bin(av);
    if (unsorted->bk == unsorted)
        unsorted = unsorted_bin(av);
    tm_chunk *victim = unsorted->bk;
    if (victim == unsorted)
        return NULL;
    if (unlikely(!tm_free_hdr_ok(victim)))     /* a bin header's link: ours */
        tm_corrupt("malloc(): corrupted chunk header", victim);
    tm_chunk *bck = victim->bk;
    if (unlikely(!tm_bin_link_ok(av, bck)))
        tm_corrupt("malloc(): unsorted double linked list corrupted", victim);
    size_t size = chunksize(victim);
    tm_chunk *next = chunk_at(victim, size);
    if (unlikely(chunk_raw_size(victim) <= 2 * TM_SIZE_SZ || size > av->system_mem ||
                 unsorted_list_of(av, size) != unsorted))      /* (its list follows from it) */
        tm_corrupt("malloc(): invalid size (unsorted)", victim);
    if (unlikely(chunk_raw_size(next) < 2 * TM_SIZE_SZ || chunksize(next) > av->system_mem))
        tm_corrupt("malloc(): invalid next size (unsorted)", next);
    if (unlikely(next->prev_size != size))
        tm_corrupt("malloc(): mismatching next->prev_size (unsorted)", victim);
    if (unlikely(bck->fd != victim || victim->fd != unsorted))
        tm_corrupt("malloc(): unsorted double linked list corrupted", victim);
    if (unlikely(prev_inuse(next)))
        tm_corrupt("malloc(): invalid next->prev_inuse (unsorted)", victim);
    return victim;
}

/* tm_bins_unlink once p's header is known to be a FREE one of ours. */
static bool unlink_verified(tm_arena *av, tm_chunk *p)
{
    size_t size = chunksize(p);
    if (unlikely(size != next_chunk(p)->prev_size))
        tm_corrupt("corrupted size vs. prev_size", p);
    tm_chunk *fd = p->fd, *bk = p->bk;
    if (unlikely(!tm_bin_link_ok(av, fd) || !tm_bin_link_ok(av, bk) || fd->bk != p || bk->fd != p))
        tm_corrupt("corrupted double-linked list", p);
    TM_ASSERT(!inuse(p) && p != av->top);
    fd->bk = bk;
    bk->fd = fd;
    if (!in_smallbin_range(size) && p->fd_nextsize != NULL) {
        /* p leads its size group in a large bin's nextsize ring. */
        if (unlikely(!tm_chunk_link_ok(av, p->fd_nextsize) || !tm_chunk_link_ok(av, p->bk_nextsize) ||
                     p->fd_nextsize->bk_nextsize != p || p->bk_nextsize->fd_nextsize != p))
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
    return tm_release_take(av, p);
}

bool tm_bins_unlink_held(tm_arena *av, tm_chunk *p)
{
    if (unlikely(!tm_free_hdr_ok(p)))
        tm_corrupt("malloc(): corrupted chunk header", p);
    return unlink_verified(av, p);
}

bool tm_bins_unlink(tm_arena *av, tm_chunk *p)
{
    if (unlikely(!tm_chunk_link_ok(av, p)))
        tm_corrupt("malloc(): corrupted chunk header", p);
    return tm_bins_unlink_held(av, p);
}

/* ---- walking a large bin's nextsize ring ---------------------------------
 * A large bin is kept in decreasing size order; the first chunk of each
 * distinct size (its leader) is on the nextsize ring: fd_nextsize to the
 * next smaller leader, bk_nextsize to the next larger, the smallest's
 * fd_nextsize back to the largest (the bin's first chunk).
 *
 *   fd/bk:  bin <-> [61056] <-> 61056 <-> [60672] <-> ... <-> [46080] <-> bin
 *   ring:   [61056] -> [60672] -> ... -> [46080] -> [61056]   (fd_nextsize;
 *           bk_nextsize the other way)                     [ ] = a leader
 *
 * glibc walks it from one end only: down from the largest to insert, up
 * from the smallest to find a best fit.  A bin of big chunks holds many
 * distinct sizes (wl_frag: 57 leaders passed per insert, 68 per best
 * fit, each step a link check), so both walks start here from the end
 * nearer in size to the one sought.  Same leader either way; every link
 * is checked before it is followed, as before, and the caller verifies
 * the leader it gets.  first: the bin's first chunk (the largest
 * leader); min: the size of its last chunk (the smallest).            */
static inline tm_chunk *nextsize_step(const tm_arena *av, tm_chunk *q)
{
    if (unlikely(!tm_chunk_link_ok(av, q)))
        tm_corrupt("malloc(): largebin double linked list corrupted (nextsize)", q);
    return q;
}
/* The largest leader of size <= size, for min <= size (an insert). */
static tm_chunk *largebin_leader_at_most(const tm_arena *av, tm_chunk *first, size_t min, size_t size)
{
    size_t max = chunksize(first);
    tm_chunk *q = first;
    if (size >= max || max - size <= size - min) {
        while (size < chunksize(q))                 /* down from the largest */
            q = nextsize_step(av, q->fd_nextsize);
        return q;
    }
    q = nextsize_step(av, first->bk_nextsize);      /* up from the smallest */
    for (;;) {
        tm_chunk *up = nextsize_step(av, q->bk_nextsize);
        if (chunksize(up) > size)
            return q;               /* (the largest leader stops it: size < max) */
        q = up;
    }
}
/* The smallest leader of size >= nb, for nb <= the largest (a best fit):
 * the insert's leader if it has size nb, else the next larger one.    */
static tm_chunk *largebin_leader_at_least(const tm_arena *av, tm_chunk *first, size_t min, size_t nb)
{
    if (nb <= min)
        return nextsize_step(av, first->bk_nextsize);  /* the smallest */
    tm_chunk *q = largebin_leader_at_most(av, first, min, nb);
    return chunksize(q) == nb ? q : nextsize_step(av, q->bk_nextsize);
}

void tm_unsorted_sort(tm_arena *av, tm_chunk *victim, size_t size)
{
    unsorted_remove_last(av, victim);
    unsigned idx;
    tm_chunk *bck, *fwd;
    TM_ASSERT(!inuse(victim) && size == chunksize(victim));
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
             * first chunk of each distinct size.  The first and the last
             * chunk are the bin header's links (ours); their sizes only
             * steer the insert, so they are not verified here: a forged
             * one misplaces the chunk in the order, which no one trusts
             * (best fit verifies the chunk it takes).  The chunk the
             * insert writes next to is verified (below).               */
            size_t min = chunksize(bck->bk);
            if (size < min) {
                /* Smaller than everything: append at the end. */
                fwd = bck;
                bck = bck->bk;
                /* The ring's last leader is reached through the first's
                 * bk_nextsize and written to: it must be a free chunk of
                 * ours that links back (glibc checks nothing here: the
                 * large-bin attack's forged bk_nextsize).              */
                tm_chunk *last = fwd->fd->bk_nextsize;
                if (unlikely(!tm_free_chunk_ok(av, last) || last->fd_nextsize != fwd->fd))
                    tm_corrupt("malloc(): largebin double linked list corrupted (nextsize)", last);
                victim->fd_nextsize = fwd->fd;
                victim->bk_nextsize = fwd->fd->bk_nextsize;
                fwd->fd->bk_nextsize = victim;
                victim->bk_nextsize->fd_nextsize = victim;
            } else {
                fwd = largebin_leader_at_most(av, fwd, min, size);
                /* Passed over on links alone; where it stops is verified. */
                if (unlikely(!tm_free_chunk_ok(av, fwd)))
                    tm_corrupt("malloc(): largebin double linked list corrupted (nextsize)", fwd);
                if (size == chunksize(fwd)) {
                    /* Same size exists: insert second, keep the ring as is. */
                    victim->fd_nextsize = victim->bk_nextsize = NULL;
                    fwd = fwd->fd;
                    if (unlikely(!tm_bin_link_ok(av, fwd)))
                        tm_corrupt("malloc(): largebin double linked list corrupted (fd)", fwd);
                } else {
                    victim->fd_nextsize = fwd;
                    victim->bk_nextsize = fwd->bk_nextsize;
                    if (unlikely(!tm_chunk_link_ok(av, fwd->bk_nextsize) ||
                                 fwd->bk_nextsize->fd_nextsize != fwd))
                        tm_corrupt("malloc(): largebin double linked list corrupted (nextsize)", fwd);
                    fwd->bk_nextsize = victim;
                    victim->bk_nextsize->fd_nextsize = victim;
                }
                bck = fwd->bk;
                if (unlikely(!tm_bin_link_ok(av, bck) || bck->fd != fwd))
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


tm_chunk *tm_bins_best_large(tm_arena *av, unsigned idx, size_t nb, bool *released)
{
    tm_chunk *bin = bin_at(av, idx);
    tm_chunk *victim = bin->fd;
    if (victim == bin || chunksize(victim) < nb)
        return NULL;
    /* On links alone (tm_chunk_link_ok); the chunk taken is verified
     * by tm_bins_unlink: its size is the one that counts.             */
    victim = largebin_leader_at_least(av, victim, chunksize(bin->bk), nb);
    /* Take the second of a size group: no nextsize rerouting. */
    if (victim != bin->bk) {
        tm_chunk *second = victim->fd;
        if (unlikely(!tm_chunk_link_ok(av, second)))
            tm_corrupt("malloc(): largebin double linked list corrupted (bk)", victim);
        if (chunksize(victim) == chunksize(second))
            victim = second;
    }
    *released = tm_bins_unlink(av, victim);
    return victim;
}

tm_chunk *tm_bins_search(tm_arena *av, unsigned idx, bool *released)
{
    for (unsigned i = idx + 1; i < TM_NBINS;) {
        unsigned block = i >> TM_BINMAPSHIFT;
        uint32_t map = av->binmap[block] & (~0u << (i & 31));
        while (map == 0) {
            if (++block >= TM_BINMAPSIZE)
                return NULL;
            map = av->binmap[block];
        }
        i = (block << TM_BINMAPSHIFT) + (unsigned)__builtin_ctz(map);
        tm_chunk *bin = bin_at(av, i);
        tm_chunk *victim = bin->bk;
        if (victim == bin) {          /* stale bit: the bin emptied */
            unmark_bin(av, i);
            i++;
            continue;
        }
        *released = tm_bins_unlink_held(av, victim);   /* a bin header's link */
        return victim;
    }
    return NULL;
}

tm_chunk *tm_bins_split(tm_arena *av, tm_chunk *victim, size_t size, size_t nb, bool released,
                        bool set_last_remainder, tm_zrange *z)
{
    /* Read before the remainder's header can overwrite it. */
    uint64_t stamp = size >= TM_RELEASE_MIN ? chunk_free_stamp(victim) : 0;
    size_t rsize = size - nb;
    if (rsize < TM_MINSIZE) {
        set_inuse_at(victim, size);
        set_head_inuse_bits(victim, arena_bit(av));
        nb = size;
    } else {
        tm_chunk *rem = chunk_at(victim, nb);
        unsorted_push(av, rem, rsize, "malloc(): corrupted unsorted chunks");
        if (set_last_remainder)
            av->last_remainder = rem;
        set_head(victim, nb | TM_PREV_INUSE | arena_bit(av));
        set_head_free(rem, rsize | TM_PREV_INUSE);
        set_foot(rem, rsize);
        tm_release_split(av, rem, rsize, released, stamp);
    }
    if (released)
        tm_release_zero_range(victim, nb, z);
    return victim;
}

/* The merged free chunk p (size bytes, its neighbours taken out of their
 * lists), next the chunk after it: into the unsorted bin, with its header,
 * foot and release state; or, if next is top, p becomes top (NULL). */
static TM_INLINE tm_chunk *settle_run(tm_arena *av, tm_chunk *p, size_t size, tm_chunk *next,
                                      const tm_relcarry *carried, const char *unsorted_check)
{
    if (next != av->top) {
        unsorted_push(av, p, size, unsorted_check);
        set_head_free(p, size | TM_PREV_INUSE);
        set_foot(p, size);
        tm_release_on_free(av, p, size, carried);
        return p;
    }
    if (unlikely(!tm_top_ok(av)))
        tm_corrupt("malloc(): corrupted top size", next);
    set_head_top(p, (size + chunksize(next)) | TM_PREV_INUSE);
    tm_release_top_grew(av);
    av->top = p;
    return NULL;
}

/* tm_bins_free (bins.h). */
static TM_INLINE tm_chunk *bins_free(tm_arena *av, tm_chunk *p, size_t *psize, bool next_free,
                                     const char *prev_check, const char *unsorted_check)
{
    size_t size = *psize;
    TM_ASSERT(size >= TM_MINSIZE && aligned_ok(size) && !chunk_is_mmapped(p) && p != av->top);
    tm_chunk *next = chunk_at(p, size);
    size_t nextsize = chunksize(next);
    tm_relcarry carried = TM_RELCARRY_INIT;
    if (!prev_inuse(p)) {
        size_t prevsize = p->prev_size;
        /* p's own header would stay behind inside the merged chunk, in use
         * and intact: a second free of p (a double free) then passed every
         * header test, free's fast path cached p inside free memory and
         * malloc handed it out under the merged chunk (misuse
         * double_free/merged_backward).  Retired (chunk.h): it no longer
         * verifies as in use, and reads as FREE, as a chunk absorbed
         * forward already does.                                        */
        retire_hdr(p);
        size += prevsize;
        p = chunk_at(p, -prevsize);
        /* P == 0 must be backed by a free chunk of that size whose own
         * header says so: a forged prev_size or a cleared P leads here. */
        if (unlikely(!tm_free_chunk_ok(av, p) || chunksize(p) != prevsize))
            tm_corrupt(prev_check, p);
        tm_release_absorb(&carried, p);
        unlink_verified(av, p);
    }
    if (next != av->top) {
        if (!inuse_at(next, nextsize)) {
            tm_release_absorb(&carried, next);
            if (next_free)
                unlink_verified(av, next);
            else
                tm_bins_unlink_held(av, next); /* checks next's header says FREE */
            size += nextsize;
        } else {
            clear_inuse_at(next, 0);
        }
    }
    p = settle_run(av, p, size, next, &carried, unsorted_check);
    if (!p)
        size += nextsize;
    *psize = size;
    return p;
}

tm_chunk *tm_bins_free(tm_arena *av, tm_chunk *p, size_t *size, bool next_free,
                       const char *prev_check, const char *unsorted_check)
{
    return bins_free(av, p, size, next_free, prev_check, unsorted_check);
}

/* ---- malloc_consolidate: runs, not one free per fast chunk ---------------
 * glibc frees every fast chunk in turn: each merges with its free
 * neighbours, which means unlinking (and here verifying) the run merged
 * so far and pushing the grown run again - a run of k fast chunks freed
 * in random order costs k unlinks, k pushes and k header writes.  python
 * (PYTHONMALLOC=malloc) consolidates ~1 M fast chunks a run that way, at
 * ~170 instructions each with the checks.  Two passes instead:
 *
 *   pass 1, every fast chunk:  verified as a fast chunk (ours, FAST header,
 *       its bin's size), marked *pending* (S set: a free chunk never carries
 *       S otherwise, and S is outside the checksum), linked into a local
 *       list through fd/bk; its next neighbour's P cleared and foot written,
 *       so to both neighbours it is free from now on;
 *   pass 2, every pending chunk still on the list: grown into the whole
 *       run of free chunks around it - backward while P is clear, forward
 *       while the next chunk is free - taking pending neighbours off the
 *       list and binned ones out of their bins (verified like any unlink);
 *       then one header, one foot and one push into the unsorted bin (or
 *       the run joins top).
 *
 *      [fast A][in use][fast B][fast C][free X][fast D][in use]
 *   ->  [fast A][in use][------- one FREE chunk B+C+X+D ----][in use]
 *
 * A neighbour's kind comes from its header: S set - pending, verified as
 * FAST; S clear - in a bin, verified as FREE (run_absorb).  So a
 * forged or flipped S fails the checksum of the state it claims, and the
 * build without the checks still tells the two apart.  What pass 1
 * verified and wrote itself during this lock hold - a pending chunk's
 * header when it is taken as the start of a run, the local list's links -
 * is not verified again (written moments ago by this lock holder), only
 * glibc's unlink test guards the list against a write through a dangling
 * pointer in between; every neighbour reached through a size or
 * prev_size is verified.  Instructions (callgrind, bench's python:
 * 969 k fast chunks consolidated in 158 k runs): 165 M -> 113 M, 170 ->
 * 117 a chunk; the whole run 1.545 G -> 1.493 G.                     */
static inline void pending_unlink(tm_chunk *p)
{
    tm_chunk *fd = p->fd, *bk = p->bk;
    if (unlikely(fd->bk != p || bk->fd != p))
        tm_corrupt("malloc_consolidate(): corrupted pending list", p);
    fd->bk = bk;
    bk->fd = fd;
}
/* q (size word w), a free neighbour of the run reached through a size
 * or prev_size, joins the run: pending (S) - still the fast chunk pass 1
 * saw, off the local list; otherwise a binned chunk whose header must say
 * FREE (else not_free), out of its bin, its release state carried. */
static inline void run_absorb(tm_arena *av, tm_chunk *q, size_t w, tm_relcarry *carried,
                              const char *not_free)
{
    if (w & TM_SAMPLED) {
        if (unlikely(!hdr_ok(q, w, TM_ST_FAST)))
            tm_corrupt("malloc(): corrupted fastbin link", q);
        pending_unlink(q);
        return;
    }
    if (unlikely(!tm_free_hdr_ok(q)))
        tm_corrupt(not_free, q);
    tm_release_absorb(carried, q);
    unlink_verified(av, q);
}

/* The messages of pass 2's checks: glibc words them one way for
 * malloc_consolidate, another for free. */
typedef struct {
    const char *prev;       /* a P bit or prev_size that no free chunk backs */
    const char *next;       /* a free neighbour after the run whose header fails */
    const char *unsorted;   /* the unsorted bin's head, at the push */
} tm_settle_msgs;
static const tm_settle_msgs consolidate_msgs = {
    "corrupted size vs. prev_size in fastbins",
    "malloc(): corrupted chunk header",
    "malloc_consolidate(): corrupted unsorted chunks",
};
static size_t settle_pending(tm_arena *av, tm_pending *l, const tm_settle_msgs *msg);

/* The chunk after a run, whose size is about to lead further: is it free
 * (pending or binned)?  Without the checks, the P bit after it says, as
 * glibc.  With them its header is verified first, in any state a
 * neighbour may have, the likely ones first - the in-use neighbour that
 * ends most runs costs one checksum - and only then is its size used to
 * read that P bit.  Which state verified does not answer the question:
 * 16 bits of checksum tried against several states let a genuine header
 * verify in a state not its own once in ~2^15 tries (test_threads: a FREE
 * chunk taken as in use, a run settled before a free neighbour).  So P
 * answers, and a free neighbour whose header did not verify in its free
 * state (FAST for a pending chunk, with S; FREE for a binned one) is
 * verified in it now, which run_absorb_verified then trusts.  (An in-use
 * header may carry S: a sampled block; a FAST one without S: a chunk in
 * a fast bin, in use to its neighbours.)                              */
static inline bool run_next_free(const tm_chunk *next, size_t nw, const char *bad)
{
#if TIDE_CHECKS
    bool s = (nw & TM_SAMPLED) != 0;
    unsigned free_st = s ? TM_ST_FAST : TM_ST_FREE;
    bool free_ok = s && hdr_ok(next, nw, TM_ST_FAST);        /* pending: its state first */
    if (!free_ok && !likely(hdr_live_ok(next, nw))) {
        free_ok = !s && hdr_ok(next, nw, TM_ST_FREE);
        if (unlikely(!free_ok && (s || !hdr_ok(next, nw, TM_ST_FAST))))
            tm_corrupt(bad, next);
    }
    bool free = !inuse_at(next, word_size(nw));
    if (unlikely(free && !free_ok && !hdr_ok(next, nw, free_st)))
        tm_corrupt(bad, next);
    return free;
#else
    (void)bad;
    return !inuse_at(next, word_size(nw));
#endif
}
/* run_absorb for a neighbour that run_next_free found free. */
static inline void run_absorb_verified(tm_arena *av, tm_chunk *q, size_t w, tm_relcarry *carried)
{
    if (w & TM_SAMPLED) {
        pending_unlink(q);
        return;
    }
    tm_release_absorb(carried, q);
    unlink_verified(av, q);
}

void tm_bins_consolidate(tm_arena *av)
{
    av->have_fastchunks = false;
    av->fast_bytes = 0;
    tm_pending l;
    tm_pending_init(&l);
    for (unsigned i = 0; i < TM_NFASTBINS; i++) {
        tm_chunk *p = av->fastbins[i];
        av->fastbins[i] = NULL;
        while (p) {
            tm_fast_check(p, i, "malloc_consolidate(): unaligned fastbin chunk detected",
                          "malloc_consolidate(): invalid chunk size");
            tm_chunk *nextp = fastbin_next(p);
            size_t w = size_word(p), size = word_size(w);
            if (unlikely(w & TM_SAMPLED))   /* pending already: linked twice */
                tm_corrupt("malloc_consolidate(): chunk twice in the fast bins", p);
            set_size_word(p, w | TM_SAMPLED);
            pend_link(&l, p, size);
            p = nextp;
        }
    }
    (void)settle_pending(av, &l, &consolidate_msgs);
}

/* Pass 2 (above) over the pending list l: every run merged and settled.
 * Returns the largest size a run settled with (the top's, for a run that
 * joined it): the caller's cue to trim and look at the cap.           */
static size_t settle_pending(tm_arena *av, tm_pending *l, const tm_settle_msgs *msg)
{
    tm_chunk *const end = &l->head;
    size_t big = 0;
    while (end->fd != end) {
        tm_chunk *p = end->fd;
        pending_unlink(p);
        size_t size = chunksize(p);
        tm_relcarry carried = TM_RELCARRY_INIT;
        /* Backward: every chunk before a clear P is free. */
        while (!prev_inuse(p)) {
            size_t prevsize = p->prev_size;
            tm_chunk *q = chunk_at(p, -prevsize);
            if (unlikely(!tm_chunk_link_ok(av, q)))
                tm_corrupt(msg->prev, p);
            size_t qw = size_word(q);
            if (unlikely(word_size(qw) != prevsize))
                tm_corrupt(msg->prev, q);
            run_absorb(av, q, qw, &carried, msg->prev);
            p = q;
            size += prevsize;
        }
        /* Forward: up to the next chunk in use, or into top. */
        tm_chunk *next = chunk_at(p, size);
        while (next != av->top) {
            size_t nw = size_word(next), nextsize = word_size(nw);
            if (!run_next_free(next, nw, msg->next))
                break;
            run_absorb_verified(av, next, nw, &carried);
            size += nextsize;
            next = chunk_at(next, nextsize);
        }
        TM_ASSERT(next == av->top || !prev_inuse(next));   /* pass 1 or a bin cleared it */
        if (!settle_run(av, p, size, next, &carried, msg->unsorted))
            size = chunksize(av->top);
        if (size > big)
            big = size;
    }
    return big;
}

size_t tm_bins_settle(tm_arena *av, tm_pending *l)
{
    static const tm_settle_msgs flush_msgs = {
        "corrupted size vs. prev_size while consolidating",
        "free(): corrupted chunk header",
        "free(): corrupted unsorted chunks",
    };
    return settle_pending(av, l, &flush_msgs);
}

/* The first large bin that can hold a chunk of TM_RELEASE_MIN: every
 * chunk of a bin below it is smaller (largebin_index grows with the
 * size), so the walks for releasable chunks start there.            */
static inline unsigned release_first_bin(void)
{
    _Static_assert(TM_RELEASE_MIN >= TM_MIN_LARGE_SIZE, "releasable chunks are large");
    return largebin_index(TM_RELEASE_MIN);
}

size_t tm_bins_purge(tm_arena *av, uint64_t cutoff, size_t top_keep, uint64_t *oldest)
{
    size_t done = 0;
    uint64_t left = UINT64_MAX;
    tm_relbatch b;                   /* (flushed below, before the lock is left) */
    tm_relbatch_init(&b);
    if (unlikely(tm_os_release_refused())) {
        if (oldest)
            *oldest = UINT64_MAX;    /* nothing will be: the background thread need not wake */
        return 0;
    }
    if (av->dirty) {
        /* (the large bins that can hold a chunk of TM_RELEASE_MIN, and
         * the unsorted chunks that big, bins[TM_UNSORTED_BIG]: bins.h) */
        for (unsigned i = release_first_bin(); i < TM_NBINS; i++) {
            tm_chunk *bin = bin_at(av, i);
            for (tm_chunk *p = bin->fd; p != bin; p = p->fd) {
                size_t size = chunksize(p);
                if (size < TM_RELEASE_MIN)
                    continue;
                uint64_t stamp = chunk_free_stamp(p);
                if (stamp <= cutoff)
                    done += tm_release_chunk_into(av, p, &b);
                else if (stamp < left &&
                         chunk_released(p) < chunk_interior_bytes(p, size, tm_fix.pagesize))
                    left = stamp;
            }
        }
    }
    if (av->top_stamp <= cutoff)
        done += tm_release_top_into(av, top_keep, &b);
    else if (av->top_stamp < left && tm_release_top_dirty(av, top_keep))
        left = av->top_stamp;
    tm_release_flush(&b);
    TM_ASSERT(av->released + av->dirty <= av->system_mem);
    if (oldest)
        *oldest = left;
    return done;
}

/* Release big free chunks of bin i until the arena's dirty bytes reach
 * target; the bytes released.                                         */
static size_t release_bin_down_to(tm_arena *av, unsigned i, size_t target, tm_relbatch *b)
{
    size_t done = 0;
    tm_chunk *bin = bin_at(av, i);
    for (tm_chunk *p = bin->fd; p != bin && av->dirty > target; p = p->fd)
        if (chunksize(p) >= TM_RELEASE_MIN)
            done += tm_release_chunk_into(av, p, b);
    return done;
}

void tm_bins_enforce_cap_slow(tm_arena *av)
{
    if (TM_P(decay_ms) < 0)          /* "never": only trimming and malloc_trim */
        return;
    if (unlikely(tm_os_release_refused()))
        return;                      /* the kernel keeps refusing (os.h): no more tries */
    if (unlikely(av->cap_defer_until)) {     /* its last thread left (release.h) */
        if (atomic_load_explicit(&tm_bg_active, memory_order_relaxed) &&
            tm_os_now_ms() < av->cap_defer_until)
            return;
        av->cap_defer_until = 0;
    }
    if (tm_release_strict(av, tm_release_other(av)) && av->fast_bytes > TM_FAST_BYTES_MAX)
        tm_bins_consolidate(av);     /* small freed blocks into releasable runs */
    size_t pad = TM_P(top_pad);
    size_t top_dirty = tm_release_top_dirty(av, pad);
    size_t top_rel = tm_release_top_bytes(av);
    size_t other = tm_release_other(av);
    other = other > top_rel + top_dirty ? other - top_rel - top_dirty : 0;
    size_t cap = tm_release_cap_of(av, other);
    if (av->dirty + top_dirty <= cap)
        return;
    bool strict = tm_release_strict(av, other);
    /* Down to half the cap: the top first (one call), then the biggest
     * free chunks (most bytes per call, least likely reused soon).      */
    size_t target = cap / 2, done = 0;
    tm_relbatch b;                   /* (one call for them all where the kernel can: os.c) */
    tm_relbatch_init(&b);
    if (top_dirty)
        done += tm_release_top_into(av, pad, &b);
    for (unsigned i = TM_UNSORTED_BIG - 1; i >= release_first_bin() && av->dirty > target; i--)
        done += release_bin_down_to(av, i, target, &b);
    done += release_bin_down_to(av, TM_UNSORTED_BIG, target, &b);  /* unsorted: the newest */
    tm_release_flush(&b);
    tm_release_swing_note(av, done);
    if (strict)
        tm_release_solo_note(av, done);
}
