/*
 * check.c - the heap consistency checker (tide_check_heap) and tide_owns.
 *
 * Two-way check, per arena under its lock:
 *   walk: every heap, chunk by chunk, verifying boundary tags - sizes,
 *         alignment, P bits against the previous chunk's state, footers of
 *         free chunks, no two free chunks adjacent, fenceposts, top at the
 *         end of the last heap, A bits, system_mem = sum of heap sizes;
 *   bins: every list - links both ways, every chunk free and in the right
 *         bin, large bins sorted with a consistent nextsize ring, binmap
 *         bits set for non-empty bins, fast-bin chunks "in use" and of
 *         their bin's size, release accounting;
 *   and the number of free chunks seen by the walk equals the number in
 *   the bins: every free chunk is binned, every binned chunk is free.
 * Also the calling thread's cache.  Violations print
 * "tide_check_heap(): <what>" and abort.
 */
#include <string.h>
#include "arena.h"
#include "bins.h"
#include "control.h"
#include "heap.h"
#include "owner.h"
#include "tcache.h"
#include "tidemalloc.h"

static TM_NORETURN TM_COLD void fail(const char *what, const void *where)
{
    char buf[200];
    tm_fmt(buf, sizeof buf, "tide_check_heap(): %s", what);
    tm_corrupt(buf, where);
}
#define CHECK(cond, what, where) do { if (unlikely(!(cond))) fail(what, where); } while (0)

static bool in_arena(tm_arena *av, const void *p)
{
    for (tm_heap *h = av->last_heap; h; h = h->prev)
        if ((const char *)p >= (const char *)heap_first_chunk(h) && (const char *)p < heap_end(h))
            return true;
    return false;
}

static bool next_is_free(tm_chunk *p) { return !prev_inuse(next_chunk(p)); }

struct walk_totals { size_t chunks, free_chunks, released, dirty, nonfree; };

static void walk_heap(tm_arena *av, tm_heap *h, struct walk_totals *t)
{
    size_t abit = av == &tm_main_arena ? 0 : TM_NON_MAIN;
    char *end = heap_end(h);
    tm_chunk *p = heap_first_chunk(h);
    bool prev_free = false;
    CHECK(h->ar == av, "heap does not belong to its arena", h);
    CHECK(((uintptr_t)end & (tm_fix.pagesize - 1)) == 0, "heap end not page aligned", h);
    CHECK((char *)p <= end, "heap smaller than its header", h);
    while ((char *)p < end) {
        t->chunks++;
        CHECK(aligned_ok((uintptr_t)p), "misaligned chunk", p);
        if (p == av->top) {
            CHECK(h == av->last_heap, "top is not in the last heap", p);
            CHECK((char *)p + chunksize(p) == end, "top does not end its heap", p);
            CHECK(chunksize(p) >= TM_MINSIZE, "top smaller than MINSIZE", p);
            CHECK(prev_inuse(p), "chunk before top is free", p);
            CHECK(!prev_free, "free chunk before top", p);
            CHECK(chunk_hdr_ok(p, TM_ST_TOP), "top's header checksum does not match", p);
            return;
        }
        size_t size = chunksize(p);
        CHECK(prev_inuse(p) == !prev_free, "P bit does not match previous chunk", p);
        CHECK(!chunk_is_mmapped(p), "M bit set on a heap chunk", p);
        if (size <= TM_HDR)        /* fenceposts */
            CHECK(chunk_hdr_ok(p, TM_ST_INUSE), "fencepost's header checksum does not match", p);
        if (size == 0) {           /* last fencepost of a retired heap */
            CHECK((char *)p + TM_HDR == end, "zero-size chunk inside a heap", p);
            return;
        }
        if (size == TM_HDR) {      /* fencepost */
            CHECK((char *)p + 2 * TM_HDR <= end, "fencepost out of place", p);
            prev_free = false;
            p = chunk_at(p, size);
            continue;
        }
        CHECK(size >= TM_MINSIZE && aligned_ok(size), "invalid chunk size", p);
        CHECK((char *)p + size <= end, "chunk runs past its heap", p);
        bool is_free = next_is_free(p);
        if (is_free) {
            CHECK(!prev_free, "two adjacent free chunks", p);
            CHECK(next_chunk(p)->prev_size == size, "footer of free chunk does not match", p);
            t->free_chunks++;
            CHECK(chunk_hdr_ok(p, TM_ST_FREE), "free chunk's header checksum does not match", p);
            if (size >= TM_RELEASE_MIN) {
                uintptr_t lo = align_up((uintptr_t)p + TM_META_END, tm_fix.pagesize);
                uintptr_t hi = align_down((uintptr_t)p + size, tm_fix.pagesize);
                CHECK(chunk_released(p) <= (hi > lo ? hi - lo : 0), "released bytes exceed chunk interior", p);
                t->released += chunk_released(p);
                t->dirty += (hi > lo ? hi - lo : 0) - chunk_released(p);
            }
        } else {
            CHECK((size_word(p) & TM_NON_MAIN) == abit, "A bit does not match the arena", p);
            CHECK(hdr_live_ok(p, size_word(p)) || chunk_hdr_ok(p, TM_ST_FAST),
                  "in-use chunk's header checksum does not match", p);   /* (in use or cached) */
            t->nonfree += size;        /* in use or in a fast bin */
        }
        prev_free = is_free;
        p = chunk_at(p, size);
    }
    CHECK(av->top != initial_top(av) && h != av->last_heap, "heap walk ran off its end", p);
}

static size_t check_arena(tm_arena *av)
{
    struct walk_totals t = { 0, 0, 0, 0, 0 };
    size_t sys = 0;
    size_t nheaps = 0;
    for (tm_heap *h = av->last_heap; h; h = h->prev) {
        sys += h->size;
        nheaps++;
        CHECK(nheaps < (1u << 24), "heap list loops", h);
        walk_heap(av, h, &t);
    }
    CHECK(sys == av->system_mem, "system_mem differs from the heaps' total", av);
    CHECK(nheaps == av->nheaps, "heap count differs", av);
    if (av->top != initial_top(av)) {
        char *te = (char *)av->top + chunksize(av->top);
        CHECK(av->top_clean >= (char *)av->top && av->top_clean <= te, "top_clean outside top", av->top);
    }

    size_t limit = t.chunks + 1, binned = 0;
    for (unsigned i = 1; i < TM_NBINS; i++) {
        tm_chunk *b = bin_at(av, i);
        size_t n = 0, prev_size = SIZE_MAX;
        for (tm_chunk *p = b->fd; p != b; p = p->fd) {
            CHECK(++n <= limit, "bin list loops", b);
            CHECK(p->fd->bk == p && p->bk->fd == p, "bin links broken", p);
            CHECK(in_arena(av, p), "binned chunk outside its arena", p);
            size_t size = chunksize(p);
            CHECK(size >= TM_MINSIZE && aligned_ok(size), "binned chunk has an invalid size", p);
            CHECK(next_is_free(p), "binned chunk is in use", p);
            CHECK(p != av->top, "top is in a bin", p);
            if (i == 1 || i == TM_UNSORTED_BIG) {
                CHECK((size >= TM_RELEASE_MIN) == (i == TM_UNSORTED_BIG), "unsorted chunk in the wrong list", p);
                continue;
            }
            CHECK(bin_index(size) == i, "chunk in the wrong bin", p);
            if (i >= TM_NSMALLBINS) {
                CHECK(size <= prev_size, "large bin out of order", p);
                bool leader = size != prev_size;
                if (leader) {
                    CHECK(p->fd_nextsize && p->bk_nextsize, "large-bin leader has no nextsize links", p);
                    CHECK(p->fd_nextsize->bk_nextsize == p && p->bk_nextsize->fd_nextsize == p,
                          "nextsize links broken", p);
                    CHECK(chunksize(p->fd_nextsize) < size || p->fd_nextsize == b->fd,
                          "nextsize ring out of order", p);
                } else {
                    CHECK(p->fd_nextsize == NULL, "large-bin follower in the nextsize ring", p);
                }
                prev_size = size;
            }
        }
        if (n && i >= 2 && i != TM_UNSORTED_BIG)
            CHECK(bin_marked(av, i), "non-empty bin not marked in the binmap", b);
        binned += n;
    }
    CHECK(binned == t.free_chunks, "free chunks and binned chunks differ", av);
    CHECK(t.released == av->released, "released bytes differ from the chunks' total", av);
    CHECK(t.dirty == av->dirty, "resident free (dirty) bytes differ from the chunks' total", av);
    size_t fast = 0;
    for (unsigned i = 0; i < TM_NFASTBINS; i++)
        for (tm_chunk *p = av->fastbins[i]; p && fast <= av->system_mem; p = fastbin_next(p))
            fast += chunksize(p);
    CHECK(fast == av->fast_bytes, "fast-bin byte count differs from the fast bins", av);
    CHECK(t.nonfree - fast == av->inuse, "in-use byte count differs from the heap's in-use chunks", av);

    bool any_fast = false;
    for (unsigned i = 0; i < TM_NFASTBINS; i++) {
        size_t n = 0;
        for (tm_chunk *p = av->fastbins[i]; p;
             p = fastbin_next(p)) {
            CHECK(++n <= limit, "fast bin loops", p);
            CHECK(!misaligned_chunk(p), "misaligned fast chunk", p);
            CHECK(in_arena(av, p), "fast chunk outside its arena", p);
            CHECK(fastbin_index(chunksize(p)) == i, "fast chunk in the wrong bin", p);
            CHECK(chunk_hdr_ok(p, TM_ST_FAST), "fast chunk's header checksum does not match", p);
            /* (no check against max_fast: M_MXFAST may have been lowered
             *  after the chunk was binned; consolidation empties it.)   */
            CHECK(!next_is_free(p), "fast chunk marked free in its boundary tags", p);
            any_fast = true;
        }
    }
    CHECK(!any_fast || av->have_fastchunks, "fast chunks present but have_fastchunks clear", av);
    return t.chunks;
}

static void check_own_cache(void)
{
    tm_tcache *tc = tm_tls_tcache_own;
    if (!tc)
        return;
    tc_enter(tc);
    for (size_t j = 0; j < TM_TC_SLOTS; j++) {      /* classes, then outboxes */
        size_t n = 0, i = j % TM_TCACHE_BINS;
        uintptr_t want = tc->chain[j];       /* (TIDE_CHECKS: the head's chain value) */
        for (tm_tc_entry *e = tc->entries[j]; e; e = tc_reveal(e)) {
            CHECK(aligned_ok((uintptr_t)e), "misaligned cache entry", e);
            CHECK(++n <= tc->counts[j], "cache list longer than its count", e);
            CHECK(!TIDE_CHECKS || tc_chain_entry(tc_slot_id(tc, j), e) == want, "cache entry out of its slot's chain", e);
            want = e->key;
            tm_chunk *p = mem2chunk(e);
            CHECK(tc_csize_index(chunksize(p)) == i, "cache entry in the wrong class", e);
            CHECK(!chunk_is_mmapped(p) && inuse(p), "cached chunk not in use", e);
            CHECK(chunk_hdr_ok(p, TM_ST_CACHED), "cached chunk's header checksum does not match", e);
        }
        CHECK(n == tc->counts[j], "cache count differs from its list", tc);
        CHECK(want == tc_chain0(tc, j), "cache chain does not end at its slot's start", tc);
    }
    tc_leave(tc);
}

static void check_one(tm_arena *av, void *total)
{
    *(long *)total += 1 + (long)check_arena(av);   /* the arena itself counts */
}

TM_EXPORT long tide_check_heap(void)
{
    tm_ensure_init();
    long total = 0;
    tm_for_each_arena(check_one, &total);
    check_own_cache();
    return total;
}

struct owns_query { const void *p; int found; };
static void owns_one(tm_arena *av, void *arg)
{
    struct owns_query *q = arg;
    q->found |= in_arena(av, q->p);
}

TM_EXPORT int tide_owns(const void *mem)
{
    if (!mem || !atomic_load(&tm_initialized))
        return 0;
    tm_chunk *p = mem2chunk(mem);
#if TIDE_CHECKS
    if (!aligned_ok((uintptr_t)mem))
        return 0;
    int own = tm_own_classify(p);   /* before reading anything at p */
    if (own == TM_OWN_NONE)
        return 0;
    if (own == TM_OWN_MMAP)
        return 1;
#else
    if (chunk_is_mmapped(p)) {
        uintptr_t block = (uintptr_t)p - p->prev_size;
        return ((block | (p->prev_size + chunksize(p))) & (tm_fix.pagesize - 1)) == 0;
    }
#endif
    struct owns_query q = { p, 0 };
    tm_for_each_arena(owns_one, &q);
    return q.found;
}
