/*
 * internal.h - the types shared by the layers: heaps and arenas.  Types
 * only; each module's functions are declared in that module's header.
 *
 * Glossary
 *   chunk    a block with boundary tags (chunk.h).
 *   arena    a malloc_state: its own lock, bins, top chunk and heaps.  The
 *            main arena is static and grows with brk; the others live in
 *            mmapped sub-heaps.
 *   heap     a contiguous stretch of chunks.  Non-main arenas: a sub-heap,
 *            TM_HEAP_MAX_SIZE bytes reserved PROT_NONE at an address aligned
 *            to that size and made read/write as it grows.  Main arena: a
 *            "segment" of brk memory (or of mmap memory when brk fails).
 *            Each starts with a tm_heap header; they are chained by `prev`
 *            from the arena's `last_heap`, the one that holds the top chunk.
 *   top      the free chunk at the end of the last heap; allocations that no
 *            bin can serve are split from it and it grows from the system.
 *   bins     1 unsorted, 62 small (exact sizes 32..1008), 63 large (ranges,
 *            sorted by size, with the fd/bk_nextsize skip list), and 10 fast
 *            bins (singly linked, LIFO, never coalesced until consolidation).
 *
 * Layers (a file calls and includes only its own layer and those below;
 * scripts/check_layers.py enforces it, docs/design.md §1 explains it):
 *
 *   api      api.c stats.c check.c      public entry points
 *   control  control.c tunables.c       init, threads, fork, mallopt, trim,
 *                                       background release thread
 *   tcache   tcache.c                   per-thread cache
 *   arena    arena.c                    which arena, enter/leave, remote
 *                                       frees, decay ticks and sweeps
 *   engine   engine.c                   ptmalloc's _int_malloc/_int_free/...
 *   sysmem   sysmem.c                   top growth and trimming, mmapped chunks
 *   bins     bins.c                     the only code that links/unlinks
 *                                       free chunks
 *   release  release.c                  page release of free chunks and top
 *   heap     heap.c                     sub-heap address space
 *   os       os.c                       mmap/munmap/mprotect/mremap/madvise/sbrk
 *   base     base.h config.h chunk.h internal.h params.h lock.[ch] error.c
 *            globals.c                  usable from every layer
 *
 * Shared state and its rules
 *   - an arena's fields are guarded by av->lock, except `next` (atomic,
 *     the ring only grows), `attached`/`next_free` (tm_list_lock) and the
 *     remote lists (lock-free atomics, see arena.h);
 *   - tm_mp: relaxed atomics; tm_fix: written before initialization is
 *     published (params.h);
 *   - thread caches are owned by their thread (tcache.h).
 * Lock order: tm_list_lock -> arena locks (all of them, in ring order, only
 *   in the fork handler).  Elsewhere a thread blocks on at most one arena
 *   lock at a time; while holding one it may only *try* others (the decay
 *   sweep), which cannot deadlock.
 */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include <stdatomic.h>
#include "base.h"
#include "chunk.h"
#include "config.h"
#include "lock.h"
#include "params.h"

struct tm_arena;

/* Header at the start of every heap (sub-heap or main-arena segment). */
typedef struct tm_heap {
    struct tm_arena *ar;    /* owner                                        */
    struct tm_heap *prev;   /* older heap of the same arena                 */
    size_t size;            /* bytes of the heap in use (chunks end here)   */
    size_t committed;       /* sub-heaps: bytes made read/write             */
    uint32_t kind;          /* TM_HEAP_SUB or TM_SEG_BRK                      */
    uint32_t pad_;
    size_t reserved;        /* bytes of address space reserved for it       */
} tm_heap;                  /* 48 bytes: keeps the first chunk 16-aligned   */

enum { TM_HEAP_SUB = 1, TM_SEG_BRK = 2 };

typedef struct { tm_chunk *fd, *bk; } tm_bin;

/* A range of a chunk just handed out that is known to read as zero
 * (fresh from the system, or released); calloc skips clearing it.   */
typedef struct { char *lo, *hi; } tm_zrange;

typedef struct tm_arena {
    tm_lock lock;
    bool have_fastchunks;
    tm_chunk *fastbins[TM_NFASTBINS];
    tm_chunk *top;
    tm_chunk *last_remainder;
    tm_bin bins[TM_NBINS];
    uint32_t binmap[TM_BINMAPSIZE];
    size_t top_dummy[2];            /* size-0 "chunk" used as top before the first growth */

    tm_heap *last_heap;             /* heap holding top (NULL before the first growth) */
    /* The link checks' first ownership test (bins.h tm_arena_owns): the
     * chunks of last_heap - its sub-heap slot from its first chunk to
     * TM_OWN_RANGE_TAIL bytes short of its end, or the brk range as
     * registered -
     * kept by sysmem.c (set_own_range) wherever either changes, all
     * under the lock, which every reader holds too; span16 0: empty.    */
    uintptr_t own_lo, own_span16;
    _Atomic(struct tm_arena *) next;/* ring of all arenas; only grows           */
    struct tm_arena *next_free;     /* free list of unattached arenas (list lock) */
    size_t attached;                /* threads using it (tm_list_lock)        */

    size_t system_mem;              /* bytes of all heaps (their `size`s)     */
    size_t max_system_mem;
    size_t nheaps;
    /* Adaptive trim threshold (sysmem.h): a heap that has to grow again
     * right after a trim was trimmed too eagerly.                       */
    uint64_t last_trim_ms;
    size_t last_trim_bytes;
    size_t trim_floor;
    bool trim_by_decay;             /* the top churns at the floor's ceiling */

    /* Page release (release.c). */
    size_t released;                /* free bytes whose pages were given back */
    size_t dirty;                   /* resident interior bytes of free chunks
                                       >= TM_RELEASE_MIN: what a purge could give back */
    size_t fast_bytes;              /* bytes held in fast bins                 */
    size_t other_hwm;               /* high-water mark of resident bytes that are
                                       not releasable free memory (the cap) */
    /* Bytes of the arena's chunks in use: handed out by the engine and
     * not freed back to it (cached, parked and quarantined chunks count
     * as in use; fast-bin chunks, free chunks and the top do not).  The
     * heap checker verifies it.  Its high-water mark (kept at system
     * growth and every 32nd lock section's tick, decayed like other_hwm:
     * arena.c) tells an ebb that small free gaps hide from `other`:
     * parked chunks cut free memory into pieces too small to release,
     * which count as "other" (release.h tm_release_ebbed).             */
    size_t inuse;
    size_t inuse_hwm;
    /* inuse_hwm as of the last tick (arena.c tick_slow): the thread
     * caches' growth bound reads it without the lock (tcache.c).       */
    _Atomic size_t inuse_hint;
    /* A deep drain (release.h tm_release_deep); with no background
     * thread the cap is then strict (tm_release_strict_now).  Written by
     * lock holders at every free into the bins, read without the lock by
     * the thread cache's flush (tcache.c free_chain), which then stops
     * parking its own chunks on the class lists: parked small chunks keep
     * their pages from coalescing into releasable runs.                */
    _Atomic bool drained;
    /* The chunks in use ebbed (release.h tm_release_ebbed): written by
     * the lock holder's tick (arena.c), read without the lock by the
     * cache's flush, which then parks less of its own (tcache.c).      */
    _Atomic bool ebbed;
    /* Swings (release.h tm_release_swing): a drain that released memory
     * at free time is counted; when the working set comes back after
     * TM_SWING_DRAINS of them the arena swings, and while the background
     * thread runs its cap keeps the working set's mark resident (the
     * thread releases by time).  Lock holders only.                    */
    bool swing_armed;               /* the working set came back since the last count */
    bool swinging;
    uint8_t swing_drains;
    size_t swing_released;          /* released at free time since armed  */
    size_t solo_released;           /* released at free time by the strict cap (release.h) */
    char  *top_clean;               /* [top_clean, top end) is not resident   */
    uint64_t top_stamp;             /* when the top last grew by a free       */
    uint64_t next_purge;            /* clock (ms) of the next purge pass      */
    uint32_t purge_ops;             /* slow-path calls since the last check   */
    uint32_t busy_ops;              /* purge_ops when the busy window began   */
    bool busy;                      /* the last window was busy (arena.c purge) */
    uint64_t busy_since;            /* clock (ms) the busy window began       */
    uint64_t madvise_calls;
    /* The cap waits until this clock (ms; 0 = it does not wait): set by
     * the arena's last thread as it exits while the background thread
     * runs (tcache.c tm_tcache_flush_all, release.h).                   */
    uint64_t cap_defer_until;

    /* Chunks freed by threads that found this arena locked: a lock-free
     * stack linked through fd, emptied by whoever next holds the lock.  */
    _Atomic(tm_chunk *) remote;
    /* The same per thread-cache class, in the cache's own entry format
     * and with the entry count packed into the word (arena.h): a thread
     * of this arena whose cache misses in class i takes the whole list
     * with one exchange and installs it as that class, no lock, no walk. */
    _Atomic uintptr_t remote_cls[TM_TCACHE_BINS];
    _Atomic int remote_cls_any;     /* some remote_cls list may be non-empty */
    /* The arena's number (the main arena 0), set before the arena is
     * published: the salt of the parked key of its lists (arena.h
     * tm_park_key), so that no entry parked on one list holds the key of
     * another's.                                                       */
    uint16_t park_salt;

    /* Strong mode (harden.h): FIFO of quarantined chunks, in a mapping of
     * its own (created at the first quarantined free); av->lock.        */
    struct tm_quarantine *quarantine;
} tm_arena;

/* globals.c: the state every layer may name. */
extern tm_arena tm_main_arena TM_HIDDEN;
/* Wakes the background release thread when memory to give back appears
 * while it sleeps with nothing to do (control.c sleeps on it; release.c,
 * arena.c and tcache.c poke it).                                       */
extern tm_event tm_bg_event TM_HIDDEN;
/* Number of arenas (written under arena.c's list lock, read anywhere). */
extern _Atomic size_t tm_narenas TM_HIDDEN;
/* The background release thread is running or being started: control.c
 * claims the start with it (compare-and-swap), clears it if the thread
 * cannot be created and when the thread exits; a fork child clears it. */
extern _Atomic bool tm_bg_active TM_HIDDEN;
/* TM_P(deepbind), mirrored for dlopen's assembly (dlopen.c). */
extern _Atomic int tm_dlopen_mode TM_HIDDEN;
/* A second thread has called in (control.c; false again in a fork child). */
extern _Atomic bool tm_multi_threaded TM_HIDDEN;
/* Some arena drains or swings (release.h), or its top churns beyond the
 * trim floor's ceiling (sysmem.h): the automatic mode may start the
 * background thread in a single-threaded process (control.c), from the
 * next slow path of malloc or free (api.c).                         */
extern _Atomic bool tm_solo_bg_wanted TM_HIDDEN;

#endif
