/* sysmem.c - growing and trimming arenas, mmapped chunks (see sysmem.h). */
#include <errno.h>
#include <string.h>
#include "bins.h"
#include "heap.h"
#include "os.h"
#include "owner.h"
#include "release.h"
#include "sysmem.h"
#include "thp.h"

struct tm_mmap_stats tm_mstats;

/* ---- mmapped chunks ----------------------------------------------------- */
static void note_mmap(size_t size)
{
    size_t n = atomic_fetch_add(&tm_mstats.n_mmaps, 1) + 1;
    size_t m = atomic_fetch_add(&tm_mstats.mmapped_mem, size) + size;
    size_t old = atomic_load(&tm_mstats.max_n_mmaps);
    while (n > old && !atomic_compare_exchange_weak(&tm_mstats.max_n_mmaps, &old, n)) {}
    old = atomic_load(&tm_mstats.max_mmapped_mem);
    while (m > old && !atomic_compare_exchange_weak(&tm_mstats.max_mmapped_mem, &old, m)) {}
}

/* It cannot borrow the next chunk's prev_size, hence nb + 8; prev_size
 * holds the offset from the mapping's start (0 here; memalign may move
 * the chunk forward).  In the strong mode (harden.h) the mapping has one
 * more page, PROT_NONE, after the chunk (TM_MMAP_GUARD): a linear overflow
 * faults there.  It is not counted in the statistics.                   */
void *tm_mmap_chunk(size_t nb)
{
    if ((long)atomic_load(&tm_mstats.n_mmaps) >= TM_P(n_mmaps_max))
        return NULL;
    size_t size = align_up(nb + TM_SIZE_SZ, tm_fix.pagesize);
    size_t guard = TM_P(harden) ? tm_fix.pagesize : 0;
    if (size < nb || size + guard < size)
        return NULL;
    char *mm = tm_os_map(size + guard);
    if (!mm)
        return NULL;
    if (guard && !tm_os_guard(mm + size, guard)) {
        tm_os_unmap(mm, size + guard);
        return NULL;
    }
    tm_thp_mapped(mm, size);
    tm_chunk *p = (tm_chunk *)mm;
    p->prev_size = 0;
    set_head(p, size | TM_IS_MMAPPED | (guard ? TM_MMAP_GUARD : 0));
    /* The registry holds the whole mapping, guard page included: the
     * checks validate a free against it, and the heap map (observe.c)
     * finds mapped chunks there - also without the checks: a lock and a
     * hash slot per mapping, beside an mmap.                           */
    if (!tm_own_mmap_add(p, (uintptr_t)mm, size + guard)) {
        tm_os_unmap(mm, size + guard);
        return NULL;
    }
    note_mmap(size);
    return chunk2mem(p);
}

/* The mapping of the mmapped chunk p, *block and *total, validated: the
 * header (size, offset) must agree with what was mapped (the registry,
 * TIDE_CHECKS) and its checksum hold; else `who` and abort.          */
static void mmapped_extent(tm_chunk *p, const char *who, uintptr_t *block, size_t *total)
{
    size_t size = chunksize(p);
    *block = (uintptr_t)p - p->prev_size;
    *total = p->prev_size + size;
    if (unlikely(((*block | *total) & (tm_fix.pagesize - 1)) != 0 || misaligned_chunk(p) ||
                 *total < size || *block > (uintptr_t)p))
        tm_corrupt(who, chunk2mem(p));
#if TIDE_CHECKS
    uintptr_t rb;
    size_t rl;
    /* P of an mmapped chunk = guard page (chunk.h), outside the checksum:
     * the registry's length, guard included, must agree with it.       */
    size_t guard = chunk_mmap_guarded(p) ? tm_fix.pagesize : 0;
    if (unlikely(!tm_own_mmap_find(p, &rb, &rl) || rb != *block || rl != *total + guard ||
                 !chunk_hdr_ok(p, TM_ST_INUSE) || !chunk_is_mmapped(p)))
        tm_corrupt(who, chunk2mem(p));
#endif
}

void tm_munmap_chunk(tm_chunk *p)
{
    uintptr_t block;
    size_t total;
    mmapped_extent(p, "munmap_chunk(): invalid pointer", &block, &total);
    tm_own_mmap_del(p);
    atomic_fetch_sub(&tm_mstats.n_mmaps, 1);
    atomic_fetch_sub(&tm_mstats.mmapped_mem, total);
    tm_os_unmap((void *)block, total + (chunk_mmap_guarded(p) ? tm_fix.pagesize : 0));
}

void tm_mmap_chunk_moved(tm_chunk *old, tm_chunk *newp)
{
    uintptr_t b;
    size_t l;
    if (tm_own_mmap_find(old, &b, &l)) {
        tm_own_mmap_del(old);
        tm_own_mmap_add(newp, b, l);     /* cannot fail: a slot was just freed */
    }
}

void tm_munmap_chunk_dyn(tm_chunk *p)
{
    /* glibc's dynamic threshold: a freed mmapped chunk raises the mmap
     * threshold past its size (glibc: to its size; here
     * TM_DYN_MMAP_MARGIN times it, up to 32 MiB: config.h) and the trim
     * threshold to twice that, so programs that repeatedly allocate big
     * blocks stop paying for mmap/munmap.  (A trim threshold of twice
     * the size trimmed the blocks between two and four times it at
     * every free: a top that churns.)  Two relaxed stores: a reader may
     * see one without the other, which only delays the effect (params.h). */
    size_t size = chunksize(p);
    if (!TM_P(no_dyn_threshold) && size > TM_P(mmap_threshold) &&
        size <= TM_DEFAULT_MMAP_THRESHOLD_MAX) {
        size_t t = TM_DEFAULT_MMAP_THRESHOLD_MAX / TM_DYN_MMAP_MARGIN < size
                       ? TM_DEFAULT_MMAP_THRESHOLD_MAX
                       : size * TM_DYN_MMAP_MARGIN;
        TM_P_SET(mmap_threshold, t);
        TM_P_SET(trim_threshold, 2 * t);
    }
    tm_munmap_chunk(p);
}

tm_chunk *tm_mremap_chunk(tm_chunk *p, size_t nb)
{
    size_t offset = p->prev_size;
    size_t size = chunksize(p);
    uintptr_t block;
    size_t total;
    mmapped_extent(p, "mremap_chunk(): invalid pointer", &block, &total);
    size_t new_size = align_up(nb + offset + TM_SIZE_SZ, tm_fix.pagesize);
    if (new_size == size + offset)
        return p;
    size_t ps = tm_fix.pagesize, guard = chunk_mmap_guarded(p) ? ps : 0;
    char *old_guard = (char *)block + size + offset;
    /* mremap cannot span the data and guard mappings: make the guard one
     * with the data, move both, and guard the new last page.           */
    if (guard && !tm_os_commit(old_guard, guard))
        return NULL;
    char *cp = tm_os_remap((void *)block, size + offset + guard, new_size + guard);
    if (!cp) {
        if (guard)
            tm_os_guard(old_guard, guard);
        return NULL;
    }
    if (guard)   /* on failure (no VMA left) the page stays readable, still ours */
        (void)tm_os_guard(cp + new_size, guard);
    tm_chunk *np = (tm_chunk *)(cp + offset);
    set_head(np, (new_size - offset) | TM_IS_MMAPPED | (guard ? TM_MMAP_GUARD : 0));
    tm_own_mmap_del(p);
    tm_own_mmap_add(np, (uintptr_t)cp, new_size + guard);   /* cannot fail: a slot was just freed */
    atomic_fetch_sub(&tm_mstats.mmapped_mem, size + offset);
    note_mmap(new_size);
    atomic_fetch_sub(&tm_mstats.n_mmaps, 1);
    return np;
}

/* ---- growing ------------------------------------------------------------ */
static void note_trim(tm_arena *av, size_t bytes)
{
    av->last_trim_ms = tm_os_now_ms();
    av->last_trim_bytes = bytes;
}

static void note_regrow(tm_arena *av)
{
    if (TM_P(no_dyn_threshold) || !av->last_trim_ms)
        return;
    if (tm_os_now_ms() - av->last_trim_ms < 1000) {
        /* With the floor at its ceiling, or after a trim of more than
         * the ceiling, the top churns beyond what a floor may keep. */
        if (av->trim_floor >= TM_TRIM_FLOOR_MAX || av->last_trim_bytes > TM_TRIM_FLOOR_MAX) {
            av->trim_by_decay = true;     /* (sysmem.h) */
            if (TM_P(decay_ms) >= 0)      /* (a thread that would release nothing: no) */
                atomic_store_explicit(&tm_solo_bg_wanted, true, memory_order_relaxed);
        }
        size_t f = tm_trim_threshold(av) * 2;
        av->trim_floor = f < TM_TRIM_FLOOR_MAX ? f : TM_TRIM_FLOOR_MAX;
    }
    av->last_trim_ms = 0;
}

/* The top chunk cannot grow where it is (a new heap or segment starts
 * elsewhere): free what it holds and close its heap with two fenceposts.
 *   | old top (freed) | F1: 16|P | F2: 0|P |  <- end of its heap         */
static void retire_top(tm_arena *av)
{
    tm_chunk *old_top = av->top;
    size_t old_size = chunksize(old_top);
    if (old_top == initial_top(av) || old_size == 0)
        return;
    size_t abit = arena_bit(av);
    size_t body = old_size - 2 * TM_HDR;           /* old_size >= MINSIZE = 32 */
    tm_chunk *f1 = chunk_at(old_top, body);
    set_head(f1, TM_HDR | TM_PREV_INUSE | abit);
    set_head(chunk_at(f1, TM_HDR), 0 | TM_PREV_INUSE | abit);
    av->top = initial_top(av);                     /* the body is not top any more */
    if (body >= TM_MINSIZE) {
        set_head(old_top, body | TM_PREV_INUSE | abit);
        tm_bins_free(av, old_top, &body, false, "corrupted size vs. prev_size while consolidating",
                     "free(): corrupted unsorted chunks");
    } else if (body == TM_HDR) {
        set_head(old_top, TM_HDR | TM_PREV_INUSE | abit);   /* one more fencepost */
    }
    av->top = initial_top(av);
}

/* Start using a fresh heap/segment: its first chunk becomes top. */
static void install_top(tm_arena *av, tm_heap *h)
{
    tm_chunk *top = heap_first_chunk(h);
    set_head_top(top, (size_t)(heap_end(h) - (char *)top) | TM_PREV_INUSE);
    av->top = top;
    tm_release_top_fresh(av);
}

/* av->own_lo/own_span16 (internal.h), after anything that changes
 * av->last_heap or the brk range: the link checks' first test.  A
 * sub-heap's whole slot from its first chunk on (its size does not
 * matter: the reserve beyond it reads as zeros), 64 bytes short of the
 * slot's end, so that what a link check reads after it (a chunk's
 * first 48 bytes) stays inside; the brk range as registered (owner.c),
 * which only the main arena's lock holder changes.                    */
static void set_own_range(tm_arena *av)
{
    const tm_heap *h = av->last_heap;
    if (h && h->kind == TM_HEAP_SUB) {
        uintptr_t lo = (uintptr_t)heap_first_chunk(h);
        uintptr_t end = ((uintptr_t)h & ~(uintptr_t)(TM_HEAP_MAX_SIZE - 1)) + TM_HEAP_MAX_SIZE - TM_OWN_RANGE_TAIL;
        av->own_lo = lo;
        av->own_span16 = (end - lo) >> 4;
    } else if (h && h->kind == TM_SEG_BRK) {
        av->own_lo = atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
        av->own_span16 = atomic_load_explicit(&tm_own.main_span16, memory_order_relaxed);
    } else {
        av->own_span16 = 0;
    }
}

/* A new heap (sub-heap) or segment becomes av's last: the old top is
 * retired and the new heap's space becomes top.  For TM_HEAP_SUB, h was
 * set up by tm_heap_new (reserved, committed).                           */
static void start_heap(tm_arena *av, tm_heap *h, size_t size, uint32_t kind)
{
    heap_set_ar(h, av);
    h->prev = av->last_heap;
    heap_set_size(h, size);
    if (kind != TM_HEAP_SUB) {
        h->committed = size;
        h->reserved = size;
    }
    h->kind = kind;
    if (kind == TM_SEG_BRK)     /* (from the first chunk on: owner.h tm_own_fast_in_heaps) */
        tm_own_main_brk((uintptr_t)heap_first_chunk(h), (uintptr_t)h + size);
    av->system_mem += size;
    av->nheaps++;
    retire_top(av);
    av->last_heap = h;
    set_own_range(av);
    install_top(av, h);
}

tm_arena *tm_sys_new_arena(void)
{
    size_t need = sizeof(tm_heap) + sizeof(tm_arena) + TM_ALIGNMENT + TM_MINSIZE;
    tm_heap *h = tm_heap_new(need, TM_P(top_pad));
    if (!h)
        h = tm_heap_new(need, 0);
    if (!h)
        return NULL;
    tm_arena *av = (tm_arena *)(h + 1);
    memset(av, 0, sizeof *av);
    tm_bins_init(av);
    heap_set_ar(h, av);
    av->last_heap = h;
    set_own_range(av);
    av->nheaps = 1;
    av->system_mem = av->max_system_mem = h->size;
    install_top(av, h);
    return av;
}

static bool sub_grow(tm_arena *av, size_t nb);

/* Main arena: grow top with brk; when brk cannot, go on in sub-heaps.  */
static bool main_grow(tm_arena *av, size_t nb)
{
    size_t page = tm_fix.pagesize;
    tm_chunk *old_top = av->top;
    size_t old_size = chunksize(old_top);
    char *old_end = (char *)old_top + old_size;
    tm_heap *seg = av->last_heap;
    size_t want = nb + TM_P(top_pad) + TM_MINSIZE;
    if (want < nb)
        return false;

    /* Once brk has failed, the arena stays in sub-heaps until trimming
     * brings it back to its brk segment (sub_trim): a brk segment after
     * a sub-heap would be retired to fenceposts and never trimmed.     */
    if (seg && seg->kind == TM_HEAP_SUB)
        return sub_grow(av, nb);
    char *cur = tm_os_sbrk(0);
    if (cur != (char *)-1 && seg && seg->kind == TM_SEG_BRK && cur == old_end) {
        /* Contiguous: just extend the brk segment and its top. */
        size_t size = tm_thp_grow_to((uintptr_t)cur, align_up(want - old_size, page));
        char *r = tm_os_sbrk((intptr_t)size);
        if (r == cur) {
            tm_thp_heap_new(r, size);
            note_regrow(av);
            seg->size += size;
            tm_own_main_brk((uintptr_t)heap_first_chunk(seg), (uintptr_t)heap_end(seg));
            set_own_range(av);
            av->system_mem += size;
            set_head_top(old_top, (old_size + size) | TM_PREV_INUSE);
            return true;
        }
        /* Another thread moved brk between our two calls: take the piece
         * back if it is still at the end, then start a new segment.     */
        if (r != (char *)-1 && tm_os_sbrk(0) == r + size)
            tm_os_sbrk(-(intptr_t)size);
        cur = tm_os_sbrk(0);
    }
    if (cur != (char *)-1) {
        /* First growth, or brk moved under us: a new brk segment whose end
         * is page aligned, so it can be extended later and its last page
         * released whole.  If brk moves between sbrk(0) and sbrk(size),
         * the memory we got is used all the same, up to its last whole
         * page (the partial page beyond is left alone).                 */
        size_t size = tm_thp_grow_to((uintptr_t)cur, align_up((uintptr_t)cur + sizeof(tm_heap) + TM_ALIGNMENT + want,
                                                              page) - (uintptr_t)cur);
        char *r = tm_os_sbrk((intptr_t)size);
        if (r != (char *)-1) {
            tm_thp_heap_new(r, size);
            tm_heap *h = (tm_heap *)align_up((uintptr_t)r, TM_ALIGNMENT);
            char *end = (char *)align_down((uintptr_t)(r + size), page);
            if (end > (char *)h + sizeof(tm_heap) + TM_ALIGNMENT + nb + TM_MINSIZE) {
                start_heap(av, h, (size_t)(end - (char *)h), TM_SEG_BRK);
                return true;
            }
        }
    }
    /* brk failed: continue in sub-heaps, as a non-main arena does (an
     * aligned reservation committed as it grows; ptmalloc maps 1 MiB
     * segments instead).  Their slots are in the ownership bitmap, so a
     * pointer into them is told ours in O(1) however many there are.    */
    tm_heap *nh = tm_heap_new(nb + TM_MINSIZE + sizeof(tm_heap) + TM_ALIGNMENT, TM_P(top_pad));
    if (!nh)
        return false;
    start_heap(av, nh, nh->size, TM_HEAP_SUB);
    return true;
}

static bool sub_grow(tm_arena *av, size_t nb)
{
    tm_chunk *old_top = av->top;
    size_t old_size = chunksize(old_top);
    tm_heap *h = av->last_heap;
    size_t old_hsize = h->size;
    if (tm_heap_grow(h, TM_MINSIZE + nb - old_size, TM_P(top_pad))) {
        note_regrow(av);
        av->system_mem += h->size - old_hsize;
        set_head_top(old_top, (size_t)(heap_end(h) - (char *)old_top) | TM_PREV_INUSE);
        return true;
    }
    tm_heap *nh = tm_heap_new(nb + TM_MINSIZE + sizeof(tm_heap) + TM_ALIGNMENT, TM_P(top_pad));
    if (!nh)
        return false;
    start_heap(av, nh, nh->size, TM_HEAP_SUB);
    return true;
}

void *tm_sysmalloc(tm_arena *av, size_t nb, size_t unit, tm_zrange *z)
{
    bool tried_mmap = false;
    if (nb >= TM_P(mmap_threshold)) {
        void *mem = tm_mmap_chunk(nb);
        if (mem)
            return mem;
        tried_mmap = true;
    }
    bool grown = av == &tm_main_arena ? main_grow(av, nb) : sub_grow(av, nb);
    if (!grown && !tried_mmap) {
        void *mem = tm_mmap_chunk(nb);
        if (mem)
            return mem;
    }
    if (av->system_mem > av->max_system_mem)
        av->max_system_mem = av->system_mem;

    tm_chunk *top = av->top;
    size_t size = chunksize(top);
    TM_ASSERT(!grown || (char *)top + size == heap_end(av->last_heap));
    if (size >= nb + TM_MINSIZE) {
        tm_chunk *rem = chunk_at(top, nb);
        tm_release_top_used(av, top, nb, unit, (char *)top + size, z);
        av->top = rem;
        set_head(top, nb | TM_PREV_INUSE | arena_bit(av));
        set_head_top(rem, (size - nb) | TM_PREV_INUSE);
        return chunk2mem(top);
    }
    errno = ENOMEM;
    return NULL;
}

/* ---- trimming ----------------------------------------------------------- */
/* Bytes of top beyond pad (and a minimal top) that whole pages make up;
 * 0 if none.  Written without additions, so pad near SIZE_MAX means
 * "keep everything".                                                     */
static size_t trimmable(size_t top_size, size_t pad)
{
    if (top_size <= pad || top_size - pad <= TM_MINSIZE + 1)
        return 0;
    return align_down(top_size - pad - TM_MINSIZE - 1, tm_fix.pagesize);
}

/* The registered end of the main arena's last brk segment (first chunk
 * seg_lo) moves from `from` to `to`, down or up. */
static void own_brk_move(uintptr_t seg_lo, char *from, char *to)
{
    if (to < from)
        tm_own_main_brk_trim((uintptr_t)from, (uintptr_t)to);
    else if (to > from)
        tm_own_main_brk(seg_lo, (uintptr_t)to);
}

/* Main arena: give the top's excess back with a negative brk. */
static bool main_trim(tm_arena *av, size_t pad)
{
    tm_heap *seg = av->last_heap;
    if (!seg || seg->kind != TM_SEG_BRK)
        return false;
    size_t top_size = chunksize(av->top);
    size_t extra = trimmable(top_size, pad);
    if (extra == 0)
        return false;
    char *top_end = (char *)av->top + top_size;
    if (tm_os_sbrk(0) != top_end)   /* someone else moved brk: leave it */
        return false;
    /* The registries give the pages up before the kernel takes them, as
     * tm_heap_delete does for a sub-heap: a free of a stale pointer into
     * them, racing with this trim in another thread, must find them not
     * ours before they stop being mapped (after, its header read would
     * fault: SIGSEGV instead of the named abort).  What remains is the
     * race of every ownership test with a trim: the few instructions
     * between the free's range test and its header load (owner.h).    */
    uintptr_t seg_lo = (uintptr_t)heap_first_chunk(seg);
    char *want = top_end - extra;
    own_brk_move(seg_lo, top_end, want);
    int saved = errno;
    tm_os_sbrk(-(intptr_t)extra);
    char *now = tm_os_sbrk(0);
    errno = saved;
    if (now == (char *)-1 || now >= top_end) {
        own_brk_move(seg_lo, want, top_end);              /* nothing went: ours again */
        set_own_range(av);
        return false;
    }
    tm_thp_forget((uintptr_t)now, (uintptr_t)top_end);
    own_brk_move(seg_lo, want, now);  /* (brk moved by someone else meanwhile: as glibc, `now` is the end) */
    size_t released = (size_t)(top_end - now);
    note_trim(av, released);
    seg->size -= released;
    set_own_range(av);
    av->system_mem -= released;
    set_head_top(av->top, (top_size - released) | TM_PREV_INUSE);
    tm_release_top_reset(av);
    return true;
}

/* Fenceposts at the end of a heap whose top was retired:
 *   ... | old top, freed | F1: 16|P | F2: 0|P |   <- heap end
 * Restoring: the chunk before F1 (if free) plus F1 and F2 become top.   */
static void restore_prev_top(tm_arena *av, tm_heap *prev)
{
    char *end = heap_end(prev);
    tm_chunk *f1 = (tm_chunk *)(end - 2 * TM_HDR);
    if (unlikely(chunksize(f1) != TM_HDR || chunksize((tm_chunk *)(end - TM_HDR)) != 0))
        tm_corrupt("heap_trim(): corrupted fencepost", f1);
    tm_chunk *top = f1;
    if (!prev_inuse(f1)) {
        top = prev_chunk(f1);
        if (unlikely(!tm_free_chunk_ok(av, top) || chunksize(top) != f1->prev_size))
            tm_corrupt("corrupted size vs. prev_size", top);
        tm_bins_unlink(av, top);
    }
    set_head_top(top, (size_t)(end - (char *)top) | TM_PREV_INUSE);
    av->top = top;
    tm_release_top_reset(av);
}

/* Non-main arena: unmap heaps that hold nothing but top, then shrink the
 * last heap down to its top's start + pad.                              */
static bool sub_trim(tm_arena *av, size_t pad)
{
    bool did = false;
    tm_heap *h = av->last_heap;
    while (h->kind == TM_HEAP_SUB && h->prev && av->top == heap_first_chunk(h) &&
           (char *)av->top + chunksize(av->top) == heap_end(h)) {
        tm_heap *prev = h->prev;
        av->system_mem -= h->size;
        av->nheaps--;
        av->last_heap = prev;
        set_own_range(av);
        restore_prev_top(av, prev);
        tm_heap_delete(h);
        h = prev;
        did = true;
    }
    if (h->kind != TM_HEAP_SUB)        /* the main arena back in brk */
        return main_trim(av, pad) || did;
    size_t top_size = chunksize(av->top);
    if (top_size <= pad || top_size - pad < tm_trim_threshold(av))
        return did;
    size_t extra = trimmable(top_size, pad);
    if (extra == 0)
        return did;
    tm_heap_shrink(h, h->size - extra);
    note_trim(av, extra);
    av->system_mem -= extra;
    set_head_top(av->top, (top_size - extra) | TM_PREV_INUSE);
    tm_release_top_reset(av);
    return true;
}

/* The top churns and the background thread gives it back by time
 * (sysmem.h): no trim at free time but after a drain to an eighth of
 * the mark (TM_CHURN_DRAIN_DEPTH), counted without the top (whose
 * resident bytes count as `other` until then).
 * In a process of one arena only: each arena's kept top adds to the
 * process's peak (seed002, 8 arenas: peak RSS +2-3 % over 4 runs, its
 * request rate within the noise).  Not with decay_ms = -1 ("never"):
 * nothing would give the top back by time, and trimming is then the
 * only release there is.                                             */
static bool trim_deferred(const tm_arena *av)
{
    if (likely(!av->trim_by_decay) || !atomic_load_explicit(&tm_bg_active, memory_order_relaxed) ||
        atomic_load_explicit(&tm_narenas, memory_order_relaxed) > 1 || TM_P(decay_ms) < 0)
        return false;
    size_t other = tm_release_other(av), top = chunksize(av->top);
    return !tm_release_drained_to(av, other > top ? other - top : 0, TM_CHURN_DRAIN_DEPTH);
}

bool tm_sys_trim(tm_arena *av, size_t pad, bool force)
{
    if (!force && trim_deferred(av))
        return false;
    if (av == &tm_main_arena) {
        size_t top_size = chunksize(av->top);
        /* Trim when what would be given back (beyond the pad) reaches the
         * threshold: trimming as soon as top passes the threshold gives
         * back a page or two at a time, only to grow again.            */
        if (!force && (top_size <= pad || top_size - pad < tm_trim_threshold(av)))
            return false;
        if (av->last_heap && av->last_heap->kind == TM_HEAP_SUB)
            return sub_trim(av, pad);   /* grown in sub-heaps since brk failed */
        return main_trim(av, pad);
    }
    return sub_trim(av, pad);
}
