/*
 * release.h - giving the pages of free memory back to the system, chunk by
 * chunk and for the top.  Mechanism only: *when* to release (decay ticks,
 * sweeps, the background thread) is decided above, in arena.c and
 * control.c; *which* chunks are free is known to bins.c, the only caller of
 * the chunk hooks below.  Every function runs with the arena lock held.
 *
 * ptmalloc returns memory only from the top of a heap, so one live chunk
 * near the top pins every free byte below it (seed 002's 10 GB server).
 * tidemalloc also releases the whole pages *inside* large free chunks:
 *
 *   free chunk >= TM_RELEASE_MIN
 *   +-----+----+----+------+----------- interior -----------+------+
 *   |psize|size| fd | bk   |nxtsz|meta| pages given back ... | tail |
 *   +-----+----+----+------+----------+---------------------+------+
 *   0                      32        64  ^ page aligned      ^ page aligned
 *
 * meta[0] (chunk_free_stamp) is when the chunk became free - for a chunk
 * made by coalescing or splitting, the oldest such time of its free parts,
 * so that reusing a piece of a free chunk does not keep the rest young -
 * and meta[1] (chunk_released) how many interior bytes are given back.
 *
 * Accounting: av->released is the sum of meta[1] over the arena's free
 * chunks; a chunk that leaves the free state subtracts its share, and
 * chunks merged by coalescing carry their parts' shares.
 *
 * The top chunk is tracked by one address, av->top_clean: the bytes of
 * [top_clean, top end) are not resident and read as zero (apart from the
 * top's own size word).  Fresh memory from the system starts clean, so
 * calloc can skip zeroing both fresh and released memory (tm_zrange).
 */
#ifndef TM_RELEASE_H
#define TM_RELEASE_H

#include <sys/uio.h>
#include "internal.h"

/* What a chunk made by coalescing inherits from the free chunks it
 * swallowed: their released bytes and the oldest free time.          */
typedef struct { size_t bytes; uint64_t stamp; } tm_relcarry;
#define TM_RELCARRY_INIT { 0, UINT64_MAX }
static inline void tm_release_absorb(tm_relcarry *c, const tm_chunk *p)
{
    if (chunksize(p) >= TM_RELEASE_MIN) {
        c->bytes += chunk_released(p);
        if (chunk_free_stamp(p) < c->stamp)
            c->stamp = chunk_free_stamp(p);
    }
}

/* ---- chunk hooks (called by bins.c only) -------------------------------- */
TM_HIDDEN void tm_release_on_free_big(tm_arena *av, tm_chunk *p, size_t size, const tm_relcarry *c);
TM_HIDDEN void tm_release_split_big(tm_arena *av, tm_chunk *rem, size_t rsize, bool was_released,
                                    uint64_t stamp);
/* p (free, in a bin) is about to leave the free state: drop its share of
 * av->released.  Returns whether its whole interior was released (then
 * that part of it reads as zero).                                       */
TM_HIDDEN bool tm_release_take_big(tm_arena *av, tm_chunk *p);

/* Cheap inline fronts: most chunks are too small to carry release state. */
static inline void tm_release_on_free(tm_arena *av, tm_chunk *p, size_t size, const tm_relcarry *c)
{
    if (unlikely(size >= TM_RELEASE_MIN))
        tm_release_on_free_big(av, p, size, c);
}
static inline void tm_release_split(tm_arena *av, tm_chunk *rem, size_t rsize, bool was_released,
                                    uint64_t stamp)
{
    if (unlikely(rsize >= TM_RELEASE_MIN))
        tm_release_split_big(av, rem, rsize, was_released, stamp);
}
static inline bool tm_release_take(tm_arena *av, tm_chunk *p)
{
    return unlikely(chunksize(p) >= TM_RELEASE_MIN) && tm_release_take_big(av, p);
}

/* Give the interior pages of the free chunk p back now (if not already);
 * returns the bytes newly released.                                     */
TM_HIDDEN size_t tm_release_chunk(tm_arena *av, tm_chunk *p);

/* Releases queued by one pass over the bins (the purge, the cap) and
 * given to the kernel together, tm_os_release_many: on a virtual
 * machine one madvise per scattered chunk is a TLB flush per chunk
 * (os.c).  The accounting is done when a range is queued, the madvise at
 * tm_release_flush, which the queuing pass calls before it returns -
 * under the same lock, before anything can be allocated there, so no
 * caller sees a range counted as released that still holds its bytes. */
#define TM_RELEASE_BATCH 64
typedef struct { size_t n; struct iovec v[TM_RELEASE_BATCH]; } tm_relbatch;
static inline void tm_relbatch_init(tm_relbatch *b) { b->n = 0; }
TM_HIDDEN size_t tm_release_chunk_into(tm_arena *av, tm_chunk *p, tm_relbatch *b);
/* Queue the top's resident pages beyond its first `keep` bytes. */
TM_HIDDEN size_t tm_release_top_into(tm_arena *av, size_t keep, tm_relbatch *b);
TM_HIDDEN void tm_release_flush(tm_relbatch *b);
/* The interior of p's first n bytes reads as zero: note it in *z. */
TM_HIDDEN void tm_release_zero_range(const tm_chunk *p, size_t n, tm_zrange *z);

/* ---- the top chunk ---------------------------------------------------- */
/* [victim, victim+nb) is split off the top (ending at top_end) in pieces
 * of `unit` bytes (0: none to populate); before the headers are written
 * (release.c).                                                          */
TM_HIDDEN void tm_release_top_used(tm_arena *av, tm_chunk *victim, size_t nb, size_t unit,
                                   char *top_end, tm_zrange *z);
TM_HIDDEN void tm_release_top_grew(tm_arena *av);   /* before av->top moves down to a merged chunk */
TM_HIDDEN void tm_release_top_reset(tm_arena *av);  /* top moved or shrank */
TM_HIDDEN void tm_release_top_fresh(tm_arena *av);  /* top is fresh memory from the system */
TM_HIDDEN size_t tm_release_top_bytes(const tm_arena *av);
/* How many bytes tm_release_top_into (above) would release. */
TM_HIDDEN size_t tm_release_top_dirty(const tm_arena *av, size_t keep);

/* ---- the cap on resident free memory -------------------------------------
 * Whatever the clock says (but for the exit deferral below), an arena
 * never keeps more releasable free memory resident (interiors of big
 * free chunks + top beyond top_pad) than four times its other resident
 * bytes, or its share of the floor if that is more (config.h): checked
 * when a free creates such memory.  After a deep drain (the other
 * resident bytes fell below a quarter of their
 * high-water mark) in a process with no background thread, the cap is a
 * sixth instead: a program that frees most of its memory and then goes
 * quiet (or never calls again) is bounded without any thread or timer.
 * Only then: a tight cap on a working set that merely swings makes every
 * swing pay a madvise and the page faults (measured: 1.6-5x slower on the
 * realloc/large/frag benchmarks).  decay_ms = -1 ("never") turns it off.
 * For decay_ms after the arena's last thread exits, with the background
 * thread running, the cap waits (av->cap_defer_until): the next thread
 * to take the arena over reuses that memory, or the background thread's
 * decay gives it back (docs/design.md §7).                              */
static inline size_t tm_release_floor(void)
{
    size_t n = atomic_load_explicit(&tm_narenas, memory_order_relaxed);
    size_t f = TM_DIRTY_FLOOR_TOTAL / (n ? n : 1);
    return f > TM_DIRTY_FLOOR_MIN ? f : TM_DIRTY_FLOOR_MIN;
}
/* The arena's resident bytes that are not releasable free memory (in use,
 * small free chunks, fast bins, top pad); >= 0 since released + dirty <=
 * free bytes <= system_mem.                                            */
static inline size_t tm_release_other(const tm_arena *av)
{
    return av->system_mem - av->released - av->dirty;
}
/* The other resident bytes fell below 1/depth of their high-water mark. */
static inline bool tm_release_drained_to(const tm_arena *av, size_t other, unsigned depth)
{
    return other < av->other_hwm / depth;
}
/* A deep drain: below 1/TM_DRAIN_DEPTH of the mark (what av->drained
 * records, bins.h).  (A churning top trims at 1/TM_CHURN_DRAIN_DEPTH:
 * sysmem.c trim_deferred.)                                            */
static inline bool tm_release_deep(const tm_arena *av, size_t other)
{
    return tm_release_drained_to(av, other, TM_DRAIN_DEPTH);
}
/* Strict only after a deep drain with no background thread (above). */
static inline bool tm_release_strict(const tm_arena *av, size_t other)
{
    return !atomic_load_explicit(&tm_bg_active, memory_order_relaxed) && tm_release_deep(av, other);
}
/* The same, from the flag, without the lock (the thread caches): the
 * flag keeps the arena's part, the background thread's state is read
 * now (it may have started or stopped since the flag was written).   */
static inline bool tm_release_strict_now(const tm_arena *av)
{
    return atomic_load_explicit(&av->drained, memory_order_relaxed) &&
           !atomic_load_explicit(&tm_bg_active, memory_order_relaxed);
}
/* The arena's chunks in use fell below 1/TM_DRAIN_DEPTH of their
 * high-water mark (av->ebbed, set by the tick of every 32nd lock
 * section): the thread caches' flushes park one class limit of their
 * own chunks at most, not TM_STASH_LIMITS, and empty lists that hold
 * more into the bins (tcache.c free_chain).  Parked chunks cut free
 * memory into pieces too small to release, which count as "other", so
 * `other` alone never showed such a drain (wl_small, parking up to 8
 * class limits: RSS at its end 10 -> 59 MiB).  Once the lists are
 * emptied the pieces coalesce into releasable runs and `other` follows
 * (the strict cap above).  Unlike the strict cap this does not wait for
 * the background thread to be absent: it only cuts parking back (to
 * what it was before the 8 limits), which costs nothing but their gain
 * while it lasts.                                                     */
static inline bool tm_release_ebbed(const tm_arena *av)
{
    return av->inuse < av->inuse_hwm / TM_DRAIN_DEPTH;
}
/* Swings.  A program that frees nearly all its memory and then builds
 * it up again, round after round (a batch job, a request that builds a
 * big structure and drops it), looks at each drain like one about to go
 * quiet: the cap releases at free time and the next round faults every
 * page back in.  A free burst of 20000 blocks of 1-16 KiB, 20 rounds:
 * 77 k madvise calls, 370 k page faults, 1.68 s of CPU against glibc's
 * 0.55 s (0.81 s with what follows).
 *
 * So an arena counts its drains that released at least
 * TM_SWING_MIN_BYTES at free time while it was deeply drained, each
 * after its chunks in use had been up at half their high-water mark
 * (tm_release_swing_arm, from the tick of every 32nd lock section,
 * arena.c: the deep-drain flag is refreshed only by frees into the bins,
 * which a burst of small frees makes late).  When its chunks in use
 * come back to half their mark after TM_SWING_DRAINS (1) such drains,
 * the working set has swung back: the arena swings.  (It was the third
 * drain itself until 2026-12: wl_swing's first three rounds released
 * and faulted their ~50 MiB back, 2.9x glibc's time: on a virtual
 * machine the release and the refault are dear, 59 % of the samples of
 * `wl_swing --rounds 3` were in the kernel's pvm_irq_enable.)  Once
 * it swings, while the background thread runs, its cap keeps the
 * working set's high-water mark resident and the thread releases by
 * time (decay_ms after the memory became free, as for any arena), so a
 * program that stops swinging and goes quiet still gets its memory
 * back.  The automatic mode starts the thread for a swinging
 * single-threaded process too (control.c): it cannot keep the memory
 * without someone to give it back later.  Without the thread
 * (TIDEMALLOC_BACKGROUND_THREAD=0, or its creation failed) nothing
 * changes: the cap releases at free time.                             */
static inline void tm_release_swing_arm(tm_arena *av)
{
    av->swing_armed = true;
    av->swing_released = 0;
}
/* Drains.  A single-threaded process got the thread only once it swung
 * (above), so its first drain went back at free time (the strict cap)
 * and a working set that came back faulted it all in again (wl_swing:
 * 12 k page faults, 0.2 s of 0.6 s).  So the own arena of such a process
 * that falls below half its in-use mark, and TM_SOLO_DRAIN_BYTES below
 * it, asks for the thread - looked at as every lock section ends
 * (arena.c), before the deep drain that makes the cap strict - and from
 * then on the process is treated as one with threads: the loose cap at
 * free time, the rest released by time.  Where the thread cannot start,
 * the strict cap works as before.  Not with decay_ms <= 0.  Figures:
 * docs/design.md section 7, "Drains of a single-threaded process"; what
 * was tried: docs/measurements.md, seventeenth session.                */
static inline bool tm_release_solo_drain(const tm_arena *av)
{
    return !atomic_load_explicit(&tm_solo_bg_wanted, memory_order_relaxed) &&
           av->inuse < av->inuse_hwm / 2 && av->inuse_hwm - av->inuse >= TM_SOLO_DRAIN_BYTES &&
           TM_P(decay_ms) > 0;
}
/* Bytes the cap just released at free time (bins.c). */
TM_HIDDEN void tm_release_swing_note(tm_arena *av, size_t bytes);
/* The strict cap (no background thread, a deep drain) released `bytes`
 * at free time.  A drain shallower than TM_SOLO_DRAIN_BYTES starts no
 * thread, but the strict cap then releases at every free that takes
 * the arena's free memory over it, and a working set that grows again
 * faults all of it back in: wl_realloc, whose in-use bytes go from 12.8
 * MiB down to 0.5 and up again while a few big buffers finish and
 * start, released its top 10 times in its first 150 ms (62 MiB, about
 * 16 k page faults).  Past TM_SOLO_DRAIN_BYTES released in all - what
 * one drain that deep costs - the thread is wanted as for such a drain
 * (tm_release_solo_drain above): the loose cap at free time, the rest
 * released by time.  Lock holders; not with decay_ms <= 0.           */
static inline void tm_release_solo_note(tm_arena *av, size_t bytes)
{
    av->solo_released += bytes;
    if (av->solo_released >= TM_SOLO_DRAIN_BYTES && TM_P(decay_ms) > 0)
        atomic_store_explicit(&tm_solo_bg_wanted, true, memory_order_relaxed);
}

/* The strict cap's floor: two thirds of the floor (config.h). */
static inline size_t tm_release_strict_floor(size_t floor)
{
    return floor / 3 * TM_DIRTY_FLOOR_STRICT_THIRDS;
}
/* No cap is below this (the strict floor of the least floor): an excess
 * under it needs no cap worked out (bins.h tm_bins_enforce_cap).  A
 * constant once inlined.                                              */
static inline size_t tm_release_cap_least(void)
{
    return tm_release_strict_floor(TM_DIRTY_FLOOR_MIN);
}
/* The cap for `other` resident bytes that are not releasable free memory. */
static inline size_t tm_release_cap_of(const tm_arena *av, size_t other)
{
    bool strict = tm_release_strict(av, other);
    size_t cap = strict ? other / TM_DIRTY_RATIO
                        : (other > SIZE_MAX / TM_DIRTY_LOOSE_MULT ? SIZE_MAX
                                                                  : other * TM_DIRTY_LOOSE_MULT);
    /* Strict, the floor is what a quiet program may keep for good on top
     * of `other` (the cap is met at free time; below it nothing more
     * goes back): two thirds of it (config.h).                        */
    size_t floor = tm_release_floor();
    if (strict)
        floor = tm_release_strict_floor(floor);
    if (unlikely(av->swinging) && av->other_hwm > floor &&
        atomic_load_explicit(&tm_bg_active, memory_order_relaxed))
        floor = av->other_hwm;        /* released by time instead (above) */
    return cap > floor ? cap : floor;
}


#endif
