/*
 * deepbind_alloc.c - a private allocator (a bump allocator over a static
 * buffer) that deepbind_priv.so depends on: a plugin opened with
 * RTLD_DEEPBIND whose malloc is its dependency's keeps it.
 */
#include <stddef.h>
#include <stdint.h>

static _Alignas(16) char arena[1 << 16];
static size_t used;

void *malloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof arena - used)
        return NULL;
    void *p = arena + used;
    used += n;
    return p;
}
void free(void *p) { (void)p; }
int alloc_owns(const void *p)
{
    return (uintptr_t)p >= (uintptr_t)arena && (uintptr_t)p < (uintptr_t)arena + sizeof arena;
}
