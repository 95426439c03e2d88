/* thp.c - transparent huge pages and page release (see thp.h). */
#include "thp.h"
#include "os.h"
#include "owner.h"

/* Written once by tm_thp_init, before initialization is published
 * (params.h's rule for tm_fix). */
static int thp_mode = TM_THP_NEVER;
static unsigned thp_shift = 21;                /* the unit: 1 << thp_shift bytes */

/* Marked units: a bit per unit, in leaves of 64 GiB of address space
 * each (one 4 KiB page for 2 MiB units), mapped on first use and kept.
 * Bits are set after the kernel took the advice and cleared when the
 * memory is unmapped; both under the lock of the heap's arena, so a bit
 * and its unit's advice agree but for the moment between the two (a
 * second thread then advises again: harmless).  A leaf that cannot be
 * mapped means no memory of marks: every release advises again.      */
#define LEAF_SHIFT 36
#define LEAVES ((size_t)1 << (TM_OWN_ADDR_BITS - LEAF_SHIFT))
static _Atomic(_Atomic uint64_t *) leaves[LEAVES];

static _Atomic unsigned long marks, whole_marks;
unsigned long tm_thp_marks_max = TM_THP_MARKS_MAX;

static bool marking(void);

void tm_thp_init(void)
{
    size_t unit;
    thp_mode = tm_os_thp_mode(&unit);
    /* A unit beyond a leaf, or below a page, is no unit we handle. */
    if (unit < tm_fix.pagesize || unit > ((size_t)1 << LEAF_SHIFT))
        thp_mode = TM_THP_NEVER;
    else
        thp_shift = (unsigned)__builtin_ctzl(unit);
    /* Each mark may split a mapping in three: at most 2 mappings a mark,
     * an eighth of what the process may have (vm.max_map_count, 65530 by
     * default), the rest being the program's. */
    if (marking()) {
        long maps = tm_os_read_number("/proc/sys/vm/max_map_count");
        if (maps > 0 && (unsigned long)maps / 16 < tm_thp_marks_max)
            tm_thp_marks_max = (unsigned long)maps / 16;
    }
}

static bool huge_heaps(void)
{
    return thp_mode == TM_THP_MADVISE && TM_P(hugetlb) == 1;
}

/* Huge pages may back the heap, and releases are to leave them. */
static bool marking(void)
{
    return TM_P(thp_split) && (thp_mode == TM_THP_ALWAYS || huge_heaps());
}

/* Units per leaf, and a leaf's bytes. */
static size_t leaf_units(void) { return (size_t)1 << (LEAF_SHIFT - thp_shift); }
static size_t leaf_bytes(void) { return align_up(leaf_units() / 8, tm_fix.pagesize); }

/* The leaf holding unit u's bit; NULL if none (and `make` is false, or
 * no memory). */
static _Atomic uint64_t *leaf_of(uintptr_t u, bool make)
{
    size_t k = u >> (LEAF_SHIFT - thp_shift);   /* u / leaf_units() */
    if (k >= LEAVES)
        return NULL;
    _Atomic uint64_t *l = atomic_load_explicit(&leaves[k], memory_order_acquire);
    if (l || !make)
        return l;
    _Atomic uint64_t *n = tm_os_map(leaf_bytes());
    if (!n)
        return NULL;
    if (!atomic_compare_exchange_strong_explicit(&leaves[k], &l, n, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        tm_os_unmap((void *)n, leaf_bytes());
        return l;
    }
    return n;
}

/* Unit u's bit: the word of its leaf l that holds it, and the mask. */
static _Atomic uint64_t *unit_word(_Atomic uint64_t *l, uintptr_t u, uint64_t *mask)
{
    size_t b = u & (leaf_units() - 1);
    *mask = (uint64_t)1 << (b % 64);
    return &l[b / 64];
}

static bool unit_marked(uintptr_t u)
{
    _Atomic uint64_t *l = leaf_of(u, false);
    uint64_t mask;
    return l && (atomic_load_explicit(unit_word(l, u, &mask), memory_order_relaxed) & mask);
}

static void units_set(uintptr_t u0, uintptr_t u1, bool on)
{
    for (uintptr_t u = u0; u <= u1; u++) {
        _Atomic uint64_t *l = leaf_of(u, on);
        if (!l) {
            /* Nothing to clear here, or no memory to remember marks:
             * skip to the next leaf. */
            u |= leaf_units() - 1;
            if (u >= u1)
                break;
            continue;
        }
        uint64_t mask;
        _Atomic uint64_t *w = unit_word(l, u, &mask);
        if (on)
            atomic_fetch_or_explicit(w, mask, memory_order_relaxed);
        else
            atomic_fetch_and_explicit(w, ~mask, memory_order_relaxed);
    }
}

/* The heap around address a: a sub-heap's slot, or the main arena's brk
 * range (its segments and what lies between them).  False if neither. */
static bool heap_bounds(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
    if (tm_own_in_sub(a)) {
        *lo = a & ~((uintptr_t)TM_HEAP_MAX_SIZE - 1);
        *hi = *lo + TM_HEAP_MAX_SIZE;
        return true;
    }
    uintptr_t span = atomic_load_explicit(&tm_own.main_span, memory_order_acquire);
    uintptr_t base = atomic_load_explicit(&tm_own.main_lo, memory_order_relaxed);
    if (a - base >= span)
        return false;
    *lo = align_up(base, tm_fix.pagesize);
    *hi = align_down(base + span, tm_fix.pagesize);
    return *hi > *lo;
}

void tm_thp_heap_new(void *p, size_t size)
{
    /* (A brk extension smaller than a unit too: the kernel merges it
     * with the advised mapping below it.) */
    if (huge_heaps())
        tm_os_advise_huge(p, size, true);
}

size_t tm_thp_grow_to(uintptr_t start, size_t size)
{
    if (!huge_heaps())
        return size;
    size_t more = align_up(start + size, (size_t)1 << thp_shift) - start;
    return more >= size ? more : size;       /* (no wrap at the address space's end) */
}

void tm_thp_mapped(void *p, size_t size)
{
    if (huge_heaps() && size >= (size_t)1 << thp_shift)
        tm_os_advise_huge(p, size, true);
}

void tm_thp_released(uintptr_t lo, uintptr_t hi)
{
    if (hi <= lo || !marking())
        return;
    uintptr_t u0 = lo >> thp_shift, u1 = (hi - 1) >> thp_shift;
    uintptr_t u = u0;
    while (u <= u1 && unit_marked(u))
        u++;
    if (u > u1)
        return;                                   /* all advised before */
    uintptr_t rlo, rhi;
    if (!heap_bounds(lo, &rlo, &rhi))
        return;
    uintptr_t a, b;
    if (atomic_load_explicit(&marks, memory_order_relaxed) < tm_thp_marks_max) {
        a = u0 << thp_shift;
        b = (u1 + 1) << thp_shift;
        a = a < rlo ? rlo : a;
        b = b > rhi ? rhi : b;
        atomic_fetch_add_explicit(&marks, 1, memory_order_relaxed);
    } else {
        a = rlo;                     /* the whole heap: one mapping again */
        b = rhi;
        atomic_fetch_add_explicit(&whole_marks, 1, memory_order_relaxed);
    }
    if (b <= a)
        return;
    /* A hole in [a, b) (a brk range with a foreign mapping's gap) makes
     * the call fail with the rest advised: remembered all the same. */
    tm_os_advise_huge((void *)a, b - a, false);
    units_set(a >> thp_shift, (b - 1) >> thp_shift, true);
}

void tm_thp_forget(uintptr_t lo, uintptr_t hi)
{
    if (thp_mode == TM_THP_NEVER || hi <= lo)
        return;
    /* Units wholly inside [lo, hi): a unit partly kept stays marked (its
     * kept part is still advised, and the unit spans two mappings).  */
    uintptr_t u0 = (lo + ((uintptr_t)1 << thp_shift) - 1) >> thp_shift, u1 = hi >> thp_shift;
    if (u1 > u0)
        units_set(u0, u1 - 1, false);
}

void tm_thp_get_stats(struct tm_thp_stats *st)
{
    st->mode = thp_mode;
    st->marking = marking();
    st->huge_heaps = huge_heaps();
    st->unit = (size_t)1 << thp_shift;
    st->marks = atomic_load_explicit(&marks, memory_order_relaxed);
    st->whole_marks = atomic_load_explicit(&whole_marks, memory_order_relaxed);
}
