/*
 * prof.c - allocation-site profiling (see prof.h).
 *
 * Sampling.  Each thread keeps a countdown of bytes (tls_left) drawn from
 * an exponential distribution of mean `rate`; every allocation subtracts
 * its requested size, and the one that takes it below zero is sampled,
 * after which a fresh interval is drawn.  The points where the countdown
 * runs out form a Poisson process on the byte stream (the exponential is
 * memoryless), so an allocation of s bytes is sampled with probability
 * p(s) = 1 - exp(-s/rate), independently of its neighbours, and weighting
 * each sample by s / p(s) makes the sum over a stack's live samples an
 * unbiased estimate of that stack's live bytes.  (jemalloc and tcmalloc
 * sample the same way.)  The random numbers come from a per-thread
 * xorshift64* generator seeded from getrandom, or from `seed:N` for
 * reproducible runs.  No libm: the logarithm and exponential below are
 * small series, accurate to ~1e-12, far beyond what sampling needs.
 *
 * Stacks.  _Unwind_Backtrace (libgcc_s, always present on Debian: libgcc-s1
 * is required by libc itself for thread cancellation) walks the .eh_frame
 * unwind tables, which Debian's programs and libraries carry, whereas they
 * are built without frame pointers, so frame walking would stop after a
 * frame or two.  libunwind would add a package dependency for the same
 * result.  The unwinder may allocate (the first registration of frame
 * tables in some programs): a thread flag (tls_busy) makes such nested
 * calls plain, unsampled allocations.  No lock of ours is held while it
 * runs (it takes the loader's lock, which programs hold while they call
 * malloc).  The shared library does not link libgcc_s: it is opened with
 * dlopen at the first sample (tls_busy set, no lock of ours held, so the
 * loader's own allocations are plain ones), so a program that never
 * profiles does not map it (about 100 KiB of RSS in every process, 5 % of
 * a small program's).  A static link calls the unwinder directly (libgcc
 * provides it; dlopen in a static binary would need the shared glibc).
 * Frames inside libtidemalloc.so itself are dropped: the stack
 * starts at the program's call of malloc.  (In a static link the library
 * is part of the executable and its frames are kept.)
 *
 * Tables.  One lock (prof_lock) guards both: a chained hash of distinct
 * stacks (never freed: a program has few distinct allocation stacks) and
 * an open-addressing table of live samples, keyed by the user pointer,
 * with linear probing and backward-shift deletion, doubled at half load.
 * All their memory is mapped with tm_os_map.  Sampling is rare (one per
 * 512 KiB by default), so the lock is rarely contended.
 *
 * Reports.  The samples are summed per stack under the lock into a
 * scratch copy, then, with the lock released (dl_iterate_phdr takes the
 * loader's lock: never inside ours), written as
 *   <prefix>.collapsed: one line per stack, root first,
 *       "module+0xoff;module+0xoff;... BYTES"  (flame graph tools read it),
 *   <prefix>.txt: totals and the top sites (innermost frame) as text.
 * A frame is the loaded module's path and the offset of the call
 * instruction (return address - 1) in its ELF address space (the address
 * minus the module's load bias), ready for addr2line -e module.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>
#include "arena.h"
#include "control.h"
#include "os.h"
#include "prof.h"

#define TLS __attribute__((tls_model("initial-exec")))

/* ---- configuration: written by tm_prof_configure before init is published */
static size_t prof_rate = TM_PROF_DEFAULT_RATE;
static size_t prof_top = TM_PROF_DEFAULT_TOP;
static uint64_t prof_seed;                  /* 0: random */
static char prof_out[512] = "tidemalloc-prof.%p";

static __thread int64_t tls_left TLS;       /* bytes until the next sample */
static __thread uint64_t tls_rng TLS;       /* 0: thread not seeded yet */
static __thread bool tls_busy TLS;          /* unwinding or reporting */
static _Atomic uint64_t threads_seeded;

/* ---- numbers ------------------------------------------------------------ */
static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rng_next(void)
{
    uint64_t x = tls_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tls_rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ln(x) for x > 0: x = m * 2^e with m in [1, 2), ln m = 2 atanh(z) with
 * z = (m - 1)/(m + 1) < 1/3; the series in z^2 converges fast.        */
static double prof_ln(double x)
{
    union { double d; uint64_t u; } v = { x };
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double z = (v.d - 1) / (v.d + 1), z2 = z * z, term = z, sum = 0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= z2;
    }
    return 2 * sum + e * 0.69314718055994530942;
}

/* 1 - exp(-x) for x >= 0, without cancellation for small x. */
static double one_minus_exp_neg(double x)
{
    if (x > 40)
        return 1;
    if (x <= 0.5) {              /* x - x^2/2! + x^3/3! - ... */
        double term = x, sum = 0;
        for (int k = 1; k < 30 && term != 0; k++) {
            sum += term;
            term *= -x / (k + 1);
        }
        return sum;
    }
    int halvings = 0;            /* exp(-x) = exp(-x/2^h)^(2^h) */
    while (x > 0.5) {
        x /= 2;
        halvings++;
    }
    double term = 1, e = 0;
    for (int k = 1; k < 30; k++) {
        e += term;
        term *= -x / k;
    }
    while (halvings--)
        e *= e;
    return 1 - e;
}

/* The bytes one live sample of s bytes stands for. */
static double sample_weight(size_t s)
{
    double p = one_minus_exp_neg((double)s / (double)prof_rate);
    return p > 0 ? (double)s / p : (double)prof_rate;
}

static int64_t next_interval(void)
{
    double u = (double)((rng_next() >> 11) + 1) * 0x1p-53;   /* (0, 1] */
    double v = -prof_ln(u) * (double)prof_rate;
    if (v < 1)
        v = 1;
    if (v > 4e18)
        v = 4e18;
    return (int64_t)v;
}

static void thread_seed(void)
{
    uint64_t k = atomic_fetch_add_explicit(&threads_seeded, 1, memory_order_relaxed);
    uint64_t s = prof_seed ? splitmix(prof_seed + 0x632be59bd9b4e019ull * k)
                           : splitmix((uint64_t)tm_os_random() ^ k);
    tls_rng = s ? s : 1;
    tls_left = next_interval();
}

/* ---- configuration -------------------------------------------------------- */
void tm_prof_configure(bool on, size_t rate, size_t top, uint64_t seed, const char *out, size_t outlen)
{
    tm_fix.profiling = on;
    if (rate)
        prof_rate = rate;
    if (top)
        prof_top = top;
    prof_seed = seed;
    if (out && outlen > 0 && outlen < sizeof prof_out) {
        memcpy(prof_out, out, outlen);
        prof_out[outlen] = '\0';
    }
}

/* ---- the tables ----------------------------------------------------------- */
typedef struct prof_stack {
    struct prof_stack *next;     /* hash chain */
    struct prof_stack *all;      /* every stack, newest first */
    uint64_t hash;
    uint32_t depth;
    uint32_t row;                /* report scratch (lock held): 1 + row index */
    uintptr_t pc[];              /* return addresses, innermost first */
} prof_stack;

typedef struct {
    uintptr_t key;               /* user pointer; 0 = empty slot */
    size_t size;                 /* requested bytes */
    prof_stack *st;
} prof_sample;

#define STACK_BUCKETS 16384u
#define STACK_BLOCK   (1u << 20)

static tm_lock prof_lock = TM_LOCK_INIT;
static prof_stack **stack_bucket;    /* STACK_BUCKETS chains */
static prof_stack *stack_all;
static size_t nstacks;
static char *block_cur, *block_end;  /* bump allocation of stacks */
static prof_sample *tab;
static size_t tab_cap, tab_count;    /* cap: a power of two */

/* In the fork window the forking thread holds prof_lock and passes it. */
static void prof_acquire(void)
{
    if (!tm_arena_fork_holder())
        tm_lock_acquire(&prof_lock);
}
static void prof_release(void)
{
    if (!tm_arena_fork_holder())
        tm_lock_release(&prof_lock);
}

static uint64_t hash_pcs(const uintptr_t *pc, size_t n)
{
    uint64_t h = 0x243f6a8885a308d3ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = splitmix(h ^ pc[i]);
    return h;
}

/* The stored copy of a stack (lock held); NULL when out of memory. */
static prof_stack *intern(const uintptr_t *pc, size_t n)
{
    if (!stack_bucket) {
        stack_bucket = tm_os_map(STACK_BUCKETS * sizeof *stack_bucket);
        if (!stack_bucket)
            return NULL;
    }
    uint64_t h = hash_pcs(pc, n);
    prof_stack **b = &stack_bucket[h & (STACK_BUCKETS - 1)];
    for (prof_stack *s = *b; s; s = s->next)
        if (s->hash == h && s->depth == n && memcmp(s->pc, pc, n * sizeof *pc) == 0)
            return s;
    size_t need = sizeof(prof_stack) + n * sizeof *pc;
    if ((size_t)(block_end - block_cur) < need) {
        char *blk = tm_os_map(STACK_BLOCK);
        if (!blk)
            return NULL;
        block_cur = blk;
        block_end = blk + STACK_BLOCK;
    }
    prof_stack *s = (prof_stack *)block_cur;
    block_cur += align_up(need, 16);
    s->hash = h;
    s->depth = (uint32_t)n;
    memcpy(s->pc, pc, n * sizeof *pc);
    s->next = *b;
    *b = s;
    s->all = stack_all;
    stack_all = s;
    nstacks++;
    return s;
}

static size_t slot_of(uintptr_t key, size_t cap)
{
    return (size_t)(splitmix(key) & (cap - 1));
}

static void tab_put(prof_sample *t, size_t cap, prof_sample e)
{
    size_t i = slot_of(e.key, cap);
    while (t[i].key)
        i = (i + 1) & (cap - 1);
    t[i] = e;
}

/* Room for one more sample (lock held). */
static bool tab_reserve(void)
{
    if (tab && 2 * (tab_count + 1) <= tab_cap)
        return true;
    size_t cap = tab_cap ? 2 * tab_cap : 4096;
    prof_sample *t = tm_os_map(cap * sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < tab_cap; i++)
        if (tab[i].key)
            tab_put(t, cap, tab[i]);
    if (tab)
        tm_os_unmap(tab, tab_cap * sizeof *tab);
    tab = t;
    tab_cap = cap;
    return true;
}

/* Remove the sample at key (lock held): false if there is none. */
static bool tab_remove(uintptr_t key)
{
    if (!tab)
        return false;
    size_t mask = tab_cap - 1, i = slot_of(key, tab_cap);
    while (tab[i].key != key) {
        if (!tab[i].key)
            return false;
        i = (i + 1) & mask;
    }
    /* Backward shift: pull later entries of the probe run into the hole
     * when the hole lies between their home slot and where they are.  */
    for (size_t j = (i + 1) & mask; tab[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(tab[j].key, tab_cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            tab[i] = tab[j];
            i = j;
        }
    }
    tab[i].key = 0;
    tab_count--;
    return true;
}

/* ---- stacks --------------------------------------------------------------- */
/* The address range of libtidemalloc.so's code, found once. */
static _Atomic uintptr_t self_lo, self_hi;

#ifdef TM_SHARED_LIB
static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            atomic_store_explicit(&self_lo, lo, memory_order_relaxed);
            atomic_store_explicit(&self_hi, hi, memory_order_relaxed);
            return 1;
        }
    }
    return 0;
}
#endif

struct bt {
    uintptr_t *pc;
    size_t n;
    uintptr_t lo, hi;           /* frames to drop while still inside */
    bool outside;
};

#ifdef TM_SHARED_LIB
/* The unwinder, from libgcc_s opened at the first sample (above). */
typedef _Unwind_Reason_Code (*unwind_bt_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*unwind_ip_fn)(struct _Unwind_Context *);
static _Atomic(unwind_bt_fn) unwind_bt;
static _Atomic(unwind_ip_fn) unwind_ip;
static _Atomic int unwind_tried;

/* Under tls_busy.  Racing threads may both open it: dlopen counts. */
static bool unwinder_ready(void)
{
    if (atomic_load_explicit(&unwind_bt, memory_order_acquire))
        return true;
    if (atomic_load_explicit(&unwind_tried, memory_order_acquire))
        return false;
    void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
    unwind_bt_fn bt = h ? (unwind_bt_fn)dlsym(h, "_Unwind_Backtrace") : NULL;
    unwind_ip_fn ip = h ? (unwind_ip_fn)dlsym(h, "_Unwind_GetIP") : NULL;
    if (bt && ip) {
        atomic_store_explicit(&unwind_ip, ip, memory_order_relaxed);
        atomic_store_explicit(&unwind_bt, bt, memory_order_release);
    }
    atomic_store_explicit(&unwind_tried, 1, memory_order_release);
    return bt && ip;
}
static uintptr_t frame_ip(struct _Unwind_Context *ctx)
{
    return (uintptr_t)atomic_load_explicit(&unwind_ip, memory_order_relaxed)(ctx);
}
#else
static bool unwinder_ready(void) { return true; }
static uintptr_t frame_ip(struct _Unwind_Context *ctx) { return (uintptr_t)_Unwind_GetIP(ctx); }
#endif

static _Unwind_Reason_Code bt_step(struct _Unwind_Context *ctx, void *arg)
{
    struct bt *b = arg;
    uintptr_t ip = frame_ip(ctx);
    if (!ip)
        return _URC_END_OF_STACK;
    if (!b->outside) {
        if (ip >= b->lo && ip < b->hi)
            return _URC_NO_REASON;
        b->outside = true;
    }
    b->pc[b->n++] = ip;
    return b->n < TM_PROF_MAX_DEPTH ? _URC_NO_REASON : _URC_END_OF_STACK;
}

static TM_NOINLINE size_t capture(uintptr_t *pc)
{
#ifdef TM_SHARED_LIB
    if (!atomic_load_explicit(&self_hi, memory_order_relaxed))
        dl_iterate_phdr(find_self, (void *)(uintptr_t)&capture);
#endif
    struct bt b = { pc, 0, atomic_load_explicit(&self_lo, memory_order_relaxed),
                    atomic_load_explicit(&self_hi, memory_order_relaxed), false };
    if (!unwinder_ready())
        return 0;                /* no libgcc_s: the sample counts, stackless */
#ifdef TM_SHARED_LIB
    atomic_load_explicit(&unwind_bt, memory_order_acquire)(bt_step, &b);
#else
    _Unwind_Backtrace(bt_step, &b);
#endif
    return b.n;
}

static TM_NOINLINE void record(void *mem, size_t n)
{
    uintptr_t pc[TM_PROF_MAX_DEPTH];
    tls_busy = true;
    size_t depth = capture(pc);
    prof_acquire();
    prof_stack *st = intern(pc, depth);
    if (st && tab_reserve()) {
        tab_put(tab, tab_cap, (prof_sample){ (uintptr_t)mem, n, st });
        tab_count++;
        chunk_set_sampled(mem2chunk(mem));
    }
    prof_release();
    tls_busy = false;
}

void tm_prof_alloc(void *mem, size_t n)
{
    if (!mem || tls_busy)
        return;
    if (unlikely(tls_rng == 0))
        thread_seed();
    tls_left -= (int64_t)n;
    if (likely(tls_left >= 0))
        return;
    tls_left = next_interval();
    record(mem, n);
}

bool tm_prof_realloc_due(size_t n)
{
    if (tls_busy)
        return false;
    if (unlikely(tls_rng == 0))
        thread_seed();
    tls_left -= (int64_t)n;
    if (likely(tls_left >= 0))
        return false;
    tls_left = 0;               /* the malloc of the move takes the sample */
    return true;
}

void tm_prof_forget(tm_chunk *p, const char *check)
{
    bool found = false;
    if (tm_fix.profiling) {
        prof_acquire();
        found = tab_remove((uintptr_t)chunk2mem(p));
        prof_release();
    }
    if (unlikely(!found))
        tm_corrupt(check, chunk2mem(p));
    chunk_clear_sampled(p);
}

/* ---- fork ------------------------------------------------------------------ */
void tm_prof_fork_prepare(void)
{
    tm_lock_acquire(&prof_lock);
}
void tm_prof_fork_parent(void)
{
    tm_lock_release(&prof_lock);
}
void tm_prof_fork_child(void)
{
    tm_lock_reinit(&prof_lock);
}

/* ---- reports ---------------------------------------------------------------- */
typedef struct {
    const prof_stack *st;
    double bytes;
    uint64_t samples;
} prof_row;

typedef struct {
    uintptr_t lo, hi, bias;
    const char *name;
} prof_module;

/* Scratch memory of a report: one mapping, carved up. */
typedef struct {
    char *base;
    size_t size, used;
} scratch;

static void *scratch_take(scratch *s, size_t n)
{
    n = align_up(n, 16);
    if (s->size - s->used < n)
        return NULL;
    void *p = s->base + s->used;
    s->used += n;
    return p;
}

struct modules {
    prof_module *m;
    size_t n, cap;
    scratch *names;
    const char *exe;
};

static int collect_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct modules *ms = arg;
    const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : ms->exe;
    size_t len = strlen(name);
    char *copy = scratch_take(ms->names, len + 1);
    if (!copy)
        return 1;
    memcpy(copy, name, len + 1);
    for (int i = 0; i < info->dlpi_phnum && ms->n < ms->cap; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        ms->m[ms->n++] = (prof_module){ lo, lo + ph->p_memsz, info->dlpi_addr, copy };
    }
    return 0;
}

/* Buffered writing to a file. */
typedef struct {
    int fd;
    char *buf;
    size_t n, cap;
    size_t written, room;       /* to fd so far; at most room (RLIMIT_FSIZE: SIGXFSZ past it) */
} writer;

static void w_flush(writer *w)
{
    size_t n = w->n;
    if (w->written + n > w->room)            /* cut, rather than SIGXFSZ */
        n = w->room > w->written ? w->room - w->written : 0;
    if (n && w->fd >= 0)
        tm_write_all(w->fd, w->buf, n);
    w->written += n;
    w->n = 0;
}
static void w_mem(writer *w, const char *s, size_t len)
{
    while (len) {
        if (w->n == w->cap)
            w_flush(w);
        size_t k = w->cap - w->n < len ? w->cap - w->n : len;
        memcpy(w->buf + w->n, s, k);
        w->n += k;
        s += k;
        len -= k;
    }
}
static void w_str(writer *w, const char *s) { w_mem(w, s, strlen(s)); }
static void w_fmt_ul(writer *w, const char *fmt, unsigned long v)
{
    char b[256];
    size_t n = tm_fmt(b, sizeof b, fmt, v);
    w_mem(w, b, n < sizeof b ? n : sizeof b - 1);
}

static void w_frame(writer *w, const struct modules *ms, uintptr_t ret)
{
    uintptr_t pc = ret - 1;              /* inside the call instruction */
    for (size_t i = 0; i < ms->n; i++) {
        if (pc >= ms->m[i].lo && pc < ms->m[i].hi) {
            w_str(w, ms->m[i].name);
            w_fmt_ul(w, "+0x%lx", (unsigned long)(pc - ms->m[i].bias));
            return;
        }
    }
    w_fmt_ul(w, "[unknown]+0x%lx", (unsigned long)pc);
}

/* Shell sort of rows: by bytes, largest first (desc) or by innermost frame. */
static bool row_before(const prof_row *a, const prof_row *b, bool by_site)
{
    if (by_site) {
        uintptr_t x = a->st->depth ? a->st->pc[0] : 0, y = b->st->depth ? b->st->pc[0] : 0;
        return x < y;
    }
    return a->bytes > b->bytes;
}
static void sort_rows(prof_row *r, size_t n, bool by_site)
{
    for (size_t gap = n / 2; gap > 0; gap = gap == 2 ? 1 : gap * 5 / 11) {
        for (size_t i = gap; i < n; i++) {
            prof_row t = r[i];
            size_t j = i;
            for (; j >= gap && row_before(&t, &r[j - gap], by_site); j -= gap)
                r[j] = r[j - gap];
            r[j] = t;
        }
    }
}

static void expand_prefix(char *dst, size_t cap, const char *prefix)
{
    size_t o = 0;
    for (const char *s = prefix; *s && o + 1 < cap; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            char num[24];
            size_t k = tm_fmt(num, sizeof num, "%d", (int)getpid());
            for (size_t i = 0; i < k && o + 1 < cap; i++)
                dst[o++] = num[i];
            s++;
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = '\0';
}

/* w writes to <path><suffix> from its start; false if it cannot be made. */
static bool open_out(writer *w, const char *path, const char *suffix)
{
    char full[600];
    tm_fmt(full, sizeof full, "%s%s", path, suffix);
    w->fd = tm_os_create(full);
    w->written = 0;
    w->room = tm_os_file_room();
    return w->fd >= 0;
}

static bool write_reports(const char *path, prof_row *rows, size_t nrows, double total,
                          uint64_t nsamples, const struct modules *ms, writer *w)
{
    /* <prefix>.collapsed: heaviest first. */
    sort_rows(rows, nrows, false);
    if (!open_out(w, path, ".collapsed"))
        return false;
    for (size_t i = 0; i < nrows; i++) {
        const prof_stack *st = rows[i].st;
        if (st->depth == 0)
            w_str(w, "[no stack]");
        for (size_t k = st->depth; k-- > 0;) {
            w_frame(w, ms, st->pc[k]);
            if (k)
                w_str(w, ";");
        }
        w_fmt_ul(w, " %lu\n", (unsigned long)(rows[i].bytes + 0.5));
    }
    w_flush(w);
    tm_os_close(w->fd);

    /* <prefix>.txt: totals, then sites.  Rows sorted by innermost frame
     * and merged: each site keeps its first (heaviest) row's stack.    */
    if (!open_out(w, path, ".txt"))
        return false;
    w_fmt_ul(w, "tidemalloc heap profile of pid %lu: live bytes by allocation site\n",
             (unsigned long)getpid());
    w_fmt_ul(w, "sampling: one sample per %lu bytes allocated on average (exponential intervals);\n",
             (unsigned long)prof_rate);
    w_str(w, "  a live sample of s bytes counts s / (1 - exp(-s/rate)) bytes (unbiased estimate)\n");
    w_fmt_ul(w, "live samples: %lu\n", (unsigned long)nsamples);
    w_fmt_ul(w, "estimated live bytes: %lu\n", (unsigned long)(total + 0.5));
    w_fmt_ul(w, "distinct stacks: %lu\n\n", (unsigned long)nrows);

    sort_rows(rows, nrows, true);          /* stable order inside a site: not needed */
    size_t nsites = 0;
    for (size_t i = 0; i < nrows;) {
        size_t j = i + 1;
        prof_row site = rows[i];
        uintptr_t pc0 = site.st->depth ? site.st->pc[0] : 0;
        for (; j < nrows && (rows[j].st->depth ? rows[j].st->pc[0] : 0) == pc0; j++) {
            if (rows[j].bytes > rows[i].bytes)
                site.st = rows[j].st;
            site.bytes += rows[j].bytes;
            site.samples += rows[j].samples;
        }
        rows[nsites++] = site;           /* nsites <= i: overwrites merged rows only */
        i = j;
    }
    sort_rows(rows, nsites, false);
    w_fmt_ul(w, "top %lu allocation sites (innermost frame: the call of malloc), est. bytes:\n",
             (unsigned long)(nsites < prof_top ? nsites : prof_top));
    for (size_t i = 0; i < nsites && i < prof_top; i++) {
        const prof_stack *st = rows[i].st;
        w_fmt_ul(w, "%4lu ", (unsigned long)(i + 1));
        w_fmt_ul(w, "%14lu ", (unsigned long)(rows[i].bytes + 0.5));
        w_fmt_ul(w, "%3lu%% ", total > 0 ? (unsigned long)(100 * rows[i].bytes / total + 0.5) : 0ul);
        w_fmt_ul(w, "%7lu samples  ", (unsigned long)rows[i].samples);
        if (st->depth)
            w_frame(w, ms, st->pc[0]);
        else
            w_str(w, "[no stack]");
        w_str(w, "\n");
        for (size_t k = 1; k < st->depth && k < 8; k++) {
            w_str(w, "        <- ");
            w_frame(w, ms, st->pc[k]);
            w_str(w, "\n");
        }
    }
    w_flush(w);
    tm_os_close(w->fd);
    return true;
}

int tm_prof_dump(const char *prefix)
{
    if (!tm_fix.profiling) {
        errno = EINVAL;
        return -1;
    }
    bool was_busy = tls_busy;
    tls_busy = true;
    char path[512];
    expand_prefix(path, sizeof path, prefix ? prefix : prof_out);

    /* One scratch mapping: rows, modules, names, the write buffer. */
    prof_acquire();
    size_t nst = nstacks;
    prof_release();
    scratch s = { NULL, 0, 0 };
    s.size = align_up((nst + 16) * sizeof(prof_row) + 4096 * sizeof(prof_module) + (1u << 20) + 65536,
                      tm_fix.pagesize);
    s.base = tm_os_map(s.size);
    int rc = -1;
    if (!s.base)
        goto out;
    writer w = { -1, scratch_take(&s, 65536), 0, 65536, 0, 0 };
    struct modules ms = { scratch_take(&s, 4096 * sizeof(prof_module)), 0, 4096, NULL, NULL };
    prof_row *rows = scratch_take(&s, (nst + 16) * sizeof(prof_row));
    scratch names = { scratch_take(&s, 1u << 20), 1u << 20, 0 };
    ms.names = &names;

    /* Sum the live samples per stack.  Stacks created after nstacks was
     * read are skipped (their samples are newer than the report).     */
    size_t nrows = 0;
    double total = 0;
    uint64_t nsamples = 0;
    prof_acquire();
    for (size_t i = 0; i < tab_cap; i++) {
        if (!tab[i].key)
            continue;
        prof_stack *st = tab[i].st;
        /* The row of a stack: st->row (1-based, reset below). */
        if (st->row == 0) {
            if (nrows == nst + 16)
                continue;
            rows[nrows] = (prof_row){ st, 0, 0 };
            st->row = (uint32_t)++nrows;
        }
        double wt = sample_weight(tab[i].size);
        rows[st->row - 1].bytes += wt;
        rows[st->row - 1].samples++;
        total += wt;
        nsamples++;
    }
    for (size_t i = 0; i < nrows; i++)
        ((prof_stack *)rows[i].st)->row = 0;
    prof_release();

    char exe[512];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[el > 0 ? el : 0] = '\0';
    ms.exe = el > 0 ? exe : "[main]";
    dl_iterate_phdr(collect_module, &ms);

    rc = write_reports(path, rows, nrows, total, nsamples, &ms, &w) ? 0 : -1;
    tm_os_unmap(s.base, s.size);
    if (prefix == NULL && rc == 0) {
        char line[700];
        size_t n = tm_fmt(line, sizeof line,
                          "tidemalloc: heap profile: %lu live samples, ~%lu bytes live -> %s.collapsed, %s.txt\n",
                          (unsigned long)nsamples, (unsigned long)(total + 0.5), path, path);
        tm_write_all(2, line, n < sizeof line ? n : sizeof line - 1);
    }
out:
    tls_busy = was_busy;
    return rc;
}

/* At exit (and when the library is unloaded): the final report.  A
 * process that never allocated was never initialised: when it asked for
 * a profile, initialise now, so that it gets its (empty) report too.  */
__attribute__((destructor)) static void prof_at_exit(void)
{
    if (!atomic_load_explicit(&tm_initialized, memory_order_acquire)) {
        const char *v = getenv("TIDEMALLOC_PROFILE");
        if (!v || !*v)
            return;
        tm_ensure_init();
    }
    if (tm_fix.profiling)
        tm_prof_dump(NULL);
}
