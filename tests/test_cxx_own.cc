/*
 * test_cxx_own.cc - a C++ program with an operator new and delete of its
 * own keeps them: the executable comes first in the symbol search order,
 * before tidemalloc's definitions (src/cxx.c), which it does not see.
 * Its operators call malloc and free, which are tidemalloc's.
 */
#include <cstdlib>
#include <new>
#include <string>
#include <vector>
#include "harness.h"
#include "tidemalloc.h"

static long news, deletes;

void *operator new(std::size_t n)
{
    news++;
    void *p = std::malloc(n ? n : 1);
    if (!p)
        throw std::bad_alloc();
    return p;
}
void operator delete(void *p) noexcept
{
    deletes++;
    std::free(p);
}
void operator delete(void *p, std::size_t) noexcept
{
    deletes++;
    std::free(p);
}

int main()
{
    int *x = static_cast<int *>(harness_launder(new int(3)));
    CHECK("the program's own operator new is called, on tidemalloc's malloc", news == 1 && tide_owns(x));
    delete x;
    CHECK("the program's own operator delete is called", deletes == 1);
    {
        std::vector<std::string> v;
        for (int i = 0; i < 1000; i++)
            v.push_back(std::string(40 + i % 50, 'x'));
        harness_sink(v.data());
    }
    CHECKF("containers allocate through it too", news > 1000 && news == deletes, "%ld new, %ld delete",
           news, deletes);
    CHECK("tide_check_heap", tide_check_heap() > 0);
    return harness_finish();
}
