/*
 * base.h - what every file of tidemalloc may use, whatever its layer:
 * attributes, branch hints, alignment arithmetic, assertions and the
 * allocation-free error reporter (error.c).
 *
 * Assertions come in two grades:
 *   - corruption checks are always on: tm_corrupt(msg, addr) prints one
 *     line naming the check and aborts (glibc's malloc_printerr);
 *   - TM_ASSERT(c) states an internal invariant; it is compiled only in the
 *     debug build (-DTIDE_DEBUG=ON, or the tidemalloc_debug library the
 *     unit tests use) and prints "tidemalloc: internal assertion failed".
 */
#ifndef TM_BASE_H
#define TM_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_HIDDEN   __attribute__((visibility("hidden")))
#define TM_EXPORT   __attribute__((visibility("default")))
#define TM_NOINLINE __attribute__((noinline))
#define TM_INLINE   inline __attribute__((always_inline))
#define TM_COLD     __attribute__((cold, noinline))
#define TM_NORETURN __attribute__((noreturn))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Built for AddressSanitizer or ThreadSanitizer (gcc says so with
 * __SANITIZE_*__, clang with __has_feature): they interpose malloc,
 * dlopen and prctl themselves, so the parts that take over the C++
 * operators, dlopen and prctl (cxx.c, dlopen.c, api.c) are left out of
 * such builds, and with api.c's prctl the batched release (os.c).     */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TM_SANITIZER_INTERPOSES 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TM_SANITIZER_INTERPOSES 1
#endif

/* Export `name` as another name of the function `target`. */
#define TM_ALIAS(name, target) \
    extern __typeof(target) name __attribute__((alias(#target), visibility("default")))

#ifdef TM_DEBUG
#define TM_ASSERT(c) ((c) ? (void)0 : tm_assert_fail(#c, __FILE__, __LINE__))
#else
#define TM_ASSERT(c) ((void)0)
#endif

static inline uintptr_t align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }

/* error.c: reporting without allocating (write(2) on fd 2). */
TM_HIDDEN TM_NORETURN TM_COLD void tm_corrupt(const char *check, const void *where);
TM_HIDDEN TM_NORETURN TM_COLD void tm_assert_fail(const char *expr, const char *file, int line);
TM_HIDDEN size_t tm_fmt(char *buf, size_t cap, const char *fmt, ...);
TM_HIDDEN size_t tm_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);
TM_HIDDEN void tm_write_all(int fd, const char *s, size_t n);

#endif
