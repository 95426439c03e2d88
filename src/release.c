/* release.c - page release of free chunks and of the top (see release.h). */
#include "release.h"
#include "os.h"
#include "thp.h"

bool tm_release_take_big(tm_arena *av, tm_chunk *p)
{
    size_t size = chunksize(p);
    size_t rel = chunk_released(p);
    TM_ASSERT(rel <= av->released);
    size_t in = chunk_interior_bytes(p, size, tm_fix.pagesize);
    bool full = rel != 0 && rel == in;
    TM_ASSERT(in - rel <= av->dirty);
    av->dirty -= in - rel;
    av->released -= rel;
    set_chunk_released(p, 0);
    return full;
}

static void queue(tm_relbatch *b, uintptr_t lo, uintptr_t hi)
{
    if (b->n == TM_RELEASE_BATCH)
        tm_release_flush(b);
    b->v[b->n].iov_base = (void *)lo;
    b->v[b->n].iov_len = hi - lo;
    b->n++;
}

void tm_release_flush(tm_relbatch *b)
{
    tm_os_release_many(b->v, b->n);    /* (a few ranges: one madvise each, os.c) */
    b->n = 0;
}

size_t tm_release_chunk_into(tm_arena *av, tm_chunk *p, tm_relbatch *b)
{
    size_t size = chunksize(p);
    uintptr_t lo, hi;
    chunk_interior(p, size, tm_fix.pagesize, &lo, &hi);
    if (hi <= lo || chunk_released(p) == hi - lo || unlikely(tm_os_release_refused()))
        return 0;
    TM_ASSERT(chunk_released(p) < hi - lo);
    queue(b, lo, hi);
    av->madvise_calls++;
    tm_thp_released(lo, hi);          /* no huge page over it again (thp.h) */
    size_t gained = (hi - lo) - chunk_released(p);
    TM_ASSERT(gained <= av->dirty);
    av->dirty -= gained;
    av->released += gained;
    set_chunk_released(p, hi - lo);
    return gained;
}

size_t tm_release_chunk(tm_arena *av, tm_chunk *p)
{
    tm_relbatch b;
    tm_relbatch_init(&b);
    size_t gained = tm_release_chunk_into(av, p, &b);
    tm_release_flush(&b);
    return gained;
}

void tm_release_on_free_big(tm_arena *av, tm_chunk *p, size_t size, const tm_relcarry *c)
{
    uint64_t now = tm_os_now_ms();
    set_chunk_free_stamp(p, c->stamp < now ? c->stamp : now);
    set_chunk_released(p, c->bytes);
    av->released += c->bytes;
    size_t in = chunk_interior_bytes(p, size, tm_fix.pagesize);
    TM_ASSERT(c->bytes <= in);
    av->dirty += in - c->bytes;
    if (TM_P(decay_ms) == 0)
        tm_release_chunk(av, p);
    else if (in > c->bytes)
        tm_event_poke(&tm_bg_event);
}

void tm_release_split_big(tm_arena *av, tm_chunk *rem, size_t rsize, bool was_released,
                          uint64_t stamp)
{
    /* The remainder has been free since the victim became free. */
    set_chunk_free_stamp(rem, stamp ? stamp : tm_os_now_ms());
    /* rem's interior lies inside the victim's: released if that was. */
    size_t in = chunk_interior_bytes(rem, rsize, tm_fix.pagesize);
    size_t b = was_released ? in : 0;
    set_chunk_released(rem, b);
    av->released += b;
    av->dirty += in - b;
}

void tm_release_swing_note(tm_arena *av, size_t bytes)
{
    if (!av->swing_armed || av->swinging || !bytes ||
        !atomic_load_explicit(&av->drained, memory_order_relaxed))
        return;
    av->swing_released += bytes;
    if (av->swing_released < TM_SWING_MIN_BYTES)
        return;
    av->swing_armed = false;         /* one count per drain */
    av->swing_drains++;              /* (the regrowth decides, arena.c) */
}

void tm_release_zero_range(const tm_chunk *p, size_t n, tm_zrange *z)
{
    uintptr_t lo, hi;
    chunk_interior(p, n, tm_fix.pagesize, &lo, &hi);
    if (z && hi > lo) {
        z->lo = (char *)lo;
        z->hi = (char *)hi;
    }
}

/* The carve of [lo, newtop) reaches clean pages of the top (which ends
 * at top_end): fault in, with one call, the whole pages from lo up to
 * TM_POPULATE_AHEAD beyond newtop, which the next carves will write.
 * They are resident from now on, so top_clean moves past them (dirty
 * as far as the release goes: the decay gives them back like any
 * resident top; calloc zeroes there what it need not - they read 0).  */
static void populate_top(tm_arena *av, char *lo, char *newtop, char *top_end)
{
    uintptr_t plo = align_up((uintptr_t)lo, tm_fix.pagesize);
    uintptr_t phi = align_up((uintptr_t)newtop, tm_fix.pagesize) + TM_POPULATE_AHEAD;
    if (phi > (uintptr_t)top_end)
        phi = (uintptr_t)top_end;      /* (page aligned: release.h top_range) */
    if (phi > plo && tm_os_populate((void *)plo, phi - plo))
        av->top_clean = (char *)phi;
}

/* [victim, victim+nb) is being split off the top, which ends at top_end,
 * in pieces of `unit` bytes (nb itself for one chunk; 0: none of the
 * pages below are to be faulted in by range).  Called before the
 * split's headers are written: the first of them (the new top's, at
 * victim+nb) would fault its page in by itself.  Pieces of at most
 * TM_POPULATE_UNIT_MAX (a thread cache refill's run, a small chunk): the
 * carve or the program writes every page of them - a header every
 * piece -, and those pages and the next ones are populated in one call
 * (populate_top).  A bigger chunk may be written sparsely (a table
 * calloc'd for a few entries): its pages fault one by one, as the
 * program writes them, and only those become resident.               */
void tm_release_top_used(tm_arena *av, tm_chunk *victim, size_t nb, size_t unit, char *top_end,
                         tm_zrange *z)
{
    char *newtop = (char *)victim + nb;
    if (av->top_clean && av->top_clean < newtop + TM_HDR) {
        char *lo = (char *)chunk2mem(victim);
        if (av->top_clean > lo)
            lo = av->top_clean;
        if (av->top_clean < newtop) {    /* (else only the new top's header is clean) */
            if (z) {
                z->lo = lo;
                z->hi = newtop;
            }
            av->top_clean = newtop;
        }
        if (unit != 0 && unit <= TM_POPULATE_UNIT_MAX && TM_P(populate))
            populate_top(av, lo, newtop, top_end);
    }
}

/* A free chunk merges into top from below (av->top is still the old top):
 * the old top's header now lies inside the top, no longer clean.       */
void tm_release_top_grew(tm_arena *av)
{
    char *min = (char *)av->top + TM_HDR;
    if (av->top != (tm_chunk *)av->top_dummy && av->top_clean && av->top_clean < min)
        av->top_clean = min;
    av->top_stamp = tm_os_now_ms();
    tm_event_poke(&tm_bg_event);
}

/* Top moved or shrank: keep top_clean inside it, else forget it. */
void tm_release_top_reset(tm_arena *av)
{
    char *t = (char *)av->top, *te = t + chunksize(av->top);
    if (!av->top_clean || av->top_clean < t || av->top_clean > te)
        av->top_clean = te;
}

void tm_release_top_fresh(tm_arena *av)
{
    av->top_clean = (char *)av->top;
}

size_t tm_release_top_bytes(const tm_arena *av)
{
    if (!av->top_clean || av->top == (const tm_chunk *)av->top_dummy)
        return 0;
    char *te = (char *)av->top + chunksize(av->top);
    char *lo = (char *)align_up((uintptr_t)av->top_clean, tm_fix.pagesize);
    return te > lo ? (size_t)(te - lo) : 0;
}

/* The resident part of top beyond its first `keep` bytes, in whole pages:
 * [*lo, *hi); false if empty.                                          */
/* The resident part of top beyond its first `keep` bytes, in whole pages:
 * [*lo, *hi); false if empty.  Heap ends are page aligned (sub-heaps by
 * construction, brk segments by main_grow, trims by whole pages), so
 * the range may run to the end of top.                                 */
static bool top_range(const tm_arena *av, size_t keep, uintptr_t *lo, uintptr_t *hi)
{
    if (av->top == (const tm_chunk *)av->top_dummy || !av->top_clean)
        return false;
    size_t size = chunksize(av->top);
    if (keep >= size)                      /* also keeps the sums below from wrapping */
        return false;
    uintptr_t end = (uintptr_t)av->top + size;
    TM_ASSERT((end & (tm_fix.pagesize - 1)) == 0);
    /* Up to the page holding top_clean, inclusive: the bytes of that page
     * below top_clean may be dirty; afterwards all of [lo, end) reads 0. */
    *lo = align_up((uintptr_t)av->top + TM_META_END + keep, tm_fix.pagesize);
    *hi = align_up((uintptr_t)av->top_clean, tm_fix.pagesize);
    if (*hi > end)
        *hi = end;
    return *hi > *lo;
}

size_t tm_release_top_dirty(const tm_arena *av, size_t keep)
{
    uintptr_t lo, hi;
    return top_range(av, keep, &lo, &hi) ? hi - lo : 0;
}

size_t tm_release_top_into(tm_arena *av, size_t keep, tm_relbatch *b)
{
    uintptr_t lo, hi;
    if (!top_range(av, keep, &lo, &hi) || unlikely(tm_os_release_refused()))
        return 0;
    queue(b, lo, hi);
    av->madvise_calls++;
    av->top_clean = (char *)lo;
    return hi - lo;
}
