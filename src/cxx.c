/*
 * cxx.c - C++'s operator new and operator delete (API layer).
 *
 * A C++ program allocates through operator new, which the C++ runtime
 * (libstdc++) implements on top of malloc: a call through the runtime's
 * PLT to malloc, a test of the result, the new_handler loop and the
 * std::bad_alloc throw when it is NULL.  tidemalloc defines the two
 * operators every other form is defined on - operator new(size_t) and
 * operator delete(void *), and their std::align_val_t forms - so that a
 * new or a delete is one call into the allocator.
 *
 *   program --new--> libstdc++ operator new --malloc--> tidemalloc   (before)
 *   program --new--> tidemalloc operator new                         (now)
 *
 * Only those four.  The standard defines the others - new[], the
 * nothrow forms, the sized deletes, delete[] - as calls to them, and
 * libstdc++ makes the calls through the dynamic linker, so they reach
 * a program's own replacement if it has one.  Defined here, they went
 * straight to tidemalloc instead: a program that replaced operator new
 * and operator delete(void *) with a pool of its own (no sized delete,
 * as code written before C++14 does) had `delete p` - compiled to the
 * sized delete - free the pool's blocks with tidemalloc's free, which
 * aborts on a pointer not its own (tests/test_cxx_own.cc; the 20 forms
 * were defined here from 73375a5 until the review of that change).
 * The cost: a sized delete or a new[] is one call more than with every
 * form here (libstdc++'s, then ours).
 *
 * What tidemalloc cannot do in C is the failure: calling the program's
 * new_handler and throwing std::bad_alloc.  So when the allocation
 * fails, the operator hands the request to the next definition of the
 * same operator - the C++ runtime's, found with dlsym(RTLD_NEXT) then,
 * not earlier (the runtime may be loaded later by dlopen) - which tries
 * malloc (tidemalloc's) again, runs the new_handler loop and throws as
 * the standard says (the runtime's nothrow forms, which call ours,
 * catch that and return NULL).  A program without a C++ runtime never
 * calls these.
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

#if defined(TM_SHARED_LIB) && !defined(TM_SANITIZER_INTERPOSES)

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

/* Out of line: a failure, to the runtime's operator of the same form. */
static TM_NOINLINE void *new_failed(size_t n)
{
    void *(*next)(size_t) = (void *(*)(size_t))next_operator("_Znwm");
    return next(n);
}
static TM_NOINLINE void *new_aligned_failed(size_t n, size_t al)
{
    void *(*next)(size_t, size_t) = (void *(*)(size_t, size_t))next_operator("_ZnwmSt11align_val_t");
    return next(n, al);
}

/* The Itanium ABI's mangled names: _Znwm operator new(std::size_t),
 * St11align_val_t its std::align_val_t argument (a size_t), _ZdlPv
 * operator delete(void *).  Prototypes first (-Wmissing-prototypes). */
TM_EXPORT void *_Znwm(size_t n);
TM_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t al);
TM_EXPORT void _ZdlPv(void *p);
TM_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t al);

/* malloc(0) already gives a distinct non-NULL pointer, as new(0) must. */
void *_Znwm(size_t n)
{
    void *p = tide_malloc(n);
    return likely(p != NULL) ? p : new_failed(n);
}
/* The alignment is a power of two (the language guarantees it for
 * std::align_val_t); one of 16 or less is malloc's.                  */
void *_ZnwmSt11align_val_t(size_t n, size_t al)
{
    void *p = al <= TM_ALIGNMENT ? tide_malloc(n) : tide_memalign(al, n);
    return likely(p != NULL) ? p : new_aligned_failed(n, al);
}
void _ZdlPv(void *p) { tide_free(p); }
void _ZdlPvSt11align_val_t(void *p, size_t al) { (void)al; tide_free(p); }

#endif
