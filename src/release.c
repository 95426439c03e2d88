/*
 * release.c - giving free pages inside the heaps back to the system.
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
 * meta[0] is when the chunk became free (ms) - for a chunk made by
 * coalescing or splitting, the oldest such time of its free parts, so
 * that reusing a piece of a free chunk does not keep the rest young -
 * and meta[1] how many interior bytes are released.  A chunk's pages are released once it has stayed
 * free for the decay time (tm_mp.decay_ms; 0 = at once, -1 = never).
 * Work is amortized: every 32 slow-path calls an arena looks at the clock,
 * and at most every decay/4 ms walks its unsorted and large bins (chunks
 * of at least 16 KiB are only ever there) and its top chunk.  An optional
 * background thread does the same for idle programs.
 *
 * The top chunk is tracked by one address, top_clean: the bytes of
 * [top_clean, top end) are not resident and read as zero (apart from the
 * top's own size word).  Fresh memory from the system starts clean, so
 * calloc can skip zeroing both fresh and released memory (fresh_lo/hi).
 *
 * Accounting: av->released is the sum of meta[1] over the arena's free
 * chunks; a chunk that leaves the free state subtracts its share, and
 * chunks merged by coalescing carry their parts' shares.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>
#include "internal.h"

static inline void interior(tm_chunk *p, size_t size, uintptr_t *lo, uintptr_t *hi)
{
    *lo = align_up((uintptr_t)p + TM_META_END, tm_mp.pagesize);
    *hi = align_down((uintptr_t)p + size, tm_mp.pagesize);
}
static inline size_t interior_bytes(tm_chunk *p, size_t size)
{
    uintptr_t lo, hi;
    interior(p, size, &lo, &hi);
    return hi > lo ? hi - lo : 0;
}

void tm_release_forget(tm_arena *av, tm_chunk *p)
{
    if (chunksize(p) >= TM_RELEASE_MIN) {
        av->released -= chunk_meta(p)[1];
        chunk_meta(p)[1] = 0;
    }
}

/* victim leaves its bin for an allocation: were all its interior pages
 * released (so they read as zero)?                                       */
bool tm_release_take(tm_arena *av, tm_chunk *victim)
{
    size_t size = chunksize(victim);
    if (size < TM_RELEASE_MIN)
        return false;
    size_t rel = chunk_meta(victim)[1];
    bool full = rel != 0 && rel == interior_bytes(victim, size);
    tm_release_forget(av, victim);
    return full;
}

static void release_chunk(tm_arena *av, tm_chunk *p, size_t size)
{
    uintptr_t lo, hi;
    interior(p, size, &lo, &hi);
    if (hi <= lo || chunk_meta(p)[1] == hi - lo)
        return;
    tm_os_release((void *)lo, hi - lo);
    av->madvise_calls++;
    av->released += (hi - lo) - chunk_meta(p)[1];
    chunk_meta(p)[1] = hi - lo;
}

void tm_release_on_free_big(tm_arena *av, tm_chunk *p, size_t size, const tm_relcarry *c)
{
    uint64_t now = tm_os_now_ms();
    chunk_meta(p)[0] = c->stamp < now ? c->stamp : now;
    chunk_meta(p)[1] = c->bytes;
    av->released += c->bytes;
    if (tm_mp.decay_ms == 0)
        release_chunk(av, p, size);
}

void tm_release_split_big(tm_arena *av, tm_chunk *rem, size_t rsize, bool was_released,
                          uint64_t stamp)
{
    /* The remainder has been free since the victim became free. */
    chunk_meta(rem)[0] = stamp ? stamp : tm_os_now_ms();
    /* rem's interior lies inside the victim's: released if that was. */
    size_t b = was_released ? interior_bytes(rem, rsize) : 0;
    chunk_meta(rem)[1] = b;
    av->released += b;
}

void tm_release_fresh_range(tm_arena *av, tm_chunk *p, size_t n)
{
    uintptr_t lo, hi;
    interior(p, n, &lo, &hi);
    if (hi > lo) {
        av->fresh_lo = (char *)lo;
        av->fresh_hi = (char *)hi;
    }
}

/* [victim, victim+nb) was split off the top. */
void tm_release_top_used(tm_arena *av, tm_chunk *victim, size_t nb)
{
    char *newtop = (char *)victim + nb;
    if (av->top_clean && av->top_clean < newtop) {
        char *lo = (char *)chunk2mem(victim);
        if (av->top_clean > lo)
            lo = av->top_clean;
        av->fresh_lo = lo;
        av->fresh_hi = newtop;
        av->top_clean = newtop;
    }
}

/* A free chunk merged into top from below (av->top is still the old top):
 * the old top's header now lies inside the top, no longer clean.       */
void tm_release_top_grew(tm_arena *av)
{
    char *min = (char *)av->top + TM_HDR;
    if (av->top != initial_top(av) && av->top_clean && av->top_clean < min)
        av->top_clean = min;
    av->top_stamp = tm_os_now_ms();
}

/* Top moved or shrank: keep top_clean inside it, else forget it. */
void tm_release_top_reset(tm_arena *av)
{
    char *t = (char *)av->top, *te = t + chunksize(av->top);
    if (!av->top_clean || av->top_clean < t || av->top_clean > te)
        av->top_clean = te;
}

size_t tm_release_top_bytes(tm_arena *av)
{
    if (!av->top_clean || av->top == initial_top(av))
        return 0;
    char *te = (char *)av->top + chunksize(av->top);
    char *lo = (char *)align_up((uintptr_t)av->top_clean, tm_mp.pagesize);
    return te > lo ? (size_t)(te - lo) : 0;
}

/* Release the top's pages below top_clean, keeping `keep` bytes resident. */
static size_t release_top(tm_arena *av, size_t keep)
{
    if (av->top == initial_top(av) || !av->top_clean)
        return 0;
    /* Release up to the page holding top_clean, inclusive: the bytes of
     * that page below top_clean may be dirty, and after the release the
     * whole of [lo, top end) reads as zero.  (Heap ends are page aligned.) */
    uintptr_t te = (uintptr_t)av->top + chunksize(av->top);
    uintptr_t lo = align_up((uintptr_t)av->top + TM_META_END + keep, tm_mp.pagesize);
    uintptr_t hi = align_up((uintptr_t)av->top_clean, tm_mp.pagesize);
    if (hi > te)
        hi = te;
    if (hi <= lo)
        return 0;
    tm_os_release((void *)lo, hi - lo);
    av->madvise_calls++;
    av->top_clean = (char *)lo;
    return hi - lo;
}

/* Release every eligible chunk that became free at or before `cutoff`. */
static size_t purge(tm_arena *av, uint64_t cutoff, size_t top_keep)
{
    size_t before = av->released, done = 0;
    for (unsigned i = 1; i < TM_NBINS; i++) {
        if (i == 2)
            i = TM_NSMALLBINS;   /* small bins never hold chunks >= 16 KiB */
        tm_chunk *bin = bin_at(av, i);
        for (tm_chunk *p = bin->fd; p != bin; p = p->fd) {
            size_t size = chunksize(p);
            if (size >= TM_RELEASE_MIN && chunk_meta(p)[0] <= cutoff)
                release_chunk(av, p, size);
        }
    }
    if (av->top_stamp <= cutoff)
        done += release_top(av, top_keep);
    return done + (av->released - before);
}

static _Atomic uint64_t next_sweep;

/* Purge av if its time has come (av locked by the caller). */
static void purge_if_due(tm_arena *av, uint64_t now)
{
    if (now < av->next_purge)
        return;
    uint64_t step = (uint64_t)tm_mp.decay_ms / 4;
    av->next_purge = now + (step ? step : 1);
    purge(av, now - (uint64_t)tm_mp.decay_ms, tm_mp.top_pad);
}

/* Called from slow paths with av locked.  Also sweeps the *other* arenas
 * now and then (trylock only, so no lock-order problem): an arena whose
 * threads went quiet would otherwise keep its free pages forever.       */
void tm_release_tick_slow(tm_arena *av)
{
    uint64_t now = tm_os_now_ms();
    if (tm_mp.decay_ms >= 0)
        purge_if_due(av, now);
    uint64_t due = atomic_load_explicit(&next_sweep, memory_order_relaxed);
    uint64_t step = tm_mp.decay_ms >= 0 ? (uint64_t)tm_mp.decay_ms / 4 : 250;
    if (now < due || !atomic_compare_exchange_strong(&next_sweep, &due, now + (step ? step : 1)))
        return;
    for (tm_arena *o = av->next; o != av; o = o->next) {   /* the ring only grows */
        if (tm_lock_try(&o->lock)) {
            tm_remote_drain_all(o);
            if (tm_mp.decay_ms >= 0)
                purge_if_due(o, now);
            tm_lock_release(&o->lock);
        }
    }
}

/* malloc_trim: every free page now, keeping `top_keep` bytes of top. */
size_t tm_release_all(tm_arena *av, size_t top_keep)
{
    return purge(av, UINT64_MAX, top_keep);
}

/* ---- the optional background thread ------------------------------------ */
static _Atomic int bg_wanted, bg_running;
static pthread_t bg_thread;

static void *bg_main(void *arg)
{
    (void)arg;
    while (atomic_load(&bg_wanted)) {
        long ms = tm_mp.decay_ms > 0 ? tm_mp.decay_ms / 4 : 100;
        if (ms < 10)
            ms = 10;
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        if (tm_mp.decay_ms < 0)
            continue;
        uint64_t now = tm_os_now_ms();
        tm_lock_acquire(&tm_list_lock);
        tm_arena *first = &tm_main_arena, *av = first;
        tm_lock_release(&tm_list_lock);
        do {
            tm_lock_acquire(&av->lock);
            tm_remote_drain_all(av);
            purge(av, now - (uint64_t)tm_mp.decay_ms, tm_mp.top_pad);
            tm_lock_release(&av->lock);
            av = av->next;   /* the ring only grows; arenas are never freed */
        } while (av != first);
    }
    atomic_store(&bg_running, 0);
    return NULL;
}

void tm_release_set_background(bool on)
{
    atomic_store(&bg_wanted, on);
}

/* Called from an API slow path with no lock held. */
void tm_release_maybe_start_bg(void)
{
    if (!atomic_load_explicit(&bg_wanted, memory_order_relaxed) ||
        atomic_load_explicit(&bg_running, memory_order_relaxed))
        return;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&bg_running, &expect, 1))
        return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&bg_thread, &attr, bg_main, NULL) != 0)
        atomic_store(&bg_running, 0);
    pthread_attr_destroy(&attr);
}


void tm_release_fork_child(void)
{
    atomic_store(&bg_running, 0);   /* threads do not survive fork */
}
