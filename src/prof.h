/*
 * prof.h - allocation-site profiling (TIDEMALLOC_PROFILE, off by default).
 *
 * When on, about one allocation per `rate` bytes allocated (512 KiB by
 * default) is sampled: the distance in bytes between samples is drawn
 * from an exponential distribution, so every byte has the same chance
 * (1/rate) of triggering a sample and an allocation of s bytes is sampled
 * with probability 1 - exp(-s/rate).  A sample records the call stack and
 * lives in a table until its chunk is freed.  Reports give each stack the
 * sum of s / (1 - exp(-s/rate)) over its live samples: an unbiased
 * estimate of the bytes live from that stack (requested sizes).
 *
 * Cost when off: nothing on the fast paths.  The profiler is switched on
 * only at initialization, from the environment; then every thread's fast
 * paths see no cache (tcache.h: tm_tls_tcache is NULL) and every call
 * takes a slow path, which checks tm_fix.profiling once and keeps the
 * byte countdown.  A sampled chunk has the S bit in its size word
 * (chunk.h), which sends its free to the slow path too.
 *
 * Memory for the tables comes from the os layer (tm_os_map), never from
 * malloc; stacks are taken with libgcc's _Unwind_Backtrace (.eh_frame,
 * works without frame pointers) with no lock of ours held, and a thread
 * flag keeps allocations made by the unwinder from being sampled.
 */
#ifndef TM_PROF_H
#define TM_PROF_H

#include "chunk.h"
#include "params.h"

#define TM_PROF_DEFAULT_RATE (512u * 1024)
#define TM_PROF_MAX_DEPTH    128
#define TM_PROF_DEFAULT_TOP  20

/* From TIDEMALLOC_PROFILE (tunables.c): on/off, sampling rate in bytes,
 * sites in the text report, seed (0: random), output prefix (%p: pid);
 * 0 / NULL keep the default.  Initialization only, before it is
 * published (sets tm_fix.profiling).                                  */
TM_HIDDEN void tm_prof_configure(bool on, size_t rate, size_t top, uint64_t seed, const char *out,
                                 size_t outlen);

/* mem (requested n bytes) was just handed out by a profiled thread:
 * count it, and sample it when the countdown runs out.               */
TM_HIDDEN void tm_prof_alloc(void *mem, size_t n);
/* realloc to n bytes: counts n; true if this one is to be sampled (the
 * caller then moves the block through malloc, which samples it).     */
TM_HIDDEN bool tm_prof_realloc_due(size_t n);
/* p has the S bit: forget its sample and clear the bit.  A chunk with the
 * bit but no sample is a corrupt header: `check` is reported.         */
TM_HIDDEN void tm_prof_forget(tm_chunk *p, const char *check);

/* Write <prefix>.collapsed and <prefix>.txt (tide_profile_dump; NULL:
 * the configured prefix, and a line on stderr).  0, or -1 with errno. */
TM_HIDDEN int tm_prof_dump(const char *prefix);

TM_HIDDEN void tm_prof_fork_prepare(void);
TM_HIDDEN void tm_prof_fork_parent(void);
TM_HIDDEN void tm_prof_fork_child(void);

#endif
