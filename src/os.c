/*
 * os.c - the OS layer.  The only file that calls mmap, munmap, mprotect,
 * mremap, madvise and sbrk.  Each function returns NULL / false on
 * failure with errno set (ENOMEM), and is where tests inject failures
 * (tide_fault_inject).  Nothing here allocates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

_Atomic long tm_os_madvise_count;

/* Fault injection: -1 = off; n >= 0 = n more successes, then failures. */
static _Atomic long fail_after[3] = { -1, -1, -1 };

void tm_os_fault_inject(int kind, long after)
{
    if (kind == 1 || kind == 2)
        atomic_store(&fail_after[kind], after < 0 ? -1 : after);
}

static bool injected_failure(int kind)
{
    long v = atomic_load_explicit(&fail_after[kind], memory_order_relaxed);
    while (v >= 0) {
        if (v == 0) {
            errno = ENOMEM;
            return true;
        }
        if (atomic_compare_exchange_weak(&fail_after[kind], &v, v - 1))
            return false;
    }
    return false;
}

void tm_os_init(void)
{
    unsigned long ps = getauxval(AT_PAGESZ);
    tm_mp.pagesize = ps ? ps : 4096;
}

void *tm_os_map(size_t size)
{
    if (injected_failure(1))
        return NULL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Reserve `size` bytes of address space aligned to `align` (a power of two
 * >= page), inaccessible until committed: map twice the size and cut.     */
void *tm_os_reserve_aligned(size_t size, size_t align)
{
    if (injected_failure(1))
        return NULL;
    size_t span = size + align;
    char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *a = (char *)align_up((uintptr_t)p, align);
    if (a > p)
        munmap(p, (size_t)(a - p));
    char *end = p + span, *aend = a + size;
    if (end > aend)
        munmap(aend, (size_t)(end - aend));
    return a;
}

bool tm_os_commit(void *p, size_t size)
{
    if (injected_failure(1))
        return false;
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void tm_os_unmap(void *p, size_t size)
{
    munmap(p, size);
}

void *tm_os_remap(void *p, size_t old, size_t new_size)
{
    if (injected_failure(1))
        return NULL;
    void *q = mremap(p, old, new_size, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}

/* Give pages back: the range stays mapped and reads as zero afterwards. */
void tm_os_release(void *p, size_t size)
{
    if (size == 0)
        return;
    atomic_fetch_add_explicit(&tm_os_madvise_count, 1, memory_order_relaxed);
    madvise(p, size, MADV_DONTNEED);
}

void *tm_os_sbrk(intptr_t incr)
{
    if (incr > 0 && injected_failure(2))
        return (void *)-1;
    return sbrk(incr);
}

size_t tm_os_ncpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (size_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

uint64_t tm_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
