/*
 * test_obs_quiet.c - the statistics channel's refreshes go quiet with the
 * program (observe.c tm_obs_bg_round), and looking makes no system call
 * that the allocator counts as its own.
 *
 * The background thread asks tm_obs_bg_round when to refresh next; a
 * round that finds no activity (no slow path, no counted system call
 * since the last summary) returns "never" and the thread sleeps until
 * poked.  A refresh that itself made a counted call (the heap map once
 * mapped its scratch copy of the mapped chunks with tm_os_map) looked
 * like activity to the next round, for ever: test_quiet's quiet check
 * saw the thread wake once a second, under load.  Here the rounds are
 * driven by hand on a simulated clock (no background thread: mode off),
 * so the outcome does not depend on the machine's speed:
 *   - after the program's last call the rounds reach "never" within a
 *     bounded number, with a heap map due every 100 ms;
 *   - while they run, the allocator's system-call counters stay put;
 *   - the heap map was refreshed along the way (the channel's map
 *     region changed) - so the check above did look at a map refresh.
 */
#define _GNU_SOURCE 1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>
#include "harness.h"
#include "observe.h"
#include "os.h"
#include "tidemalloc.h"

static unsigned long counted_calls(void)
{
    return atomic_load(&tm_os_calls.mmap) + atomic_load(&tm_os_calls.munmap) +
           atomic_load(&tm_os_calls.mprotect) + atomic_load(&tm_os_calls.mremap) +
           atomic_load(&tm_os_calls.madvise) + atomic_load(&tm_os_calls.process_madvise) +
           atomic_load(&tm_os_calls.brk);
}

/* The channel's header, read-only, through its descriptor (a memfd named
 * TM_OBS_NAME); NULL if there is none yet. */
static const struct tm_obs_header *channel(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return NULL;
    const struct tm_obs_header *h = NULL;
    struct dirent *e;
    while (!h && (e = readdir(d)) != NULL) {
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strstr(target, TM_OBS_NAME)) {
            void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, atoi(e->d_name), 0);
            if (m != MAP_FAILED)
                h = m;
        }
    }
    closedir(d);
    return h;
}

int main(void)
{
    /* A heap with small chunks, free chunks and mapped chunks (the map
     * copies the registry of the latter). */
    enum { NSMALL = 4000, NMAPPED = 6 };
    static void *small[NSMALL], *mapped[NMAPPED];
    for (int i = 0; i < NSMALL; i++) {
        small[i] = malloc(64 + (size_t)(i % 50) * 40);
        CHECK("malloc", small[i] != NULL);
        memset(small[i], 1, 64);
    }
    for (int i = 0; i < NMAPPED; i++) {
        mapped[i] = malloc(600000);
        CHECK("malloc (mapped)", mapped[i] != NULL);
        memset(mapped[i], 2, 4096);
    }
    for (int i = 0; i < NSMALL; i += 2)
        free(small[i]);
    free(mapped[0]);

    uint64_t now = tm_os_now_ms();
    tm_obs_bg_round(now);                    /* (makes the channel if need be) */
    const struct tm_obs_header *h = channel();
    CHECK("the channel exists", h != NULL);
    uint64_t maps0 = h ? h->region[1].count : 0;
    unsigned long before = counted_calls();
    int rounds = 0;
    uint64_t next = 0;
    for (; rounds < 200; rounds++) {
        next = tm_obs_bg_round(now);
        if (next == UINT64_MAX)
            break;
        now = next > now ? next : now + 1;     /* the thread would sleep until then */
    }
    unsigned long after = counted_calls();
    uint64_t maps = h ? h->region[1].count - maps0 : 0;
    printf("  %d rounds until quiet (simulated clock), %llu heap maps, counted system calls %lu -> %lu\n",
           rounds, (unsigned long long)maps, before, after);
    CHECKF("the heap map was refreshed during the rounds", maps > 0, "%llu", (unsigned long long)maps);
    CHECKF("the refreshes go quiet: a round returns \"never\" within 200", next == UINT64_MAX,
           "still due at +%llu ms after %d rounds", (unsigned long long)(next - now), rounds);
    CHECKF("refreshing the channel and the heap map made no counted system call", after == before,
           "%lu -> %lu", before, after);
    CHECKF("some rounds ran (the channel is on)", rounds > 0, "%d", rounds);

    for (int i = 1; i < NMAPPED; i++)
        free(mapped[i]);
    for (int i = 1; i < NSMALL; i += 2)
        free(small[i]);
    CHECK("tide_check_heap", tide_check_heap() > 0);
    return harness_finish();
}
