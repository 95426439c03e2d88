/*
 * thp_common.h - reading a mapping's transparent huge page state from
 * /proc/self/smaps (test_thp.c, test_thp_budget.c).
 */
#ifndef TIDE_TEST_THP_COMMON_H
#define TIDE_TEST_THP_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* THPeligible (0 or 1) of the mapping holding address a, -1 if none;
 * with *nmaps the number of mappings that overlap [lo, hi). */
static inline int thp_smaps_scan(uintptr_t a, uintptr_t lo, uintptr_t hi, int *nmaps)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0, r = -1;
    *nmaps = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
        if (dash && sp && dash < sp && sscanf(line, "%lx-%lx ", &s, &e) == 2) {
            in = a >= s && a < e;
            *nmaps += s < hi && e > lo;
            continue;
        }
        if (in && strncmp(line, "THPeligible:", 12) == 0)
            r = atoi(line + 12);
    }
    fclose(f);
    return r;
}
/* Resident pages of [lo, hi) (page aligned, mincore); -1 if any of it
 * is not mapped. */
static inline long thp_resident_pages(uintptr_t lo, uintptr_t hi)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char v[512];
    long res = 0;
    for (uintptr_t a = lo; a < hi;) {
        size_t len = hi - a < sizeof v * ps ? hi - a : sizeof v * ps;
        if (mincore((void *)a, len, v) != 0)
            return -1;
        for (size_t i = 0; i < (len + ps - 1) / ps; i++)
            res += v[i] & 1;
        a += len;
    }
    return res;
}
static inline int thp_eligible(uintptr_t a)
{
    int n;
    return thp_smaps_scan(a, 0, 0, &n);
}
#endif
