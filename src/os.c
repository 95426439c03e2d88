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
#include <sys/random.h>
#include "os.h"
#include "params.h"

_Atomic long tm_os_madvise_count;

/* Fault injection: -1 = off; n >= 0 = n more successes, then failures. */
static _Atomic long fail_after[TM_FAULT_KINDS] = { -1, -1, -1 };

void tm_os_fault_inject(int kind, long after)
{
    if (kind == TM_FAULT_MMAP || kind == TM_FAULT_BRK)
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

static size_t os_ncpus(void)
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

/* Called once by initialization, before it is published (params.h). */
void tm_os_init(void)
{
    unsigned long ps = getauxval(AT_PAGESZ);
    tm_fix.pagesize = ps ? ps : 4096;
    tm_fix.ncpus = os_ncpus();
}

uintptr_t tm_os_random(void)
{
    uintptr_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uintptr_t)&k ^ ((uintptr_t)ts.tv_nsec << 20) ^ (uintptr_t)ts.tv_sec ^ 0x9e3779b97f4a7c15ull;
    }
    return k ? k : 1;
}

void *tm_os_map(size_t size)
{
    if (injected_failure(TM_FAULT_MMAP))
        return NULL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Reserve `size` bytes of address space aligned to `align` (a power of two
 * >= page), inaccessible until committed: map twice the size and cut.     */
void *tm_os_reserve_aligned(size_t size, size_t align)
{
    if (injected_failure(TM_FAULT_MMAP))
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
    if (injected_failure(TM_FAULT_MMAP))
        return false;
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

bool tm_os_guard(void *p, size_t size)
{
    return mprotect(p, size, PROT_NONE) == 0;
}

void tm_os_unmap(void *p, size_t size)
{
    munmap(p, size);
}

void *tm_os_remap(void *p, size_t old, size_t new_size)
{
    if (injected_failure(TM_FAULT_MMAP))
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
    if (incr > 0 && injected_failure(TM_FAULT_BRK))
        return (void *)-1;
    return sbrk(incr);
}

uint64_t tm_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
