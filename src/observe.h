/*
 * observe.h - what the heap looks like, from outside the process: the live
 * statistics channel that `tidemalloc stats PID` and `tidemalloc heapmap
 * PID` read, and the at-exit report (TIDEMALLOC_REPORT) that `tidemalloc
 * run` reads.  Part of the control layer (docs/design.md section 12).
 *
 * Both carry JSON made by tm_fmt (no allocation):
 *   summary  totals, per arena, thread caches, the bins holding most free
 *            memory, the allocator's system calls, RSS, parameters;
 *   heapmap  every heap and every mapped chunk found, as runs of pages
 *            [offset, length, state] (in use / free resident / released /
 *            top / mapped chunk), the in-use chunks by size class, and the
 *            totals of each state, from one walk of each arena under its
 *            lock.
 *
 * The channel is a sealed memfd ("tidemalloc-stats", close-on-exec, not
 * inherited by fork) mapped shared: a header (struct below) and two
 * regions, each under its own seqlock.  The process only ever writes it -
 * never reads it back - so what a reader does to its copy cannot reach the
 * process; the seals keep anyone who opens it later from writing it at all
 * (kernel >= 5.1) or shrinking it.  Readers find it as
 * /proc/PID/fd/N -> "/memfd:tidemalloc-stats (deleted)", which the kernel
 * lets only the same user (for a dumpable process) or root open.
 *
 * Refresh (never on the hot paths):
 *   - every 64th slow-path call of a thread (a TLS counter) notes activity;
 *     with no background thread it refreshes the summary itself if the last
 *     refresh is >= 100 ms old; with one it pokes it;
 *   - the background thread refreshes the summary at most once a second
 *     while there is activity, and the heap map at most every
 *     TIDEMALLOC_HEAPMAP_MS (default 5000; 0 = never) - and both once more
 *     when the activity stops; a quiet process is never woken for it.
 * TIDEMALLOC_STATS=0 turns the channel off (no descriptor, no mapping).
 */
#ifndef TM_OBSERVE_H
#define TM_OBSERVE_H

#include "internal.h"

/* ---- figures of one arena (taken under its lock; stats.c uses them too) */
struct tm_arena_figures {
    size_t system, max_system;
    size_t fast_count, fast_bytes;
    size_t free_count, free_bytes;   /* bins + top, not fast */
    size_t top;
    size_t released;                 /* interiors + top, not resident */
    size_t nheaps;
    size_t madvise_calls;
};
/* av's figures (its lock held), walking at most `limit` free chunks
 * (SIZE_MAX: all); beyond, the byte totals come from the arena's counters
 * and the result is false (estimated: observe.c gather).              */
TM_HIDDEN bool tm_obs_gather(tm_arena *av, struct tm_arena_figures *f, size_t limit);

/* ---- the channel's layout (version 1, little endian) --------------------
 * A reader copies a region, then checks that its seq was even and has not
 * changed; the writer makes it odd while it writes.                      */
#define TM_OBS_MAGIC    "TIDESTAT"
#define TM_OBS_VERSION  1
#define TM_OBS_NAME     "tidemalloc-stats"
#define TM_OBS_SIZE     ((size_t)2 << 20)
#define TM_OBS_SUMMARY_OFF  ((size_t)4096)
#define TM_OBS_MAP_OFF      ((size_t)256 << 10)
struct tm_obs_region {
    _Atomic uint64_t seq;     /* odd while being written                 */
    uint64_t offset, cap;     /* where the JSON text lies in the file    */
    _Atomic uint64_t len;     /* its length                              */
    uint64_t time_ms;         /* CLOCK_REALTIME of the refresh           */
    uint64_t count;           /* refreshes so far                        */
    uint64_t pad[2];
};
struct tm_obs_header {
    char magic[8];
    uint32_t version, header_size;
    uint64_t pid;
    uint64_t size;
    uint64_t nregions;        /* 0: summary, 1: heap map */
    uint64_t pad[3];
    struct tm_obs_region region[2];
};

/* ---- the slow-path tick ---------------------------------------------------- */
extern __thread uint32_t tm_tls_obs_ticks __attribute__((tls_model("initial-exec"))) TM_HIDDEN;
TM_HIDDEN void tm_obs_tick_slow(void);
static inline void tm_obs_tick(void)
{
    if (unlikely((++tm_tls_obs_ticks & 63) == 0))
        tm_obs_tick_slow();
}

/* Initialization (reads the environment, creates nothing yet). */
TM_HIDDEN void tm_obs_init(void);
/* Background thread, each round: refresh if due; returns when it wants to
 * run again (ms, monotonic), UINT64_MAX if it need not.                 */
TM_HIDDEN uint64_t tm_obs_bg_round(uint64_t now);
/* Fork child: the channel (not inherited) is forgotten; a new one is made
 * on the child's first refresh.                                          */
TM_HIDDEN void tm_obs_fork_child(void);

#endif
