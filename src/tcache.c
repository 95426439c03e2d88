/* tcache.c - slow paths of the per-thread cache (see tcache.h). */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "bins.h"
#include "engine.h"
#include "heap.h"
#include "os.h"
#include "sysmem.h"
#include "tcache.h"

__thread tm_tcache *tm_tls_tcache __attribute__((tls_model("initial-exec")));
__thread tm_tcache *tm_tls_tcache_own __attribute__((tls_model("initial-exec")));
__thread uint8_t tm_tls_tcache_state __attribute__((tls_model("initial-exec")));
uintptr_t tm_tcache_key;
_Atomic uint16_t tm_tc_limit[TM_TCACHE_BINS];

/* Registry of every thread's cache, for the reclaimer.  Lock order: arena
 * locks before reg_lock (the fork handler); nobody takes an arena lock
 * while holding reg_lock.                                               */
static tm_lock reg_lock = TM_LOCK_INIT;
static tm_tcache *reg_head;
static _Atomic bool reclaim_ok;   /* membarrier registered (background thread) */

/* In the fork window the forking thread holds reg_lock (tm_tcache_fork_lock)
 * and passes it, as it passes the arena locks (arena.h).              */
static void reg_acquire(void)
{
    if (!tm_arena_fork_holder())
        tm_lock_acquire(&reg_lock);
}
static void reg_release(void)
{
    if (!tm_arena_fork_holder())
        tm_lock_release(&reg_lock);
}

static void reg_add(tm_tcache *tc)
{
    reg_acquire();
    tc->reg_prev = NULL;
    tc->reg_next = reg_head;
    if (reg_head)
        reg_head->reg_prev = tc;
    reg_head = tc;
    reg_release();
}

static void reg_remove(tm_tcache *tc)
{
    reg_acquire();
    if (tc->reg_prev)
        tc->reg_prev->reg_next = tc->reg_next;
    else
        reg_head = tc->reg_next;
    if (tc->reg_next)
        tc->reg_next->reg_prev = tc->reg_prev;
    reg_release();
}

/* Set tc's limits to the base (a new cache, mallopt, a reclaimed cache),
 * the medium classes' to 0: closed until the owner's slow path finds
 * them open (tm_tcache_medium_limit).                                 */
static void reset_limits(tm_tcache *tc)
{
    size_t bytes = 0;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        size_t lim = i < TM_TCACHE_SMALL_BINS ? tc_limit(i) : 0;
        atomic_store_explicit(&tc->limits[i], (uint16_t)lim, memory_order_relaxed);
        bytes += lim * tm_class_size(i);
        /* the outbox: the base, small classes only (tcache.h); not in
         * limit_bytes, which bounds growth                             */
        atomic_store_explicit(&tc->limits[TM_TCACHE_BINS + i], (uint16_t)(i < TM_TCACHE_SMALL_BINS ? tc_limit(i) : 0), memory_order_relaxed);
    }
    atomic_store_explicit(&tc->limit_bytes, bytes, memory_order_relaxed);
}

/* limit(class) = min(tcache_count, share of the byte budget), >= 1 when
 * counts are on; classes above tcache_max are not cached, the medium
 * ones only while tcache_max is at its largest (1032, glibc's ceiling).
 * The share is the budget / 64, as before the medium classes came: the
 * small classes keep their limits, and the medium ones take one chunk
 * each or what the share allows (all 32 at their base limits: 202 KiB). */
void tm_tcache_recompute_limits(void)
{
    size_t share = TM_P(tcache_bytes) / TM_TCACHE_SMALL_BINS;
    size_t count = TM_P(tcache_count), max_req = TM_P(tcache_max_req);
    /* M_PERTURB and the strong mode want every allocation and free seen. */
    bool perturb = TM_P(perturb) != 0 || TM_P(harden) != 0;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        size_t csize = tm_class_size(i);
        size_t lim = 0;
        bool on = i < TM_TCACHE_SMALL_BINS ? max_req > 0 && i <= tc_req_index(max_req)
                                            : max_req >= TM_TCACHE_MAX_REQ;
        if (count > 0 && on) {
            lim = share / csize;
            if (lim < 1)
                lim = 1;
            if (lim > count)
                lim = count;
        }
        if (perturb)
            lim = 0;
        atomic_store_explicit(&tm_tc_limit[i], (uint16_t)lim, memory_order_relaxed);
    }
    reg_acquire();
    for (tm_tcache *tc = reg_head; tc; tc = tc->reg_next)
        reset_limits(tc);
    reg_release();
}

/* The own arena drained deeply and its cap is strict (release.h). */
static inline bool own_drained(const tm_arena *own)
{
    return own != NULL && tm_release_strict_now(own);
}

/* May the calling thread's cache hold more than the base (grown limits,
 * the medium classes)?  Such a cache must not outlive its use: only when
 * idle caches can be reclaimed, or while the process has one thread
 * (whose cache is then the only one), and not while the thread's arena
 * has drained deeply (the program is giving its memory back: cached
 * chunks pin their pages).                                            */
static bool may_hold_more(void)
{
    if (!atomic_load_explicit(&reclaim_ok, memory_order_relaxed) &&
        atomic_load_explicit(&tm_multi_threaded, memory_order_relaxed))
        return false;
    return !own_drained(tm_thread_arena());
}

/* The background thread runs and can take idle caches back. */
static inline bool reclaimer_on(void)
{
    return atomic_load_explicit(&reclaim_ok, memory_order_relaxed) &&
           atomic_load_explicit(&tm_bg_active, memory_order_relaxed);
}

/* No background thread to take caches back, and the own arena's chunks
 * in use ebbed (release.h): the program is giving its memory back, and
 * nothing but the cache itself will let go of what it holds.          */
static bool solo_ebbed(void)
{
    if (reclaimer_on())
        return false;
    tm_arena *own = tm_thread_arena();
    return own != NULL && atomic_load_explicit(&own->ebbed, memory_order_relaxed);
}

/* What the thread's limits may grow to in all (config.h): a share of
 * its arena's chunks in use at their mark, within bounds.  A program
 * whose working set comes and goes in rounds of tens of MiB (wl_swing,
 * wl_mleak, wl_frag) flushed most of each round into the bins and carved
 * it out again with 2 MiB; a small one keeps the 2 MiB.  The share is
 * smaller without a reclaimer: a single-threaded program that frees
 * everything must still see its chunks in use ebb (release.h) with its
 * cache full, which then lets go of it (shrink_if_drained).            */
size_t tm_tcache_grow_total(void)
{
    tm_arena *own = tm_thread_arena();
    if (!own)
        return TM_TCACHE_GROW_TOTAL;
    size_t share = atomic_load_explicit(&own->inuse_hint, memory_order_relaxed) /
                   (reclaimer_on() ? TM_TCACHE_GROW_SHARE_BG : TM_TCACHE_GROW_SHARE_SOLO);
    return share < TM_TCACHE_GROW_TOTAL ? TM_TCACHE_GROW_TOTAL
           : share > TM_TCACHE_GROW_TOTAL_MAX ? TM_TCACHE_GROW_TOTAL_MAX : share;
}

static inline bool tc_missed(const tm_tcache *tc, size_t i) { return (tc->missed[i / 64] >> (i % 64)) & 1; }
static inline void tc_set_missed(tm_tcache *tc, size_t i) { tc->missed[i / 64] |= (uint64_t)1 << (i % 64); }

/* Class i of the calling thread's cache is full at limit lim: double the
 * limit if the class ever missed in this thread, growing is allowed
 * (may_hold_more, solo_ebbed) and within bounds; the new limit, or lim. */
static size_t grow_limit(tm_tcache *tc, size_t i, size_t lim)
{
    if (lim == 0 || !tc_missed(tc, i) || !may_hold_more() || solo_ebbed())
        return lim;
    size_t csize = tm_class_size(i);
    size_t max = TM_TCACHE_GROW_CLASS_BYTES / csize;
    if (max > TM_TCACHE_GROW_COUNT)
        max = TM_TCACHE_GROW_COUNT;
    /* A count the program chose (mallopt, tcache_count tunable) bounds
     * growth as well: glibc's tcache_count is a hard bound per class. */
    size_t count = TM_P(tcache_count);
    if (count != TM_TCACHE_DEFAULT_COUNT && max > count)
        max = count;
    size_t base = tc_limit(i);
    if (max < base)
        max = base;
    if (lim >= max || base == 0)
        return lim;
    size_t nl = lim * 2 < max ? lim * 2 : max;
    size_t total = atomic_load_explicit(&tc->limit_bytes, memory_order_relaxed);
    if (total + (nl - lim) * csize > tm_tcache_grow_total())
        return lim;
    uint16_t expect = (uint16_t)lim;
    if (!atomic_compare_exchange_strong_explicit(&tc->limits[i], &expect, (uint16_t)nl,
                                                 memory_order_relaxed, memory_order_relaxed))
        return expect;                /* mallopt reset it meanwhile */
    atomic_store_explicit(&tc->limit_bytes, total + (nl - lim) * csize, memory_order_relaxed);
    tc->grown = true;
    return nl;
}

void tm_tcache_init_key(void)
{
    /* bit 27 clear: tm_sec.parked has it set (tcache.h TC_KEY_PARKED) */
    tm_tcache_key = tm_sec.parked & ~TC_KEY_PARKED;
}

/* A cache lives in one meta slot, a page (meta.h); a bigger one is never
 * made, and its thread silently runs without a cache (a salt array next
 * to the chains made it 5512 bytes once: test_tcache noticed).        */
_Static_assert(sizeof(tm_tcache) <= 4096, "a thread cache fits a meta slot");

bool tm_tcache_thread_init(void)
{
    if (tm_tls_tcache_state != 0)
        return false;
    tm_tls_tcache_state = 2;     /* guards against re-entry while we allocate */
    /* Not in a heap: a slot between guard pages (meta.h), so no overflow
     * of a user block reaches the list heads.  Zeroed.                 */
    void *mem = tm_meta_alloc(sizeof(tm_tcache));
    if (!mem)
        return true;             /* no cache for this thread; still correct */
    reset_limits(mem);
    for (size_t j = 0; j < TM_TC_SLOTS; j++)
        ((tm_tcache *)mem)->chain[j] = tc_chain0(mem, j);
    ((tm_tcache *)mem)->home = tm_thread_arena();
    tm_own_range_register(&((tm_tcache *)mem)->own);   /* (empty until the first refill) */
    reg_add(mem);
    tm_tls_tcache_own = mem;
    tm_tls_tcache = tm_fix.profiling ? NULL : mem;   /* profiling: slow paths only */
    tm_tls_tcache_state = 1;
    tm_event_poke(&tm_bg_event);     /* one more cache to watch */
    return true;
}

/* A run of n entries of class i (cache format, head..tail linked) for
 * the foreign arena av: one CAS on its class list, where a thread of av
 * installs it as its own cache class.  Uncached classes, and a class list
 * that is full, take the general remote list (chunks linked through fd,
 * parked key kept), drained into the bins by av's next holder.             */
static void flush_run(tm_arena *av, tm_tc_entry *head, tm_tc_entry *tail, size_t n, size_t i)
{
    if (i < TM_TCACHE_BINS && tm_remote_push_class(av, i, head, tail, n, tc_limit(i) * TM_RCLS_LIMITS))
        return;
    tm_chunk *h = NULL, *t = NULL;
    for (tm_tc_entry *e = head; n > 0; n--) {
        tm_tc_entry *next = tc_reveal(e);    /* before fd overwrites it */
        tc_key_park(e, tm_park_key(av, TM_PARK_STACK));   /* the remote stack's mark (arena.h) */
        tm_chunk *p = mem2chunk(e);
        p->fd = NULL;
        if (t)
            t->fd = p;
        else
            h = p;
        t = p;
        e = next;
    }
    tm_remote_push(av, h, t);
}

/* The runs free_chain builds: one per arena met, up to TC_RUNS at once
 * (a fifth arena pushes the oldest run first).  A consumer's outbox
 * holds the chunks of every producer it serves, interleaved batch by
 * batch: one run at a time, cut at each change of arena, made runs of ~8
 * entries out of a flush of 32 (wl_prodcons, two producers), and a run
 * no longer than TC_HINT_DIST carries no hint at all: with hints 8
 * places ahead 34 % of the entries installed had one, with 4 places and
 * a run per arena 65 %.  Every entry written here passed chain_check. */
#define TC_RUNS 4u
typedef struct {
    tm_arena *av;                      /* NULL: a free run slot */
    uintptr_t key;                     /* av's class-list parked key (tm_park_key), once per run */
    tm_tc_entry *head, *tail;
    size_t n;
    tm_tc_entry *last[TC_HINT_DIST];   /* its last entries, whose hints wait for the ones that follow */
} tc_run;
/* e joins run r (after `prev`, the entry walked before it). */
static inline void tc_run_add(tc_run *r, tm_tc_entry *e, const tm_tc_entry *prev)
{
    if (!r->head)
        r->head = e;
    else if (prev != r->tail)
        tc_link(r->tail, e);          /* entries of other arenas, or own ones, in between */
    r->tail = e;
    tm_tc_entry **s = &r->last[r->n % TC_HINT_DIST];
    if (r->n >= TC_HINT_DIST)
        tc_hint_set(*s, e);
    *s = e;
    r->n++;
}

/* Run r is complete: its last entries' hints point nowhere; push it. */
static void run_push(tc_run *r, size_t i)
{
    for (size_t k = r->n > TC_HINT_DIST ? r->n - TC_HINT_DIST : 0; k < r->n; k++)
        tc_hint_set(r->last[k % TC_HINT_DIST], NULL);
    flush_run(r->av, r->head, r->tail, r->n, i);
    r->av = NULL;
    r->head = r->tail = NULL;
    r->n = 0;
}

/* Free a chain of n cached entries of class i (TM_TCACHE_BINS: not a
 * cached class), taken from the slot whose identity is `slot`
 * (slot: its tc_slot_id, with *chain its head's chain value, set to the
 * value below the last entry walked; 0 and NULL: a lone entry that holds
 * no key), to their arenas.  Chunks of the calling thread's own arena
 * are freed under its lock; chunks of other arenas are pushed, a run at a
 * time, with one CAS on that arena's class-i list, where a thread of that
 * arena takes them back into its cache without a lock: a consumer never
 * waits for a producer, and the objects skip the bins.  The entries keep
 * the cache's format (links, key) on that list, so neither side relinks
 * them, except where a run skips an own-arena entry.  A thread with no
 * arena of its own (one that frees and never allocates: a pure consumer)
 * has only foreign chunks.  It used to take the first chunk's arena as
 * its own and free everything under that arena's lock, the producer's:
 * every flush of wl_prodcons's consumers went through the bins.        */
/* A walk that frees or moves a slot's entries (free_chain, take_all)
 * checks every entry it reaches through a link before it uses it: ours,
 * aligned, and its place in the chain of the slot it came from (slot
 * nonzero: its chain value is `want`, and its key the next one's) or,
 * slot 0, holding the key `want` exactly (a list's parked key; 0 for a
 * lone entry).  A link redirected to a live block (no key needed:
 * nothing pops it) freed that block under the program (misuse
 * tcache_flush_redirect), and a list that ended before its count ran
 * out made the walk read NULL.                                       */
static inline void chain_check(const tm_own_range *r, const tm_tc_entry *e, uintptr_t slot, uintptr_t want,
                               const char *msg)
{
    /* (the chunk's first 40 bytes, both ends in one heap: the header
     * before e is read by the caller, the key word after it here, the
     * prefetch hint after that by the walks (tcache.h) - at the brk
     * heap's edges one of them can lie outside while another is inside;
     * one range test for all, owner.h.  The cache's own range first: its
     * end is TM_OWN_RANGE_TAIL short of its heap's.)                    */
    if (unlikely(!aligned_ok((uintptr_t)e) ||
                 (TIDE_CHECKS && ((!likely(tm_own_range_aligned(r, (uintptr_t)e - TM_HDR)) &&
                                   !tm_own_span_in_heaps((uintptr_t)e - TM_HDR, TM_HDR + 3 * TM_SIZE_SZ)) ||
                                  (slot ? tc_chain_entry(slot, e) : e->key) != want))))
        tm_corrupt(msg, e);
}

static void free_chain(const tm_own_range *r, tm_tc_entry *e, size_t n, size_t i, uintptr_t slot, uintptr_t *chain,
                       bool final, tm_tc_entry **after)
{
    uintptr_t want = chain ? *chain : 0;
    tm_arena *own = tm_thread_arena();
    bool own_locked = false;
    /* The own arena's class list doubles as a small transfer cache: while
     * it holds at most TM_STASH_LIMITS class limits, own chunks go there
     * too (one CAS, no lock, no bins), and the next miss of any thread of
     * this arena takes them back whole.  The bound keeps what waits there
     * small; decay ticks and the background thread drain it (arena.c).
     * Once the arena's chunks in use ebbed (release.h) only one limit,
     * and a list holding more is emptied into the bins below: parked
     * chunks keep the free memory between them from coalescing into
     * releasable runs, which a program giving its memory back needs.
     * Nothing once the arena has drained deeply (its cap is strict).    */
    bool drained = own_drained(own);
    bool ebbed = own != NULL && atomic_load_explicit(&own->ebbed, memory_order_relaxed);
    size_t lim = i < TM_TCACHE_BINS ? tc_limit(i) : 0;
    size_t parked = own != NULL && lim ? tm_remote_class_count(own, i) : 0;
    size_t stash_max = !drained && !final ? (ebbed ? 1 : TM_STASH_LIMITS) * lim : 0;
    bool stash = own != NULL && n <= stash_max && parked + n <= stash_max;
    bool empty_lists = drained || (ebbed && parked > lim);
    tm_pending pend;                  /* own chunks, merged at the end (engine.h) */
    tm_tc_entry *prev = NULL;
    tc_run runs[TC_RUNS];
    for (size_t k = 0; k < TC_RUNS; k++) {
        runs[k].av = NULL;            /* (last[] is written before it is read) */
        runs[k].head = runs[k].tail = NULL;
        runs[k].n = 0;
    }
    size_t oldest = 0;                /* (the next run slot to reuse) */
    while (n--) {
        chain_check(r, e, slot, want, "free(): corrupted tcache link");
        if (slot)
            want = e->key;        /* (the chain below e: the next entry's value) */
        tm_tc_entry *next = n || after ? tc_reveal(e) : NULL;
        if (!n && after)
            *after = next;        /* what follows the chain (before e is freed) */
        tm_chunk *p = mem2chunk(e);
        tm_arena *av = arena_for_chunk(p);
        if (!stash && av == own) {
            if (!own_locked) {
                tm_arena_enter_owner(own);
                own_locked = true;
                tm_int_free_begin(own, &pend);
            }
            tm_int_free_pend(av, p, &pend);
        } else {
            tc_run *r = NULL;
            for (size_t k = 0; k < TC_RUNS && !r; k++)
                if (runs[k].av == av)
                    r = &runs[k];
            if (!r) {
                r = &runs[oldest];
                oldest = (oldest + 1) % TC_RUNS;
                if (r->av)
                    run_push(r, i);
                r->av = av;
                r->key = tm_park_key(av, i);
            }
            tc_key_park(e, r->key);   /* on av's class list: parked, not cached */
            tc_run_add(r, e, prev);
        }
        prev = e;
        e = next;
    }
    for (size_t k = 0; k < TC_RUNS; k++)
        if (runs[k].av)
            run_push(&runs[k], i);
    if (own_locked) {
        tm_int_free_settle(own, &pend);
        if (empty_lists)
            tm_arena_drain_all(own);
        tm_arena_leave(own);
    }
    if (chain)
        *chain = want;
}

/* Slot j empty: no head, no count, the empty chain. */
static void slot_reset(tm_tcache *tc, size_t j)
{
    tc->entries[j] = NULL;
    tc->counts[j] = 0;
    tc->chain[j] = tc_chain0(tc, j);
}

/* Empty slot j (its entries to their arenas: free_chain). */
static void slot_flush(tm_tcache *tc, size_t j, bool final)
{
    if (tc->counts[j]) {
        uintptr_t chain = tc->chain[j];
        free_chain(&tc->own, tc->entries[j], tc->counts[j], j % TM_TCACHE_BINS, tc_slot_id(tc, j), &chain, final, NULL);
        TM_ASSERT(chain == tc_chain0(tc, j));
    }
    slot_reset(tc, j);
}

/* Keep `keep` entries of class i: flush the newest, from the head, and
 * keep the older ones.  The head entries are the ones in the processor's
 * cache, which the flush writes to anyway; keeping them instead meant
 * walking the kept half to find the cut, entry by entry, each a likely
 * cache miss in a grown class (python under perf: trim_class 3.5-4.4 %
 * of all samples, the allocator's time against the interpreter's 0.68
 * -> 0.57).  tcmalloc releases from the head too.                      */
static void trim_class(tm_tcache *tc, size_t i, size_t keep, bool no_stash)
{
    if (keep >= tc->counts[i])
        return;
    tm_tc_entry *rest = NULL;            /* the (keep + 1)-th entry on: the kept ones */
    uintptr_t chain = tc->chain[i];
    free_chain(&tc->own, tc->entries[i], tc->counts[i] - keep, i, tc_slot_id(tc, i), &chain, no_stash, keep ? &rest : NULL);
    tc->entries[i] = rest;
    tc->counts[i] = (uint16_t)keep;
    tc->chain[i] = chain;                /* (the kept head's chain value) */
}

/* The own arena drained deeply (its cap is strict: the program is giving
 * its memory back), or its chunks in use ebbed with no background
 * thread: a grown cache goes back to the base limits and lets go of
 * what is beyond them.  Cached chunks pin their pages and keep the free
 * memory between them from coalescing, and a thread about to go quiet
 * must not keep thousands of them scattered over the heap (test_quiet_st;
 * test_quiet churn: 64 MiB resident for good when only the deep drain,
 * which such scattered chunks delay, shrank the cache).               */
/* no_stash: the own arena's chunks go into its bins, not onto its class
 * lists (free_chain's `final`), for a caller that drains those next. */
static void shrink(tm_tcache *tc, bool no_stash)
{
    tc->grown = false;
    reset_limits(tc);
    for (size_t k = 0; k < TM_TCACHE_BINS; k++)
        trim_class(tc, k, tc_my_limit(tc, k), no_stash);
}
static void shrink_if_drained(tm_tcache *tc)
{
    tm_arena *own = tm_thread_arena();
    if (tc->grown && (own_drained(own) || solo_ebbed()))
        shrink(tc, false);
}

/* The medium classes hold up to 8 KiB per entry: open only where the
 * cache may hold more than the base, as for growth.  Cached medium
 * chunks keep the big free chunks between them from coalescing into the
 * top: with the classes always open, a drained arena's strict cap
 * released those at every round of a churn (test_release: 16 madvise
 * calls became 600), and 8 parked threads with no background thread
 * kept 2 MiB more (test_quiet_optout at its bound).                    */
bool tm_tcache_medium_open(void) { return may_hold_more(); }

/* The fast paths serve a medium class as any other, within the thread's
 * limits[]: 0 while the classes are closed, the base once a slow path
 * found them open (here).  Closing (tm_tcache_drained_medium) needs the
 * owner's slow path too: until then the thread keeps at most its base
 * limits' worth (202 KiB), as before a slow path saw it.
 * Owner only, outside the cache (limits[] are atomics: mallopt and the
 * reclaimer reset them, to closed).                                   */
size_t tm_tcache_medium_limit(tm_tcache *tc, size_t i)
{
    size_t base = tc_limit(i);
    if (base == 0 || !may_hold_more())
        return 0;
    if (tc_my_limit(tc, i) == 0) {
        tc->medium_held = true;
        size_t add = 0;
        for (size_t k = TM_TCACHE_SMALL_BINS; k < TM_TCACHE_BINS; k++) {
            uint16_t expect = 0, lim = (uint16_t)tc_limit(k);
            if (lim && atomic_compare_exchange_strong_explicit(&tc->limits[k], &expect, lim,
                                                               memory_order_relaxed, memory_order_relaxed))
                add += lim * tm_class_size(k);
        }
        atomic_fetch_add_explicit(&tc->limit_bytes, add, memory_order_relaxed);
    }
    return base;
}

/* The medium classes closed (above; a deep drain, or no reclaimer)
 * (tc_slow_limit) and what they hold goes back, so that it does not pin
 * the top of the heap (test_release: a cached chunk from an earlier
 * phase kept 47 MB of heap from being trimmed, and a later churn paid
 * the strict cap's madvise at every round).  Slow paths only.          */
void tm_tcache_drained_medium(tm_tcache *tc)
{
    /* Closed already (nothing opened them since): every medium request
     * of a drained thread comes here, and the walk of 32 classes cost
     * about 830 instructions a call (a free burst of 1-16 KiB blocks in
     * a drained arena, callgrind: 1085 -> 750 instructions per
     * operation; glibc 272).  Only this thread opens
     * them (tm_tcache_medium_limit) and caches into them while open, so
     * the flag is exact; a reset by mallopt or the reclaimer leaves it
     * set, and the walk then trims what they left.                    */
    if (!tc->medium_held || tm_tcache_medium_open())
        return;
    tc->medium_held = false;
    size_t sub = 0;
    for (size_t k = TM_TCACHE_SMALL_BINS; k < TM_TCACHE_BINS; k++) {
        sub += atomic_exchange_explicit(&tc->limits[k], 0, memory_order_relaxed) * tm_class_size(k);
        if (tc->counts[k])
            trim_class(tc, k, 0, false);
    }
    if (sub) {      /* (clamped: a mallopt's reset_limits may have come between) */
        size_t total = atomic_load_explicit(&tc->limit_bytes, memory_order_relaxed);
        atomic_store_explicit(&tc->limit_bytes, total > sub ? total - sub : 0, memory_order_relaxed);
    }
}

/* Class i is full: flush half of it (trim_class), then cache e. */
void tm_tcache_put_full(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    shrink_if_drained(tc);
    size_t lim = tc_my_limit(tc, i);   /* once: another thread's mallopt may change it */
    if (lim != 0 && tc->counts[i] >= lim) {
        size_t nl = grow_limit(tc, i, lim);
        if (tc->counts[i] < nl) {     /* room now: cache e, flush nothing */
            tc_push(tc, e, i);
            return;
        }
    }
    if (lim == 0 || tc->counts[i] == 0) {
        /* Class not cached any more (another thread's mallopt changed the
         * limits after our caller looked): straight to the arena.       */
        e->key = 0;
        hdr_flip_cached(mem2chunk(e));    /* (free_chain takes cache entries) */
        free_chain(&tc->own, e, 1, TM_TCACHE_BINS, 0, NULL, false, NULL);   /* (slot 0, no chain: key 0) */
        return;
    }
    trim_class(tc, i, lim / 2, false);    /* (fewer entries than that: the limit was raised) */
    tc_push(tc, e, i);
}

/* Cut the in-use chunk c (from tm_int_malloc_run) into pieces of nb
 * bytes and return the first, which also takes the split's leftover
 * (< 32 bytes); the others go into class i, the highest pushed first,
 * so that the next mallocs of the class get them in address order:
 * objects allocated one after the other lie one after the other, as
 * the program will likely walk them.  (Pushed lowest first, the pieces
 * came out backwards: python 3 % more CPU time.)                       */
static void *carve(tm_tcache *tc, tm_chunk *c, size_t nb, size_t i)
{
    size_t total = chunksize(c);
    size_t n = total / nb;
    size_t first = total - (n - 1) * nb;
    size_t bits = TM_PREV_INUSE | (size_word(c) & TM_NON_MAIN);
    set_head(c, first | (size_word(c) & (TM_PREV_INUSE | TM_NON_MAIN)));
    char *p = (char *)c + first + (n - 1) * nb;
    for (size_t k = 1; k < n; k++) {
        p -= nb;
        set_head((tm_chunk *)p, nb | bits);
        tc_push(tc, chunk2mem((tm_chunk *)p), i);
    }
    return chunk2mem(c);
}

/* The cache's own range (owner.h) follows the chunks the refills bring:
 * the brk range, or the sub-heap slot of the thread's arena.  It covers
 * chunks of tc->home's arena only (every chunk of the brk range is the
 * main arena's, every chunk of a slot its heap's arena's), which lets
 * free's fast path skip the outbox test for a chunk inside it: a chunk
 * of another arena, or a new home, empties it.                        */
static inline void track_range(tm_tcache *tc, void *m)
{
    if (!TIDE_CHECKS)
        return;
    const tm_chunk *c = mem2chunk(m);
    if (tm_own_range_aligned(&tc->own, (uintptr_t)c))
        return;                       /* (most refills: nothing changes) */
    if (!chunk_is_mmapped(c) && arena_for_chunk(c) == tc->home)
        tm_own_range_track(&tc->own, (uintptr_t)c);
    else
        tm_own_range_clear(&tc->own);
}
static inline void set_home(tm_tcache *tc, const tm_arena *av)
{
    if (tc->home != av) {
        tc->home = av;
        tm_own_range_clear(&tc->own);    /* (another arena's chunks: track_range) */
    }
}

bool tm_tcache_put_away(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    tm_chunk *p = mem2chunk(e);
    size_t j = TM_TCACHE_BINS + i;
    size_t lim = tc_my_limit(tc, j);     /* once: mallopt may change it */
    if (lim == 0)
        return false;      /* not cached (mallopt, M_PERTURB, the strong mode): the caller's path */
    tm_arena *own = tm_thread_arena();
    if (arena_for_chunk(p) == own) {
        set_home(tc, own);      /* the thread moved since the last refill */
        return false;
    }
    if (tc->counts[j] >= lim) {
        slot_flush(tc, j, false);
    }
    tc_push(tc, e, j);
    return true;
}

/* The chunks other threads freed into our arena's class-i list: one
 * exchange, no lock, and the list becomes the (empty) class as it is,
 * count included; it may hold more than the class limit, which costs no
 * memory (the chunks are ours either way) and the next full free trims.
 * A class list of arena av taken whole becomes the cache's class i: its
 * entries carry the list's parked key (free_chain parks every entry it
 * puts on a class list), and the hit path takes only an entry in its
 * slot's chain (tcache.h), so each is pushed onto the class - once it is known to be
 * what the list holds: ours, aligned, the list's parked key exactly (an
 * entry reached through a redirected link that some cache holds, or that
 * is parked on another list - another class's, another arena's - has
 * another key: refused), and its header of the class's size (the hit
 * path does not look at headers).  One walk over entries the pops would
 * read anyway.                                                        */
static void rekey_list(tm_tcache *tc, const tm_arena *av, tm_tc_entry *e, size_t n, size_t i)
{
    uintptr_t parked = tm_park_key(av, i);
    size_t csize = tm_class_size(i);
    for (; n > 0; n--) {
        /* (ours and parked first, chain_check; then the header's size.
         * Not the checksum, which
         * the pop of the first entry and every chunk's way out of the
         * program's hands verify: every entry a consumer thread takes
         * passes here.)                                                */
        chain_check(&tc->own, e, 0, parked, "malloc(): corrupted tcache link");
        if (unlikely(TIDE_CHECKS && (size_word(mem2chunk(e)) & (TM_SIZE_MASK | TM_IS_MMAPPED)) != csize))
            tm_corrupt("malloc(): corrupted tcache link", e);
        tm_tc_entry *next = n > 1 ? tc_reveal(e) : NULL;
        tc_hint_prefetch(e);        /* (the entry TC_HINT_DIST down: above) */
        tc_push_moved(tc, e, i);    /* (as it is walked: the order reverses, the chain grows from the bottom) */
        e = next;
    }
}

static void *take_remote_class(tm_tcache *tc, tm_arena *own, size_t i)
{
    tm_rlist l = tm_remote_take_class(own, i);
    if (!l.head)
        return NULL;
    TM_ASSERT(tc->entries[i] == NULL && tc->counts[i] == 0 && l.n > 0);
    rekey_list(tc, own, l.head, l.n, i);    /* (the class: l.n entries) */
    return tc_pop(tc, i);
}

/* A miss in class i.  First the class's remote list (no lock).  Else a
 * batch from the arena under one lock: chunks of exactly nb waiting in a
 * fast or small bin come first; the rest is carved from the free chunk
 * a single malloc would split, as much of it as the batch needs (one
 * trip through the bins, and the new chunks lie side by side).         */
void *tm_tcache_refill(tm_tcache *tc, size_t nb)
{
    size_t i = tc_csize_index(nb);
    tc_set_missed(tc, i);
    tm_arena *mine = tm_thread_arena();
    void *m0 = take_remote_class(tc, mine, i);
    if (m0) {
        set_home(tc, mine);
        track_range(tc, m0);
        return m0;
    }
    size_t want = tc_limit(i) / 2 + 1;     /* the base: a grown class refills no more */
    tm_arena *av = tm_arena_enter();
    set_home(tc, av);                      /* (the thread may have moved) */
    void *first = NULL;
    size_t got = 0;
    while (got < want && tm_bins_has_exact(av, nb)) {
        void *m = tm_int_malloc(av, nb, NULL);
        if (!m)
            break;
        if (!first)
            first = m;
        else
            tc_push(tc, m, i);
        got++;
    }
    /* The rest carved, from up to TM_REFILL_CARVES chunks: a hole may
     * hold fewer pieces than the batch needs (one carve per refill made
     * wl_mleak refill 29 % more often than when the batch came whole).
     * Before the heap grows for it, what the arena's lists hold - chunks
     * of other classes parked by flushes (free_chain's stash) or other
     * threads - goes into the bins, where it coalesces and can be
     * carved: a program that frees blocks of one size and then
     * allocates another grew the heap by every size's parked chunks
     * (wl_glibc_simple's series of 16..512 B blocks: 1.9 MiB of heap
     * for at most 0.8 MiB live).  So do the thread's own grown classes,
     * back to their base limits (shrink, straight into the bins; the
     * flush needs the arena's lock, so the arena is left and entered
     * again).  Once per refill:
     * a heap that must grow anyway has nothing more to give.          */
    size_t need = want - got;
    bool drained = false;
    for (unsigned k = 0; need > 0 && k < TM_REFILL_CARVES; k++) {
        size_t run = need * nb;
        if (run >= TM_P(mmap_threshold))
            run = nb;
        void *m = tm_int_malloc_run(av, nb, run, drained);
        if (!m && !drained) {
            drained = true;
            bool freed = tc->grown;
            if (freed) {
                tm_arena_leave(av);
                shrink(tc, true);       /* (drained below anyway) */
                /* The base limits close the medium classes; this refill
                 * is a slow path of class i, so a medium class i opens
                 * again now (with its siblings, as any slow path opens
                 * them), or its pieces would sit over a limit of 0 and
                 * each of their frees take the slow path to reopen it.
                 * (Not if the flush drained the arena deeply: closed
                 * they stay, and the next slow path empties them.)    */
                if (i >= TM_TCACHE_SMALL_BINS)
                    (void)tm_tcache_medium_limit(tc, i);
                av = tm_arena_enter();
                set_home(tc, av);
            }
            if (tm_arena_drain_all(av) || freed)
                m = tm_int_malloc_run(av, nb, run, false);
            if (!m)
                m = tm_int_malloc_run(av, nb, run, true);
        }
        if (!m)
            break;
        tm_chunk *c = mem2chunk(m);
        if (chunk_is_mmapped(c)) {        /* the heap could not grow */
            if (!first)
                first = m;
            else
                tm_munmap_chunk(c);
            break;
        }
        size_t pieces = chunksize(c) / nb;
        if (pieces >= 2)
            m = carve(tc, c, nb, i);
        need -= pieces < need ? pieces : need;
        if (!first) {
            first = m;
        } else {
            /* m may be a little bigger than nb: cache it in its class. */
            size_t j = tc_csize_index(chunksize(mem2chunk(m)));
            if (j < TM_TCACHE_BINS && tc->counts[j] < tc_my_limit(tc, j))
                tc_push(tc, m, j);
            else
                tm_int_free(av, mem2chunk(m));
        }
    }
    if (first)
        track_range(tc, first);       /* (arena lock before the set's: owner.h) */
    tm_arena_leave(av);
    return first;
}

/* e carries the cache key: it is cached already, or its user data happens
 * to hold the key (astronomically unlikely).  Look before crying wolf.  */
void tm_tcache_double_free_check(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    for (size_t j = i; j < TM_TC_SLOTS; j += TM_TCACHE_BINS) {    /* the class, its outbox */
        size_t n = 0;
        for (tm_tc_entry *t = tc->entries[j]; t; t = tc_reveal(t)) {
            if (unlikely(n++ >= TM_TCACHE_COUNT_MAX))
                tm_corrupt("free(): too many chunks detected in tcache", e);
            if (unlikely(!aligned_ok((uintptr_t)t)))
                tm_corrupt("free(): unaligned chunk detected in tcache 2", t);
            if (t == e)
                tm_corrupt("free(): double free detected in tcache 2", e);
        }
    }
#if TIDE_CHECKS
    /* Marked but not ours: parked on a class list or the remote stack, or held by
     * another thread's cache (keys are cleared on every way out).     */
    if (tc_key_parked(e))
        tm_corrupt("free(): double free detected (remote list)", e);
    tm_corrupt("free(): double free detected", e);
#endif
}

/* final (thread exit): nothing of the own arena is parked on its class
 * lists - no thread of it may come back for them (tm_tcache_flush_all
 * then empties those lists into the bins).                            */
static void flush_classes(tm_tcache *tc, bool final)
{
    for (size_t j = 0; j < TM_TC_SLOTS; j++) {
        slot_flush(tc, j, final);
    }
}

void tm_tcache_flush_all(void)
{
    tm_tcache *tc = tm_tls_tcache_own;
    tm_tls_tcache = tm_tls_tcache_own = NULL;
    tm_tls_tcache_state = 2;
    if (!tc)
        return;
    reg_remove(tc);                  /* out of the reclaimer's reach */
    tm_arena *own = tm_thread_arena();
    long decay = TM_P(decay_ms);
    if (own && decay > 0 && atomic_load_explicit(&tm_bg_active, memory_order_relaxed) &&
        tm_arena_sole_user(own)) {
        /* The arena's last thread leaves: what its exit frees is not held
         * to the cap at once, but left to the background thread's decay
         * (or to the next thread that takes the arena over and reuses it).
         * mstress, whose fresh threads take over each other's arenas every
         * round, paid half its madvise calls here and faulted the pages
         * back a moment later (release.h).                               */
        tm_arena_enter_owner(own);
        own->cap_defer_until = tm_os_now_ms() + (uint64_t)decay;
        tm_arena_leave(own);
    }
    flush_classes(tc, true);
    /* What waits on the own arena's lists goes into the bins, so that the
     * pages can coalesce and be given back (glibc_thread: 2.4 MB at exit;
     * 7-10 MB with the medium classes' chunks left on the lists of arenas
     * nobody used again).                                             */
    if (own) {
        tm_arena_enter_owner(own);
        tm_arena_drain_all(own);
        tm_arena_leave(own);
    }
    tm_own_range_unregister(&tc->own);
    tm_meta_free(tc);
}

void tm_tcache_flush_keep(void)
{
    tm_tcache *tc = tm_tls_tcache_own;
    if (tc) {
        tc_enter(tc);
        flush_classes(tc, false);
        reset_limits(tc);
        tc_leave(tc);
    }
}

size_t tm_tcache_cached_bytes(void)
{
    tm_tcache *tc = tm_tls_tcache_own;
    size_t b = 0;
    if (!tc)
        return 0;
    tc_enter(tc);
    for (size_t j = 0; j < TM_TC_SLOTS; j++)
        b += (size_t)tc->counts[j] * tm_class_size(j % TM_TCACHE_BINS);
    tc_leave(tc);
    return b;
}

/* Every thread's cache, read from another thread (statistics): the counts
 * are read with relaxed loads while their owners may change them, so the
 * total is a close estimate, not a snapshot; spill lists belong to their
 * owners and are not walked.  ThreadSanitizer would (rightly) call those
 * loads races with the owners' plain stores: there only caches are
 * counted and *bytes is left 0, with false returned.                   */
bool tm_tcache_all_cached(size_t *ncaches, size_t *bytes)
{
    size_t n = 0, b = 0;
    reg_acquire();
    for (tm_tcache *tc = reg_head; tc; tc = tc->reg_next) {
        n++;
#if TM_TCACHE_RECLAIM
        for (size_t j = 0; j < TM_TC_SLOTS; j++)
            b += (size_t)__atomic_load_n(&tc->counts[j], __ATOMIC_RELAXED) * tm_class_size(j % TM_TCACHE_BINS);
#endif
    }
    reg_release();
    *ncaches = n;
    *bytes = b;
    return TM_TCACHE_RECLAIM != 0;
}

/* ---- reclaiming idle caches (see tcache.h) -------------------------------- */
void tm_tcache_enter_slow(tm_tcache *tc)
{
#if TM_TCACHE_RECLAIM
    while (unlikely(tc_stolen(tc))) {
        /* A reclaim is emptying this cache right now: let it finish. */
        tc_idle(tc);
        while (tc_stolen(tc))
            sched_yield();
        tc_busy(tc);
    }
    atomic_store_explicit(&tc->slow_ops, atomic_load_explicit(&tc->slow_ops, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&tc->reclaimed, memory_order_relaxed))) {
        /* Back after a reclaim: the background thread watches us again. */
        atomic_store_explicit(&tc->reclaimed, 0, memory_order_relaxed);
        tm_event_poke(&tm_bg_event);
    }
#else
    (void)tc;
#endif
}

bool tm_tcache_reclaim_init(void)
{
#if TM_TCACHE_RECLAIM
    reclaim_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
    return reclaim_ok;
}

/* Move every entry of tc onto *list (linked via fd). */
static void take_all(tm_tcache *tc, tm_chunk **list)
{
    for (size_t i = 0; i < TM_TC_SLOTS; i++) {     /* (outboxes too) */
        tm_tc_entry *e = tc->entries[i];
        uintptr_t want = tc->chain[i];
        for (size_t n = tc->counts[i]; n > 0 && e; n--) {
            chain_check(&tc->own, e, tc_slot_id(tc, i), want, "free(): corrupted tcache link");
            want = e->key;
            tm_tc_entry *next = n > 1 ? tc_reveal(e) : NULL;
            e->key = 0;
            tm_chunk *p = mem2chunk(e);
            p->fd = *list;
            *list = p;
            e = next;
        }
        slot_reset(tc, i);
    }
}

bool tm_tcache_reclaim_idle(void)
{
    if (!reclaim_ok)
        return false;
    bool pending = false, any = false;
    tm_chunk *list = NULL;
    reg_acquire();
    for (tm_tcache *tc = reg_head; tc; tc = tc->reg_next) {
        tc->candidate = false;
        if (atomic_load_explicit(&tc->reclaimed, memory_order_relaxed))
            continue;                         /* empty, owner not back yet */
        uint64_t ops = atomic_load_explicit(&tc->slow_ops, memory_order_relaxed);
        if (ops != tc->seen_ops) {            /* active since the last look */
            tc->seen_ops = ops;
            pending = true;
            continue;
        }
        atomic_store_explicit(&tc->steal, 1, memory_order_seq_cst);
        tc->candidate = any = true;
    }
    if (any) {
        /* Every owner that was not inside a cache access now sees steal. */
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        for (tm_tcache *tc = reg_head; tc; tc = tc->reg_next) {
            if (!tc->candidate)
                continue;
            tc->candidate = false;
            if (atomic_load_explicit(&tc->busy, memory_order_acquire)) {
                pending = true;               /* caught in the act: later */
            } else {
                take_all(tc, &list);
                reset_limits(tc);             /* idle: back to the base */
                atomic_store_explicit(&tc->reclaimed, 1, memory_order_relaxed);
            }
            atomic_store_explicit(&tc->steal, 0, memory_order_release);
        }
    }
    reg_release();
    tm_arena_free_chunks(list);       /* back to the arenas */
    return pending;
}

/* Called after tm_arenas_fork_lock, before tm_arenas_fork_unlock. */
void tm_tcache_fork_lock(void)
{
    tm_lock_acquire(&reg_lock);
}

void tm_tcache_fork_unlock(void)
{
    tm_lock_release(&reg_lock);
}

/* Only the forking thread survives: the registry holds its cache alone
 * (the other threads' caches stay allocated, unreachable, as in glibc). */
void tm_tcache_fork_child(void)
{
    tm_lock_reinit(&reg_lock);
    tm_tcache *tc = tm_tls_tcache_own;
    reg_head = tc;
    if (tc) {
        tc->reg_next = tc->reg_prev = NULL;
        atomic_store_explicit(&tc->steal, 0, memory_order_relaxed);
        atomic_store_explicit(&tc->busy, 0, memory_order_relaxed);
    }
    reclaim_ok = false;              /* re-registered when a thread starts */
}
