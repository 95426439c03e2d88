/*
 * test_cxx.cc - C++'s operator new and operator delete (src/cxx.c).
 *
 *   routing   operator new(size_t), operator delete(void *) and their
 *             align_val_t forms resolve to tidemalloc's (dladdr of the
 *             names the program binds to), the 16 others to the C++
 *             runtime's; what every form hands out is tidemalloc's
 *             (tide_owns), aligned as asked; every form of delete
 *             takes it back;
 *   failure   what the C++ runtime's operators do when the allocation
 *             fails, tidemalloc's hand the request on: the new_handler
 *             is called, std::bad_alloc thrown (throwing forms), NULL
 *             returned (nothrow forms); a handler that makes room (the
 *             injected mmap/brk failures lifted) makes the retry succeed;
 *   own       a program with an operator new of its own keeps it
 *             (test_cxx_own.cc, a second program).
 */
#include <dlfcn.h>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include "harness.h"
#include "tidemalloc.h"

/* The library that defines `name` in the program's global scope. */
static bool defined_by_tidemalloc(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    if (!f || !dladdr(f, &info) || !info.dli_fname)
        return false;
    return std::strstr(info.dli_fname, "libtidemalloc") != nullptr;
}

/* The four every other form is defined on: tidemalloc's. */
static const char *const base[] = { "_Znwm", "_ZnwmSt11align_val_t", "_ZdlPv", "_ZdlPvSt11align_val_t" };
/* The rest: the C++ runtime's, which call the four through the dynamic
 * linker (a program's replacement of the four reaches them all). */
static const char *const derived[] = {
    "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

struct alignas(256) Wide {
    char c[300];
};

static bool ours(const void *p, std::size_t align)
{
    return p && tide_owns(p) && (reinterpret_cast<std::uintptr_t>(p) & (align - 1)) == 0;
}

static void routing()
{
    for (const char *n : base)
        CHECKF("the program binds this operator to tidemalloc's", defined_by_tidemalloc(n), "%s", n);
    for (const char *n : derived)
        CHECKF("this operator is the C++ runtime's (it calls the four)",
               dlsym(RTLD_DEFAULT, n) != nullptr && !defined_by_tidemalloc(n), "%s", n);

    int *i = new int(7);
    CHECK("new: tidemalloc's block", ours(i, 16) && *i == 7);
    delete i;                                          /* sized: _ZdlPvm */
    char *a = new char[1000];
    CHECK("new[]: tidemalloc's block", ours(a, 16));
    delete[] a;
    void *z = ::operator new(0);
    void *z2 = ::operator new(0);
    CHECK("new(0): distinct non-null blocks", ours(z, 16) && ours(z2, 16) && z != z2);
    ::operator delete(z);
    ::operator delete(z2, std::size_t(0));
    int *nt = new (std::nothrow) int[50];
    CHECK("nothrow new[]: tidemalloc's block", ours(nt, 16));
    ::operator delete[](nt, std::nothrow);
    void *p = ::operator new(64, std::nothrow);
    CHECK("nothrow new: tidemalloc's block", ours(p, 16));
    ::operator delete(p, std::nothrow);

    Wide *w = new Wide;
    CHECK("aligned new (alignas 256): aligned, tidemalloc's", ours(w, 256));
    delete w;                                          /* sized, aligned */
    Wide *wa = new Wide[3];
    CHECK("aligned new[]: aligned, tidemalloc's", ours(wa, 256));
    delete[] wa;
    void *q = ::operator new(100, std::align_val_t(4096));
    CHECK("aligned new, 4096: aligned, tidemalloc's", ours(q, 4096));
    ::operator delete(q, std::align_val_t(4096));
    q = ::operator new[](100, std::align_val_t(64));
    CHECK("aligned new[], 64", ours(q, 64));
    ::operator delete[](q, 100, std::align_val_t(64));
    q = ::operator new(100, std::align_val_t(512), std::nothrow);
    CHECK("aligned nothrow new, 512", ours(q, 512));
    ::operator delete(q, std::align_val_t(512), std::nothrow);
    q = ::operator new[](100, std::align_val_t(32), std::nothrow);
    CHECK("aligned nothrow new[], 32", ours(q, 32));
    ::operator delete[](q, std::align_val_t(32), std::nothrow);
    q = ::operator new(100, std::align_val_t(128));
    ::operator delete(q, 100, std::align_val_t(128));
    q = ::operator new[](10);
    ::operator delete[](q, std::size_t(10));
    CHECK("tide_check_heap after every form", tide_check_heap() > 0);
}

/* ---- failure ------------------------------------------------------------ */
static int handler_calls;
static void giving_up_handler()
{
    handler_calls++;
    std::set_new_handler(nullptr);     /* next time: std::bad_alloc */
}
static void room_making_handler()
{
    handler_calls++;
    tide_fault_inject(TIDE_FAULT_MMAP, -1);
    tide_fault_inject(TIDE_FAULT_BRK, -1);
}

static volatile std::size_t huge = SIZE_MAX / 2;

template <typename F> static bool throws_bad_alloc(F f)
{
    try {
        f();
    } catch (const std::bad_alloc &) {
        return true;
    }
    return false;
}

static void failure()
{
    std::size_t n = huge;
    handler_calls = 0;
    CHECK("new of an impossible size throws std::bad_alloc",
          throws_bad_alloc([n] { ::operator delete(::operator new(n)); }));
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("new: the new_handler is called, then std::bad_alloc",
          throws_bad_alloc([n] { ::operator delete(::operator new(n)); }) && handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("new[]: the same", throws_bad_alloc([n] { ::operator delete[](::operator new[](n)); }) &&
                                  handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("aligned new: the same",
          throws_bad_alloc([n] { ::operator delete(::operator new(n, std::align_val_t(64)), std::align_val_t(64)); }) &&
              handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("aligned new[]: the same",
          throws_bad_alloc([n] { ::operator delete[](::operator new[](n, std::align_val_t(64)), std::align_val_t(64)); }) &&
              handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("nothrow new: the new_handler is called, then NULL",
          ::operator new(n, std::nothrow) == nullptr && handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("nothrow new[]: the same", ::operator new[](n, std::nothrow) == nullptr && handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("aligned nothrow new: the same",
          ::operator new(n, std::align_val_t(64), std::nothrow) == nullptr && handler_calls == 1);
    handler_calls = 0;
    std::set_new_handler(giving_up_handler);
    CHECK("aligned nothrow new[]: the same",
          ::operator new[](n, std::align_val_t(64), std::nothrow) == nullptr && handler_calls == 1);

    /* A handler that makes room: 64 MiB while the system refuses memory
     * (injected), which the handler lifts; the retry succeeds.         */
    handler_calls = 0;
    std::set_new_handler(room_making_handler);
    tide_fault_inject(TIDE_FAULT_MMAP, 0);
    tide_fault_inject(TIDE_FAULT_BRK, 0);
    char *big = static_cast<char *>(::operator new(std::size_t(64) << 20));
    CHECK("new: a handler that makes room, then the retry succeeds",
          ours(big, 16) && handler_calls == 1);
    if (big) {
        std::memset(big, 1, std::size_t(64) << 20);
        ::operator delete(big);
    }
    handler_calls = 0;
    tide_fault_inject(TIDE_FAULT_MMAP, 0);
    tide_fault_inject(TIDE_FAULT_BRK, 0);
    void *al = ::operator new(std::size_t(64) << 20, std::align_val_t(8192), std::nothrow);
    CHECK("aligned nothrow new: the same", ours(al, 8192) && handler_calls == 1);
    ::operator delete(al, std::align_val_t(8192));
    std::set_new_handler(nullptr);
    CHECK("tide_check_heap after the failures", tide_check_heap() > 0);
}

int main()
{
    routing();
    failure();
    return harness_finish();
}
