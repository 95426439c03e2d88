/*
 * api.c - the public entry points: malloc, free, calloc, realloc, the
 * aligned allocators, and the tide_ introspection calls.
 *
 * Layering: api.c -> tcache (tcache.h, inline hit paths) -> arena.c
 * (which arena, locked) -> engine.c (bins and chunks) -> sysmem.c/heap.c
 * -> os.c.
 *
 * Hot path budget: malloc and free of a cached size class are one TLS
 * load, a bounds test, a list pop/push and a counter update - no lock, no
 * atomic.  Everything else is in the out-of-line *_slow functions.
 *
 * Every function is defined once as tide_<name> and exported under both
 * names (an alias), so programs can call tidemalloc explicitly beside the
 * system allocator.  The __libc_* names are exported too: some programs
 * call them directly, and providing them keeps a static link from pulling
 * glibc's malloc.o in (duplicate symbols).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include "tcache.h"
#include "tidemalloc.h"

#define TM_EXPORT __attribute__((visibility("default")))
#define TM_ALIAS(name, target) \
    extern __typeof(target) name __attribute__((alias(#target), visibility("default")))

static TM_NOINLINE void *malloc_slow(size_t n);
static TM_NOINLINE void free_slow(void *mem);

/* ---- malloc ------------------------------------------------------------- */
TM_EXPORT void *tide_malloc(size_t n)
{
    tm_tcache *tc = tm_tls_tcache;
    if (likely(tc != NULL && n <= TM_TCACHE_MAX_REQ)) {
        size_t i = tc_req_index(n);
        if (likely(tc->entries[i] != NULL))
            return tc_pop(tc, i);
    }
    return malloc_slow(n);
}

/* Serve a request from the thread's arena (not the cache), or from one
 * other arena if that one is out of memory.  alignment 0: a chunk of nb
 * bytes, and zlo/zhi receive the range known to read as zero (for
 * calloc); else memalign(alignment, bytes).                             */
static void *arena_alloc(size_t nb, size_t alignment, size_t bytes, char **zlo, char **zhi)
{
    tm_arena *av = tm_arena_get();
    for (int attempt = 0;; attempt++) {
        void *mem = alignment ? tm_int_memalign(av, alignment, bytes) : tm_int_malloc(av, nb);
        *zlo = alignment ? NULL : av->fresh_lo;
        *zhi = alignment ? NULL : av->fresh_hi;
        tm_release_tick(av);
        tm_lock_release(&av->lock);
        if (likely(mem != NULL)) {
            tm_release_maybe_start_bg();
            return mem;
        }
        if (attempt > 0 || !(av = tm_arena_retry(av))) {
            errno = ENOMEM;
            return NULL;
        }
    }
}

static void *arena_malloc(size_t nb)
{
    char *lo, *hi;
    return arena_alloc(nb, 0, 0, &lo, &hi);
}

static TM_NOINLINE void *malloc_slow(size_t n)
{
    tm_ensure_init();
    if (unlikely(n > TM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t nb = request2size(n);
    if (tm_tls_tcache_state == 0)
        tm_tcache_thread_init();
    tm_tcache *tc = tm_tls_tcache;
    size_t i = tc_req_index(n);
    if (tc && n <= TM_TCACHE_MAX_REQ && tm_tc_limit[i]) {
        if (tc->entries[i])
            return tc_pop(tc, i);
        void *mem = tm_tcache_refill(tc, nb);
        if (mem)
            return mem;
    }
    return arena_malloc(nb);
}

/* ---- free --------------------------------------------------------------- */
TM_EXPORT void tide_free(void *mem)
{
    tm_tcache *tc = tm_tls_tcache;
    if (likely(tc != NULL && mem != NULL)) {
        size_t raw = mem2chunk(mem)->size;
        size_t i = (raw - TM_MINSIZE) >> 4;   /* huge for sizes < 32 */
        tm_tc_entry *e = mem;
        /* A cached size class with room, and not already cached (else the
         * slow path checks for a double free): push, nothing else.  No
         * call on this path, so no registers to save.                   */
        if (likely(i < TM_TCACHE_BINS && (raw & (TM_IS_MMAPPED | 8)) == 0 &&
                   aligned_ok((uintptr_t)mem) && e->key != tm_tcache_key &&
                   tc->counts[i] < tm_tc_limit[i])) {
            tc_push(tc, e, i);
            return;
        }
    }
    free_slow(mem);
}

static void munmap_chunk_dyn(tm_chunk *p)
{
    /* glibc's dynamic threshold: a freed mmapped chunk raises the mmap
     * threshold to its size (up to 32 MiB) and the trim threshold to twice
     * that, so programs that repeatedly allocate blocks of one size stop
     * paying for mmap/munmap.                                           */
    size_t size = chunksize(p);
    if (!tm_mp.no_dyn_threshold && size > tm_mp.mmap_threshold &&
        size <= TM_DEFAULT_MMAP_THRESHOLD_MAX) {
        tm_mp.mmap_threshold = size;
        tm_mp.trim_threshold = 2 * size;
    }
    tm_munmap_chunk(p);
}

static TM_NOINLINE void free_slow(void *mem)
{
    if (!mem)
        return;
    int saved_errno = errno;         /* free never changes errno */
    tm_chunk *p = mem2chunk(mem);
    size_t size = chunksize(p);
    if (chunk_is_mmapped(p)) {
        munmap_chunk_dyn(p);
        errno = saved_errno;
        return;
    }
    if (unlikely((uintptr_t)p > (uintptr_t)-size || misaligned_chunk(p)))
        tm_corrupt("free(): invalid pointer", mem);
    if (unlikely(size < TM_MINSIZE || !aligned_ok(size)))
        tm_corrupt("free(): invalid size", mem);
    tm_ensure_init();

    if (tm_tls_tcache_state == 0)
        tm_tcache_thread_init();
    tm_tcache *tc = tm_tls_tcache;
    size_t i = tc_csize_index(size);
    if (tc && i < TM_TCACHE_BINS && tm_tc_limit[i]) {
        tm_tc_entry *e = mem;
        if (unlikely(e->key == tm_tcache_key))
            tm_tcache_double_free_check(tc, e, i);
        if (tc->counts[i] < tm_tc_limit[i])
            tc_push(tc, e, i);
        else
            tm_tcache_put_full(tc, e, i);
        errno = saved_errno;
        return;
    }

    tm_arena *av = arena_for_chunk(p);
    if (!tm_lock_try(&av->lock)) {
        if (av != tm_thread_arena()) {
            /* Another thread's arena, busy: leave the chunk to its holder. */
            tm_remote_push(av, p, p);
            errno = saved_errno;
            return;
        }
        tm_lock_acquire(&av->lock);
    }
    tm_remote_drain(av);
    tm_int_free(av, p);
    tm_release_tick(av);
    tm_lock_release(&av->lock);
    errno = saved_errno;
}

/* ---- calloc ------------------------------------------------------------- */
TM_EXPORT void *tide_calloc(size_t nmemb, size_t size)
{
    size_t bytes;
    if (unlikely(__builtin_mul_overflow(nmemb, size, &bytes))) {
        errno = ENOMEM;
        return NULL;
    }
    tm_tcache *tc = tm_tls_tcache;
    if (likely(tc != NULL && bytes <= TM_TCACHE_MAX_REQ)) {
        size_t i = tc_req_index(bytes);
        if (tc->entries[i] != NULL) {
            void *mem = tc_pop(tc, i);
            return memset(mem, 0, chunk_usable(mem2chunk(mem)));
        }
    }
    tm_ensure_init();
    if (unlikely(bytes > TM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    if (bytes <= TM_TCACHE_MAX_REQ) {
        void *mem = malloc_slow(bytes);
        return mem ? memset(mem, 0, chunk_usable(mem2chunk(mem))) : NULL;
    }
    char *lo, *hi;
    void *mem = arena_alloc(request2size(bytes), 0, 0, &lo, &hi);
    if (!mem)
        return NULL;
    tm_chunk *p = mem2chunk(mem);
    if (chunk_is_mmapped(p)) {           /* fresh pages are zero */
        if (unlikely(tm_mp.perturb))
            memset(mem, 0, chunk_usable(p));
        return mem;
    }
    char *m = mem, *end = m + chunk_usable(p);
    if (tm_mp.perturb || !lo || lo >= hi || lo < m || hi > end) {
        memset(m, 0, (size_t)(end - m));
    } else {
        /* [lo, hi) is known zero (fresh from the system or released). */
        memset(m, 0, (size_t)(lo - m));
        memset(hi, 0, (size_t)(end - hi));
    }
    return mem;
}

/* ---- realloc ------------------------------------------------------------ */
TM_EXPORT void *tide_realloc(void *mem, size_t n)
{
    if (mem == NULL)
        return tide_malloc(n);
    if (n == 0) {                        /* glibc: realloc(p, 0) frees p */
        tide_free(mem);
        return NULL;
    }
    if (unlikely(n > TM_MAX_REQUEST)) {
        errno = ENOMEM;
        return NULL;
    }
    tm_chunk *p = mem2chunk(mem);
    size_t oldsize = chunksize(p);
    if (unlikely((uintptr_t)p > (uintptr_t)-oldsize || misaligned_chunk(p)))
        tm_corrupt("realloc(): invalid pointer", mem);
    tm_ensure_init();
    size_t nb = request2size(n);

    if (chunk_is_mmapped(p)) {
        tm_chunk *np = tm_mremap_chunk(p, nb);
        if (np)
            return chunk2mem(np);
        if (oldsize - TM_HDR >= nb - TM_SIZE_SZ)
            return mem;                  /* still fits: keep it */
        void *nm = tide_malloc(n);
        if (!nm)
            return NULL;
        memcpy(nm, mem, oldsize - TM_HDR);
        munmap_chunk_dyn(p);
        return nm;
    }

    /* Same size class and it fits: nothing to do. */
    if (oldsize >= nb && oldsize - nb < TM_MINSIZE)
        return mem;

    tm_arena *av = arena_for_chunk(p);
    tm_lock_acquire(&av->lock);
    void *nm = tm_int_realloc(av, p, oldsize, nb);
    tm_lock_release(&av->lock);
    if (nm)
        return nm;
    /* That arena is full: any arena will do. */
    nm = tide_malloc(n);
    if (nm) {
        memcpy(nm, mem, oldsize - TM_SIZE_SZ);
        tide_free(mem);
    }
    return nm;
}

TM_EXPORT void *tide_reallocarray(void *mem, size_t nmemb, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return tide_realloc(mem, bytes);
}

/* ---- aligned allocation ------------------------------------------------- */
static void *memalign_impl(size_t alignment, size_t bytes)
{
    if (alignment <= TM_ALIGNMENT)
        return tide_malloc(bytes);
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment & (alignment - 1))     /* glibc rounds up to a power of two */
        alignment = (size_t)1 << (64 - __builtin_clzl(alignment));
    if (bytes > TM_MAX_REQUEST - alignment - TM_MINSIZE) {
        errno = ENOMEM;
        return NULL;
    }
    tm_ensure_init();
    char *lo, *hi;
    return arena_alloc(0, alignment, bytes, &lo, &hi);
}

TM_EXPORT void *tide_memalign(size_t alignment, size_t bytes)
{
    return memalign_impl(alignment, bytes);
}

TM_EXPORT int tide_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || alignment == 0 ||
        ((alignment / sizeof(void *)) & (alignment / sizeof(void *) - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *mem = memalign_impl(alignment, size);
    if (!mem) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = mem;
    return 0;
}

/* C11: the alignment must be a power of two (glibc >= 2.38 rejects others
 * with EINVAL, as do we).                                               */
TM_EXPORT void *tide_aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return memalign_impl(alignment, size);
}

TM_EXPORT void *tide_valloc(size_t size)
{
    tm_ensure_init();
    return memalign_impl(tm_mp.pagesize, size);
}

TM_EXPORT void *tide_pvalloc(size_t size)
{
    tm_ensure_init();
    size_t ps = tm_mp.pagesize;
    if (size > SIZE_MAX - ps) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign_impl(ps, align_up(size, ps));
}

TM_EXPORT size_t tide_malloc_usable_size(void *mem)
{
    if (!mem)
        return 0;
    tm_chunk *p = mem2chunk(mem);
    if (chunk_is_mmapped(p))
        return chunksize(p) - TM_HDR;
    if (inuse(p))
        return chunksize(p) - TM_SIZE_SZ;
    return 0;
}

/* C23.  The size is a promise, not needed by a boundary-tag allocator;
 * one that does not fit the chunk is a bug worth stopping on.           */
TM_EXPORT void tide_free_sized(void *mem, size_t size)
{
    if (mem && unlikely(size > tide_malloc_usable_size(mem)))
        tm_corrupt("free_sized(): size does not match the allocation", mem);
    tide_free(mem);
}

TM_EXPORT void tide_free_aligned_sized(void *mem, size_t alignment, size_t size)
{
    if (mem && unlikely(((uintptr_t)mem & (alignment - 1)) != 0))
        tm_corrupt("free_aligned_sized(): pointer does not have that alignment", mem);
    tide_free_sized(mem, size);
}

/* ---- tidemalloc's own calls --------------------------------------------- */
TM_EXPORT void tide_thread_cache_flush(void)
{
    tm_ensure_init();
    tm_tcache_flush_keep();
}

TM_EXPORT void tide_fault_inject(int kind, long after)
{
    tm_os_fault_inject(kind, after);
}

/* glibc names */
TM_ALIAS(malloc, tide_malloc);
TM_ALIAS(free, tide_free);
TM_ALIAS(calloc, tide_calloc);
TM_ALIAS(realloc, tide_realloc);
TM_ALIAS(reallocarray, tide_reallocarray);
TM_ALIAS(memalign, tide_memalign);
TM_ALIAS(posix_memalign, tide_posix_memalign);
TM_ALIAS(aligned_alloc, tide_aligned_alloc);
TM_ALIAS(valloc, tide_valloc);
TM_ALIAS(pvalloc, tide_pvalloc);
TM_ALIAS(malloc_usable_size, tide_malloc_usable_size);
void free_sized(void *, size_t);
void free_aligned_sized(void *, size_t, size_t);
TM_ALIAS(free_sized, tide_free_sized);
TM_ALIAS(free_aligned_sized, tide_free_aligned_sized);
void cfree(void *);
TM_ALIAS(cfree, tide_free);
/* glibc-internal names some programs and libc.a objects use */
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);
TM_ALIAS(__libc_malloc, tide_malloc);
TM_ALIAS(__libc_free, tide_free);
TM_ALIAS(__libc_calloc, tide_calloc);
TM_ALIAS(__libc_realloc, tide_realloc);
TM_ALIAS(__libc_memalign, tide_memalign);
TM_ALIAS(__libc_valloc, tide_valloc);
TM_ALIAS(__libc_pvalloc, tide_pvalloc);
