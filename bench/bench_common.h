/*
 * bench_common.h - helpers shared by the benchmark workloads (bench/wl_*.c)
 * and the demonstration program (demo/tide-demo.c).
 *
 * Every workload is linked against libc + pthread only; the allocator under
 * test is chosen at run time with LD_PRELOAD.  These helpers find out which
 * shared object really serves malloc(), read the process' memory figures
 * from /proc/self/status, stamp/verify blocks, and print the single
 * machine-readable RESULT line that bench/run.py parses.
 */
#ifndef TIDE_BENCH_COMMON_H
#define TIDE_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* ---- random numbers (splitmix64; deterministic per seed) --------------- */
typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline void rng_seed(rng_t *r, uint64_t seed) { r->s = seed * 0x2545F4914F6CDD1Dull + 1; }
/* uniform in [lo, hi] */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_next(r) % (hi - lo + 1);
}
/* uniform double in [0,1) */
static inline double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
/* log-uniform size in [lo, hi] (as many 64..128 B blocks as 1..2 MiB blocks) */
size_t rng_logsize(rng_t *r, size_t lo, size_t hi);
/* order[0..n) = a random permutation of 0..n-1 (Fisher-Yates, n-1 draws) */
void rng_order(rng_t *r, size_t *order, size_t n);

/* ---- time, memory ------------------------------------------------------ */
double now_s(void);                 /* CLOCK_MONOTONIC, seconds */
void   sleep_s(double s);
/* A "kB" field of /proc/self/status (VmRSS, VmHWM, VmSize, ...); -1 if absent. */
long   status_kb(const char *field);

/* ---- which allocator is this? ------------------------------------------ */
/* Path of the shared object that defines the `malloc` the program calls
 * (dlsym(RTLD_DEFAULT, "malloc") + dladdr).                                 */
const char *alloc_lib(void);
/* dlsym(RTLD_DEFAULT, name), but only if the symbol lives in the same shared
 * object as malloc (so glibc's malloc_trim is not reported for jemalloc).   */
void *alloc_sym(const char *name);
/* Calls malloc_trim(0) of the allocator serving malloc; returns 0 when it has
 * none (then nothing was called), 1 otherwise.                               */
int    alloc_trim(void);

/* Sized free of the allocator serving malloc, looked up (alloc_sym) under
 * the names the libraries export: free_sized (C23; tidemalloc), sdallocx
 * (jemalloc, flags 0), tc_free_sized (gperftools), mi_free_size (mimalloc).
 * Returns NULL when it has none; *name gets the symbol used or "none".     */
typedef void (*sized_free_fn)(void *p, size_t size);
sized_free_fn alloc_sized_free(const char **name);

/* Starts n threads running fn(arg + i * arg_stride) and joins them all;
 * fails the workload (bench_fail) if one cannot be created.              */
void   bench_run_threads(int n, void *(*fn)(void *), void *arg, size_t arg_stride);

/* ---- block stamping ---------------------------------------------------- */
/* Writes a tag-derived 64-bit word every `stride` bytes (stride a multiple
 * of 8, >= 8) plus the last 8 bytes; blocks shorter than 8 bytes get bytes.
 * stride 64 touches every cache line, 4096 every page.                     */
void   stamp_block(void *p, size_t n, uint64_t tag, size_t stride);
/* 1 if the stamp is intact, 0 otherwise. */
int    stamp_ok(const void *p, size_t n, uint64_t tag, size_t stride);

/* ---- command line, errors, result ------------------------------------- */
/* 1 if argv has --quick or the environment has BENCH_QUICK=1. */
int    bench_quick(int argc, char **argv);
/* Value of "--name V" / "--name=V" in argv, or NULL. */
const char *bench_arg(int argc, char **argv, const char *name);
/* Integer value of "--name V" (decimal, k/M suffixes allowed), or `def`. */
long   bench_arg_long(int argc, char **argv, const char *name, long def);
/* Prints "<prog>: FAILED: <message>" on stderr and exits with status 2. */
void   bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void   bench_set_name(const char *name);
/* Prints the RESULT line:
 *   RESULT name=<name> alloc_lib=<lib> time_s=<t> ops=<n> ops_per_s=<n/t>
 *          peak_rss_kb=<VmHWM> final_rss_kb=<VmRSS now> <extra>
 * `extra` (printf format, may be NULL) appends further key=value pairs.    */
void   bench_result(double time_s, uint64_t ops, const char *extra_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
