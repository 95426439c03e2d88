/*
 * heap.c - sub-heaps of non-main arenas.
 *
 *   heap_for_ptr(p) = p & ~(HEAP_MAX_SIZE-1)
 *   v
 *   +---------+----------+-------------------------------+.........+
 *   | tm_heap | tm_arena | chunks ...           | top     | PROT_NONE reserve
 *   +---------+----------+-------------------------------+.........+
 *   ^ the arena lives only in its first heap   h->size ^   HEAP_MAX ^
 *
 * A heap is HEAP_MAX_SIZE (64 MiB) of address space, aligned to that size
 * so that any chunk finds its heap (and arena) by masking its address.
 * It is reserved PROT_NONE and made read/write as the arena grows; when its
 * top shrinks the pages are given back, and a heap whose every chunk is
 * free is unmapped and the previous heap's top restored.
 */
#include "internal.h"

tm_heap *tm_heap_new(size_t size, size_t top_pad)
{
    if (size + top_pad < TM_HEAP_MIN_SIZE)
        size = TM_HEAP_MIN_SIZE;
    else if (size + top_pad <= TM_HEAP_MAX_SIZE)
        size += top_pad;
    else if (size > TM_HEAP_MAX_SIZE)
        return NULL;
    size = align_up(size, tm_mp.pagesize);
    void *p = tm_os_reserve_aligned(TM_HEAP_MAX_SIZE, TM_HEAP_MAX_SIZE);
    if (!p)
        return NULL;
    if (!tm_os_commit(p, size)) {
        tm_os_unmap(p, TM_HEAP_MAX_SIZE);
        return NULL;
    }
    tm_heap *h = p;
    h->ar = NULL;
    h->prev = NULL;
    h->size = size;
    h->committed = size;
    h->kind = TM_HEAP_SUB;
    h->reserved = TM_HEAP_MAX_SIZE;
    return h;
}

bool tm_heap_grow(tm_heap *h, size_t diff)
{
    diff = align_up(diff, tm_mp.pagesize);
    size_t new_size = h->size + diff;
    if (diff > TM_HEAP_MAX_SIZE || new_size > TM_HEAP_MAX_SIZE)
        return false;
    if (new_size > h->committed) {
        if (!tm_os_commit((char *)h + h->committed, new_size - h->committed))
            return false;
        h->committed = new_size;
    }
    h->size = new_size;
    return true;
}

void tm_heap_shrink(tm_heap *h, size_t new_size)
{
    tm_os_release((char *)h + new_size, h->size - new_size);
    h->size = new_size;
}

/* Fenceposts at the end of a heap whose top was retired (sysmem.c):
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
        if (unlikely(chunksize(top) != f1->prev_size))
            tm_corrupt("corrupted size vs. prev_size", top);
        tm_unlink_chunk(av, top);
    }
    set_head(top, (size_t)(end - (char *)top) | TM_PREV_INUSE);
    av->top = top;
    tm_release_top_reset(av);
}

/* Give back what a non-main arena's heaps hold free at their end. */
bool tm_heap_trim(tm_arena *av, tm_heap *h, size_t pad)
{
    bool did = false;
    /* Whole heaps that are nothing but top: unmap them. */
    while (h->prev && av->top == heap_first_chunk(h) &&
           (char *)av->top + chunksize(av->top) == heap_end(h)) {
        tm_heap *prev = h->prev;
        av->system_mem -= h->size;
        av->nheaps--;
        av->last_heap = prev;
        restore_prev_top(av, prev);
        tm_os_unmap(h, h->reserved);
        h = prev;
        did = true;
    }
    /* Then shrink the last heap down to its top's start + pad. */
    size_t top_size = chunksize(av->top);
    if (!tm_top_worth_trimming(av, top_size, pad))
        return did;
    if (top_size <= pad + TM_MINSIZE + 1)
        return did;
    size_t extra = align_down(top_size - pad - TM_MINSIZE - 1, tm_mp.pagesize);
    if (extra == 0)
        return did;
    tm_heap_shrink(h, h->size - extra);
    tm_note_trim(av);
    av->system_mem -= extra;
    set_head(av->top, (top_size - extra) | TM_PREV_INUSE);
    tm_release_top_reset(av);
    return true;
}
