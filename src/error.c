/*
 * error.c - reporting without allocating: a tiny formatter and the fatal
 * corruption reporter.  Output goes straight to fd 2 with write(2).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "base.h"

void tm_write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = (ssize_t)syscall(SYS_write, fd, s, n);   /* no cancellation point (os.c) */
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static size_t put_uint(char *buf, size_t cap, size_t pos, unsigned long long v,
                       unsigned base, int width, char pad)
{
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n < width && n < (int)sizeof tmp)
        tmp[n++] = pad;
    while (n > 0) {
        if (pos + 1 < cap)
            buf[pos] = tmp[n - 1];
        pos++;
        n--;
    }
    return pos;
}

/* snprintf subset: %s %d %u %ld %lu %zu %llu %x %lx %zx %p and widths
 * (e.g. %10u).  Never allocates.  Returns the length it would have.   */
size_t tm_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = tm_vfmt(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

size_t tm_vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t pos = 0;
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            if (pos + 1 < cap)
                buf[pos] = *f;
            pos++;
            continue;
        }
        f++;
        char pad = ' ';
        if (*f == '0') {
            pad = '0';
            f++;
        }
        int width = 0;
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');
        int lng = 0;
        while (*f == 'l' || *f == 'z') {
            lng++;
            f++;
        }
        switch (*f) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t len = strlen(s);
            for (size_t k = len; (int)k < width; k++) {
                if (pos + 1 < cap)
                    buf[pos] = ' ';
                pos++;
            }
            for (size_t k = 0; k < len; k++) {
                if (pos + 1 < cap)
                    buf[pos] = s[k];
                pos++;
            }
            break;
        }
        case 'd': {
            long long v = lng ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0) {
                if (pos + 1 < cap)
                    buf[pos] = '-';
                pos++;
                v = -v;
                width--;
            }
            pos = put_uint(buf, cap, pos, (unsigned long long)v, 10, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            pos = put_uint(buf, cap, pos, v, *f == 'x' ? 16 : 10, width, pad);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            if (pos + 2 < cap) {
                buf[pos] = '0';
                buf[pos + 1] = 'x';
            }
            pos += 2;
            pos = put_uint(buf, cap, pos, v, 16, 0, '0');
            break;
        }
        case '%':
            if (pos + 1 < cap)
                buf[pos] = '%';
            pos++;
            break;
        default:
            break;
        }
    }
    if (cap)
        buf[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

/* Detected heap corruption: one line naming the check, then abort. */
void tm_corrupt(const char *check, const void *where)
{
    char buf[256];
    size_t n = tm_fmt(buf, sizeof buf, "%s [tidemalloc: pid %d, at %p]\n", check, (int)getpid(), where);
    tm_write_all(2, buf, n < sizeof buf ? n : sizeof buf - 1);
    abort();
}

void tm_assert_fail(const char *expr, const char *file, int line)
{
    char buf[512];
    size_t n = tm_fmt(buf, sizeof buf, "tidemalloc: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    tm_write_all(2, buf, n < sizeof buf ? n : sizeof buf - 1);
    abort();
}
