/*
 * meta.h - guarded pages for the allocator's own structures (issue 11,
 * "metadata out of reach of a heap overflow").
 *
 * A thread cache holds the heads of its lists: a heap overflow that
 * reached it could point the next malloc anywhere.  glibc allocates it as
 * the first chunk of the thread's arena, right after (and before) user
 * chunks; here it lives in a slot of a mapping of its own, a slab of
 * slots with a guard page at each end, so a linear overflow from any
 * block - in a heap, or an mmapped chunk placed next to the slab - faults
 * on a guard page before it reaches one:
 *
 *   | G | slot 0 | slot 1 | ... | slot 63 | G |
 *
 * No guard between slots: nothing the program writes lies there, and a
 * guard per slot made every slot a mapping of its own - two mappings a
 * thread on top of glibc's two (its stack and guard), so a program with
 * ~16 300 threads alive hit the kernel's vm.max_map_count (65530) and
 * pthread_create failed, where glibc made 20 000 (tests/test_meta.c
 * counts them now).  A slot
 * is one page (sizeof(tm_tcache) is well below 4 KiB).  Slabs of 64
 * slots are reserved read-only and a slot is made read/write when it is
 * first handed out, lowest free slot first (so the slots ever used are
 * one run, one mapping); a freed slot's page is given back (madvise) and
 * the slot reused.  Guarded by meta_lock (thread start and exit only);
 * fork: tm_meta_fork_lock/unlock around it, reinitialized in the child.
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
/* The slots [*first, *end) of the slab that holds the slot p, between
 * its two guard pages; false if p is no slot (tests).                 */
TM_HIDDEN bool tm_meta_span(const void *p, void **first, void **end);

TM_HIDDEN void tm_meta_fork_lock(void);
TM_HIDDEN void tm_meta_fork_unlock(void);
TM_HIDDEN void tm_meta_fork_child(void);

#endif
