/*
 * sysmem.h - memory from the system and back, per arena: growing the top
 * (brk segments for the main arena, sub-heaps for the others), retiring a
 * top that cannot grow in place, trimming, and chunks that are mappings of
 * their own (with glibc's dynamic mmap threshold).  Arena functions run
 * with av->lock held; the mmapped-chunk functions need no lock.
 */
#ifndef TM_SYSMEM_H
#define TM_SYSMEM_H

#include <stdatomic.h>
#include "internal.h"

/* ---- mmapped chunks ----------------------------------------------------- */
/* mmapped-chunk statistics (atomics: updated without an arena lock). */
struct tm_mmap_stats {
    _Atomic size_t n_mmaps, max_n_mmaps;
    _Atomic size_t mmapped_mem, max_mmapped_mem;
};
extern struct tm_mmap_stats tm_mstats TM_HIDDEN;

/* A chunk of nb bytes that is a mapping of its own; its memory, or NULL. */
TM_HIDDEN void *tm_mmap_chunk(size_t nb);
/* Unmap an mmapped chunk after checking its mapping arithmetic. */
TM_HIDDEN void tm_munmap_chunk(tm_chunk *p);
/* free() of an mmapped chunk: unmap it, and raise the mmap threshold to
 * its size (glibc's dynamic threshold) unless the user fixed one.      */
TM_HIDDEN void tm_munmap_chunk_dyn(tm_chunk *p);
/* memalign moved an mmapped chunk's start within its mapping. */
TM_HIDDEN void tm_mmap_chunk_moved(tm_chunk *old, tm_chunk *newp);
/* Resize with mremap; NULL if the system refuses (p unchanged). */
TM_HIDDEN tm_chunk *tm_mremap_chunk(tm_chunk *p, size_t nb);

/* ---- arenas -------------------------------------------------------------- */
/* Top is smaller than nb + MINSIZE: an mmapped chunk, or grow top and
 * split nb off it - to be cut in pieces of `unit` bytes (a refill's run;
 * nb for one chunk: release.h tm_release_top_used).  Its memory, or
 * NULL with errno ENOMEM.                                             */
TM_HIDDEN void *tm_sysmalloc(tm_arena *av, size_t nb, size_t unit, tm_zrange *z);
/* A new non-main arena in the start of its own first sub-heap, its bins
 * empty and the rest of the heap its top; NULL if the system refuses.   */
TM_HIDDEN tm_arena *tm_sys_new_arena(void);
/* Give back what lies beyond `pad` bytes of top: negative brk (main
 * arena), or unmapping empty sub-heaps and shrinking the last one.  With
 * `force`, the main arena trims whatever it can (malloc_trim); without
 * it, only once the excess reaches the (adaptive) trim threshold.     */
TM_HIDDEN bool tm_sys_trim(tm_arena *av, size_t pad, bool force);

/* Adaptive trim threshold: unless the user fixed one, each time an arena
 * must grow again within a second of a trim, its own threshold doubles
 * (up to 8 MiB): trimming and regrowing in a loop costs system calls and
 * page faults.  The ceiling is low on purpose: what the floor keeps is
 * resident at the peak, in every arena (64 MiB made seed002's peak RSS
 * 10-20 % higher than glibc's with 8 arenas), and without the
 * background thread nothing gives it back once the program goes quiet.
 *
 * An arena that regrows within a second of a trim with its floor at
 * the ceiling, or of a trim of more than the ceiling, churns its top by
 * more than a floor may keep (blocks of megabytes freed and allocated
 * again, wl_large: 375 k page faults against tcmalloc's 87 k, which
 * keeps all it ever had): trim_by_decay.  While the background thread
 * runs, in a process of one arena, its top is not trimmed at free time
 * (tm_sys_trim) unless the arena has drained to an eighth of its mark,
 * its top aside (the program is giving its memory back; a quarter, the
 * deep drain of the cap, a window of big blocks reaches while it swings:
 * config.h TM_CHURN_DRAIN_DEPTH): the top's pages beyond top_pad
 * are free memory like a free chunk's interior, kept within the cap
 * (release.h; the top goes first when the cap is met) and given back by
 * the background thread once the top has not grown for decay_ms
 * (arena.c purge, which also ends the churn state: a later lone big
 * free trims as before).  The automatic mode starts the thread for it
 * (tm_solo_bg_wanted), as for a swinging arena; without the thread
 * (TIDEMALLOC_BACKGROUND_THREAD=0, its creation failed, a fork child),
 * with several arenas or with decay_ms = -1 the floor applies as
 * before (sysmem.c trim_deferred).                                   */
#define TM_TRIM_FLOOR_MAX (8u * 1024 * 1024)
static inline size_t tm_trim_threshold(const tm_arena *av)
{
    size_t t = TM_P(trim_threshold);
    return av->trim_floor > t ? av->trim_floor : t;
}

#endif
