/*
 * harden.h - the opt-in strong mode (TIDEMALLOC_HARDEN=1, mallopt
 * M_TIDE_HARDEN): freed memory poisoned and checked, a bounded quarantine
 * that delays reuse, guard pages after mmapped chunks (sysmem.c).
 *
 * Off (the default) none of this code runs: the mode is one relaxed
 * parameter (tm_mp.harden) read only on slow paths.  On, the thread
 * caches are disabled (every class limit 0, tcache.c), so every malloc and
 * free takes the API's slow path, where:
 *
 *   free    a non-mmapped chunk is poisoned (TM_HARDEN_BYTE over its
 *           usable bytes, at most TM_HARDEN_POISON_MAX) and appended to
 *           its arena's quarantine, a FIFO ring kept out of band (its own
 *           mapping, so a use after free cannot reach the ring).  A chunk
 *           that still reads as poison is looked up in the ring first:
 *           found, "free(): double free detected".
 *   malloc  before serving, the thread's arena evicts its oldest
 *           quarantined chunks while the quarantine holds more than
 *           TM_HARDEN_QUAR_COUNT chunks or TM_HARDEN_QUAR_BYTES bytes.  An
 *           evicted chunk must still read as poison ("malloc(): freed
 *           chunk modified after free (use after free)"); then it is
 *           really freed (tm_int_free).  free evicts only beyond twice
 *           the bounds (a program that frees without allocating).
 *
 * Why per arena, not per thread: the chunk's arena lock is taken anyway to
 * free it (there is no cache in this mode), a cross-thread free lands in
 * the owner arena's FIFO like any free, the memory held is bounded by the
 * number of arenas (8 x CPUs) rather than by the number of threads, and a
 * thread that exits leaves nothing behind to drain.
 *
 * All functions but tm_harden_flush_all run with the arena's lock held.
 */
#ifndef TM_HARDEN_H
#define TM_HARDEN_H

#include "internal.h"

/* Poison byte of freed chunks, and the bounds of the quarantine. */
#define TM_HARDEN_BYTE        0xdbu
#define TM_HARDEN_POISON_MAX  (64u * 1024)       /* bytes poisoned per chunk, at most   */
#define TM_HARDEN_QUAR_COUNT  1024u              /* chunks per arena (evicted by malloc) */
#define TM_HARDEN_QUAR_BYTES  (1024u * 1024)     /* bytes per arena  (evicted by malloc) */
#define TM_HARDEN_QUAR_SLOTS  (2 * TM_HARDEN_QUAR_COUNT)   /* ring size: free's hard bound */
/* Chunks bigger than this skip the quarantine (freed at once, poisoned). */
#define TM_HARDEN_QUAR_CHUNK_MAX (TM_HARDEN_QUAR_BYTES / 4)

static inline bool tm_harden_on(void) { return TM_P(harden) != 0; }

/* free() of the in-use, non-mmapped chunk p of av (av locked). */
TM_HIDDEN void tm_harden_free(tm_arena *av, tm_chunk *p);
/* Before an allocation in av (locked): evict what exceeds the bounds. */
TM_HIDDEN void tm_harden_drain(tm_arena *av);
/* p (of av, locked) is in av's quarantine. */
TM_HIDDEN bool tm_harden_quarantined(tm_arena *av, tm_chunk *p);
/* Empty every arena's quarantine (the mode was switched off); no lock held. */
TM_HIDDEN void tm_harden_flush_all(void);

#endif
