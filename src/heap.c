/* heap.c - sub-heap address space (see heap.h). */
#include "heap.h"
#include "os.h"
#include "owner.h"
#include "thp.h"

tm_heap *tm_heap_new(size_t size, size_t top_pad)
{
    if (size + top_pad < TM_HEAP_MIN_SIZE)
        size = TM_HEAP_MIN_SIZE;
    else if (size + top_pad <= TM_HEAP_SPAN && size + top_pad >= size)
        size += top_pad;
    else if (size > TM_HEAP_SPAN)
        return NULL;
    size = align_up(size, tm_fix.pagesize);
    if (size > TM_HEAP_SPAN)
        return NULL;
    char *slot = tm_os_reserve_aligned(TM_HEAP_MAX_SIZE, TM_HEAP_MAX_SIZE);
    if (!slot)
        return NULL;
    /* The guard at the slot's start stays read-only (heap.h). */
    tm_heap *h = (tm_heap *)(slot + TM_HEAP_GUARD);
    if (!tm_os_commit(h, size)) {
        tm_os_unmap(slot, TM_HEAP_MAX_SIZE);
        return NULL;
    }
    h->ar = NULL;
    h->prev = NULL;
    h->size = size;
    h->committed = size;
    h->kind = TM_HEAP_SUB;
    h->reserved = TM_HEAP_SPAN;
    tm_thp_heap_new(h, TM_HEAP_SPAN);
    tm_own_sub_add(h);
    return h;
}

static bool grow_by(tm_heap *h, size_t diff)
{
    diff = align_up(diff, tm_fix.pagesize);
    size_t new_size = h->size + diff;
    if (new_size > TM_HEAP_SPAN)
        return false;
    /* To the end of a huge page unit where heaps are advised huge
     * (thp.h tm_thp_grow_to) - the heap's size, not only its commit,
     * and within the commit too (after a shrink): a fault near the end
     * fills the whole unit, and what lies beyond the size (the top's
     * end) no release reaches - seed002's 20 sub-heaps kept 45 MB
     * resident that way after the drain.  (The span ends on a unit.)  */
    new_size = tm_thp_grow_to((uintptr_t)h, new_size);
    if (new_size > TM_HEAP_SPAN)
        new_size = TM_HEAP_SPAN;
    if (new_size > h->committed) {
        if (!tm_os_commit((char *)h + h->committed, new_size - h->committed))
            return false;
        h->committed = new_size;
    }
    heap_set_size(h, new_size);
    return true;
}

/* By top_pad beyond diff where that fits in the slot, as tm_heap_new
 * and the brk heap do (glibc grows a non-main heap by the request
 * alone); by diff alone otherwise.  A heap grown by the request alone
 * under a stream of small blocks grew a page at a time: an mprotect
 * commit a page (it takes the address space's lock for writing: every
 * other thread's page fault waits) and a populate call of one page
 * (the top ended there): wl_mleak's two threads, 8096 mprotect and
 * 8088 madvise calls in a run of 0.25 s (docs/design.md §5 "Grow").   */
bool tm_heap_grow(tm_heap *h, size_t diff, size_t top_pad)
{
    if (diff > TM_HEAP_SPAN)
        return false;
    return (top_pad != 0 && top_pad <= TM_HEAP_SPAN - diff && grow_by(h, diff + top_pad)) || grow_by(h, diff);
}

void tm_heap_shrink(tm_heap *h, size_t new_size)
{
    TM_ASSERT(new_size <= h->size && (new_size & (tm_fix.pagesize - 1)) == 0);
    tm_os_release((char *)h + new_size, h->size - new_size);
    heap_set_size(h, new_size);
}

void tm_heap_delete(tm_heap *h)
{
    tm_own_sub_del(h);
    tm_os_unmap((char *)h - TM_HEAP_GUARD, TM_HEAP_MAX_SIZE);
    tm_thp_forget((uintptr_t)h - TM_HEAP_GUARD, (uintptr_t)h - TM_HEAP_GUARD + TM_HEAP_MAX_SIZE);
}
