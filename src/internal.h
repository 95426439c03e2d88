/*
 * internal.h - the engine's shared types: arenas, heaps, bins, parameters.
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
 * Lock order: tm_list_lock -> arena locks (arenas in list order, only in the
 *   fork handler).  Elsewhere a thread blocks on at most one arena lock at
 *   a time; while holding one it may only *try* others (the release sweep),
 *   which cannot deadlock.
 */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "chunk.h"
#include "config.h"
#include "lock.h"

#define TM_HIDDEN   __attribute__((visibility("hidden")))
#define TM_NOINLINE __attribute__((noinline))
#define TM_COLD     __attribute__((cold, noinline))
#define TM_NORETURN __attribute__((noreturn))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#ifdef TM_DEBUG
#define TM_ASSERT(c) ((c) ? (void)0 : tm_assert_fail(#c, __FILE__, __LINE__))
#else
#define TM_ASSERT(c) ((void)0)
#endif

struct tm_arena;

/* Header at the start of every heap (sub-heap or main-arena segment). */
typedef struct tm_heap {
    struct tm_arena *ar;    /* owner                                        */
    struct tm_heap *prev;   /* older heap of the same arena                 */
    size_t size;            /* bytes of the heap in use (chunks end here)   */
    size_t committed;       /* sub-heaps: bytes made read/write             */
    uint32_t kind;          /* TM_HEAP_SUB, TM_SEG_BRK or TM_SEG_MMAP        */
    uint32_t pad_;
    size_t reserved;        /* bytes of address space reserved for it       */
} tm_heap;                  /* 48 bytes: keeps the first chunk 16-aligned   */

enum { TM_HEAP_SUB = 1, TM_SEG_BRK = 2, TM_SEG_MMAP = 3 };

typedef struct { tm_chunk *fd, *bk; } tm_bin;

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
    struct tm_arena *next;          /* ring of all arenas (tm_list_lock)      */
    struct tm_arena *next_free;     /* free list of unattached arenas         */
    size_t attached;                /* threads using it (tm_list_lock)        */
    unsigned index;                 /* 0 = main                               */

    size_t system_mem;              /* bytes of all heaps (their `size`s)     */
    /* Adaptive trim threshold (see tm_trim_threshold): a heap that has to
     * grow again right after a trim was trimmed too eagerly.            */
    uint64_t last_trim_ms;
    size_t trim_floor;
    size_t max_system_mem;
    size_t nheaps;

    /* Page release (release.c). */
    size_t released;                /* free bytes whose pages were given back */
    char  *top_clean;               /* [top_clean, top end) is not resident   */
    uint64_t top_stamp;             /* when the top last grew by a free       */
    uint64_t next_purge;            /* clock (ms) of the next purge pass      */
    uint32_t purge_ops;             /* slow-path calls since the last check   */
    uint64_t madvise_calls;

    /* Chunks freed by threads that found this arena locked: a lock-free
     * stack linked through fd, emptied by whoever next holds the lock.  */
    _Atomic(tm_chunk *) remote;
    /* The same per thread-cache class: a thread of this arena whose cache
     * misses in class i takes the whole list with one exchange, no lock. */
    _Atomic(tm_chunk *) remote_cls[TM_TCACHE_BINS];
    _Atomic int remote_cls_any;     /* some remote_cls list may be non-empty */

    /* Zero-known range of the chunk int_malloc returned last (for calloc). */
    char *fresh_lo, *fresh_hi;
} tm_arena;

/* ---- global parameters (tunables.c) ------------------------------------ */
struct tm_params {
    size_t max_fast;            /* largest fast-bin chunk size (0-> none)   */
    size_t trim_threshold;
    size_t top_pad;
    size_t mmap_threshold;
    int    n_mmaps_max;
    bool   no_dyn_threshold;    /* set when the user fixed a threshold      */
    size_t arena_test;
    size_t arena_max;           /* 0 = automatic                            */
    int    perturb;
    int    check_action;
    size_t tcache_count;        /* chunks per cache class                   */
    size_t tcache_max_req;      /* largest cached request                   */
    size_t tcache_bytes;        /* total byte budget per thread cache       */
    long   decay_ms;            /* -1 never, 0 at once                      */
    size_t pagesize;
    size_t ncpus;               /* CPUs we may run on, read at start          */
};
extern struct tm_params tm_mp TM_HIDDEN;

/* mmapped-chunk statistics (atomics: updated without an arena lock). */
struct tm_mmap_stats {
    _Atomic size_t n_mmaps, max_n_mmaps;
    _Atomic size_t mmapped_mem, max_mmapped_mem;
};
extern struct tm_mmap_stats tm_mstats TM_HIDDEN;

extern tm_arena tm_main_arena TM_HIDDEN;
extern tm_lock tm_list_lock TM_HIDDEN;
extern _Atomic int tm_initialized TM_HIDDEN;

/* ---- bins --------------------------------------------------------------- */
/* A bin's header is treated as a chunk whose fd/bk are the bin's: the
 * list is circular through it, so insert and unlink need no special cases. */
static inline tm_chunk *bin_at(tm_arena *av, unsigned i)
{
    return (tm_chunk *)((char *)&av->bins[i] - offsetof(tm_chunk, fd));
}
static inline tm_chunk *unsorted_bin(tm_arena *av) { return bin_at(av, 1); }
static inline tm_chunk *initial_top(tm_arena *av) { return (tm_chunk *)av->top_dummy; }

static inline bool in_smallbin_range(size_t sz) { return sz < TM_MIN_LARGE_SIZE; }
static inline unsigned smallbin_index(size_t sz) { return (unsigned)(sz >> 4); }

/* glibc's logarithmic spacing of the 63 large bins (64-bit), as computed
 * below: bins 64..96 are 64 bytes wide (1 KiB .. 3135 B), 97..111 512
 * bytes (.. 10 KiB), 112..120 4 KiB (.. 44 KiB, bin 120 reaching 64 KiB),
 * 121..123 32 KiB (.. 160 KiB), 124..126 256 KiB and beyond (126: all
 * larger).  docs/design.md has the exact table.                       */
static inline unsigned largebin_index(size_t sz)
{
    if ((sz >> 6) <= 48)  return 48 + (unsigned)(sz >> 6);
    if ((sz >> 9) <= 20)  return 91 + (unsigned)(sz >> 9);
    if ((sz >> 12) <= 10) return 110 + (unsigned)(sz >> 12);
    if ((sz >> 15) <= 4)  return 119 + (unsigned)(sz >> 15);
    if ((sz >> 18) <= 2)  return 124 + (unsigned)(sz >> 18);
    return 126;
}
static inline unsigned bin_index(size_t sz)
{
    return in_smallbin_range(sz) ? smallbin_index(sz) : largebin_index(sz);
}

static inline unsigned fastbin_index(size_t sz) { return (unsigned)(sz >> 4) - 2; }

static inline void mark_bin(tm_arena *av, unsigned i)   { av->binmap[i >> TM_BINMAPSHIFT] |= 1u << (i & 31); }
static inline void unmark_bin(tm_arena *av, unsigned i) { av->binmap[i >> TM_BINMAPSHIFT] &= ~(1u << (i & 31)); }
static inline bool bin_marked(tm_arena *av, unsigned i) { return av->binmap[i >> TM_BINMAPSHIFT] & (1u << (i & 31)); }

static inline tm_arena *arena_for_chunk(tm_chunk *p);

/* ---- trimming ------------------------------------------------------------
 * Top is given back (brk shrunk, sub-heap shrunk) when what lies beyond
 * the pad reaches the trim threshold.  Unless the user fixed a threshold,
 * each time an arena must grow again within a second of a trim, its own
 * threshold doubles (up to 64 MiB): trimming and regrowing in a loop costs
 * system calls and page faults, and the decay release gives the pages of
 * a big idle top back anyway.                                           */
#define TM_TRIM_FLOOR_MAX (64u * 1024 * 1024)
static inline size_t tm_trim_threshold(tm_arena *av)
{
    return av->trim_floor > tm_mp.trim_threshold ? av->trim_floor : tm_mp.trim_threshold;
}
static inline bool tm_top_worth_trimming(tm_arena *av, size_t top_size, size_t pad)
{
    return top_size > pad && top_size - pad >= tm_trim_threshold(av);
}
TM_HIDDEN void tm_note_trim(tm_arena *av);
TM_HIDDEN void tm_note_regrow(tm_arena *av);

/* ---- heaps -------------------------------------------------------------- */
static inline tm_heap *heap_for_ptr(const void *p)
{
    return (tm_heap *)((uintptr_t)p & ~((uintptr_t)TM_HEAP_MAX_SIZE - 1));
}
static inline tm_arena *arena_for_chunk(tm_chunk *p)
{
    return chunk_non_main(p) ? heap_for_ptr(p)->ar : &tm_main_arena;
}
/* First chunk of a heap: after the header (and the arena, in an arena's first sub-heap). */
static inline tm_chunk *heap_first_chunk(tm_heap *h)
{
    uintptr_t a = (uintptr_t)(h + 1);
    if (h->kind == TM_HEAP_SUB && h->prev == NULL && h->ar != &tm_main_arena)
        a += sizeof(tm_arena);
    return (tm_chunk *)((a + TM_ALIGN_MASK) & ~(uintptr_t)TM_ALIGN_MASK);
}
static inline char *heap_end(tm_heap *h) { return (char *)h + h->size; }

static inline uintptr_t align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }

/* ---- functions ---------------------------------------------------------- */
/* error.c */
TM_HIDDEN TM_NORETURN TM_COLD void tm_corrupt(const char *check, const void *where);
TM_HIDDEN TM_NORETURN TM_COLD void tm_assert_fail(const char *expr, const char *file, int line);
TM_HIDDEN size_t tm_fmt(char *buf, size_t cap, const char *fmt, ...);
TM_HIDDEN void tm_write_all(int fd, const char *s, size_t n);

/* os.c - the only file that talks to the kernel about memory. */
TM_HIDDEN void *tm_os_map(size_t size);                    /* RW anonymous, NULL on failure */
TM_HIDDEN void *tm_os_reserve_aligned(size_t size, size_t align); /* PROT_NONE */
TM_HIDDEN bool  tm_os_commit(void *p, size_t size);        /* make RW */
TM_HIDDEN void  tm_os_unmap(void *p, size_t size);
TM_HIDDEN void *tm_os_remap(void *p, size_t old, size_t new_size);
TM_HIDDEN void  tm_os_release(void *p, size_t size);       /* madvise(DONTNEED) */
TM_HIDDEN void *tm_os_sbrk(intptr_t incr);                 /* (void*)-1 on failure */
TM_HIDDEN size_t tm_os_ncpus(void);
TM_HIDDEN uint64_t tm_os_now_ms(void);
TM_HIDDEN void tm_os_init(void);
extern _Atomic long tm_os_madvise_count TM_HIDDEN;

/* heap.c */
TM_HIDDEN tm_heap *tm_heap_new(size_t size, size_t top_pad);
TM_HIDDEN bool tm_heap_grow(tm_heap *h, size_t diff);
TM_HIDDEN void tm_heap_shrink(tm_heap *h, size_t new_size);
TM_HIDDEN bool tm_heap_trim(tm_arena *av, tm_heap *h, size_t pad);

/* engine.c - the bin/chunk engine; every function requires av->lock held. */
TM_HIDDEN void *tm_int_malloc(tm_arena *av, size_t nb);   /* nb: chunk size */
TM_HIDDEN void  tm_int_free(tm_arena *av, tm_chunk *p);
TM_HIDDEN void *tm_int_realloc(tm_arena *av, tm_chunk *oldp, size_t oldsize, size_t nb);
TM_HIDDEN void *tm_int_memalign(tm_arena *av, size_t alignment, size_t bytes);
TM_HIDDEN void  tm_consolidate(tm_arena *av);
TM_HIDDEN void  tm_unlink_chunk(tm_arena *av, tm_chunk *p);
TM_HIDDEN void  tm_arena_init(tm_arena *av);

/* sysmem.c - getting memory from and giving it back to the system. */
TM_HIDDEN void *tm_sysmalloc(tm_arena *av, size_t nb);
TM_HIDDEN bool  tm_systrim(tm_arena *av, size_t pad);
TM_HIDDEN void  tm_munmap_chunk(tm_chunk *p);
TM_HIDDEN tm_chunk *tm_mremap_chunk(tm_chunk *p, size_t nb);
TM_HIDDEN void *tm_mmap_chunk(size_t nb);
TM_HIDDEN void  tm_retire_top(tm_arena *av);
TM_HIDDEN int   tm_trim_arena(tm_arena *av, size_t pad);

/* arena.c */
TM_HIDDEN tm_arena *tm_arena_get(void);               /* returns it locked */
TM_HIDDEN tm_arena *tm_arena_retry(tm_arena *av);     /* av unlocked; another, locked */
TM_HIDDEN void tm_arena_thread_exit(void);
TM_HIDDEN void tm_init_slow(void);
TM_HIDDEN size_t tm_arena_count(void);
TM_HIDDEN void tm_fork_prepare(void);
TM_HIDDEN void tm_fork_parent(void);
TM_HIDDEN void tm_fork_child(void);
static inline void tm_ensure_init(void)
{
    if (unlikely(!atomic_load_explicit(&tm_initialized, memory_order_acquire)))
        tm_init_slow();
}

/* tcache.c */
TM_HIDDEN void tm_tcache_thread_init(void);
TM_HIDDEN void tm_tcache_flush_all(void);
TM_HIDDEN size_t tm_tcache_cached_bytes(void);

/* release.c - giving free pages inside heaps back to the system. */
TM_HIDDEN void tm_release_forget(tm_arena *av, tm_chunk *p);    /* p leaves the free state    */
TM_HIDDEN void tm_release_tick_slow(tm_arena *av);
TM_HIDDEN size_t tm_release_all(tm_arena *av, size_t top_keep);
TM_HIDDEN void tm_release_set_background(bool on);
TM_HIDDEN void tm_release_fork_child(void);

/* tunables.c */
TM_HIDDEN void tm_tunables_init(void);
TM_HIDDEN int  tm_mallopt(int param, int value);

#endif

/* ---- release metadata of large free chunks (release.c) ------------------
 * A free chunk of at least TM_RELEASE_MIN bytes carries two words after the
 * nextsize links: when it became free (ms) and how many bytes of its
 * interior pages are given back.  The interior is the whole pages between
 * the metadata and the chunk's end: never touched by the bin machinery. */
#define TM_RELEASE_MIN (4u * 4096)
#define TM_META_OFF    48u
#define TM_META_END    64u
static inline uint64_t *chunk_meta(tm_chunk *p) { return (uint64_t *)((char *)p + TM_META_OFF); }
static inline size_t tm_release_amount(tm_chunk *p)
{
    return chunksize(p) >= TM_RELEASE_MIN ? (size_t)chunk_meta(p)[1] : 0;
}
/* What a chunk made by coalescing inherits from the free chunks it
 * swallowed: their released bytes, and the oldest free time (so reusing a
 * piece of a free chunk does not make the rest of it look young).      */
typedef struct { size_t bytes; uint64_t stamp; } tm_relcarry;
#define TM_RELCARRY_INIT { 0, UINT64_MAX }
static inline void tm_release_absorb(tm_relcarry *c, tm_chunk *p)
{
    if (chunksize(p) >= TM_RELEASE_MIN) {
        c->bytes += (size_t)chunk_meta(p)[1];
        if (chunk_meta(p)[0] < c->stamp)
            c->stamp = chunk_meta(p)[0];
    }
}
TM_HIDDEN bool tm_release_take(tm_arena *av, tm_chunk *victim);
TM_HIDDEN void tm_release_on_free_big(tm_arena *av, tm_chunk *p, size_t size, const tm_relcarry *c);
TM_HIDDEN void tm_release_split_big(tm_arena *av, tm_chunk *rem, size_t rsize, bool was_released,
                                    uint64_t stamp);

/* Cheap inline fronts: most chunks are too small to carry release state,
 * and the clock is looked at only every 32nd slow-path call.           */
static inline void tm_release_tick(tm_arena *av)
{
    if (unlikely((++av->purge_ops & 31) == 0))
        tm_release_tick_slow(av);
}
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
TM_HIDDEN void tm_release_fresh_range(tm_arena *av, tm_chunk *p, size_t n);
TM_HIDDEN void tm_release_top_used(tm_arena *av, tm_chunk *victim, size_t nb);
TM_HIDDEN void tm_release_top_grew(tm_arena *av);
TM_HIDDEN void tm_release_top_reset(tm_arena *av);
TM_HIDDEN size_t tm_release_top_bytes(tm_arena *av);
TM_HIDDEN void tm_release_maybe_start_bg(void);
TM_HIDDEN void tm_os_fault_inject(int kind, long after);
TM_HIDDEN void tm_thread_register_exit(void *value);
TM_HIDDEN tm_arena *tm_thread_arena(void);
TM_HIDDEN void tm_for_each_arena(void (*fn)(tm_arena *, void *), void *arg);
TM_HIDDEN void tm_tcache_flush_keep(void);
TM_HIDDEN bool tm_tcache_take(tm_chunk *p);

/* ---- remote frees (arena.c) ----------------------------------------------
 * A thread freeing chunks of an arena that is locked right now pushes them
 * here instead of waiting; the next holder of the lock frees them.      */
TM_HIDDEN void tm_remote_push_list(_Atomic(tm_chunk *) *list, tm_chunk *head, tm_chunk *tail);
TM_HIDDEN void tm_remote_drain_slow(tm_arena *av);
TM_HIDDEN void tm_remote_drain_all(tm_arena *av);   /* also the class lists; av locked */
static inline void tm_remote_push(tm_arena *av, tm_chunk *head, tm_chunk *tail)
{
    tm_remote_push_list(&av->remote, head, tail);
}
static inline void tm_remote_drain(tm_arena *av)   /* av locked */
{
    if (unlikely(atomic_load_explicit(&av->remote, memory_order_relaxed) != NULL))
        tm_remote_drain_slow(av);
}
