/*
 * observe.c - the statistics channel and the at-exit report (observe.h).
 *
 * Everything here runs off the hot paths, allocates nothing (tm_fmt into
 * the channel's mapping, or into scratch pages for the report) and keeps
 * its working storage in static memory under obs_lock: the background
 * thread that often runs it has a 64 KiB stack.  Lock order: obs_lock,
 * then one arena lock at a time (tm_for_each_arena_observe, which drains
 * nothing: looking does not change the allocator), then reg_lock
 * (tcache.c).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <string.h>
#include <time.h>
#include "arena.h"
#include "control.h"
#include "bins.h"
#include "heap.h"
#include "observe.h"
#include "os.h"
#include "release.h"
#include "sysmem.h"
#include "tcache.h"
#include "owner.h"
#include "thp.h"
#include "tunables.h"

__thread uint32_t tm_tls_obs_ticks __attribute__((tls_model("initial-exec")));

/* ---- JSON into a bounded buffer ------------------------------------------- */
typedef struct {
    char *buf;
    size_t cap, len;
    bool over;                 /* something did not fit: the text is cut */
    /* A channel region (region >= 0): buf[0, ready) has its pages (the
     * rest is backed in steps before it is written, os.h
     * tm_os_channel_back).  Elsewhere ready == cap.                   */
    size_t ready;
    int region;
} sink;
static bool sink_back(sink *s, size_t need);

static void put(sink *s, const char *fmt, ...)
{
    if (s->over)
        return;
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->ready - s->len;
    size_t n = tm_vfmt(s->buf + s->len, room, fmt, ap);
    va_end(ap);
    if (n >= room) {
        /* Did not fit in the backed part: back more and write again
         * (nothing beyond `ready` was written: tm_vfmt stops at room). */
        if (s->ready < s->cap && sink_back(s, s->len + n + 1)) {
            va_start(ap, fmt);
            room = s->ready - s->len;
            n = tm_vfmt(s->buf + s->len, room, fmt, ap);
            va_end(ap);
        }
        if (n >= room) {
            s->over = true;
            return;
        }
    }
    s->len += n;
}

/* Room kept for closing brackets and totals once the runs are cut off. */
#define SINK_RESERVE ((size_t)8192)
static bool sink_low(const sink *s) { return s->cap - s->len < SINK_RESERVE; }

/* ---- state (obs_lock) ------------------------------------------------------ */
static tm_lock obs_lock = TM_LOCK_INIT;
static int obs_enabled = 1;              /* TIDEMALLOC_STATS (0 = no channel) */
static long map_interval_ms = 5000;      /* TIDEMALLOC_HEAPMAP_MS (0 = never) */
static char report_path[512];            /* TIDEMALLOC_REPORT, "" = none      */
static struct {
    struct tm_obs_header *hdr;           /* NULL: not made yet (or failed)   */
    int fd;
    uint64_t fd_id[2];                   /* its file (device, inode)         */
    int pid;
    uint64_t seq[2], count[2];           /* our copies: we never read hdr    */
    size_t backed[2];                    /* bytes of each region with pages  */
    /* Making it failed: not again before this clock (ms); 0 = it has not
     * failed, UINT64_MAX = never again (a self-confined process).      */
    uint64_t retry_ms;
} ch = { NULL, -1, { 0, 0 }, 0, { 0, 0 }, { 0, 0 }, { 0, 0 }, 0 };

/* A channel that could not be made (no memory for its header page, the
 * file-size limit, no descriptor left) is tried again this much later:
 * the lack may pass, and a server that met it once would publish nothing
 * for the rest of its life.  One memfd_create every 2 s at most. */
#define TM_OBS_RETRY_MS 2000

static size_t region_off(int r) { return r == 0 ? TM_OBS_SUMMARY_OFF : TM_OBS_MAP_OFF; }
static size_t region_cap(int r)
{
    return r == 0 ? TM_OBS_MAP_OFF - TM_OBS_SUMMARY_OFF : TM_OBS_SIZE - TM_OBS_MAP_OFF;
}

/* Back region s->region's pages up to `need` bytes (in 64 KiB steps):
 * false if the system has none to give (the text is cut there). */
static bool sink_back(sink *s, size_t need)
{
    int r = s->region;
    if (r < 0 || need > s->cap)
        return false;
    size_t to = align_up(need, (size_t)64 << 10);
    if (to > s->cap)
        to = s->cap;
    if (to > ch.backed[r]) {
        /* (fallocate on a number the program took would grow its file:
         * channel_ready looked a moment ago, this looks again)         */
        if (!tm_os_channel_ours(ch.fd, ch.fd_id) ||
            !tm_os_channel_back(ch.fd, region_off(r) + ch.backed[r], to - ch.backed[r]))
            return false;
        ch.backed[r] = to;
    }
    s->ready = ch.backed[r];          /* (all that has pages: at least `to`) */
    return true;
}
static _Atomic int activity;             /* slow paths since the last refresh */
static _Atomic uint64_t last_ms;         /* last summary refresh (monotonic)  */
/* A refresh walks the bins (a heap map: every chunk) under each arena
 * lock; on a big fragmented heap that takes milliseconds.  The next one
 * waits at least TM_OBS_DUTY times as long as the last took (CPU time of
 * the thread that did it: on a loaded machine wall time would count the
 * waits for a CPU), so the walks take at most 1 % of the time, whatever
 * the heap.                                                            */
#define TM_OBS_DUTY 100
static _Atomic uint64_t summary_gap_ms = 100;   /* min gap, slow paths */
static uint64_t summary_us, map_us;             /* last durations       */
static uint64_t total_us, nrefresh;             /* all walks so far     */
static uint64_t last_map_ms;
static _Atomic bool map_stale;           /* summary refreshed since the map   */
/* os_calls() at the last refresh; ULONG_MAX while there is no channel. */
static _Atomic unsigned long last_calls = ULONG_MAX;

/* The allocator's system calls so far: when the background thread's own
 * purges change the heap, the figures are stale too.                   */
static unsigned long os_calls(void)
{
    return atomic_load_explicit(&tm_os_calls.madvise, memory_order_relaxed) +
           atomic_load_explicit(&tm_os_calls.process_madvise, memory_order_relaxed) +
           atomic_load_explicit(&tm_os_calls.munmap, memory_order_relaxed) +
           atomic_load_explicit(&tm_os_calls.mmap, memory_order_relaxed) +
           atomic_load_explicit(&tm_os_calls.mremap, memory_order_relaxed) +
           atomic_load_explicit(&tm_os_calls.brk, memory_order_relaxed);
}

void tm_obs_init(void)
{
    const char *v = tm_env_get("TIDEMALLOC_STATS");
    if (v && v[0] == '0' && v[1] == '\0')
        obs_enabled = 0;
    v = tm_env_get("TIDEMALLOC_HEAPMAP_MS");
    if (v && *v >= '0' && *v <= '9') {
        long n = 0;
        for (; *v >= '0' && *v <= '9' && n < 100000000; v++)
            n = n * 10 + (*v - '0');
        map_interval_ms = n;
    }
    v = tm_env_get("TIDEMALLOC_REPORT");
    if (v && *v) {
        /* %p -> pid is substituted when the report is written. */
        size_t n = strlen(v);
        if (n < sizeof report_path)
            memcpy(report_path, v, n + 1);
    }
}

/* ---- figures shared by the summary and the report --------------------------- */
struct class_row { size_t count, bytes, lo, hi; };
#define NCLASS (TM_NBINS + 1)            /* bin index; last: mapped chunks */
static struct class_row free_rows[NCLASS], used_rows[NCLASS];

static void class_add(struct class_row *rows, unsigned i, size_t size)
{
    struct class_row *r = &rows[i];
    if (!r->count || size < r->lo)
        r->lo = size;
    if (size > r->hi)
        r->hi = size;
    r->count++;
    r->bytes += size;
}

/* ---- arena figures ------------------------------------------------------- */
/* One free chunk of sz bytes into a count, a byte total and (rows) its
 * bin's row.                                                          */
static inline void tally(size_t *count, size_t *bytes, struct class_row *rows, size_t sz)
{
    (*count)++;
    *bytes += sz;
    if (rows)
        class_add(rows, bin_index(sz), sz);
}

/* av's figures (its lock held), walking at most `limit` free chunks;
 * with rows, each walked chunk also goes to its bin's row (one walk: two
 * per summary were 2.6 % of python's time under perf).  The periodic
 * summaries pass TM_OBS_WALK_MAX: the walk holds the arena lock, and a
 * program in the middle of freeing a million small blocks had one summary
 * take 82 ms (perl's hv_clear under perf: 3 % of its run).  Beyond the
 * limit the byte totals come from the arena's counters - fast_bytes, and
 * in use (av->inuse) for the rest, so the few bytes of fenceposts and
 * heap headers count as free.  False if the walk was cut (estimated).  */
static bool gather(tm_arena *av, struct tm_arena_figures *f, struct class_row *rows, size_t limit)
{
    memset(f, 0, sizeof *f);
    f->system = av->system_mem;
    f->max_system = av->max_system_mem;
    f->nheaps = av->nheaps;
    f->released = av->released + tm_release_top_bytes(av);
    f->madvise_calls = av->madvise_calls;
    f->top = av->top == initial_top(av) ? 0 : chunksize(av->top);
    f->free_count = 1;
    f->free_bytes = f->top;
    size_t walked = 0;
    for (unsigned i = 0; i < TM_NFASTBINS; i++)
        for (tm_chunk *p = av->fastbins[i]; p; p = fastbin_next(p)) {
            if (++walked > limit)
                goto cut;
            tally(&f->fast_count, &f->fast_bytes, rows, chunksize(p));
        }
    for (unsigned i = 1; i < TM_NBINS; i++) {
        tm_chunk *b = bin_at(av, i);
        for (tm_chunk *p = b->fd; p != b; p = p->fd) {
            if (++walked > limit)
                goto cut;
            tally(&f->free_count, &f->free_bytes, rows, chunksize(p));
        }
    }
    return true;
cut:
    f->fast_bytes = av->fast_bytes;
    f->free_bytes = f->system > av->inuse + f->fast_bytes ? f->system - av->inuse - f->fast_bytes : 0;
    if (f->free_bytes < f->top)
        f->free_bytes = f->top;
    return false;
}

bool tm_obs_gather(tm_arena *av, struct tm_arena_figures *f, size_t limit)
{
    return gather(av, f, NULL, limit);
}

/* Free chunks a periodic summary walks per arena (the at-exit report
 * walks them all).                                                    */
#define TM_OBS_WALK_MAX 16384

/* The `max` rows holding the most bytes, as a JSON array. */
static void put_top_classes(sink *s, const char *key, struct class_row *rows, int max)
{
    bool used[NCLASS];
    memset(used, 0, sizeof used);
    put(s, ",\"%s\":[", key);
    for (int k = 0; k < max; k++) {
        int best = -1;
        for (int i = 0; i < NCLASS; i++)
            if (!used[i] && rows[i].bytes && (best < 0 || rows[i].bytes > rows[best].bytes))
                best = i;
        if (best < 0)
            break;
        used[best] = true;
        put(s, "%s{\"bin\":%d,\"from\":%zu,\"to\":%zu,\"count\":%zu,\"bytes\":%zu}", k ? "," : "",
            best == NCLASS - 1 ? -1 : best, rows[best].lo, rows[best].hi, rows[best].count,
            rows[best].bytes);
    }
    put(s, "]");
}

/* /proc/self/status: VmRSS and VmHWM in bytes (0 if unreadable). */
static char io_buf[8192];
static void read_rss(size_t *rss, size_t *hwm)
{
    *rss = *hwm = 0;
    int fd = tm_os_open_read("/proc/self/status");
    if (fd < 0)
        return;
    long n = tm_os_read(fd, io_buf, sizeof io_buf - 1);
    tm_os_close(fd);
    if (n <= 0)
        return;
    io_buf[n] = '\0';
    for (char *l = io_buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        size_t *dst = strncmp(l, "VmRSS:", 6) == 0 ? rss : strncmp(l, "VmHWM:", 6) == 0 ? hwm : NULL;
        if (!dst)
            continue;
        size_t v = 0;
        for (char *c = l + 6; *c && *c != '\n'; c++)
            if (*c >= '0' && *c <= '9')
                v = v * 10 + (size_t)(*c - '0');
        *dst = v * 1024;
    }
}

struct summary_acc {
    sink *s;
    size_t limit;                    /* free chunks walked per arena (gather) */
    unsigned n;
    struct tm_arena_figures total;
};

static void summary_arena(tm_arena *av, void *arg)
{
    struct summary_acc *a = arg;
    struct tm_arena_figures f;
    bool exact = gather(av, &f, free_rows, a->limit);
    size_t free_all = f.free_bytes + f.fast_bytes;
    size_t rel = f.released > free_all ? free_all : f.released;
    if (a->n < 64)
        put(a->s,
            "%s{\"index\":%u,\"main\":%d,\"system\":%zu,\"max_system\":%zu,\"in_use\":%zu,"
            "\"free\":%zu,\"free_resident\":%zu,\"released\":%zu,\"fast\":%zu,\"top\":%zu,"
            "\"heaps\":%zu,\"madvise\":%zu,\"swinging\":%d,\"estimated\":%d}",
            a->n ? "," : "", a->n, av == &tm_main_arena, f.system, f.max_system, f.system - free_all,
            free_all, free_all - rel, rel, f.fast_bytes, f.top, f.nheaps, f.madvise_calls,
            (int)av->swinging, (int)!exact);
    a->n++;
    a->total.system += f.system;
    a->total.max_system += f.max_system;
    a->total.fast_bytes += f.fast_bytes;
    a->total.free_bytes += f.free_bytes;
    a->total.top += f.top;
    a->total.released += rel;
    a->total.nheaps += f.nheaps;
}

/* The summary object, without its closing brace (the report appends the
 * heap map); `limit` as for gather.                                     */
static void put_summary(sink *s, uint64_t mono_ms, size_t limit)
{
    size_t rss, hwm;
    read_rss(&rss, &hwm);
    memset(free_rows, 0, sizeof free_rows);
    put(s, "{\"version\":%d,\"pid\":%d,\"time_ms\":%lu,\"uptime_ms\":%lu,\"pagesize\":%zu,"
           "\"rss\":{\"current\":%zu,\"peak\":%zu},\"arenas\":[",
        TM_OBS_VERSION, tm_os_getpid(), (unsigned long)tm_os_realtime_ms(), (unsigned long)mono_ms,
        tm_fix.pagesize, rss, hwm);
    struct summary_acc a;
    memset(&a, 0, sizeof a);
    a.s = s;
    a.limit = limit;
    tm_for_each_arena_observe(summary_arena, &a);
    put(s, "]");
    if (a.n > 64)
        put(s, ",\"arenas_omitted\":%u", a.n - 64);
    size_t mm = atomic_load(&tm_mstats.mmapped_mem), nmm = atomic_load(&tm_mstats.n_mmaps);
    size_t free_all = a.total.free_bytes + a.total.fast_bytes;
    put(s, ",\"totals\":{\"system\":%zu,\"max_system\":%zu,\"mmapped\":%zu,\"mmapped_chunks\":%zu,"
           "\"max_mmapped\":%zu,\"in_use\":%zu,\"free\":%zu,\"free_resident\":%zu,\"released\":%zu,"
           "\"fast\":%zu,\"top\":%zu,\"heaps\":%zu,\"arenas\":%u}",
        a.total.system, a.total.max_system, mm, nmm, (size_t)atomic_load(&tm_mstats.max_mmapped_mem),
        a.total.system - free_all + mm, free_all, free_all - a.total.released, a.total.released,
        a.total.fast_bytes, a.total.top, a.total.nheaps, a.n);
    size_t ncaches, cbytes;
    bool exact = tm_tcache_all_cached(&ncaches, &cbytes);
    put(s, ",\"tcache\":{\"caches\":%zu,\"bytes\":%zu,\"known\":%d}", ncaches, cbytes, exact);
    put_top_classes(s, "free_classes", free_rows, 8);
    put(s, ",\"syscalls\":{\"mmap\":%lu,\"munmap\":%lu,\"mprotect\":%lu,\"mremap\":%lu,"
           "\"madvise\":%lu,\"process_madvise\":%lu,\"released_ranges\":%lu,\"brk\":%lu,"
           "\"populate\":%lu}",
        atomic_load(&tm_os_calls.mmap), atomic_load(&tm_os_calls.munmap),
        atomic_load(&tm_os_calls.mprotect), atomic_load(&tm_os_calls.mremap),
        atomic_load(&tm_os_calls.madvise), atomic_load(&tm_os_calls.process_madvise),
        atomic_load(&tm_os_calls.released_ranges), atomic_load(&tm_os_calls.brk),
        atomic_load(&tm_os_calls.populate));
    struct tm_thp_stats thp;
    tm_thp_get_stats(&thp);
    static const char *const thp_modes[] = { "never", "madvise", "always" };
    put(s, ",\"thp\":{\"mode\":\"%s\",\"unit\":%zu,\"marking\":%d,\"huge_heaps\":%d,"
           "\"marks\":%lu,\"whole_marks\":%lu}",
        thp_modes[thp.mode], thp.unit, thp.marking, thp.huge_heaps, thp.marks, thp.whole_marks);
    put(s, ",\"params\":{\"decay_ms\":%ld,\"background\":%d,\"background_running\":%d,"
           "\"arena_max\":%zu,\"arena_test\":%zu,\"mmap_threshold\":%zu,\"trim_threshold\":%zu,"
           "\"top_pad\":%zu,\"tcache_bytes\":%zu,\"heapmap_ms\":%ld},"
           "\"refresh_cost_us\":{\"summary\":%lu,\"heapmap\":%lu,\"total\":%lu,\"count\":%lu}",
        TM_P(decay_ms), TM_P(background), (int)atomic_load(&tm_bg_active), TM_P(arena_max),
        TM_P(arena_test), TM_P(mmap_threshold), TM_P(trim_threshold), TM_P(top_pad),
        TM_P(tcache_bytes), map_interval_ms, (unsigned long)summary_us, (unsigned long)map_us,
        (unsigned long)total_us, (unsigned long)nrefresh);
}

/* ---- the heap map ---------------------------------------------------------------
 * Pages, not bytes: a page that holds any byte of an in-use chunk is in
 * use; else top if it holds top bytes; else free; released pages are the
 * released interiors of free chunks and the released end of the top,
 * whole pages by construction.  (Where a free chunk was made of parts of
 * which some were released, meta[1] tells how many bytes but not which:
 * they are drawn at the start of its interior.)  A heap's first and last
 * page may be partial; run lengths add up to the heap's size exactly.  */
enum { ST_INUSE, ST_FREE, ST_RELEASED, ST_TOP, ST_MAPPED, ST_N };
static const char *const st_names[ST_N] = { "inuse", "free", "released", "top", "mapped" };
static const int st_rank[ST_N] = { 4, 2, 1, 3, 5 };

struct mapper {
    sink *s;
    bool truncated;
    size_t totals[ST_N];
    size_t nruns, nsegs;
    uintptr_t seg_lo, seg_hi;
    bool pend;                      /* a partial page is being classified */
    uintptr_t pend_lo, pend_hi;
    int pend_st;
    bool run;                       /* a run is open */
    uintptr_t run_lo, run_hi;
    int run_st;
    size_t seg_runs;
    bool seg_written;               /* the segment's header is in the text */
};
static struct mapper mapper_state;

static void run_out(struct mapper *m)
{
    if (!m->run)
        return;
    m->run = false;
    if (!m->seg_written || m->truncated)
        return;                     /* counted in the totals all the same */
    if (sink_low(m->s)) {
        m->truncated = true;
        return;
    }
    put(m->s, "%s[%lu,%lu,%d]", m->seg_runs ? "," : "", (unsigned long)(m->run_lo - m->seg_lo),
        (unsigned long)(m->run_hi - m->run_lo), m->run_st);
    m->seg_runs++;
    m->nruns++;
}

static void emit(struct mapper *m, uintptr_t lo, uintptr_t hi, int st)
{
    if (hi <= lo)
        return;
    m->totals[st] += hi - lo;
    if (m->run && m->run_hi == lo && m->run_st == st) {
        m->run_hi = hi;
        return;
    }
    run_out(m);
    m->run = true;
    m->run_lo = lo;
    m->run_hi = hi;
    m->run_st = st;
}

static void pend_flush(struct mapper *m)
{
    if (m->pend) {
        m->pend = false;
        emit(m, m->pend_lo, m->pend_hi, m->pend_st);
    }
}

/* [a, b) of the current segment has state st; calls come in address order. */
static void map_add(struct mapper *m, uintptr_t a, uintptr_t b, int st)
{
    uintptr_t ps = tm_fix.pagesize;
    if (b > m->seg_hi)
        b = m->seg_hi;
    while (a < b) {
        uintptr_t pg = align_down(a, ps);
        uintptr_t cl = pg > m->seg_lo ? pg : m->seg_lo, chi = pg + ps < m->seg_hi ? pg + ps : m->seg_hi;
        if (a == cl && b >= chi) {            /* whole pages */
            uintptr_t e = b >= m->seg_hi ? m->seg_hi : align_down(b, ps);
            if (e < chi)
                e = chi;
            pend_flush(m);
            emit(m, a, e, st);
            a = e;
            continue;
        }
        if (m->pend && m->pend_lo == cl) {
            if (st_rank[st] > st_rank[m->pend_st])
                m->pend_st = st;
        } else {
            pend_flush(m);
            m->pend = true;
            m->pend_lo = cl;
            m->pend_hi = chi;
            m->pend_st = st;
        }
        a = b < chi ? b : chi;
        if (a == chi)
            pend_flush(m);
    }
}

static void seg_begin(struct mapper *m, int arena, const char *kind, uintptr_t lo, uintptr_t hi)
{
    m->seg_lo = lo;
    m->seg_hi = hi;
    m->pend = m->run = false;
    m->seg_runs = 0;
    m->seg_written = !m->truncated && !sink_low(m->s);
    if (!m->seg_written) {
        m->truncated = true;
        return;
    }
    put(m->s, "%s{\"arena\":%d,\"kind\":\"%s\",\"start\":%lu,\"runs\":[",
        m->nsegs ? "," : "", arena, kind, (unsigned long)lo);
    m->nsegs++;
}

/* Close the segment: its end is known only now (a run of mapped chunks
 * ends where the headers stop making sense).  The reserve always leaves
 * room for this even when the runs were cut.                          */
static void seg_end(struct mapper *m)
{
    pend_flush(m);
    run_out(m);
    if (m->seg_written)
        put(m->s, "],\"size\":%lu}", (unsigned long)(m->seg_hi - m->seg_lo));
    m->seg_written = false;
}

static void map_heap(struct mapper *m, tm_arena *av, int ai, tm_heap *h)
{
    seg_begin(m, ai, h->kind == TM_HEAP_SUB ? "sub" : "brk",
              (uintptr_t)h, (uintptr_t)heap_end(h));
    char *end = heap_end(h);
    tm_chunk *p = heap_first_chunk(h);
    map_add(m, (uintptr_t)h, (uintptr_t)p, ST_INUSE);        /* heap header (+ arena) */
    while ((char *)p < end) {
        if (p == av->top) {
            uintptr_t te = (uintptr_t)end;
            uintptr_t clean = av->top_clean ? align_up((uintptr_t)av->top_clean, tm_fix.pagesize) : te;
            if (clean < (uintptr_t)p)
                clean = (uintptr_t)p;
            if (clean > te)
                clean = te;
            map_add(m, (uintptr_t)p, clean, ST_TOP);
            map_add(m, clean, te, ST_RELEASED);
            p = (tm_chunk *)end;
            break;
        }
        size_t size = chunksize(p);
        if (size == 0 || (char *)p + size > end || (size < TM_MINSIZE && size != TM_HDR))
            break;                              /* F2 (or anything odd): rest is in use */
        if (size >= TM_MINSIZE && !prev_inuse(next_chunk(p))) {
            size_t rel = size >= TM_RELEASE_MIN ? chunk_released(p) : 0;
            if (rel) {
                uintptr_t lo = align_up((uintptr_t)p + TM_META_END, tm_fix.pagesize);
                map_add(m, (uintptr_t)p, lo, ST_FREE);
                map_add(m, lo, lo + rel, ST_RELEASED);
                map_add(m, lo + rel, (uintptr_t)p + size, ST_FREE);
            } else {
                map_add(m, (uintptr_t)p, (uintptr_t)p + size, ST_FREE);
            }
        } else {
            map_add(m, (uintptr_t)p, (uintptr_t)p + size, ST_INUSE);
            if (size >= TM_MINSIZE)
                class_add(used_rows, bin_index(size), size);
        }
        p = chunk_at(p, size);
    }
    map_add(m, (uintptr_t)p, (uintptr_t)end, ST_INUSE);
    seg_end(m);
}

struct map_arena_arg { struct mapper *m; int n; size_t released, system; };
static void map_arena(tm_arena *av, void *arg)
{
    struct map_arena_arg *a = arg;
    for (tm_heap *h = av->last_heap; h; h = h->prev)
        map_heap(a->m, av, a->n, h);
    a->released += av->released + tm_release_top_bytes(av);
    a->system += av->system_mem;
    a->n++;
}

/* Mapped chunks: the ownership registry (owner.h) holds each one with
 * its mapping, with or without the checks.  Its entries are copied (the
 * set's lock is held only for the copy) into scratch memory - not
 * counted among the allocator's system calls: a counted mmap here made
 * every refresh look like activity, and the background thread refreshed
 * once a second for ever (test_quiet quiet under load, test_obs_quiet)
 * - then sorted by address and drawn, neighbouring mappings as one
 * segment; a mapping's lead (memalign's offset) is drawn with its chunk,
 * as mmapped_mem counts it, its guard page (harden.h) is not.  A chunk
 * unmapped after the copy is left out: its header is read with
 * process_vm_readv.  (Finding them in /proc/self/maps, as before, missed
 * a chunk whenever the kernel had merged its mapping with a foreign one
 * right below it.)                                                    */
static void sort_mappings(tm_own_mapping *v, size_t n)   /* heap sort by block */
{
    if (n < 2)
        return;
    for (size_t start = n / 2, end = n;;) {
        size_t root;
        if (start > 0) {
            root = --start;
        } else {
            if (--end == 0)
                break;
            tm_own_mapping t = v[0];
            v[0] = v[end];
            v[end] = t;
            root = 0;
        }
        for (;;) {                          /* sift v[root] down within [0, end) */
            size_t c = 2 * root + 1;
            if (c >= end)
                break;
            if (c + 1 < end && v[c + 1].block > v[c].block)
                c++;
            if (v[root].block >= v[c].block)
                break;
            tm_own_mapping t = v[root];
            v[root] = v[c];
            v[c] = t;
            root = c;
        }
    }
}

static void map_mapped(struct mapper *m)
{
    tm_own_mapping *v = NULL;
    size_t cap = 0, n = tm_own_mmap_copy(NULL, 0);
    for (int tries = 0; n > cap && tries < 4; tries++) {
        if (v)
            tm_os_scratch_free(v, cap * sizeof *v);
        cap = align_up((n + n / 4 + 64) * sizeof *v, tm_fix.pagesize) / sizeof *v;
        v = tm_os_scratch(cap * sizeof *v);
        if (!v) {
            m->truncated = true;
            return;
        }
        n = tm_own_mmap_copy(v, cap);
    }
    if (n > cap) {                          /* the set kept growing: draw what was copied */
        n = cap;
        m->truncated = true;
    }
    sort_mappings(v, n);
    bool open_seg = false;
    for (size_t i = 0; i < n; i++) {
        size_t hdr[2];
        if (!tm_os_peek((void *)v[i].chunk, hdr, sizeof hdr))
            continue;                       /* unmapped since the copy */
        size_t guard = word_mmap_guarded(hdr[1]) ? tm_fix.pagesize : 0;
        if (v[i].len <= guard)
            continue;
        uintptr_t lo = v[i].block, hi = lo + v[i].len - guard;
        if (open_seg && lo != m->seg_hi) {
            seg_end(m);
            open_seg = false;
        }
        if (!open_seg) {
            seg_begin(m, -1, "mapped", lo, hi);
            open_seg = true;
        }
        emit(m, lo, hi, ST_MAPPED);
        m->seg_hi = hi;
        class_add(used_rows, NCLASS - 1, hi - lo);
    }
    if (open_seg)
        seg_end(m);
    if (v)
        tm_os_scratch_free(v, cap * sizeof *v);
}

/* The heap map object: {"pagesize":..,"segments":[...],"totals":{...},...} */
static void put_heapmap(sink *s)
{
    struct mapper *m = &mapper_state;
    memset(m, 0, sizeof *m);
    m->s = s;
    memset(used_rows, 0, sizeof used_rows);
    put(s, "{\"pagesize\":%zu,\"states\":[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"],\"segments\":[",
        tm_fix.pagesize, st_names[0], st_names[1], st_names[2], st_names[3], st_names[4]);
    struct map_arena_arg a = { m, 0, 0, 0 };
    tm_for_each_arena_observe(map_arena, &a);
    map_mapped(m);
    put(s, "]");
    put(s, ",\"truncated\":%d,\"runs\":%zu,\"nsegments\":%zu", m->truncated, m->nruns, m->nsegs);
    put(s, ",\"totals\":{");
    for (int i = 0; i < ST_N; i++)
        put(s, "%s\"%s\":%zu", i ? "," : "", st_names[i], m->totals[i]);
    put(s, "}");
    /* The same walk's figures, to check the map against. */
    put(s, ",\"arena_system\":%zu,\"arena_released\":%zu,\"mmapped\":%zu", a.system, a.released,
        (size_t)atomic_load(&tm_mstats.mmapped_mem));
    put_top_classes(s, "used_classes", used_rows, 10);
    put(s, "}");
}

/* ---- the channel ----------------------------------------------------------------- */
static bool channel_ready(void)
{
    int pid = tm_os_getpid();
    if (ch.hdr && ch.pid == pid) {
        if (likely(tm_os_channel_ours(ch.fd, ch.fd_id)))
            return true;
        /* The program took the descriptor's number: closed it (and may
         * have opened something there), or put a file of its own on it
         * with dup2.  That file is not ours to grow - fallocate on it,
         * to give the mapping pages, extended a program's data file with
         * zeros (found by a helper session: dup2 onto 56, then a
         * fragmented heap) - and readers no longer find the channel
         * there.  A new one, at the next free number; this one's pages
         * go.  One fstat a refresh.                                    */
        tm_os_scratch_free(ch.hdr, TM_OBS_SIZE);          /* (a munmap) */
        ch.hdr = NULL;
        ch.fd = -1;
        ch.retry_ms = 0;
    }
    if (ch.hdr) {
        /* A child made by a raw clone that ran no fork handler: the mapping
         * is not there (MADV_DONTFORK); forget it and start over.  The
         * descriptor number may have been reused: leave it alone.       */
        ch.hdr = NULL;
        ch.fd = -1;
        ch.retry_ms = 0;
    }
    if (ch.retry_ms && tm_os_now_ms() < ch.retry_ms)
        return false;
    /* Not in a process that confined itself with seccomp (control.c
     * tm_ctl_self_sandboxed): the
     * channel's memfd_create, ftruncate, fcntl and the refreshes' reads
     * of /proc are calls its filter may kill it for - glibc's malloc
     * makes none of them.  A privilege-separated daemon's child installs
     * its filter right after fork (sshd's pre-auth child), and the
     * child's first refresh came after: SIGSYS at memfd_create (test_fork
     * stage 5).  Asked once per process, at its first refresh, with a
     * read of /proc/self/status that such filters refuse with an errno
     * (then: confined).  Such a process publishes no figures.          */
    if (tm_ctl_self_sandboxed()) {
        ch.retry_ms = UINT64_MAX;
        return false;
    }
    void *p;
    int fd = tm_os_channel_create(TM_OBS_NAME, TM_OBS_SIZE, &p, ch.fd_id);
    if (fd < 0) {
        ch.retry_ms = tm_os_now_ms() + TM_OBS_RETRY_MS;
        return false;
    }
    struct tm_obs_header *h = p;
    memcpy(h->magic, TM_OBS_MAGIC, 8);
    h->version = TM_OBS_VERSION;
    h->header_size = sizeof *h;
    h->pid = (uint64_t)pid;
    h->size = TM_OBS_SIZE;
    h->nregions = 2;
    h->region[0].offset = TM_OBS_SUMMARY_OFF;
    h->region[0].cap = TM_OBS_MAP_OFF - TM_OBS_SUMMARY_OFF;
    h->region[1].offset = TM_OBS_MAP_OFF;
    h->region[1].cap = TM_OBS_SIZE - TM_OBS_MAP_OFF;
    ch.hdr = h;
    ch.fd = fd;
    ch.pid = pid;
    ch.seq[0] = ch.seq[1] = ch.count[0] = ch.count[1] = 0;
    ch.backed[0] = ch.backed[1] = 0;
    ch.retry_ms = 0;
    return true;
}

/* Rewrite region r with what fill() writes; seqlock writer side.  Only
 * our copies of seq and count are read, never the shared page.         */
static void region_write(int r, void (*fill)(sink *, uint64_t), uint64_t now)
{
    struct tm_obs_region *reg = &ch.hdr->region[r];
    char *base = (char *)ch.hdr + region_off(r);
    sink s = { base, region_cap(r), 0, false, 0, r };
    /* Its first pages first: without them not even the overflow note
     * below could be written (no memory: the region keeps its text). */
    if (!sink_back(&s, 1))
        return;
    atomic_store_explicit(&reg->seq, ++ch.seq[r], memory_order_relaxed);     /* odd */
    atomic_thread_fence(memory_order_release);
    fill(&s, now);
    if (r == 0)
        put(&s, "}");
    if (s.over) {
        /* Did not fit (thousands of arenas?): say so rather than cut. */
        s.over = false;
        s.len = 0;
        put(&s, "{\"version\":%d,\"pid\":%d,\"overflow\":1}", TM_OBS_VERSION, tm_os_getpid());
    }
    atomic_store_explicit(&reg->len, s.len, memory_order_relaxed);
    reg->time_ms = tm_os_realtime_ms();
    reg->count = ++ch.count[r];
    atomic_store_explicit(&reg->seq, ++ch.seq[r], memory_order_release);     /* even */
}

static void fill_summary(sink *s, uint64_t now) { put_summary(s, now, TM_OBS_WALK_MAX); }
static void fill_map(sink *s, uint64_t now) { (void)now; put_heapmap(s); }

/* With obs_lock held. */
static void refresh_map(uint64_t now)
{
    uint64_t t0 = tm_os_cpu_us();
    region_write(1, fill_map, now);
    map_us = tm_os_cpu_us() - t0;
    total_us += map_us;
    nrefresh++;
    last_map_ms = now;
    map_stale = false;
}

/* While the program allocates: every TIDEMALLOC_HEAPMAP_MS, and at most 1 %
 * of the time on map walks; the one last walk once it went quiet: at
 * once, unless that would make walks more than 10 % of the time.       */
static uint64_t map_gap_ms(void)
{
    uint64_t adaptive = map_us * TM_OBS_DUTY / 1000;
    return adaptive > (uint64_t)map_interval_ms ? adaptive : (uint64_t)map_interval_ms;
}
static uint64_t quiet_map_gap_ms(void) { return map_us * (TM_OBS_DUTY / 10) / 1000; }

static void refresh(uint64_t now, bool with_map)
{
    if (!channel_ready())
        return;
    atomic_store_explicit(&activity, 0, memory_order_relaxed);
    atomic_store_explicit(&last_calls, os_calls(), memory_order_relaxed);
    uint64_t t0 = tm_os_cpu_us();
    region_write(0, fill_summary, now);
    summary_us = tm_os_cpu_us() - t0;
    total_us += summary_us;
    nrefresh++;
    uint64_t gap = summary_us * TM_OBS_DUTY / 1000;
    atomic_store_explicit(&summary_gap_ms, gap > 100 ? gap : 100, memory_order_relaxed);
    atomic_store_explicit(&last_ms, now, memory_order_relaxed);
    map_stale = true;
    if (with_map)
        refresh_map(now);
}

void tm_obs_tick_slow(void)
{
    if (!obs_enabled)
        return;
    if (!atomic_load_explicit(&activity, memory_order_relaxed))
        atomic_store_explicit(&activity, 1, memory_order_relaxed);
    if (atomic_load_explicit(&tm_bg_active, memory_order_relaxed)) {
        tm_event_poke(&tm_bg_event);       /* it refreshes (at most 1/s) */
        return;
    }
    uint64_t now = tm_os_now_ms();
    if (now - atomic_load_explicit(&last_ms, memory_order_relaxed) <
            atomic_load_explicit(&summary_gap_ms, memory_order_relaxed) ||
        !tm_lock_try(&obs_lock))
        return;
    refresh(now, false);
    tm_lock_release(&obs_lock);
}

uint64_t tm_obs_bg_round(uint64_t now)
{
    if (!obs_enabled)
        return UINT64_MAX;
    unsigned long lc = atomic_load_explicit(&last_calls, memory_order_relaxed);
    bool act = atomic_load_explicit(&activity, memory_order_relaxed) ||
               (lc != ULONG_MAX && os_calls() != lc);
    uint64_t last = atomic_load_explicit(&last_ms, memory_order_relaxed);
    if (!act && !(map_stale && map_interval_ms > 0))
        return UINT64_MAX;
    uint64_t gap = atomic_load_explicit(&summary_gap_ms, memory_order_relaxed);
    if (gap < 1000)
        gap = 1000;
    if (act && now - last < gap)
        return last + gap;
    if (!tm_lock_try(&obs_lock))
        return now + 1000;
    if (act) {
        refresh(now, map_interval_ms > 0 && now - last_map_ms >= map_gap_ms());
    } else if (ch.hdr) {
        /* Quiet now: bring the map up to date once, then sleep. */
        if (now - last_map_ms >= quiet_map_gap_ms())
            refresh_map(now);
    }
    uint64_t map_due = last_map_ms + quiet_map_gap_ms();
    tm_lock_release(&obs_lock);
    lc = atomic_load_explicit(&last_calls, memory_order_relaxed);
    act = atomic_load_explicit(&activity, memory_order_relaxed) || (lc != ULONG_MAX && os_calls() != lc);
    if (act)
        return now + gap;
    if (map_stale && map_interval_ms > 0)
        return map_due > now + 1000 ? map_due : now + 1000;
    return UINT64_MAX;
}

void tm_obs_fork_child(void)
{
    tm_lock_reinit(&obs_lock);
    /* The mapping was not inherited (MADV_DONTFORK); the descriptor was,
     * and it is the parent's: close our copy - if it still is the
     * channel.  A program that closes every descriptor it did not open
     * (a daemon's close_range) may have reused the number: a fork child
     * then lost the program's own file or socket there (a program that
     * closed the channel, put /dev/null at its number, forked: the
     * child found it closed; under glibc's malloc, open).             */
    tm_os_channel_close_if_ours(ch.fd, ch.fd_id);
    ch.hdr = NULL;
    ch.fd = -1;
    ch.retry_ms = 0;
    atomic_store(&activity, 0);
    atomic_store(&last_ms, 0);
    last_map_ms = 0;
    map_stale = false;
    last_calls = ULONG_MAX;
}

/* ---- the at-exit report ----------------------------------------------------------------
 * Written by a destructor of the lowest priority: in the library's own
 * destructor list it runs last; the C library runs the executable's and the
 * other libraries' destructors and atexit handlers first (a preloaded
 * library is finalised after the program).  The path's "%p" becomes the
 * pid, so children (fork, or exec of a program that inherits the
 * variable) write their own files.                                       */
#define REPORT_SIZE ((size_t)8 << 20)
static void fill_report(sink *s, uint64_t now)
{
    put_summary(s, now, SIZE_MAX);
    put(s, ",\"heapmap\":");
    put_heapmap(s);
    put(s, "}\n");
}

__attribute__((destructor(101))) static void report_at_exit(void)
{
    tm_ensure_init();                  /* reads the environment */
    if (!report_path[0])
        return;
    char path[600];
    size_t k = 0;
    for (const char *c = report_path; *c && k + 24 < sizeof path; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            k += tm_fmt(path + k, sizeof path - k, "%d", tm_os_getpid());
            c++;
        } else {
            path[k++] = *c;
        }
    }
    path[k] = '\0';
    char *buf = tm_os_scratch(REPORT_SIZE);
    if (!buf)
        return;
    /* Wait for a refresh in progress (a heap map may take a while), but
     * not forever: exit() called from a signal handler that interrupted a
     * refresh would wait on itself.  Without the lock the working storage
     * is not ours: write only a note then.                              */
    bool locked = false;
    for (int i = 0; i < 5000 && !(locked = tm_lock_try(&obs_lock)); i++) {
        tm_os_sleep_us(1000);
    }
    sink s = { buf, REPORT_SIZE, 0, false, REPORT_SIZE, -1 };
    if (locked) {
        fill_report(&s, tm_os_now_ms());
        tm_lock_release(&obs_lock);
    }
    /* Larger than the file-size limit lets a file grow (RLIMIT_FSIZE): a
     * cut report is no JSON, so the note instead.                     */
    bool room = s.len <= tm_os_file_room();
    if (s.over || !locked || !room) {
        s.over = false;
        s.len = 0;
        put(&s, "{\"version\":%d,\"pid\":%d,\"%s\":1}\n", TM_OBS_VERSION, tm_os_getpid(),
            !locked ? "busy" : !room ? "file_limit" : "overflow");
    }
    if (!tm_os_write_file(path, buf, s.len)) {
        char msg[700];
        size_t n = tm_fmt(msg, sizeof msg, "tidemalloc: cannot write the report %s\n", path);
        tm_write_all(2, msg, n < sizeof msg ? n : sizeof msg - 1);
    }
    tm_os_scratch_free(buf, REPORT_SIZE);
}
