/*
 * test_cxx_own.cc - a C++ program with an operator new and delete of its
 * own keeps them: the executable comes first in the symbol search order,
 * before tidemalloc's definitions (src/cxx.c).
 *
 * The program replaces only operator new(size_t) and operator
 * delete(void *), as code written before C++14 does, and serves them from
 * a pool of its own, not from malloc.  Every other form - new[], the
 * sized delete the compiler emits for `delete p`, delete[], the nothrow
 * forms - must reach these two, as the standard defines them.  With
 * tidemalloc defining those other forms itself (73375a5), `delete p`
 * went to tidemalloc's free with a pool block and aborted.
 */
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>
#include "harness.h"
#include "tidemalloc.h"

static long news, deletes;

/* A bump pool: 64 MiB, never reused; its blocks are nobody's heap. */
alignas(64) static unsigned char pool[64 << 20];
static std::size_t used;

static bool in_pool(const void *p)
{
    return p >= pool && p < pool + sizeof pool;
}

/* Deliberately no sized delete (what the test is about). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wsized-deallocation"
#endif
void *operator new(std::size_t n)
{
    news++;
    std::size_t at = (used + 15) & ~std::size_t(15);
    if (at + n + 16 > sizeof pool)
        throw std::bad_alloc();
    used = at + (n ? n : 1);
    return pool + at;
}
void operator delete(void *p) noexcept
{
    if (p && !in_pool(p))
        std::abort();             /* not the pool's: a mixed-up pairing */
    deletes++;
}

struct Node {
    std::uint64_t a, b;
    virtual ~Node() = default;
};

int main()
{
    Node *x = static_cast<Node *>(harness_launder(new Node()));
    CHECK("the program's own operator new is called", news == 1 && in_pool(x) && !tide_owns(x));
    delete x;                     /* sized: the runtime's, then ours above */
    CHECK("`delete p` (the sized delete) reaches the program's operator delete", deletes == 1);
    int *a = static_cast<int *>(harness_launder(new int[100]));
    CHECK("new[] reaches the program's operator new", news == 2 && in_pool(a));
    delete[] a;
    CHECK("delete[] reaches the program's operator delete", deletes == 2);
    int *n = new (std::nothrow) int(5);
    CHECK("nothrow new reaches it too", news == 3 && in_pool(harness_launder(n)));
    delete n;
    {
        std::vector<std::string> v;
        for (int i = 0; i < 1000; i++)
            v.push_back(std::string(40 + i % 50, 'x'));
        harness_sink(v.data());
    }
    CHECKF("containers allocate and free through it", news > 1000 && news == deletes, "%ld new, %ld delete",
           news, deletes);
    void *m = malloc(100);
    CHECK("malloc is still tidemalloc's", m && tide_owns(m));
    free(m);
    CHECK("tide_check_heap", tide_check_heap() > 0);
    return harness_finish();
}
