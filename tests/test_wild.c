/*
 * test_wild.c - sweeps of wild pointers (issue 11, "ownership").
 *
 * free, realloc, free_sized and malloc_usable_size must accept only
 * chunks this allocator handed out.  The misuse suite tries one pointer
 * of each kind; this test hands them every 16-byte step (and some 8-byte
 * misaligned ones) over the places where a pointer check can go wrong:
 *
 *   - the first 8 KiB of the brk heap, and the page before it (with
 *     address randomization a hole: a header read there faults);
 *   - the end of the brk heap (a pointer just past it has its header
 *     just inside);
 *   - the first 8 KiB of a thread arena's 64 MiB sub-heap slot (the
 *     guard before the heap header, the header, the first chunks) and
 *     the last 4 KiB of the slot before it;
 *   - an mmapped chunk's start and the page before it, and its end;
 *   - interior pointers of live blocks of both arenas.
 *
 * Each pointer is tried in a forked child (harness_run_child).  free,
 * realloc and free_sized must die of SIGABRT with the allocator's
 * one-line message: no fault, no normal return.  malloc_usable_size may
 * also return 0, what it answers for a chunk in a bin (a pointer that
 * hits a freed block exactly); any other size is a wild pointer taken
 * for a chunk.
 *
 * Pointers at chunks in use are skipped: the test's own blocks, and the
 * ones the C library and the harness hold (stdio buffers, thread
 * structures), which the child recognises by their verified in-use
 * header before it makes the call (tm_own_classify, then the checksum: a
 * wild pointer passes that with probability 2^-16).  Needs the checks
 * (TIDE_CHECKS): without them nothing tells a wild pointer apart.
 *
 * Found (2026-12, each a SIGSEGV instead of the message): free and
 * malloc_usable_size of the brk heap's or a sub-heap slot's first byte
 * (the fast path tested the pointer's ownership, not its chunk's), and
 * realloc of the brk heap's end (the cache key, the chunk's second word,
 * was read before the header had been verified).
 */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "owner.h"
#include "tcache.h"
#include "tidemalloc.h"

enum op { OP_FREE, OP_REALLOC, OP_FREE_SIZED, OP_USABLE };
static const char *const op_name[] = { "free", "realloc", "free_sized", "malloc_usable_size" };

enum { NLIVE = 1500 };
static void *live[NLIVE];
static size_t nlive;

static bool is_live(uintptr_t a)
{
    for (size_t i = 0; i < nlive; i++)
        if ((uintptr_t)live[i] == a)
            return true;
    return false;
}

/* Blocks of many sizes, a third of them freed again: chunks in use,
 * cached and in bins lie side by side. */
static void populate(void)
{
    for (int i = 0; i < 900 && nlive < NLIVE - 8; i++) {
        void *p = malloc(16 + (size_t)(i * 37) % 3000);
        if (!p)
            abort();
        if (i % 3 == 0)
            free(p);
        else
            live[nlive++] = p;
    }
}

static void *thread_blocks(void *arg)
{
    (void)arg;
    populate();
    return malloc(64);
}

struct trial {
    enum op op;
    uintptr_t addr;
};

/* A chunk in use that someone else holds (exit 5: not a trial).  Reads
 * nothing at an address that is not in our heaps, and the chunk's
 * second word only once its header verified.                        */
/* For malloc_usable_size, a cached chunk counts too: like glibc's for its
 * tcache, the answer is its size (cached chunks are in use to the arena);
 * free and realloc of one must abort (a double free).                  */
static bool held_elsewhere(uintptr_t a, enum op op)
{
    if (a & 15)
        return false;
    const tm_chunk *c = mem2chunk((void *)a);
    int own = tm_own_classify(c);
    if (own == TM_OWN_MMAP)
        return true;
    return own == TM_OWN_HEAP && chunk_hdr_ok(c, TM_ST_INUSE) &&
           (op == OP_USABLE || !tc_key_marked((const tm_tc_entry *)a));
}

static void child(void *arg)
{
    const struct trial *t = arg;
    void *p = (void *)t->addr;
    if (held_elsewhere(t->addr, t->op))
        _exit(5);
    switch (t->op) {
    case OP_FREE:
        free(p);
        break;
    case OP_REALLOC:
        harness_sink(realloc(p, 100));
        break;
    case OP_FREE_SIZED:
        tide_free_sized(p, 1);
        break;
    case OP_USABLE:
        _exit(malloc_usable_size(p) == 0 ? 0 : 3);
    }
    _exit(4);   /* free or realloc returned */
}

/* Try every pointer of [lo, hi) at 16-byte steps (every 7th one 8 bytes
 * off) with op; returns the number of wrong fates, the first one shown. */
static int sweep(enum op op, uintptr_t lo, uintptr_t hi, const char *where)
{
    int bad = 0, tried = 0, held = 0;
    char first[512] = "";
    for (uintptr_t a = lo, k = 0; a < hi; a += 16, k++) {
        uintptr_t addr = a + (k % 7 == 3 ? 8 : 0);
        if (is_live(addr))
            continue;
        struct trial t = { op, addr };
        int status = harness_run_child(child, &t);
        if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 5) {
            held++;
            continue;
        }
        tried++;
        bool ok = status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
                  strstr(harness_child_output, "[tidemalloc");
        if (op == OP_USABLE && status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok = true;
        if (!ok && bad++ == 0) {
            char how[128];
            harness_describe_status(status, how, sizeof how);
            snprintf(first, sizeof first, "first: %s(%#lx): %s, stderr \"%.200s\"", op_name[op],
                     (unsigned long)addr, how, harness_child_output);
        }
    }
    CHECKF(where, bad == 0 && tried > held, "%s: %d of %d pointers not named (%d skipped: in use); %s",
           op_name[op], bad, tried, held, first);
    return bad;
}

static uintptr_t brk_heap_start(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "[heap]") && sscanf(line, "%lx", &lo) == 1)
            break;
    if (f)
        fclose(f);
    return lo;
}

int main(void)
{
    if (!TIDE_CHECKS) {
        printf("test_wild: needs TIDE_CHECKS\n");
        return 0;
    }
    populate();
    pthread_t th;
    void *tb = NULL;
    if (pthread_create(&th, NULL, thread_blocks, NULL) || pthread_join(th, &tb) || !tb) {
        fprintf(stderr, "thread failed\n");
        return 1;
    }
    live[nlive++] = tb;
    enum { BIG = 256 << 10 };          /* above the mmap threshold */
    void *bigp = malloc(BIG);
    CHECK("a 256 KiB block is mmapped", bigp && (((uintptr_t *)bigp)[-1] & 2) != 0);
    live[nlive++] = bigp;
    uintptr_t big = (uintptr_t)bigp;
    uintptr_t heap = brk_heap_start();
    uintptr_t brk_end = (uintptr_t)sbrk(0);
    uintptr_t slot = (uintptr_t)tb & ~(((uintptr_t)64 << 20) - 1);
    CHECK("the brk heap is in /proc/self/maps", heap != 0);
    CHECK("the thread's block is in a sub-heap", (((uintptr_t *)tb)[-1] & 4) != 0);
    if (!heap)
        return harness_finish();

    for (enum op op = OP_FREE; op <= OP_USABLE; op++) {
        sweep(op, heap - 64, heap + 8192, "brk heap start and the hole before it");
        sweep(op, heap - 4096, heap - 4096 + 256, "the page before the brk heap");
        sweep(op, brk_end - 256, brk_end + 256, "brk heap end");
        sweep(op, slot, slot + 8192, "sub-heap slot start (guard, header, first chunks)");
        sweep(op, slot - 4096, slot, "the end of the slot before a sub-heap");
        sweep(op, big - 4096, big + 4096, "an mmapped chunk's start and the page before it");
        sweep(op, big + BIG - 256, big + BIG + 256, "an mmapped chunk's end");
        /* interior pointers of live blocks, main arena and thread arena */
        for (size_t i = 0; i < nlive; i += 40) {
            uintptr_t b = (uintptr_t)live[i];
            sweep(op, b + 16, b + 16 + 64, "interior pointers of live blocks");
        }
    }
    return harness_finish();
}
