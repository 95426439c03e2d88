/*
 * sysmem.c - getting memory from the system and giving it back:
 * mmapped chunks, growing top (brk for the main arena, sub-heaps for the
 * others), retiring a top that cannot grow in place, and trimming.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

struct tm_mmap_stats tm_mstats;

static void note_mmap(size_t size)
{
    size_t n = atomic_fetch_add(&tm_mstats.n_mmaps, 1) + 1;
    size_t m = atomic_fetch_add(&tm_mstats.mmapped_mem, size) + size;
    size_t old = atomic_load(&tm_mstats.max_n_mmaps);
    while (n > old && !atomic_compare_exchange_weak(&tm_mstats.max_n_mmaps, &old, n)) {}
    old = atomic_load(&tm_mstats.max_mmapped_mem);
    while (m > old && !atomic_compare_exchange_weak(&tm_mstats.max_mmapped_mem, &old, m)) {}
}

/* A chunk that is a mapping of its own.  It cannot borrow the next chunk's
 * prev_size, hence nb + 8; prev_size holds the offset from the mapping's
 * start (0 here; memalign may move the chunk forward).                   */
void *tm_mmap_chunk(size_t nb)
{
    if ((long)atomic_load(&tm_mstats.n_mmaps) >= tm_mp.n_mmaps_max)
        return NULL;
    size_t size = align_up(nb + TM_SIZE_SZ, tm_mp.pagesize);
    if (size < nb)
        return NULL;
    void *mm = tm_os_map(size);
    if (!mm)
        return NULL;
    tm_chunk *p = mm;
    p->prev_size = 0;
    set_head(p, size | TM_IS_MMAPPED);
    note_mmap(size);
    return chunk2mem(p);
}

void tm_munmap_chunk(tm_chunk *p)
{
    size_t size = chunksize(p);
    uintptr_t block = (uintptr_t)p - p->prev_size;
    size_t total = p->prev_size + size;
    if (unlikely(((block | total) & (tm_mp.pagesize - 1)) != 0 || misaligned_chunk(p) ||
                 total < size || block > (uintptr_t)p))
        tm_corrupt("munmap_chunk(): invalid pointer", p);
    atomic_fetch_sub(&tm_mstats.n_mmaps, 1);
    atomic_fetch_sub(&tm_mstats.mmapped_mem, total);
    tm_os_unmap((void *)block, total);
}

tm_chunk *tm_mremap_chunk(tm_chunk *p, size_t nb)
{
    size_t offset = p->prev_size;
    size_t size = chunksize(p);
    uintptr_t block = (uintptr_t)p - offset;
    if (unlikely(((block | (size + offset)) & (tm_mp.pagesize - 1)) != 0 || misaligned_chunk(p)))
        tm_corrupt("mremap_chunk(): invalid pointer", p);
    size_t new_size = align_up(nb + offset + TM_SIZE_SZ, tm_mp.pagesize);
    if (new_size == size + offset)
        return p;
    char *cp = tm_os_remap((void *)block, size + offset, new_size);
    if (!cp)
        return NULL;
    tm_chunk *np = (tm_chunk *)(cp + offset);
    set_head(np, (new_size - offset) | TM_IS_MMAPPED);
    atomic_fetch_sub(&tm_mstats.mmapped_mem, size + offset);
    note_mmap(new_size);
    atomic_fetch_sub(&tm_mstats.n_mmaps, 1);
    return np;
}

/* The top chunk cannot grow where it is (a new heap or segment starts
 * elsewhere): free what it holds and close its heap with two fenceposts.
 *   | old top (freed) | F1: 16|P | F2: 0|P |  <- end of its heap         */
void tm_retire_top(tm_arena *av)
{
    tm_chunk *old_top = av->top;
    size_t old_size = chunksize(old_top);
    if (old_top == initial_top(av) || old_size == 0)
        return;
    size_t abit = av == &tm_main_arena ? 0 : TM_NON_MAIN;
    size_t body = old_size - 2 * TM_HDR;           /* old_size >= MINSIZE = 32 */
    tm_chunk *f1 = chunk_at(old_top, body);
    set_head(f1, TM_HDR | TM_PREV_INUSE | abit);
    set_head(chunk_at(f1, TM_HDR), 0 | TM_PREV_INUSE | abit);
    if (body >= TM_MINSIZE) {
        set_head(old_top, body | TM_PREV_INUSE | abit);
        av->top = initial_top(av);                 /* so int_free does not see it as top */
        tm_int_free(av, old_top);
    } else if (body == TM_HDR) {
        set_head(old_top, TM_HDR | TM_PREV_INUSE | abit);   /* one more fencepost */
    }
    av->top = initial_top(av);
}

/* Start using a fresh heap/segment: its first chunk becomes top. */
static void install_top(tm_arena *av, tm_heap *h)
{
    tm_chunk *top = heap_first_chunk(h);
    set_head(top, (size_t)(heap_end(h) - (char *)top) | TM_PREV_INUSE);
    av->top = top;
    av->top_clean = (char *)top;
}

/* A new heap (sub-heap) or segment becomes av's last: the old top is
 * retired and the new heap's space becomes top.  For TM_HEAP_SUB, h was
 * set up by tm_heap_new (reserved, committed).                           */
static void start_heap(tm_arena *av, tm_heap *h, size_t size, uint32_t kind)
{
    h->ar = av;
    h->prev = av->last_heap;
    h->size = size;
    if (kind != TM_HEAP_SUB) {
        h->committed = size;
        h->reserved = size;
    }
    h->kind = kind;
    av->system_mem += size;
    av->nheaps++;
    tm_retire_top(av);
    av->last_heap = h;
    install_top(av, h);
}

/* Main arena: grow top with brk; when brk cannot, start a segment of mmap
 * memory (as ptmalloc falls back to mmap as MORECORE).                    */
static bool main_grow(tm_arena *av, size_t nb)
{
    size_t page = tm_mp.pagesize;
    tm_chunk *old_top = av->top;
    size_t old_size = chunksize(old_top);
    char *old_end = (char *)old_top + old_size;
    tm_heap *seg = av->last_heap;
    size_t want = nb + tm_mp.top_pad + TM_MINSIZE;
    if (want < nb)
        return false;

    char *cur = tm_os_sbrk(0);
    if (cur != (char *)-1 && seg && seg->kind == TM_SEG_BRK && cur == old_end) {
        /* Contiguous: just extend the brk segment and its top. */
        size_t size = align_up(want - old_size, page);
        char *r = tm_os_sbrk((intptr_t)size);
        if (r == cur) {
            tm_note_regrow(av);
            seg->size += size;
            av->system_mem += size;
            set_head(old_top, (old_size + size) | TM_PREV_INUSE);
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
         * is page aligned, so it can be extended later.  If brk moves
         * between sbrk(0) and sbrk(size), the memory we got is used all
         * the same.                                                      */
        size_t size = align_up((uintptr_t)cur + sizeof(tm_heap) + TM_ALIGNMENT + want, page) -
                      (uintptr_t)cur;
        char *r = tm_os_sbrk((intptr_t)size);
        if (r != (char *)-1) {
            tm_heap *h = (tm_heap *)align_up((uintptr_t)r, TM_ALIGNMENT);
            start_heap(av, h, (size_t)(r + size - (char *)h), TM_SEG_BRK);
            return true;
        }
    }
    /* brk failed: an mmap segment. */
    size_t size = align_up(want + sizeof(tm_heap) + TM_ALIGNMENT, page);
    if (size < TM_MMAP_AS_MORECORE_SIZE)
        size = TM_MMAP_AS_MORECORE_SIZE;
    tm_heap *h = tm_os_map(size);
    if (!h)
        return false;
    start_heap(av, h, size, TM_SEG_MMAP);
    return true;
}

static bool sub_grow(tm_arena *av, size_t nb)
{
    tm_chunk *old_top = av->top;
    size_t old_size = chunksize(old_top);
    tm_heap *h = av->last_heap;
    size_t old_hsize = h->size;
    if (tm_heap_grow(h, TM_MINSIZE + nb - old_size)) {
        tm_note_regrow(av);
        av->system_mem += h->size - old_hsize;
        set_head(old_top, (size_t)(heap_end(h) - (char *)old_top) | TM_PREV_INUSE);
        return true;
    }
    tm_heap *nh = tm_heap_new(nb + TM_MINSIZE + sizeof(tm_heap) + TM_ALIGNMENT, tm_mp.top_pad);
    if (!nh)
        return false;
    start_heap(av, nh, nh->size, TM_HEAP_SUB);
    return true;
}

/* Top is too small for nb: mmap the chunk, or grow top and split it. */
void *tm_sysmalloc(tm_arena *av, size_t nb)
{
    bool tried_mmap = false;
    if (nb >= tm_mp.mmap_threshold) {
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
    if (size >= nb + TM_MINSIZE) {
        tm_chunk *rem = chunk_at(top, nb);
        av->top = rem;
        set_head(top, nb | TM_PREV_INUSE | (av == &tm_main_arena ? 0 : TM_NON_MAIN));
        set_head(rem, (size - nb) | TM_PREV_INUSE);
        tm_release_top_used(av, top, nb);
        return chunk2mem(top);
    }
    errno = ENOMEM;
    return NULL;
}

void tm_note_trim(tm_arena *av)
{
    av->last_trim_ms = tm_os_now_ms();
}

void tm_note_regrow(tm_arena *av)
{
    if (tm_mp.no_dyn_threshold || !av->last_trim_ms)
        return;
    if (tm_os_now_ms() - av->last_trim_ms < 1000) {
        size_t f = tm_trim_threshold(av) * 2;
        av->trim_floor = f < TM_TRIM_FLOOR_MAX ? f : TM_TRIM_FLOOR_MAX;
    }
    av->last_trim_ms = 0;
}

/* Main arena: give the top's excess back with a negative brk. */
bool tm_systrim(tm_arena *av, size_t pad)
{
    tm_heap *seg = av->last_heap;
    if (!seg || seg->kind != TM_SEG_BRK)
        return false;
    size_t top_size = chunksize(av->top);
    if (top_size <= pad + TM_MINSIZE + 1)
        return false;
    size_t extra = align_down(top_size - pad - TM_MINSIZE - 1, tm_mp.pagesize);
    if (extra == 0)
        return false;
    char *top_end = (char *)av->top + top_size;
    if (tm_os_sbrk(0) != top_end)   /* someone else moved brk: leave it */
        return false;
    int saved = errno;
    tm_os_sbrk(-(intptr_t)extra);
    char *now = tm_os_sbrk(0);
    errno = saved;
    if (now == (char *)-1 || now >= top_end)
        return false;
    size_t released = (size_t)(top_end - now);
    tm_note_trim(av);
    seg->size -= released;
    av->system_mem -= released;
    set_head(av->top, (top_size - released) | TM_PREV_INUSE);
    tm_release_top_reset(av);
    return true;
}

/* malloc_trim for one arena: consolidate, shrink top, release free pages. */
int tm_trim_arena(tm_arena *av, size_t pad)
{
    tm_remote_drain_all(av);
    tm_consolidate(av);
    bool did;
    if (av == &tm_main_arena)
        did = tm_systrim(av, pad);
    else
        did = tm_heap_trim(av, av->last_heap, pad);
    if (tm_release_all(av, pad))
        did = true;
    return did;
}
