/*
 * deepbind_own.c - a plugin with a malloc of its own, opened with
 * RTLD_DEEPBIND: its calls must stay with its own definition (that is
 * what deep binding is for), not go to tidemalloc.
 */
#include <stddef.h>

static char own_block[64];
static int own_calls;

void *malloc(size_t n)
{
    (void)n;
    own_calls++;
    return own_block;
}
void *own_call_malloc(size_t n) { return malloc(n); }
int own_count(void) { return own_calls; }
void *own_block_addr(void) { return own_block; }
