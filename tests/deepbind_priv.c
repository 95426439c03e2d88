/* deepbind_priv.c - a plugin whose malloc is its dependency's (deepbind_alloc.c). */
#include <stdlib.h>

void *priv_call_malloc(size_t n) { return malloc(n); }
void priv_call_free(void *p) { free(p); }
