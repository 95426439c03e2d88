/*
 * thp.h - transparent huge pages and page release (the heap layer).
 *
 * Where the kernel backs the heap with 2 MiB pages - THP "always", the
 * default of many distributions, or heaps the program asked huge pages
 * for (glibc.malloc.hugetlb=1) - giving 4 KiB pages back inside a 2 MiB
 * unit that still holds live blocks does not last:
 *
 *   unit (2 MiB, aligned)  |live|..released..|live|....released....|live|
 *   khugepaged (max_ptes_none 511 by default) sees a unit with any page
 *   present and collapses it into one huge page again: the released
 *   pages come back, resident and zeroed, with no call from the
 *   program.  A fault in a unit with nothing present takes a whole huge
 *   page too.
 *
 * Measured on this project's machine (kernel 6.18, THP always,
 * khugepaged at a 0.1 s scan): 1 GiB of mixed blocks, 95 % freed, went
 * down to 70 MiB resident and back up to 1003 MiB within a second of
 * quiet (docs/measurements.md); at khugepaged's default pace (4096 pages
 * every 10 s) the same takes about ten minutes - a quiet server's bloat
 * of seed 002 come back by another road.
 *
 * So every range a chunk release gives back marks the 2 MiB units it
 * touches MADV_NOHUGEPAGE (within the heap: a sub-heap's slot, the main
 * arena's brk range): neither khugepaged nor a fault puts a huge page
 * there again.  Units never released keep their huge pages.  Marks are
 * remembered per unit (a bitmap over the address space, mapped on the
 * first mark, untouched pages costing nothing) so each unit is advised
 * once; forgotten when the memory is unmapped (a sub-heap deleted, brk
 * trimmed) since a new mapping starts unmarked.  A mark splits the
 * heap's mapping (VMA) in the kernel: after TM_THP_MARKS_MAX marks the
 * whole heap is marked at once instead, so the map count stays bounded
 * (neighbouring marked ranges merge back into one mapping).
 *
 * The top chunk's and a sub-heap's shrinking releases are not marked:
 * top is refilled from its bottom, densely, where huge pages belong.
 * Off with TIDEMALLOC_THP=0 / mallopt(TIDE_M_THP, 0) (huge pages kept,
 * and with them the resident memory khugepaged brings back).
 */
#ifndef TM_THP_H
#define TM_THP_H

#include "internal.h"

#define TM_THP_MARKS_MAX 4096
/* The budget in use: TM_THP_MARKS_MAX, or vm.max_map_count / 16 if that
 * is less (read at initialization where marks can happen).  A plain
 * variable: written before initialization is published (params.h's rule
 * for tm_fix), read after; a test lowers it before any release. */
extern unsigned long tm_thp_marks_max TM_HIDDEN;

/* Initialization, after the tunables: the system's THP mode. */
TM_HIDDEN void tm_thp_init(void);
/* New heap memory [p, p + size) (a sub-heap's span, a brk extension):
 * advised huge if the program asked (hugetlb=1, THP in madvise mode), as
 * glibc does; an mmapped chunk too if it can hold a huge page. */
TM_HIDDEN void tm_thp_heap_new(void *p, size_t size);
TM_HIDDEN void tm_thp_mapped(void *p, size_t size);
/* A heap's growth to size bytes from start: where heaps are advised
 * huge, more, up to the end of a unit (2 MiB); else size.  The kernel
 * faults a huge page only where the whole aligned unit around the
 * address is mapped and advised; a heap grown by its top pad (128 KiB)
 * at a time never has the unit ahead of its end mapped, so every fault
 * took 4 KiB pages (python, hugetlb=1: 13 258 faults, glibc 1 496;
 * glibc rounds the same way).                                        */
TM_HIDDEN size_t tm_thp_grow_to(uintptr_t start, size_t size);
/* Pages [lo, hi) inside a heap were given back (release.c): their units
 * leave huge pages, if huge pages may back the heap.                   */
TM_HIDDEN void tm_thp_released(uintptr_t lo, uintptr_t hi);
/* [lo, hi) is no longer mapped as heap: forget its units' marks. */
TM_HIDDEN void tm_thp_forget(uintptr_t lo, uintptr_t hi);

/* Statistics: the mode (TM_THP_*), whether releases mark, marks made,
 * and the units marked. */
struct tm_thp_stats {
    int mode;
    bool marking, huge_heaps;
    size_t unit;
    unsigned long marks, whole_marks;
};
TM_HIDDEN void tm_thp_get_stats(struct tm_thp_stats *st);

#endif
