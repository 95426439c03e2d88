/* owner.c - the ownership registries (see owner.h). */
#include "owner.h"
#include "heap.h"
#include "os.h"

struct tm_own_fast tm_own;
_Atomic uint8_t tm_own_sub[TM_OWN_SUB_SLOTS];

/* ---- main arena ------------------------------------------------------------ */
/* The brk segments themselves, for tm_own_classify: a foreign sbrk between
 * two of them leaves a gap inside [main_lo, main_hi) that is not ours.
 * Written by the main arena's lock holder, read by anyone: relaxed
 * atomics, the count published last.  Beyond TM_OWN_BRK_SEGS segments
 * (a program that keeps moving brk itself) the last entry stretches to
 * cover the rest.                                                      */
#define TM_OWN_BRK_SEGS 32
static struct { _Atomic uintptr_t lo, hi; } brk_segs[TM_OWN_BRK_SEGS];
static _Atomic unsigned brk_nsegs;

static void ranges_clear(uintptr_t lo, uintptr_t hi);

/* The range's span, in both forms (owner.h: lo is written before). */
static void set_span(uintptr_t span)
{
    atomic_store_explicit(&tm_own.main_span, span, memory_order_release);
    atomic_store_explicit(&tm_own.main_span16, span >> 4, memory_order_release);
}

/* The hit paths' range (owner.h tm_own.fast_lo/fast16) after the segment
 * table changed: the first segment (brk_segs[0]), from its first chunk to
 * its end.  Its start is the first segment's, written once when that
 * segment is registered and never moved (so no reader can pair a new
 * start with an old span); later segments, above or below it, leave it
 * as it is, and the memory between two segments (a foreign sbrk's, a
 * new header) stays outside.  Growth is published after the memory is
 * ours, a trim before the caller's ranges_clear; a racing reader sees
 * the old or the new span of the same start, as with the main range. */
static void set_fast(void)
{
    uintptr_t lo = atomic_load_explicit(&tm_own.fast_lo, memory_order_relaxed);
    uintptr_t hi = atomic_load_explicit(&brk_segs[0].hi, memory_order_relaxed);
    atomic_store_explicit(&tm_own.fast16, hi > lo ? (hi - lo) >> 4 : 0, memory_order_release);
}

void tm_own_main_brk(uintptr_t lo, uintptr_t hi)
{
    TM_ASSERT((lo & 15) == 0);       /* (tm_own_aligned_in_heaps) */
    uintptr_t cur_lo = atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
    uintptr_t cur_span = atomic_load_explicit(&tm_own.main_span, memory_order_relaxed);
    uintptr_t cur_hi = cur_lo + cur_span;
    if (cur_span == 0 || lo < cur_lo) {
        /* (lo down, span up: see tm_own_fast for the order) */
        uintptr_t new_hi = cur_span == 0 || hi > cur_hi ? hi : cur_hi;
        atomic_store_explicit(&tm_own.main_lo, lo, memory_order_relaxed);
        set_span(new_hi - lo);
    } else if (hi > cur_hi) {
        set_span(hi - cur_lo);
    }
    unsigned n = atomic_load_explicit(&brk_nsegs, memory_order_relaxed);
    for (unsigned i = n; i-- > 0;)
        if (atomic_load_explicit(&brk_segs[i].lo, memory_order_relaxed) == lo) {
            atomic_store_explicit(&brk_segs[i].hi, hi, memory_order_relaxed);   /* grown */
            set_fast();
            return;
        }
    if (n < TM_OWN_BRK_SEGS) {
        if (n == 0)
            atomic_store_explicit(&tm_own.fast_lo, lo, memory_order_relaxed);   /* (once: set_fast) */
        atomic_store_explicit(&brk_segs[n].lo, lo, memory_order_relaxed);
        atomic_store_explicit(&brk_segs[n].hi, hi, memory_order_relaxed);
        atomic_store_explicit(&brk_nsegs, n + 1, memory_order_release);
    } else if (hi > atomic_load_explicit(&brk_segs[n - 1].hi, memory_order_relaxed)) {
        atomic_store_explicit(&brk_segs[n - 1].hi, hi, memory_order_relaxed);
    }
    set_fast();
}

void tm_own_main_brk_trim(uintptr_t old_hi, uintptr_t new_hi)
{
    /* (A trim down to or below lo leaves an empty range: new_hi - lo
     * would wrap to a span that takes every address for ours.)        */
    uintptr_t lo = atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
    if (lo + atomic_load_explicit(&tm_own.main_span, memory_order_relaxed) == old_hi)
        set_span(new_hi > lo ? new_hi - lo : 0);
    unsigned n = atomic_load_explicit(&brk_nsegs, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        if (atomic_load_explicit(&brk_segs[i].hi, memory_order_relaxed) == old_hi)
            atomic_store_explicit(&brk_segs[i].hi, new_hi, memory_order_relaxed);
    set_fast();
    ranges_clear(new_hi, old_hi);     /* (after the registries: owner.h) */
}

/* Inside one of the brk segments (a is within [main_lo, main_hi)). */
static bool in_brk_segment(uintptr_t a)
{
    unsigned n = atomic_load_explicit(&brk_nsegs, memory_order_acquire);
    for (unsigned i = n; i-- > 0;)
        if (a >= atomic_load_explicit(&brk_segs[i].lo, memory_order_relaxed) &&
            a < atomic_load_explicit(&brk_segs[i].hi, memory_order_relaxed))
            return true;
    return n == 0;
}

/* ---- sub-heaps -------------------------------------------------------------- */
void tm_own_sub_add(const void *h)
{
    uintptr_t g = (uintptr_t)h >> TM_OWN_SUB_SHIFT;
    if (g < (uintptr_t)TM_OWN_SUB_SLOTS)
        atomic_store_explicit(&tm_own_sub[g], 1, memory_order_relaxed);
}

void tm_own_sub_del(const void *h)
{
    uintptr_t g = (uintptr_t)h >> TM_OWN_SUB_SHIFT;
    if (g < (uintptr_t)TM_OWN_SUB_SLOTS)
        atomic_store_explicit(&tm_own_sub[g], 0, memory_order_relaxed);
    ranges_clear(g << TM_OWN_SUB_SHIFT, (g + 1) << TM_OWN_SUB_SHIFT);
}

/* ---- mmapped chunks: linear probing, backward-shift deletion ------------------ */
struct own_slot { uintptr_t key, block; size_t len; };   /* key 0: empty */
static tm_lock set_lock = TM_LOCK_INIT;
static struct own_slot *set_tab;
static size_t set_cap, set_n;          /* cap: a power of two, or 0 */
static __thread bool tls_fork_holder __attribute__((tls_model("initial-exec")));

static void set_acquire(void)
{
    if (!tls_fork_holder)
        tm_lock_acquire(&set_lock);
}
static void set_release(void)
{
    if (!tls_fork_holder)
        tm_lock_release(&set_lock);
}

/* ---- the threads' own ranges (owner.h), under the set's lock ------------ */
static tm_own_range *range_head;
static __thread tm_own_range *tls_range __attribute__((tls_model("initial-exec")));

static void range_set(tm_own_range *r, uintptr_t lo, uintptr_t span16)
{
    atomic_store_explicit(&r->lo, lo, memory_order_relaxed);
    atomic_store_explicit(&r->span16, span16, memory_order_relaxed);
}

void tm_own_range_register(tm_own_range *r)
{
    range_set(r, 0, 0);
    set_acquire();
    r->prev = NULL;
    r->next = range_head;
    if (range_head)
        range_head->prev = r;
    range_head = r;
    set_release();
    tls_range = r;
}

void tm_own_range_unregister(tm_own_range *r)
{
    set_acquire();
    if (r->prev)
        r->prev->next = r->next;
    else
        range_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    set_release();
    range_set(r, 0, 0);
    if (tls_range == r)
        tls_range = NULL;
}

/* What a range covering a (ours) would be now: the brk range, or a's
 * sub-heap slot; span16 0 if neither (an mmapped chunk).              */
static void range_for(uintptr_t a, uintptr_t *lo, uintptr_t *span16)
{
    uintptr_t span = atomic_load_explicit(&tm_own.main_span, memory_order_acquire);
    uintptr_t mlo = atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
    if (a - mlo < span) {
        /* The brk segment of a, exactly (the hit paths trust the range:
         * not the gap after it nor the next segment's header, owner.h). */
        *lo = *span16 = 0;
        unsigned n = atomic_load_explicit(&brk_nsegs, memory_order_acquire);
        for (unsigned i = 0; i < n; i++) {
            uintptr_t slo = atomic_load_explicit(&brk_segs[i].lo, memory_order_relaxed);
            uintptr_t shi = atomic_load_explicit(&brk_segs[i].hi, memory_order_relaxed);
            if (a >= slo && a < shi) {
                if (i == TM_OWN_BRK_SEGS - 1)
                    break;      /* (the last entry may stretch over gaps: no range) */
                *lo = slo;
                *span16 = shi - slo > TM_OWN_RANGE_TAIL ? (shi - slo - TM_OWN_RANGE_TAIL) >> 4 : 0;
                break;
            }
        }
    } else if (tm_own_in_sub(a) && (a & (TM_HEAP_MAX_SIZE - 1)) >= TM_OWN_SUB_FIRST) {
        /* (from the first possible chunk on: tm_own_fast_in_heaps) */
        *lo = (a & ~(uintptr_t)(TM_HEAP_MAX_SIZE - 1)) + TM_OWN_SUB_FIRST;
        *span16 = (TM_HEAP_MAX_SIZE - TM_OWN_SUB_FIRST - TM_OWN_RANGE_TAIL) >> 4;
    } else {
        *lo = *span16 = 0;
    }
}

void tm_own_range_track(tm_own_range *r, uintptr_t a)
{
    uintptr_t lo, span16;
    /* Under the lock, against the registries as they are now: a trim or
     * deletion that went before has updated them, one that comes after
     * will clear what is stored here.  (Its caller skips a chunk that
     * the range covers already: most refills take no lock.)          */
    set_acquire();
    range_for(a, &lo, &span16);
    range_set(r, lo, span16);
    set_release();
}

/* [lo, hi) is no longer ours (brk trimmed, sub-heap deleted): empty every
 * range that reaches into it.  Its holder sets it again at its next
 * refill.                                                            */
static void ranges_clear(uintptr_t lo, uintptr_t hi)
{
    set_acquire();
    for (tm_own_range *r = range_head; r; r = r->next) {
        uintptr_t rlo = atomic_load_explicit(&r->lo, memory_order_relaxed);
        uintptr_t rspan = atomic_load_explicit(&r->span16, memory_order_relaxed) << 4;
        if (rspan && rlo < hi && lo < rlo + rspan)
            atomic_store_explicit(&r->span16, 0, memory_order_relaxed);
    }
    set_release();
}

static size_t slot_of(uintptr_t key, size_t cap)
{
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (cap - 1);
}

static void put(struct own_slot *tab, size_t cap, struct own_slot s)
{
    size_t i = slot_of(s.key, cap);
    while (tab[i].key)
        i = (i + 1) & (cap - 1);
    tab[i] = s;
}

static bool grow(void)
{
    size_t ncap = set_cap ? 2 * set_cap : 512;   /* a power of two */
    struct own_slot *nt = tm_os_map(ncap * sizeof *nt);
    if (!nt)
        return false;
    for (size_t i = 0; i < set_cap; i++)
        if (set_tab[i].key)
            put(nt, ncap, set_tab[i]);
    if (set_tab)
        tm_os_unmap(set_tab, set_cap * sizeof *set_tab);
    set_tab = nt;
    set_cap = ncap;
    return true;
}

static size_t find(uintptr_t key)   /* set_cap if absent */
{
    if (!set_cap)
        return 0;
    for (size_t i = slot_of(key, set_cap);; i = (i + 1) & (set_cap - 1)) {
        if (set_tab[i].key == key)
            return i;
        if (!set_tab[i].key)
            return set_cap;
    }
}

bool tm_own_mmap_add(const tm_chunk *p, uintptr_t block, size_t len)
{
    set_acquire();
    bool ok = (set_n + 1) * 2 <= set_cap || grow();
    if (ok) {
        put(set_tab, set_cap, (struct own_slot){ (uintptr_t)p, block, len });
        set_n++;
    }
    set_release();
    return ok;
}

bool tm_own_mmap_find(const tm_chunk *p, uintptr_t *block, size_t *len)
{
    set_acquire();
    size_t i = find((uintptr_t)p);
    bool found = i < set_cap;
    if (found) {
        *block = set_tab[i].block;
        *len = set_tab[i].len;
    }
    set_release();
    return found;
}

void tm_own_mmap_del(const tm_chunk *p)
{
    set_acquire();
    size_t i = find((uintptr_t)p);
    if (i < set_cap) {
        /* Backward shift: pull later members of the run into the hole. */
        size_t mask = set_cap - 1, j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (!set_tab[j].key)
                break;
            size_t home = slot_of(set_tab[j].key, set_cap);
            /* Move j to i unless its home lies cyclically in (i, j]. */
            if (((j - home) & mask) >= ((j - i) & mask)) {
                set_tab[i] = set_tab[j];
                i = j;
            }
        }
        set_tab[i].key = 0;
        set_n--;
    }
    set_release();
}

size_t tm_own_mmap_copy(tm_own_mapping *out, size_t max)
{
    set_acquire();
    size_t n = 0;
    for (size_t i = 0; i < set_cap && n < max; i++)
        if (set_tab[i].key)
            out[n++] = (tm_own_mapping){ set_tab[i].key, set_tab[i].block, set_tab[i].len };
    size_t total = set_n;
    set_release();
    return total;
}

int tm_own_classify(const tm_chunk *p)
{
    uintptr_t a = (uintptr_t)p;
    if (tm_own_in_main(a))
        return in_brk_segment(a) ? TM_OWN_HEAP : TM_OWN_NONE;
    if (tm_own_in_sub(a)) {
        /* Ours only within the heap's chunks: not in the guard before its
         * header, the header or the arena after it, nor in the reserve
         * beyond its size (heap.h).                                     */
        const tm_heap *h = heap_for_ptr(p);
        size_t size = __atomic_load_n(&h->size, __ATOMIC_RELAXED);
        return a >= (uintptr_t)heap_first_chunk(h) && a < (uintptr_t)h + size ? TM_OWN_HEAP : TM_OWN_NONE;
    }
    uintptr_t b;
    size_t l;
    if (tm_own_mmap_find(p, &b, &l))
        return TM_OWN_MMAP;
    return TM_OWN_NONE;
}

void tm_own_fork_lock(void)
{
    tm_lock_acquire(&set_lock);
    tls_fork_holder = true;
}

void tm_own_fork_unlock(void)
{
    tls_fork_holder = false;
    tm_lock_release(&set_lock);
}

void tm_own_fork_child(void)
{
    tls_fork_holder = false;
    tm_lock_reinit(&set_lock);
    /* Only the forking thread lives on: its range alone (the others'
     * memory is not reused, but no trim should walk through it).     */
    range_head = tls_range;
    if (tls_range)
        tls_range->next = tls_range->prev = NULL;
}
