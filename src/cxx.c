/*
 * cxx.c - C++'s operator new and operator delete (API layer).
 *
 * A C++ program allocates through operator new, which the C++ runtime
 * (libstdc++) implements on top of malloc: a call through the runtime's
 * PLT to malloc, a test of the result, the new_handler loop and the
 * std::bad_alloc throw when it is NULL.  tidemalloc defines the 20
 * replaceable forms itself (throwing, nothrow, array, aligned, sized
 * delete), as jemalloc, tcmalloc and mimalloc do, so that a new or a
 * delete is one call into the allocator.
 *
 *   program --new--> libstdc++ operator new --malloc--> tidemalloc   (before)
 *   program --new--> tidemalloc operator new                         (now)
 *
 * What tidemalloc cannot do in C is the failure: calling the program's
 * new_handler and throwing std::bad_alloc.  So when the allocation
 * fails, the operator hands the request to the next definition of the
 * same operator - the C++ runtime's, found with dlsym(RTLD_NEXT) then,
 * not earlier (the runtime may be loaded later by dlopen) - which tries
 * malloc (tidemalloc's) again, runs the new_handler loop and throws as
 * the standard says; a nothrow form returns what the runtime's returns
 * (NULL after the handlers gave up).  A program without a C++ runtime
 * never calls these.
 *
 * The sized forms of delete ignore the size, as libstdc++'s do: free
 * reads and verifies the chunk's header anyway, so the size saves
 * nothing, and free_sized's test of it cost 11 instructions a call more
 * than free (callgrind, bench/wl_cxx.cc; docs/measurements.md).
 *
 * Only in the shared library: in the static one these names would clash
 * with the C++ runtime's own archive members at link time.  Not under
 * ASan or TSan either, whose runtimes define them for their own checks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include "internal.h"
#include "tidemalloc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TM_SANITIZER_CXX 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TM_SANITIZER_CXX 1
#endif

#if defined(TM_SHARED_LIB) && !defined(TM_SANITIZER_CXX)

/* The C++ runtime's definition of `name` (the next after this library).
 * None (only a program that calls these names without a C++ runtime):
 * the failure cannot be reported the C++ way, so abort, saying why.  */
static void *next_operator(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (unlikely(!f)) {
        static const char msg[] = "operator new: out of memory, and no C++ runtime to throw "
                                  "std::bad_alloc [tidemalloc]\n";
        tm_write_all(2, msg, sizeof msg - 1);
        abort();
    }
    return f;
}

/* std::nothrow_t and std::align_val_t, as the Itanium C++ ABI passes
 * them: a reference (a pointer) and a size_t.                         */
typedef const void *tm_nothrow_ref;

/* Out of line: the failures, each to the runtime's operator. */
static TM_NOINLINE void *new_failed(const char *name, size_t n)
{
    void *(*next)(size_t) = (void *(*)(size_t))next_operator(name);
    return next(n);
}
static TM_NOINLINE void *new_nothrow_failed(const char *name, size_t n, tm_nothrow_ref t)
{
    void *(*next)(size_t, tm_nothrow_ref) = (void *(*)(size_t, tm_nothrow_ref))next_operator(name);
    return next(n, t);
}
static TM_NOINLINE void *new_aligned_failed(const char *name, size_t n, size_t al)
{
    void *(*next)(size_t, size_t) = (void *(*)(size_t, size_t))next_operator(name);
    return next(n, al);
}
static TM_NOINLINE void *new_aligned_nothrow_failed(const char *name, size_t n, size_t al, tm_nothrow_ref t)
{
    void *(*next)(size_t, size_t, tm_nothrow_ref) =
        (void *(*)(size_t, size_t, tm_nothrow_ref))next_operator(name);
    return next(n, al, t);
}

/* An aligned request: the alignment is a power of two (the language
 * guarantees it for std::align_val_t); one of 16 or less is malloc's. */
static inline void *aligned_new(size_t n, size_t al)
{
    return al <= TM_ALIGNMENT ? tide_malloc(n) : tide_memalign(al, n);
}

/* The Itanium ABI's mangled names: _Znwm operator new(size_t), _Znam
 * new[], RKSt9nothrow_t (std::nothrow_t const&), St11align_val_t
 * (std::align_val_t), _ZdlPv operator delete(void*), _ZdaPv delete[],
 * ...Pvm (void*, size_t).  Prototypes first (-Wmissing-prototypes).   */
#define TM_CXX_DECLARE(ret, name, ...) TM_EXPORT ret name(__VA_ARGS__);
TM_CXX_DECLARE(void *, _Znwm, size_t)
TM_CXX_DECLARE(void *, _Znam, size_t)
TM_CXX_DECLARE(void *, _ZnwmRKSt9nothrow_t, size_t, tm_nothrow_ref)
TM_CXX_DECLARE(void *, _ZnamRKSt9nothrow_t, size_t, tm_nothrow_ref)
TM_CXX_DECLARE(void *, _ZnwmSt11align_val_t, size_t, size_t)
TM_CXX_DECLARE(void *, _ZnamSt11align_val_t, size_t, size_t)
TM_CXX_DECLARE(void *, _ZnwmSt11align_val_tRKSt9nothrow_t, size_t, size_t, tm_nothrow_ref)
TM_CXX_DECLARE(void *, _ZnamSt11align_val_tRKSt9nothrow_t, size_t, size_t, tm_nothrow_ref)
TM_CXX_DECLARE(void, _ZdlPv, void *)
TM_CXX_DECLARE(void, _ZdaPv, void *)
TM_CXX_DECLARE(void, _ZdlPvm, void *, size_t)
TM_CXX_DECLARE(void, _ZdaPvm, void *, size_t)
TM_CXX_DECLARE(void, _ZdlPvRKSt9nothrow_t, void *, tm_nothrow_ref)
TM_CXX_DECLARE(void, _ZdaPvRKSt9nothrow_t, void *, tm_nothrow_ref)
TM_CXX_DECLARE(void, _ZdlPvSt11align_val_t, void *, size_t)
TM_CXX_DECLARE(void, _ZdaPvSt11align_val_t, void *, size_t)
TM_CXX_DECLARE(void, _ZdlPvmSt11align_val_t, void *, size_t, size_t)
TM_CXX_DECLARE(void, _ZdaPvmSt11align_val_t, void *, size_t, size_t)
TM_CXX_DECLARE(void, _ZdlPvSt11align_val_tRKSt9nothrow_t, void *, size_t, tm_nothrow_ref)
TM_CXX_DECLARE(void, _ZdaPvSt11align_val_tRKSt9nothrow_t, void *, size_t, tm_nothrow_ref)

/* ---- new ----------------------------------------------------------------
 * malloc(0) already gives a distinct non-NULL pointer, as new(0) must.  */
void *_Znwm(size_t n)
{
    void *p = tide_malloc(n);
    return likely(p != NULL) ? p : new_failed("_Znwm", n);
}
void *_Znam(size_t n)
{
    void *p = tide_malloc(n);
    return likely(p != NULL) ? p : new_failed("_Znam", n);
}
void *_ZnwmRKSt9nothrow_t(size_t n, tm_nothrow_ref t)
{
    void *p = tide_malloc(n);
    return likely(p != NULL) ? p : new_nothrow_failed("_ZnwmRKSt9nothrow_t", n, t);
}
void *_ZnamRKSt9nothrow_t(size_t n, tm_nothrow_ref t)
{
    void *p = tide_malloc(n);
    return likely(p != NULL) ? p : new_nothrow_failed("_ZnamRKSt9nothrow_t", n, t);
}
void *_ZnwmSt11align_val_t(size_t n, size_t al)
{
    void *p = aligned_new(n, al);
    return likely(p != NULL) ? p : new_aligned_failed("_ZnwmSt11align_val_t", n, al);
}
void *_ZnamSt11align_val_t(size_t n, size_t al)
{
    void *p = aligned_new(n, al);
    return likely(p != NULL) ? p : new_aligned_failed("_ZnamSt11align_val_t", n, al);
}
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, tm_nothrow_ref t)
{
    void *p = aligned_new(n, al);
    return likely(p != NULL) ? p : new_aligned_nothrow_failed("_ZnwmSt11align_val_tRKSt9nothrow_t", n, al, t);
}
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, tm_nothrow_ref t)
{
    void *p = aligned_new(n, al);
    return likely(p != NULL) ? p : new_aligned_nothrow_failed("_ZnamSt11align_val_tRKSt9nothrow_t", n, al, t);
}

/* ---- delete ------------------------------------------------------------- */
void _ZdlPv(void *p) { tide_free(p); }
void _ZdaPv(void *p) { tide_free(p); }
void _ZdlPvm(void *p, size_t n) { (void)n; tide_free(p); }
void _ZdaPvm(void *p, size_t n) { (void)n; tide_free(p); }
void _ZdlPvRKSt9nothrow_t(void *p, tm_nothrow_ref t) { (void)t; tide_free(p); }
void _ZdaPvRKSt9nothrow_t(void *p, tm_nothrow_ref t) { (void)t; tide_free(p); }
void _ZdlPvSt11align_val_t(void *p, size_t al) { (void)al; tide_free(p); }
void _ZdaPvSt11align_val_t(void *p, size_t al) { (void)al; tide_free(p); }
void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al) { (void)n, (void)al; tide_free(p); }
void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al) { (void)n, (void)al; tide_free(p); }
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, tm_nothrow_ref t) { (void)al, (void)t; tide_free(p); }
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, tm_nothrow_ref t) { (void)al, (void)t; tide_free(p); }

#endif
