/* meta.c - guarded pages for the allocator's own structures (see meta.h). */
#include "meta.h"
#include "lock.h"
#include "os.h"

#define META_SLOTS 64                /* slots per slab */

typedef struct meta_slab {
    struct meta_slab *next;
    char *base;                      /* the slab's reservation */
    uint64_t used;                   /* bit i: slot i handed out */
    unsigned committed;              /* slots [0, committed) made read/write: the
                                        lowest free slot is handed out, so the
                                        ones ever used are always such a run */
} meta_slab;

/* Slab descriptors live in a page of their own (never the heap either). */
static tm_lock meta_lock;
static meta_slab *slabs;             /* guarded by meta_lock */
static meta_slab *spare_descs;       /* unused descriptors, by next */

/* | G | slot 0 | slot 1 | ... | slot 63 | G |: a guard at each end only
 * (meta.h).  Slots are made read/write lowest first, so those ever used
 * form one run, which the kernel keeps as one mapping: a slab is at most
 * three.                                                              */
static size_t slab_bytes(void) { return (META_SLOTS + 2) * tm_fix.pagesize; }
static char *slot_at(const meta_slab *s, unsigned i)
{
    return s->base + ((size_t)i + 1) * tm_fix.pagesize;
}

static meta_slab *new_slab(void)
{
    if (!spare_descs) {
        meta_slab *d = tm_os_map(tm_fix.pagesize);
        if (!d)
            return NULL;
        size_t n = tm_fix.pagesize / sizeof *d;
        for (size_t i = 0; i < n; i++)
            d[i].next = i + 1 < n ? &d[i + 1] : NULL;
        spare_descs = d;
    }
    char *base = tm_os_reserve_aligned(slab_bytes(), tm_fix.pagesize);
    if (!base)
        return NULL;
    meta_slab *s = spare_descs;
    spare_descs = s->next;
    s->base = base;
    s->used = 0;
    s->committed = 0;
    s->next = slabs;
    slabs = s;
    return s;
}

void *tm_meta_alloc(size_t size)
{
    if (size > tm_fix.pagesize)
        return NULL;
    tm_lock_acquire(&meta_lock);
    meta_slab *s = slabs;
    while (s && s->used == UINT64_MAX)
        s = s->next;
    if (!s)
        s = new_slab();
    void *p = NULL;
    if (s) {
        unsigned i = (unsigned)__builtin_ctzll(~s->used);
        char *slot = slot_at(s, i);
        TM_ASSERT(i <= s->committed);
        if (i < s->committed || tm_os_commit(slot, tm_fix.pagesize)) {
            if (i == s->committed)
                s->committed++;
            s->used |= (uint64_t)1 << i;
            p = slot;
        }
    }
    tm_lock_release(&meta_lock);
    return p;                        /* fresh or released: reads as zero */
}

/* The slab and slot index of p, or NULL. */
static meta_slab *find(const void *p, unsigned *idx)
{
    size_t page = tm_fix.pagesize;
    for (meta_slab *s = slabs; s; s = s->next) {
        uintptr_t off = (uintptr_t)p - (uintptr_t)s->base;
        if (off >= page && off < (META_SLOTS + 1) * page && off % page == 0) {
            *idx = (unsigned)(off / page - 1);
            return s;
        }
    }
    return NULL;
}

void tm_meta_free(void *p)
{
    tm_lock_acquire(&meta_lock);
    unsigned i;
    meta_slab *s = find(p, &i);
    if (unlikely(!s || !(s->used >> i & 1))) {
        tm_lock_release(&meta_lock);
        tm_corrupt("tidemalloc: freeing metadata it did not hand out", p);
    }
    tm_os_release(p, tm_fix.pagesize);       /* reads as zero when reused */
    s->used &= ~((uint64_t)1 << i);
    tm_lock_release(&meta_lock);
}

bool tm_meta_owns(const void *p)
{
    tm_lock_acquire(&meta_lock);
    unsigned i;
    meta_slab *s = find(p, &i);
    bool ok = s && (s->used >> i & 1);
    tm_lock_release(&meta_lock);
    return ok;
}

bool tm_meta_span(const void *p, void **first, void **end)
{
    tm_lock_acquire(&meta_lock);
    unsigned i;
    meta_slab *s = find(p, &i);
    if (s) {
        *first = slot_at(s, 0);
        *end = slot_at(s, META_SLOTS);
    }
    tm_lock_release(&meta_lock);
    return s != NULL;
}

void tm_meta_fork_lock(void) { tm_lock_acquire(&meta_lock); }
void tm_meta_fork_unlock(void) { tm_lock_release(&meta_lock); }
void tm_meta_fork_child(void) { tm_lock_reinit(&meta_lock); }
