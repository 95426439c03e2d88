/*
 * meta.h - guarded pages for the allocator's own structures (issue 11,
 * "metadata out of reach of a heap overflow").
 *
 * A thread cache holds the heads of its lists: a heap overflow that
 * reached it could point the next malloc anywhere.  glibc allocates it as
 * the first chunk of the thread's arena, right after (and before) user
 * chunks; here it lives in a slot of its own mapping, with a PROT_NONE
 * page on each side, so a linear overflow from any block - in a heap,
 * or an mmapped chunk placed next to the mapping - faults on a guard
 * page before it reaches one:
 *
 *   | G | slot 0 | G | slot 1 | G | ... | G | slot 63 | G |
 *
 * A slot is one page (sizeof(tm_tcache) is well below 4 KiB).  Slabs of
 * 64 slots are reserved PROT_NONE and a slot is made read/write when it is
 * first handed out; a freed slot's page is given back (madvise) and the
 * slot reused.  Guarded by meta_lock (thread start and exit only); fork:
 * tm_meta_fork_lock/unlock around it, reinitialized in the child.
 * Non-main arena headers get the same protection from heap.c: a guard page
 * at the start of every sub-heap slot.
 */
#ifndef TM_META_H
#define TM_META_H

#include "internal.h"

/* One zeroed page-sized slot between guard pages; NULL if the system
 * refuses.  size must fit in a page.                                   */
TM_HIDDEN void *tm_meta_alloc(size_t size);
TM_HIDDEN void tm_meta_free(void *p);
/* Is p the start of a slot handed out (and not freed)? */
TM_HIDDEN bool tm_meta_owns(const void *p);

TM_HIDDEN void tm_meta_fork_lock(void);
TM_HIDDEN void tm_meta_fork_unlock(void);
TM_HIDDEN void tm_meta_fork_child(void);

#endif
