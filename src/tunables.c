/*
 * tunables.c - parameters: defaults, the environment (read once at
 * start, without allocating) and mallopt.
 *
 * Environment, as glibc reads it: MALLOC_ARENA_MAX, MALLOC_ARENA_TEST,
 * MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_,
 * MALLOC_MMAP_MAX_, MALLOC_PERTURB_, MALLOC_CHECK_, and
 * GLIBC_TUNABLES=glibc.malloc.<name>=<value>:... ; plus tidemalloc's own
 * TIDEMALLOC_DECAY_MS, TIDEMALLOC_BACKGROUND_THREAD, TIDEMALLOC_TCACHE_BYTES,
 * TIDEMALLOC_HARDEN, TIDEMALLOC_THP, TIDEMALLOC_DEEPBIND and
 * TIDEMALLOC_POPULATE.  A malformed or
 * out-of-range value is ignored.
 *
 * TIDEMALLOC_PROFILE (allocation-site profiling, prof.h; read at start
 * only, no mallopt):
 *   unset, "", "0" or "off"   off (the default)
 *   "1" or "on"               on, with the defaults below
 *   a list of key:value items separated by commas, which turns it on:
 *     rate:BYTES   mean bytes allocated between two samples (524288)
 *     out:PREFIX   reports go to PREFIX.collapsed and PREFIX.txt; %p is
 *                  replaced by the process id (tidemalloc-prof.%p)
 *     top:N        sites listed in PREFIX.txt (20)
 *     seed:N       seed of the sampling intervals (default: random), for
 *                  reproducible profiles
 *   e.g. TIDEMALLOC_PROFILE=rate:1048576,out:/tmp/app.%p
 *   A malformed item is ignored (the others still apply).
 *
 * Secure mode (AT_SECURE: a set-user-ID or set-group-ID program, or one
 * that gained capabilities at exec) reads none of it: the environment is
 * the caller's, and TIDEMALLOC_REPORT or a profile's out: made such a
 * program write its report where the caller chose, with its privileges
 * (a set-user-ID root copy of a program run by `nobody` overwrote a
 * root-owned 0600 file, 2026-12-05).  glibc ignores its malloc tunables
 * there too.  mallopt still works.
 */
#include <stdlib.h>
#include <string.h>
#include "control.h"
#include "os.h"
#include "prof.h"
#include "tcache.h"
#include "tidemalloc.h"
#include "tunables.h"


/* max_fast from an M_MXFAST request size, as glibc's set_max_fast. */
static size_t mxfast_to_chunk(size_t req)
{
    return req <= TM_ALIGN_MASK - TM_SIZE_SZ ? TM_MINSIZE / 2
                                             : (req + TM_SIZE_SZ) & ~(size_t)TM_ALIGN_MASK;
}

/* Strict number: decimal or 0x hex, optional leading '-', whole string
 * (up to `end`), no overflow.                                           */
static bool parse_num(const char *s, const char *end, long long *out)
{
    if (!s || s == end)
        return false;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    unsigned base = 10;
    if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (s == end)
        return false;
    unsigned long long v = 0;
    for (; s < end; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return false;
        if (v > (0x7fffffffffffffffull - d) / base)
            return false;
        v = v * base + d;
    }
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

const char *tm_env_get(const char *name)
{
    extern char **environ;
    if (!environ || tm_os_secure())
        return NULL;
    size_t n = strlen(name);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static void apply(int param, const char *s, const char *end)
{
    long long v;
    if (!parse_num(s, end, &v) || v < -0x80000000ll || v > 0x7fffffffll) {
        /* Values beyond int range still matter for thresholds. */
        if (!parse_num(s, end, &v) || v < 0)
            return;
        if (param == M_MMAP_THRESHOLD || param == M_TRIM_THRESHOLD || param == M_TOP_PAD) {
            if (param == M_MMAP_THRESHOLD)
                return;   /* above 32 MiB: rejected as glibc does */
            if (param == M_TRIM_THRESHOLD)
                TM_P_SET(trim_threshold, (size_t)v);
            else
                TM_P_SET(top_pad, (size_t)v);
            TM_P_SET(no_dyn_threshold, true);
        }
        return;
    }
    tm_tunable_set(param, (int)v);
}

/* glibc.malloc.hugetlb: environment only (glibc has no mallopt for it). */
#define TM_GLIBC_HUGETLB (-1)
static const struct {
    const char *name;
    int param;
} glibc_names[] = {
    { "mxfast", M_MXFAST },
    { "trim_threshold", M_TRIM_THRESHOLD },
    { "top_pad", M_TOP_PAD },
    { "mmap_threshold", M_MMAP_THRESHOLD },
    { "mmap_max", M_MMAP_MAX },
    { "arena_test", M_ARENA_TEST },
    { "arena_max", M_ARENA_MAX },
    { "perturb", M_PERTURB },
    { "check", M_CHECK_ACTION },
    { "tcache_count", TIDE_M_TCACHE_COUNT },
    { "tcache_max", TIDE_M_TCACHE_MAX },
    { "tcache_unsorted_limit", 0 },
    { "decay_ms", TIDE_M_DECAY_MS },
    { "background_thread", TIDE_M_BACKGROUND_THREAD },
    { "hugetlb", TM_GLIBC_HUGETLB },
};

/* GLIBC_TUNABLES=glibc.malloc.a=1:glibc.malloc.b=2:other.ns.c=3 */
static void parse_glibc_tunables(const char *s)
{
    while (s && *s) {
        const char *end = strchr(s, ':');
        if (!end)
            end = s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        static const char pfx[] = "glibc.malloc.";
        if (eq && (size_t)(eq - s) > sizeof pfx - 1 && strncmp(s, pfx, sizeof pfx - 1) == 0) {
            const char *name = s + sizeof pfx - 1;
            size_t nlen = (size_t)(eq - name);
            for (size_t k = 0; k < sizeof glibc_names / sizeof glibc_names[0]; k++) {
                if (strlen(glibc_names[k].name) == nlen && strncmp(glibc_names[k].name, name, nlen) == 0) {
                    if (glibc_names[k].param == TM_GLIBC_HUGETLB) {
                        /* 1: heaps advised huge (THP madvise mode), as
                         * glibc; 0 no; 2 (hugetlbfs pages) is not
                         * supported and does nothing.  No mallopt.   */
                        long long v;
                        if (parse_num(eq + 1, end, &v) && (v == 0 || v == 1))
                            TM_P_SET(hugetlb, (int)v);
                    } else if (glibc_names[k].param == 0) {
                        /* tcache_unsorted_limit: accepted, no effect - the
                         * cache is filled in batches, not while scanning
                         * the unsorted bin as glibc's is.               */
                    } else {
                        apply(glibc_names[k].param, eq + 1, end);
                    }
                }
            }
        }
        s = *end ? end + 1 : end;
    }
}

/* TIDEMALLOC_PROFILE (the syntax is in the comment at the top). */
static void parse_profile(const char *s)
{
    if (!s || !*s || strcmp(s, "0") == 0 || strcmp(s, "off") == 0)
        return;
    long long rate = 0, top = 0, seed = 0, v;
    const char *out = NULL;
    size_t outlen = 0;
    while (*s) {
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        const char *colon = memchr(s, ':', (size_t)(end - s));
        if (colon) {
            size_t klen = (size_t)(colon - s);
            const char *val = colon + 1;
            if (klen == 3 && strncmp(s, "out", 3) == 0 && end > val) {
                out = val;
                outlen = (size_t)(end - val);
            } else if (parse_num(val, end, &v) && v > 0) {
                if (klen == 4 && strncmp(s, "rate", 4) == 0)
                    rate = v;
                else if (klen == 3 && strncmp(s, "top", 3) == 0)
                    top = v;
                else if (klen == 4 && strncmp(s, "seed", 4) == 0)
                    seed = v;
            }
        }
        s = *end ? end + 1 : end;
    }
    tm_prof_configure(true, (size_t)rate, (size_t)top, (uint64_t)seed, out, outlen);
}

void tm_tunables_init(void)
{
    static const struct {
        const char *env;
        int param;
    } envs[] = {
        { "MALLOC_ARENA_MAX", M_ARENA_MAX },
        { "MALLOC_ARENA_TEST", M_ARENA_TEST },
        { "MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD },
        { "MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD },
        { "MALLOC_TOP_PAD_", M_TOP_PAD },
        { "MALLOC_MMAP_MAX_", M_MMAP_MAX },
        { "MALLOC_PERTURB_", M_PERTURB },
        { "MALLOC_CHECK_", M_CHECK_ACTION },
        { "TIDEMALLOC_DECAY_MS", TIDE_M_DECAY_MS },
        { "TIDEMALLOC_BACKGROUND_THREAD", TIDE_M_BACKGROUND_THREAD },
        { "TIDEMALLOC_TCACHE_BYTES", TIDE_M_TCACHE_BYTES },
        { "TIDEMALLOC_HARDEN", M_TIDE_HARDEN },
        { "TIDEMALLOC_THP", TIDE_M_THP },
        { "TIDEMALLOC_DEEPBIND", TIDE_M_DEEPBIND },
        { "TIDEMALLOC_POPULATE", TIDE_M_POPULATE },
    };
    /* GLIBC_TUNABLES first: the older MALLOC_* variables override it. */
    parse_glibc_tunables(tm_env_get("GLIBC_TUNABLES"));
    parse_profile(tm_env_get("TIDEMALLOC_PROFILE"));
    for (size_t k = 0; k < sizeof envs / sizeof envs[0]; k++) {
        const char *v = tm_env_get(envs[k].env);
        if (v)
            apply(envs[k].param, v, v + strlen(v));
    }
    tm_tcache_recompute_limits();
}

/* 1 on success, 0 on a rejected value; an unknown parameter is ignored
 * and answered with 1, as glibc does.                                  */
int tm_tunable_set(int param, int value)
{
    switch (param) {
    case M_MXFAST:
        if (value < 0 || (unsigned)value > TM_MAX_FAST_REQ)
            return 0;
        TM_P_SET(max_fast, mxfast_to_chunk((size_t)value));
        return 1;
    case M_TRIM_THRESHOLD:
        TM_P_SET(trim_threshold, (size_t)(long)value);   /* -1: never trim */
        TM_P_SET(no_dyn_threshold, true);
        return 1;
    case M_TOP_PAD:
        TM_P_SET(top_pad, (size_t)(long)value);
        TM_P_SET(no_dyn_threshold, true);
        return 1;
    case M_MMAP_THRESHOLD:
        if (value < 0 || (size_t)value > TM_DEFAULT_MMAP_THRESHOLD_MAX)
            return 0;
        TM_P_SET(mmap_threshold, (size_t)value);
        TM_P_SET(no_dyn_threshold, true);
        return 1;
    case M_MMAP_MAX:
        TM_P_SET(n_mmaps_max, value);
        TM_P_SET(no_dyn_threshold, true);
        return 1;
    case M_ARENA_TEST:                /* glibc ignores values <= 0, returns 1 */
        if (value > 0)
            TM_P_SET(arena_test, (size_t)value);
        return 1;
    case M_ARENA_MAX:
        if (value > 0)
            TM_P_SET(arena_max, (size_t)value);
        return 1;
    case M_PERTURB:
        TM_P_SET(perturb, value);
        tm_tcache_recompute_limits();
        return 1;
    case M_CHECK_ACTION:
        /* Stored for glibc compatibility only: as in glibc >= 2.26, every
         * detected corruption prints its message and aborts.           */
        TM_P_SET(check_action, value);
        return 1;
    case TIDE_M_DECAY_MS:
        if (value < -1)
            return 0;
        TM_P_SET(decay_ms, (long)value);
        return 1;
    case TIDE_M_BACKGROUND_THREAD:
        tm_bg_set(value);
        return 1;
    case TIDE_M_TCACHE_COUNT:
        if (value < 0 || value > TM_TCACHE_COUNT_MAX)
            return 0;
        TM_P_SET(tcache_count, (size_t)value);
        tm_tcache_recompute_limits();
        return 1;
    case TIDE_M_TCACHE_MAX:
        if (value < 0)
            return 0;
        TM_P_SET(tcache_max_req, (size_t)value > TM_TCACHE_MAX_REQ ? TM_TCACHE_MAX_REQ : (size_t)value);
        tm_tcache_recompute_limits();
        return 1;
    case M_TIDE_HARDEN:
        if (value != 0 && value != 1)
            return 0;
        TM_P_SET(harden, value);
        tm_tcache_recompute_limits();   /* on: no cache, every call takes the slow path */
        return 1;
    case TIDE_M_THP:
        if (value != 0 && value != 1)
            return 0;
        TM_P_SET(thp_split, value);
        return 1;
    case TIDE_M_DEEPBIND:
        if (value < TM_DEEPBIND_KEEP || value > TM_DEEPBIND_PATCH)
            return 0;
        TM_P_SET(deepbind, value);
        atomic_store_explicit(&tm_dlopen_mode, value, memory_order_relaxed);
        return 1;
    case TIDE_M_POPULATE:
        if (value != 0 && value != 1)
            return 0;
        TM_P_SET(populate, value);
        return 1;
    case TIDE_M_TCACHE_BYTES:
        if (value < 0)
            return 0;
        TM_P_SET(tcache_bytes, (size_t)value);
        tm_tcache_recompute_limits();
        return 1;
    default:
        return 1;
    }
}
