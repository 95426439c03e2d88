/*
 * params.h - the allocator's parameters, in two groups with two rules.
 *
 *   tm_fix  fixed at initialization: written once by tm_init_slow before
 *           tm_initialized is published (release store), read-only after,
 *           so every thread that passed tm_ensure_init (acquire load) sees
 *           them.  Plain fields.
 *
 *   tm_mp   run-time parameters: mallopt (any thread, any time) and the
 *           dynamic mmap threshold (free of an mmapped chunk, any thread)
 *           change them while other threads read them.  Every access is a
 *           relaxed atomic, through TM_P / TM_P_SET: on x86-64 that is a
 *           plain load or store, and there is no data race.  No code
 *           relies on two of them changing together: a reader may see the
 *           new mmap threshold with the old trim threshold, which is
 *           harmless (both are heuristics).  Values that a function needs
 *           to stay consistent within one decision are read once into a
 *           local (see tm_tcache_put_full).
 *
 * The per-class thread-cache limits derived from the tcache parameters
 * live in tcache.c (tm_tc_limit[], atomics as well).
 */
#ifndef TM_PARAMS_H
#define TM_PARAMS_H

#include <stdatomic.h>
#include "base.h"
#include "config.h"

/* What dlopen does with RTLD_DEEPBIND (dlopen.c, TIDE_M_DEEPBIND). */
enum { TM_DEEPBIND_KEEP = 0, TM_DEEPBIND_DROP = 1, TM_DEEPBIND_PATCH = 2 };
#define TM_DEEPBIND_DEFAULT TM_DEEPBIND_DROP

struct tm_fixed {
    size_t pagesize;
    size_t ncpus;               /* CPUs we may run on, read at start          */
    bool   profiling;           /* TIDEMALLOC_PROFILE: allocation-site sampling
                                   on, thread caches used by slow paths only   */
};
extern struct tm_fixed tm_fix TM_HIDDEN;

/* Background release thread modes (TIDE_M_BACKGROUND_THREAD). */
enum { TM_BG_OFF = 0, TM_BG_ON = 1, TM_BG_AUTO = 2 };

struct tm_params {
    _Atomic size_t max_fast;            /* largest fast-bin chunk size (16 -> none) */
    _Atomic size_t trim_threshold;
    _Atomic size_t top_pad;
    _Atomic size_t mmap_threshold;
    _Atomic int    n_mmaps_max;
    _Atomic bool   no_dyn_threshold;    /* the user fixed a threshold             */
    _Atomic size_t arena_test;
    _Atomic size_t arena_max;           /* 0 = automatic                          */
    _Atomic int    perturb;
    _Atomic int    check_action;
    _Atomic size_t tcache_count;        /* chunks per cache class                 */
    _Atomic size_t tcache_max_req;      /* largest cached request                 */
    _Atomic size_t tcache_bytes;        /* byte budget per thread cache           */
    _Atomic long   decay_ms;            /* -1 never, 0 at once                    */
    _Atomic int    background;          /* TM_BG_OFF / ON / AUTO                  */
    _Atomic int    harden;              /* strong mode on (harden.h)              */
    _Atomic int    thp_split;           /* released ranges leave huge pages (thp.h) */
    _Atomic int    hugetlb;             /* glibc.malloc.hugetlb: 1 = heaps advised huge */
    _Atomic int    deepbind;            /* dlopen(RTLD_DEEPBIND): TM_DEEPBIND_* (dlopen.c) */
    _Atomic int    populate;            /* fresh top pages faulted in by range (release.c) */
};
extern struct tm_params tm_mp TM_HIDDEN;

#define TM_P(field)        atomic_load_explicit(&tm_mp.field, memory_order_relaxed)
#define TM_P_SET(field, v) atomic_store_explicit(&tm_mp.field, (v), memory_order_relaxed)

#endif
