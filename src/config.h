/*
 * config.h - compile-time constants of tidemalloc (x86_64 / LP64 Linux).
 *
 * Everything that is a *choice* (a default, a limit) lives here, so the
 * engine files contain mechanisms only.  Run-time tunables (mallopt and the
 * environment) start from these defaults; see tunables.c.
 */
#ifndef TM_CONFIG_H
#define TM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* ---- hardening -----------------------------------------------------------
 * TIDE_CHECKS (CMake option, default ON): tamper-evident headers, ownership
 * checks, keyed link mangling and the checks on every list link
 * (docs/design.md, "Hardening").  OFF exists only to measure their cost. */
#ifndef TIDE_CHECKS
#define TIDE_CHECKS 1
#endif

/* ---- chunk geometry ----------------------------------------------------- */
#define TM_SIZE_SZ        8u                    /* one size word                  */
#define TM_ALIGNMENT      16u                   /* alignment of user pointers     */
#define TM_ALIGN_MASK     (TM_ALIGNMENT - 1)
#define TM_MINSIZE        32u                   /* smallest chunk: hdr + fd + bk  */
#define TM_HDR            (2 * TM_SIZE_SZ)      /* user pointer = chunk + 16      */

/* ---- bins (ptmalloc2's layout) ------------------------------------------ */
#define TM_NBINS          128                   /* 0 unused, 1 unsorted, 2..63 small, 64..126 large,
                                                 * 127 unsorted of TM_RELEASE_MIN and more */
#define TM_UNSORTED_BIG   (TM_NBINS - 1)
#define TM_NSMALLBINS     64
#define TM_SMALLBIN_WIDTH 16
#define TM_MIN_LARGE_SIZE (TM_NSMALLBINS * TM_SMALLBIN_WIDTH)   /* 1024 */
#define TM_BINMAPSHIFT    5
#define TM_BITSPERMAP     (1u << TM_BINMAPSHIFT)
#define TM_BINMAPSIZE     (TM_NBINS / TM_BITSPERMAP)

/* Fast bins hold chunks up to max_fast (M_MXFAST: 0..160 bytes of
 * request; index = size/16 - 2).  Off by default (max_fast 16: no chunk
 * is that small), where glibc has 128: the thread cache in front of the
 * arenas (32 chunks a class, classes up to 16 KiB) already keeps freed
 * chunks of a size for quick reuse, so what reaches an arena is a
 * cache's overflow - bulk frees - and fast bins kept it scattered and
 * uncoalesced until a consolidation, and handed it out again in LIFO
 * order all over the heap.  Coalesced at once, it becomes runs that
 * refills carve side by side.  Measured (scripts/cpu_geomean.py, CPU
 * time, 5 interleaved runs): python 0.93x, perl 0.96x, 26 workloads
 * 0.993x of the fast bins' default, although python executes 3 % more
 * instructions (the gain is the memory's locality); glibc itself takes
 * 0.90-0.97x its CPU time on python with mxfast=0.  M_MXFAST /
 * glibc.malloc.mxfast turn them on.                                   */
#define TM_MAX_FAST_REQ      160u
#define TM_DEFAULT_MAX_FAST  (TM_MINSIZE / 2)   /* M_MXFAST 0: below every chunk size */
#define TM_NFASTBINS         10

/* A free that coalesces into a chunk at least this big consolidates the
 * fast bins and considers trimming (ptmalloc's FASTBIN_CONSOLIDATION_THRESHOLD). */
#define TM_CONSOLIDATE_THRESHOLD (64u * 1024)

/* Chunks examined in one pass over the unsorted bin before giving up on
 * sorting and serving the request (bounds latency).                       */
#define TM_MAX_UNSORTED_ITERS 10000

/* ---- system memory ------------------------------------------------------ */
#define TM_DEFAULT_MMAP_THRESHOLD     (128u * 1024)
#define TM_DEFAULT_MMAP_THRESHOLD_MAX (32u * 1024 * 1024)   /* = HEAP_MAX_SIZE/2 */
/* The dynamic threshold (sysmem.c tm_munmap_chunk_dyn): a freed mmapped
 * chunk raises the mmap threshold to this many times its size (glibc: to
 * its size), and the trim threshold to twice that, as glibc does.
 * Blocks of many sizes (wl_large: 64 KiB - 32 MiB, log-uniform) raised
 * glibc's threshold one new largest block at a time, and every block
 * above it was mapped fresh and unmapped at its free: 353 MiB of mmaps,
 * ~90 k page faults in a run.  The heap is no trap for such blocks here
 * as it is in glibc: the pages inside a big free chunk go back by decay,
 * not only from the top (release.h).  docs/design.md §5.              */
#define TM_DYN_MMAP_MARGIN 4u
#define TM_DEFAULT_TRIM_THRESHOLD     (128u * 1024)
#define TM_DEFAULT_TOP_PAD            (128u * 1024)
#define TM_DEFAULT_MMAP_MAX           65536

/* Sub-heaps of non-main arenas: reserved HEAP_MAX bytes aligned to their
 * size, so heap_for_ptr() is a mask.                                       */
#define TM_HEAP_MIN_SIZE  (32u * 1024)
#define TM_HEAP_MAX_SIZE  (64u * 1024 * 1024)
/* PROT_NONE at the start of every sub-heap slot (heap.h), and what is left. */
#define TM_HEAP_GUARD     (64u * 1024)
#define TM_HEAP_SPAN      (TM_HEAP_MAX_SIZE - TM_HEAP_GUARD)

/* Arena limit when none is set: 8 per online CPU (64-bit glibc default). */
#define TM_ARENAS_PER_CPU 8
#define TM_DEFAULT_ARENA_TEST 8

/* ---- per-thread cache --------------------------------------------------- */
/* Small classes: every chunk size 32 .. 1040 by 16 (the fast paths).
 * Medium classes: 8 sizes per doubling, 1152 .. 16384; requests between
 * two of them are rounded up to the class size when they are served
 * for the cache (at most 1/8 more), so that every chunk of the class has
 * exactly its size (the checks of a cache entry rely on it).  Served by
 * the inline fast paths too (tcache.h tc_med_req_index/tc_free_index). */
#define TM_TCACHE_SMALL_BINS 64                 /* chunk sizes 32 .. 1040 by 16   */
#define TM_TCACHE_MED_BINS   32                 /* 1152 .. 16384, 8 per doubling  */
#define TM_TCACHE_BINS     (TM_TCACHE_SMALL_BINS + TM_TCACHE_MED_BINS)
#define TM_TCACHE_MED_MAX  16384u               /* largest cached chunk           */
#define TM_TCACHE_MAX_REQ  1032u                /* largest request of a small class */
#define TM_TCACHE_MED_MAX_REQ 16376u            /* largest request of a medium class */
#define TM_TCACHE_DEFAULT_COUNT 32              /* chunks per class at most (glibc: 7)  */
#define TM_TCACHE_DEFAULT_BYTES (256u * 1024)   /* byte budget of one thread's cache     */
#define TM_TCACHE_COUNT_MAX 65535
/* Chunks a thread cache refill carves its batch from, at most (tcache.c). */
#define TM_REFILL_CARVES 4u
/* A class that overflows after a miss grows its thread's limit (doubling,
 * tcache.c) up to this many bytes and chunks; the thread's limits
 * together grow to TM_TCACHE_GROW_TOTAL, or to a share of its arena's
 * chunks in use at their high-water mark where that is more, at most
 * TM_TCACHE_GROW_TOTAL_MAX (tcache.c tm_tcache_grow_total; tcache.h: when growth
 * is allowed, and what shrinks it).  The share is half the mark where
 * the background thread takes idle caches back, an eighth where nothing
 * but the ebb does (below the quarter at which the chunks in use ebb,
 * release.h, so that a program that frees everything still ebbs with
 * its cache full).                                                    */
#define TM_TCACHE_GROW_CLASS_BYTES (1024u * 1024)
#define TM_TCACHE_GROW_COUNT       4096u
#define TM_TCACHE_GROW_TOTAL       (2048u * 1024)
#define TM_TCACHE_GROW_TOTAL_MAX   (16u * 1024 * 1024)
#define TM_TCACHE_GROW_SHARE_BG    2u
#define TM_TCACHE_GROW_SHARE_SOLO  (2u * TM_DRAIN_DEPTH)   /* (defined below) */

/* ---- page release (decay) ----------------------------------------------- */
#define TM_DEFAULT_DECAY_MS 1000
/* A busy arena keeps its free chunks TM_BUSY_DECAY_MULT decay times
 * before their pages go back; busy: at least TM_BUSY_RATE lock sections
 * a second over a window of a quarter decay (arena.c purge).  An arena
 * under load reuses what it frees: wl_seed002's load, whose workers
 * enter their arenas 1.6-9.6 k times a second, gave back 2.2 GiB in 8 s
 * with the 1 s decay and faulted part of it in again (a 5 s decay: 5 %
 * fewer faults).  A quiet arena, and one that calls rarely (seed002's
 * "tick" idle mode: 200 a second), keeps the decay time, so a program
 * that goes quiet still has its memory back within it.               */
#define TM_BUSY_DECAY_MULT 4u
#define TM_BUSY_RATE 500u
/* A class list of an arena (the lock-free transfer of cached chunks from
 * the threads that free them to the arena's threads, arena.h) holds at
 * most this many class limits; a flush beyond goes to the general remote
 * list and from there into the bins.  Unbounded (65535 entries), a
 * producer that takes the list whole on its next miss held thousands of
 * chunks: wl_prodcons's peak RSS 17-19 MiB against 15.5-17 with 8 (glibc
 * 11.5), at no clear gain in time.                                     */
#define TM_RCLS_LIMITS 8u
/* A flush of the thread's own arena's chunks parks them on its class list
 * (no lock, no bins: the next miss of the class takes them back whole)
 * while the list holds at most this many class limits.  1 limit before:
 * 8 saves the engine's free and re-carve (bench/cost.py, instructions:
 * small 0.89x, rptest 0.90x, mleak 0.93x, glibc_simple 0.94x, all 25
 * workloads 0.977x; threaded cells vary +-5 % between identical builds,
 * these repeated in 4 runs); what waits there is bounded per class and arena,
 * drained by the decay ticks and the background thread; one limit only
 * once the arena's chunks in use ebbed (release.h tm_release_ebbed),
 * none once it drained deeply.                                       */
#define TM_STASH_LIMITS 8u
/* Free chunks at least this big carry release metadata (chunk.h) and have
 * their whole interior pages given back once they have been free long
 * enough; smaller ones are left to coalescing.                          */
#define TM_RELEASE_MIN (16u * 1024)
/* Fresh top pages faulted in by range (release.c populate_top, os.c
 * tm_os_populate): for a carve in pieces of at most UNIT_MAX bytes (the
 * thread cache's classes), its pages and AHEAD bytes after them, in one
 * call.  wl_frag, wl_swing: 256 KiB ahead took the same time as 64. */
#define TM_POPULATE_UNIT_MAX TM_TCACHE_MED_MAX
#define TM_POPULATE_AHEAD    (64u * 1024)
/* Cap on releasable free memory kept resident per arena (release.h):
 * 1/TM_DIRTY_RATIO of the arena's other resident bytes after a deep drain
 * with no background thread running, else TM_DIRTY_LOOSE_MULT times them
 * (a safety net), at least an equal share of TM_DIRTY_FLOOR_TOTAL.  Beyond it a
 * free releases, whatever decay_ms, biggest chunks first, down to half
 * the cap.                                                              */
#define TM_DIRTY_RATIO 6u                         /* no background thread  */
/* Eight times was tried (2026-12-05): wl_large, whose window of big
 * blocks drains deeply twice a run and regrows, 169 k -> 137 k page
 * faults and 0.8x the CPU time; but seed002's RSS right after its drain
 * went up by a third (medians of 8 interleaved runs: 264 -> 356 MiB;
 * spreads 171-432 and 261-487), 1 s later level (82 and 90 MiB).  The
 * instant after a drain is what the cap is for (the decay does the
 * rest); at a free, a drain that is about to regrow and one that goes
 * quiet look the same (release.h, swings).                           */
#define TM_DIRTY_LOOSE_MULT 4u                    /* otherwise: a safety net */
#define TM_DIRTY_FLOOR_TOTAL (6u * 1024 * 1024)   /* shared by all arenas */
#define TM_DIRTY_FLOOR_MIN   (512u * 1024)        /* per arena, at least  */
/* Under the strict cap the floor is this many thirds of itself (4 MiB
 * for one arena).  A drained program with no background thread keeps
 * what the last free left below the cap for good: up to the floor on
 * top of its other resident bytes, which after a drain of small blocks
 * are mostly the pages that free runs share with the chunks still
 * cached (~3 MiB after test_quiet's churn: 60 MiB of 16-1024 B blocks,
 * all freed, ~600 chunks cached).  With the whole 6 MiB floor that came
 * to 6.5-9 MiB over the baseline, depending on where the last release
 * had left the free memory (8.7 seen in CI, 1 run in 6 under
 * scripts/stall_run.sh; the issue allows 8).  Half the floor (3 MiB)
 * made test_release's churn of 2 MiB after a drain release at every
 * round (200 madvise calls in 200 rounds).                            */
#define TM_DIRTY_FLOOR_STRICT_THIRDS 2u
/* The strict ratio applies after a deep drain only: once an arena's
 * resident non-free bytes fell below 1/TM_DRAIN_DEPTH of their high-water
 * mark.  A working set that swings, however much, stays loose.         */
#define TM_DRAIN_DEPTH 4u
/* An arena whose top churns (sysmem.h trim_by_decay) trims at free time
 * only after a drain twice as deep: a window of big blocks swings below
 * a quarter of its mark and comes back (wl_large: 24 blocks of 64 KiB -
 * 32 MiB trimmed 65 and 161 MiB in one run and faulted them back in:
 * 219 k page faults, 185 k with an eighth, which it reached only when
 * the program freed its blocks at the end).                            */
#define TM_CHURN_DRAIN_DEPTH (2u * TM_DRAIN_DEPTH)
/* Fast bins holding more than this get consolidated under the strict
 * cap (by a fast free: one look per 2^TM_FAST_CAP_STEP_SHIFT bytes of
 * them beyond it), so that small freed blocks can merge into releasable
 * runs.                                                                */
#define TM_FAST_BYTES_MAX (1024u * 1024)
#define TM_FAST_CAP_STEP_SHIFT 16
/* A drain that released at least TM_SWING_MIN_BYTES at free time
 * counts; an arena whose working set comes back after TM_SWING_DRAINS
 * of them swings (release.h tm_release_swing).                        */
#define TM_SWING_MIN_BYTES (4u * 1024 * 1024)
#define TM_SWING_DRAINS 1u
/* An arena whose chunks in use fell below half their high-water mark,
 * and by at least this much, drains (release.h tm_release_solo_drain):
 * in a single-threaded process, the background thread starts.  Releasing
 * and faulting back 16 MiB costs 4096 page faults (5-60 ms here), a
 * thread ~0.1 ms; below it the thread would appear in most programs (at
 * 4 MiB, 92 of 100 fork children of test_fork that allocated ~5 MiB
 * and freed it), for a release that costs a few ms once.              */
#define TM_SOLO_DRAIN_BYTES (16u * 1024 * 1024)
/* The background thread could not be created: no new try for this long. */
#define TM_BG_RETRY_MS 1000u

#endif
