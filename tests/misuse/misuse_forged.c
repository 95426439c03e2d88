/*
 * misuse_forged.c - frees of memory the allocator never handed out: a fake
 * chunk on the stack, in a global, and in another allocator's block (a
 * private mapping with a plausible header), then the attacker's follow-up
 * (mallocs of the fake size, which must never return the fake chunk).
 * Also realloc of a fake chunk, and pointers into a thread arena's 64 MiB
 * sub-heap slot that are no chunk: in the reserve beyond the heap's size
 * and in the guard before its header (reading there must not fault and
 * the pointer must be named).  See misuse.h.
 */
#include <pthread.h>
#include "misuse.h"

#define FAKE_SIZE 0x100   /* chunk size of the fake: requests of 0xf8 */
#define FAKE_REQ  0xf8

/* A fake chunk at m (16-aligned, 0x200 bytes writable): size FAKE_SIZE
 * with P set, and a sane next chunk after it; returns the user pointer. */
static void *forge(word *m)
{
    memset(m, 0, 0x200);
    m[1] = FAKE_SIZE | 1;
    m[FAKE_SIZE / 8] = FAKE_SIZE;          /* next prev_size      */
    m[FAKE_SIZE / 8 + 1] = 0x40 | 1;       /* next size, P set    */
    m[FAKE_SIZE / 8 + 8 + 1] = 0x40 | 1;   /* and the one after   */
    return m + 2;
}

static void follow_up(const char *what, void *fake)
{
    for (int i = 0; i < 80; i++)
        check_target(what, malloc(FAKE_REQ), fake, FAKE_SIZE);
}

static void t_stack(void *arg)
{
    (void)arg;
    _Alignas(16) word buf[0x200 / 8];
    void *fake = forge(buf);
    free(harness_launder(fake));
    follow_up("fake chunk on the stack", fake);
}

static _Alignas(16) word global_buf[0x200 / 8];
static void t_global(void *arg)
{
    (void)arg;
    void *fake = forge(global_buf);
    free(harness_launder(fake));
    follow_up("fake chunk in a global", fake);
}

/* Another allocator's block: a private mapping whose header imitates ours. */
static void *other_block(void)
{
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        setup_failed("mmap");
    return forge((word *)(m + 0x1000));
}

static void t_other(void *arg)
{
    (void)arg;
    void *fake = other_block();
    free(harness_launder(fake));
    follow_up("fake chunk in another allocator's mapping", fake);
}

/* The same block handed to free() as a non-main-arena chunk (A bit): its
 * heap would be found by masking the address. */
static void t_other_nonmain(void *arg)
{
    (void)arg;
    word *fake = other_block();
    fake[-1] |= 4;
    free(harness_launder(fake));
    follow_up("fake non-main chunk in another allocator's mapping", fake);
}

static void t_realloc(void *arg)
{
    (void)arg;
    _Alignas(16) word buf[0x200 / 8];
    void *fake = forge(buf);
    void *r = realloc(harness_launder(fake), FAKE_REQ + 0x80);
    check_target("realloc of a fake chunk on the stack", r, fake, FAKE_SIZE);
    follow_up("realloc of a fake chunk on the stack", fake);
}

static void t_usable_size(void *arg)
{
    (void)arg;
    void *fake = other_block();
    size_t n = malloc_usable_size(harness_launder(fake));
    /* The answer is what a program would trust for a memcpy length. */
    if (n)
        exploited("malloc_usable_size of a forged chunk answered %zu", n);
}

/* A block of a second thread's arena (a sub-heap, the A bit set). */
static void *sub_block(void *arg)
{
    (void)arg;
    return malloc(64);
}
static char *sub_heap_slot(void)
{
    pthread_t t;
    void *b = NULL;
    if (pthread_create(&t, NULL, sub_block, NULL) || pthread_join(t, &b) || !b)
        setup_failed("thread");
    if (!(W(b)[-1] & 4))
        setup_failed("the thread's block is not in a sub-heap");
    return (char *)((uintptr_t)b & ~(((uintptr_t)64 << 20) - 1));
}

static void t_sub_reserve(void *arg)
{
    (void)arg;
    char *slot = sub_heap_slot();
    free(slot + (60u << 20) + 0x10);        /* far beyond a young heap's size */
}

static void t_sub_guard(void *arg)
{
    (void)arg;
    char *slot = sub_heap_slot();
    free(slot + 0x1010);                    /* before the heap header */
}

/* The first address of the main arena's brk heap, from /proc/self/maps
 * (reading the maps file allocates: done before the address is used). */
static char *brk_heap_start(void)
{
    free(malloc(64));                       /* the heap exists */
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        setup_failed("/proc/self/maps");
    char line[512];
    unsigned long lo = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "[heap]") && sscanf(line, "%lx", &lo) == 1)
            break;
    fclose(f);
    if (!lo)
        setup_failed("no [heap] in /proc/self/maps");
    return (char *)lo;
}

/* Pointers at the very start of a heap: the header a free reads (8 bytes
 * before) lies outside it, where nothing need be mapped - with address
 * randomization the page before the brk heap is a hole, and so may the
 * 64 MiB slot before a sub-heap's be.  The ownership test must be of the
 * chunk, not of the pointer, or this faults instead of being named.   */
static void t_heap_start(void *arg)
{
    (void)arg;
    free(harness_launder(brk_heap_start()));
}
static void t_sub_slot_start(void *arg)
{
    (void)arg;
    free(harness_launder(sub_heap_slot()));
}
static void t_usable_heap_start(void *arg)
{
    (void)arg;
    (void)malloc_usable_size(harness_launder(brk_heap_start()));
}

static const struct technique tab[] = {
    { "free_stack", t_stack, "free of a fake chunk on the stack, then mallocs of its size",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_global", t_global, "free of a fake chunk in a global, then mallocs of its size",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_other_allocator", t_other, "free of a fake chunk in a private mapping (another allocator's block)",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_other_nonmain", t_other_nonmain, "the same with the non-main-arena bit set",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "realloc_stack", t_realloc, "realloc of a fake chunk on the stack",
      { "realloc(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_sub_reserve", t_sub_reserve, "free of a pointer into a sub-heap's unused reserve",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_sub_guard", t_sub_guard, "free of a pointer into the guard before a sub-heap's header",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_heap_start", t_heap_start, "free of the brk heap's first address (its header would lie before the heap)",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "free_sub_slot_start", t_sub_slot_start, "free of a sub-heap slot's first address",
      { "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "usable_size_heap_start", t_usable_heap_start, "malloc_usable_size of the brk heap's first address",
      { "malloc_usable_size(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "usable_size_other", t_usable_size, "malloc_usable_size of a fake chunk in a private mapping",
      { "malloc_usable_size(): invalid pointer (not a chunk of this heap)" }, 0 },
};

MISUSE_MAIN("forged", tab)
