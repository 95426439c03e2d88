/* tcache.c - slow paths of the per-thread cache (see tcache.h). */
#include <string.h>
#include <sys/random.h>
#include "tcache.h"

__thread tm_tcache *tm_tls_tcache __attribute__((tls_model("initial-exec")));
__thread uint8_t tm_tls_tcache_state __attribute__((tls_model("initial-exec")));
uintptr_t tm_tcache_key;
uint16_t tm_tc_limit[TM_TCACHE_BINS];

/* limit(class) = min(tcache_count, share of the byte budget), >= 1 when
 * counts are on; classes above tcache_max are not cached.               */
void tm_tcache_recompute_limits(void)
{
    size_t share = tm_mp.tcache_bytes / TM_TCACHE_BINS;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        size_t csize = TM_MINSIZE + 16 * i;
        size_t lim = 0;
        if (tm_mp.tcache_count > 0 && i <= tc_req_index(tm_mp.tcache_max_req) &&
            tm_mp.tcache_max_req > 0) {
            lim = share / csize;
            if (lim < 1)
                lim = 1;
            if (lim > tm_mp.tcache_count)
                lim = tm_mp.tcache_count;
        }
        if (tm_mp.perturb)
            lim = 0;   /* M_PERTURB wants every allocation and free to be seen */
        tm_tc_limit[i] = (uint16_t)lim;
    }
}

static void init_key(void)
{
    uintptr_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != sizeof k)
        k = (uintptr_t)&k ^ ((uintptr_t)tm_os_now_ms() << 20) ^ 0x9e3779b97f4a7c15ull;
    tm_tcache_key = k | 1;   /* never a valid pointer */
}

/* Set up the calling thread's cache (once). */
void tm_tcache_thread_init(void)
{
    if (tm_tls_tcache_state != 0)
        return;
    tm_tls_tcache_state = 2;     /* guards against re-entry while we allocate */
    if (!tm_tcache_key)
        init_key();
    size_t nb = request2size(sizeof(tm_tcache));
    tm_arena *av = tm_arena_get(nb);
    void *mem = tm_int_malloc(av, nb);
    tm_lock_release(&av->lock);
    if (!mem)
        return;                  /* no cache for this thread; still correct */
    memset(mem, 0, sizeof(tm_tcache));
    tm_tls_tcache = mem;
    tm_tls_tcache_state = 1;
    tm_thread_register_exit(mem);
}

/* Free a chain of chunks to their arenas, one lock per run of chunks that
 * share an arena.                                                        */
static void free_chain(tm_tc_entry *e, size_t n)
{
    tm_arena *locked = NULL;
    while (n--) {
        tm_tc_entry *next = n ? tc_reveal(e) : NULL;
        e->key = 0;
        tm_chunk *p = mem2chunk(e);
        tm_arena *av = arena_for_chunk(p);
        if (av != locked) {
            if (locked)
                tm_lock_release(&locked->lock);
            tm_lock_acquire(&av->lock);
            locked = av;
        }
        tm_int_free(av, p);
        e = next;
    }
    if (locked)
        tm_lock_release(&locked->lock);
}

/* Class i is full: keep its newest half (hot in cache), flush the rest,
 * then cache e.                                                          */
void tm_tcache_put_full(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    size_t lim = tm_tc_limit[i];
    if (lim == 0 || tc->counts[i] == 0) {
        /* Class not cached (any more): straight to the arena. */
        e->key = 0;
        free_chain(e, 1);
        return;
    }
    size_t keep = lim / 2;
    tm_tc_entry *cut = tc->entries[i], *rest;
    if (keep == 0) {
        rest = cut;
        tc->entries[i] = NULL;
    } else {
        for (size_t k = 1; k < keep; k++)
            cut = tc_reveal(cut);
        rest = tc_reveal(cut);
        tc_link(cut, NULL);
    }
    size_t nflush = tc->counts[i] - keep;
    tc->counts[i] = (uint16_t)keep;
    free_chain(rest, nflush);
    tc_push(tc, e, i);
}

/* A miss in class i: take a batch from the arena under one lock. */
void *tm_tcache_refill(tm_tcache *tc, size_t nb)
{
    size_t i = tc_csize_index(nb);
    size_t lim = tm_tc_limit[i];
    size_t batch = lim / 2 + 1;
    tm_arena *av = tm_arena_get(nb);
    void *first = tm_int_malloc(av, nb);
    if (!first) {
        tm_lock_release(&av->lock);
        return NULL;
    }
    for (size_t k = 1; k < batch && tc->counts[i] < lim; k++) {
        void *m = tm_int_malloc(av, nb);
        if (!m)
            break;
        /* A split that left less than MINSIZE hands out a bigger chunk:
         * cache it in its own class, or give it back. */
        size_t j = tc_csize_index(chunksize(mem2chunk(m)));
        if (j < TM_TCACHE_BINS && tc->counts[j] < tm_tc_limit[j])
            tc_push(tc, m, j);
        else
            tm_int_free(av, mem2chunk(m));
    }
    tm_release_tick(av);
    tm_lock_release(&av->lock);
    return first;
}

/* e carries the cache key: it is cached already, or its user data happens
 * to hold the key (astronomically unlikely).  Look before crying wolf.  */
void tm_tcache_double_free_check(tm_tcache *tc, tm_tc_entry *e, size_t i)
{
    size_t n = 0;
    for (tm_tc_entry *t = tc->entries[i]; t; t = tc_reveal(t)) {
        if (unlikely(n++ >= TM_TCACHE_COUNT_MAX))
            tm_corrupt("free(): too many chunks detected in tcache", e);
        if (unlikely(!aligned_ok((uintptr_t)t)))
            tm_corrupt("free(): unaligned chunk detected in tcache 2", t);
        if (t == e)
            tm_corrupt("free(): double free detected in tcache 2", e);
    }
}

/* Empty the calling thread's cache and stop caching (thread exit). */
void tm_tcache_flush_all(void)
{
    tm_tcache *tc = tm_tls_tcache;
    tm_tls_tcache = NULL;
    tm_tls_tcache_state = 2;
    if (!tc)
        return;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        if (tc->counts[i])
            free_chain(tc->entries[i], tc->counts[i]);
        tc->entries[i] = NULL;
        tc->counts[i] = 0;
    }
    tm_chunk *p = mem2chunk(tc);
    tm_arena *av = arena_for_chunk(p);
    tm_lock_acquire(&av->lock);
    tm_int_free(av, p);
    tm_lock_release(&av->lock);
}

/* tide_thread_cache_flush: empty the cache but keep using it. */
void tm_tcache_flush_keep(void)
{
    tm_tcache *tc = tm_tls_tcache;
    if (!tc)
        return;
    for (size_t i = 0; i < TM_TCACHE_BINS; i++) {
        if (tc->counts[i])
            free_chain(tc->entries[i], tc->counts[i]);
        tc->entries[i] = NULL;
        tc->counts[i] = 0;
    }
}

size_t tm_tcache_cached_bytes(void)
{
    tm_tcache *tc = tm_tls_tcache;
    size_t b = 0;
    if (tc)
        for (size_t i = 0; i < TM_TCACHE_BINS; i++)
            b += (size_t)tc->counts[i] * (TM_MINSIZE + 16 * i);
    return b;
}

void tm_tcache_fork_child(void) {}
