/*
 * stats.c - mallopt, mallinfo, mallinfo2, malloc_trim, malloc_stats,
 * malloc_info and tide_get_stats.  Figures are gathered under each arena's
 * lock into plain structs, and printed after the locks are dropped (the
 * FILE of malloc_info may allocate).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "arena.h"
#include "bins.h"
#include "control.h"
#include "family.h"
#include "observe.h"
#include "os.h"
#include "release.h"
#include "sysmem.h"
#include "tcache.h"
#include "tidemalloc.h"

static void for_each_arena(void (*fn)(tm_arena *, void *), void *arg)
{
    tm_ensure_init();
    tm_for_each_arena(fn, arg);
}

static void add_figures(tm_arena *av, void *arg)
{
    struct tm_arena_figures f, *sum = arg;
    tm_obs_gather(av, &f, SIZE_MAX);
    sum->system += f.system;
    sum->max_system += f.max_system;
    sum->fast_count += f.fast_count;
    sum->fast_bytes += f.fast_bytes;
    sum->free_count += f.free_count;
    sum->free_bytes += f.free_bytes;
    sum->top += av == &tm_main_arena ? f.top : 0;   /* keepcost: main arena's top */
    sum->released += f.released;
    sum->nheaps += f.nheaps;
    sum->madvise_calls += f.madvise_calls;
}

TM_EXPORT struct mallinfo2 tide_mallinfo2(void)
{
    struct tm_arena_figures s;
    memset(&s, 0, sizeof s);
    for_each_arena(add_figures, &s);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = s.system;
    mi.ordblks = s.free_count;
    mi.smblks = s.fast_count;
    mi.hblks = atomic_load(&tm_mstats.n_mmaps);
    mi.hblkhd = atomic_load(&tm_mstats.mmapped_mem);
    mi.usmblks = 0;
    mi.fsmblks = s.fast_bytes;
    mi.uordblks = s.system - s.free_bytes - s.fast_bytes;
    mi.fordblks = s.free_bytes + s.fast_bytes;
    mi.keepcost = s.top;
    return mi;
}

TM_EXPORT struct mallinfo tide_mallinfo(void)
{
    struct mallinfo2 m2 = tide_mallinfo2();
    struct mallinfo mi;
    mi.arena = (int)m2.arena;
    mi.ordblks = (int)m2.ordblks;
    mi.smblks = (int)m2.smblks;
    mi.hblks = (int)m2.hblks;
    mi.hblkhd = (int)m2.hblkhd;
    mi.usmblks = (int)m2.usmblks;
    mi.fsmblks = (int)m2.fsmblks;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.keepcost = (int)m2.keepcost;
    return mi;
}

TM_EXPORT void tide_get_stats(struct tide_stats *out)
{
    struct tm_arena_figures s;
    memset(&s, 0, sizeof s);
    for_each_arena(add_figures, &s);
    memset(out, 0, sizeof *out);
    out->system_bytes = s.system;
    out->mmapped_bytes = atomic_load(&tm_mstats.mmapped_mem);
    out->mmapped_chunks = atomic_load(&tm_mstats.n_mmaps);
    out->free_bytes = s.free_bytes + s.fast_bytes;
    out->in_use_bytes = s.system - out->free_bytes + out->mmapped_bytes;
    out->released_bytes = s.released > out->free_bytes ? out->free_bytes : s.released;
    out->free_resident_bytes = out->free_bytes - out->released_bytes;
    out->cached_bytes = tm_tcache_cached_bytes();
    out->narenas = tm_arena_count();
    out->nheaps = s.nheaps;
    out->madvise_calls = (size_t)atomic_load(&tm_os_calls.released_ranges);
}

TM_EXPORT int tide_malloc_trim(size_t pad)
{
    int saved = errno;
    tm_ensure_init();
    int r = tm_ctl_trim(pad);
    errno = saved;
    return r;
}

TM_EXPORT int tide_mallopt(int param, int value)
{
    tm_ensure_init();
    return tm_ctl_mallopt(param, value);
}

/* ---- malloc_stats: glibc's format on stderr ----------------------------- */
struct stats_acc {
    int fd;
    unsigned n;
    size_t system, inuse, free_bytes, released;
};
static void stats_one(tm_arena *av, void *arg)
{
    struct stats_acc *a = arg;
    struct tm_arena_figures f;
    tm_obs_gather(av, &f, SIZE_MAX);
    size_t inuse = f.system - f.free_bytes - f.fast_bytes;
    char buf[256];
    size_t n = tm_fmt(buf, sizeof buf, "Arena %u:\nsystem bytes     = %10lu\nin use bytes     = %10lu\n",
                      a->n++, (unsigned long)f.system, (unsigned long)inuse);
    /* Printing with the lock held is fine: write(2) does not allocate. */
    tm_write_all(a->fd, buf, n);
    a->system += f.system;
    a->inuse += inuse;
    a->free_bytes += f.free_bytes + f.fast_bytes;
    a->released += f.released;
}

TM_EXPORT void tide_malloc_stats(void)
{
    int saved = errno;
    struct stats_acc a = { 2, 0, 0, 0, 0, 0 };
    for_each_arena(stats_one, &a);
    char buf[512];
    size_t mm = atomic_load(&tm_mstats.mmapped_mem);
    size_t n = tm_fmt(buf, sizeof buf,
                      "Total (incl. mmap):\nsystem bytes     = %10lu\nin use bytes     = %10lu\n"
                      "max mmap regions = %10lu\nmax mmap bytes   = %10lu\n",
                      (unsigned long)(a.system + mm), (unsigned long)(a.inuse + mm),
                      (unsigned long)atomic_load(&tm_mstats.max_n_mmaps),
                      (unsigned long)atomic_load(&tm_mstats.max_mmapped_mem));
    tm_write_all(2, buf, n);
    /* tidemalloc's addition, after glibc's block: where the free bytes are. */
    size_t rel = a.released > a.free_bytes ? a.free_bytes : a.released;
    n = tm_fmt(buf, sizeof buf,
               "Free memory (all arenas):\nfree bytes       = %10lu\nresident bytes   = %10lu\n"
               "released bytes   = %10lu\n",
               (unsigned long)a.free_bytes, (unsigned long)(a.free_bytes - rel), (unsigned long)rel);
    tm_write_all(2, buf, n);
    errno = saved;
}

/* ---- malloc_info: glibc's XML ------------------------------------------- */
struct info_acc {
    FILE *fp;
    unsigned n;
    struct tm_arena_figures total;
    size_t aspace;
};

struct bin_row { size_t cnt, tot, lo, hi; };
static void tally_bin(const tm_chunk *b, struct bin_row *r)
{
    for (const tm_chunk *p = b->fd; p != b; p = p->fd) {
        size_t s = chunksize(p);
        r->cnt++;
        r->tot += s;
        if (s < r->lo) r->lo = s;
        if (s > r->hi) r->hi = s;
    }
}

static void info_one(tm_arena *av, void *arg)
{
    struct info_acc *a = arg;
    struct tm_arena_figures f;
    tm_obs_gather(av, &f, SIZE_MAX);
    /* Size lines: copy into a bounded stack table under the lock. */
    struct { size_t from, to, total, count; bool unsorted; } rows[TM_NFASTBINS + TM_NBINS];
    int nr = 0;
    for (unsigned i = 0; i < TM_NFASTBINS; i++) {
        size_t cnt = 0, sz = 16 * (i + 2);
        for (tm_chunk *p = av->fastbins[i]; p;
             p = fastbin_next(p))
            cnt++;
        if (cnt)
            rows[nr++] = (typeof(rows[0])){ sz - 15, sz, cnt * sz, cnt, false };
    }
    for (unsigned i = 1; i < TM_UNSORTED_BIG; i++) {
        struct bin_row r = { 0, 0, SIZE_MAX, 0 };
        tally_bin(bin_at(av, i), &r);
        if (i == 1)                   /* the two unsorted lists (bins.h): one row, as glibc prints it */
            tally_bin(bin_at(av, TM_UNSORTED_BIG), &r);
        if (r.cnt)
            rows[nr++] = (typeof(rows[0])){ r.lo, r.hi, r.tot, r.cnt, i == 1 };
    }
    size_t aspace = 0;
    for (tm_heap *h = av->last_heap; h; h = h->prev)
        aspace += h->kind == TM_HEAP_SUB ? h->committed : h->size;
    tm_arena_unlock(av);          /* fprintf may allocate */

    fprintf(a->fp, "<heap nr=\"%u\">\n<sizes>\n", a->n++);
    for (int k = 0; k < nr; k++)
        fprintf(a->fp, "  <%s from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
                rows[k].unsorted ? "unsorted" : "size", rows[k].from, rows[k].to, rows[k].total,
                rows[k].count);
    fprintf(a->fp, "</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n", f.fast_count,
            f.fast_bytes);
    fprintf(a->fp, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", f.free_count, f.free_bytes);
    fprintf(a->fp, "<total type=\"released\" size=\"%zu\"/>\n", f.released);
    fprintf(a->fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n",
            f.system, f.max_system);
    fprintf(a->fp, "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n",
            aspace, aspace);
    fprintf(a->fp, "</heap>\n");
    a->total.fast_count += f.fast_count;
    a->total.fast_bytes += f.fast_bytes;
    a->total.free_count += f.free_count;
    a->total.free_bytes += f.free_bytes;
    a->total.system += f.system;
    a->total.max_system += f.max_system;
    a->total.released += f.released;
    a->aspace += aspace;
    tm_arena_enter_owner(av);     /* for_each_arena leaves it */
}

TM_EXPORT int tide_malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    struct info_acc a;
    memset(&a, 0, sizeof a);
    a.fp = fp;
    fputs("<malloc version=\"1\">\n", fp);
    for_each_arena(info_one, &a);
    fprintf(fp, "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n", a.total.fast_count,
            a.total.fast_bytes);
    fprintf(fp, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", a.total.free_count,
            a.total.free_bytes);
    fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n",
            (size_t)atomic_load(&tm_mstats.n_mmaps), (size_t)atomic_load(&tm_mstats.mmapped_mem));
    fprintf(fp, "<total type=\"released\" size=\"%zu\"/>\n", a.total.released);
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n",
            a.total.system, a.total.max_system);
    fprintf(fp, "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n",
            a.aspace, a.aspace);
    fputs("</malloc>\n", fp);
    return 0;
}

/* The glibc names (family.h). */
#define TM_ALIAS_ONE(name, target) TM_ALIAS(name, target);
TM_FAMILY_STATS(TM_ALIAS_ONE)
