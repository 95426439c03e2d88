/*
 * deepbind_lib.c - a plugin that test_deepbind opens with RTLD_DEEPBIND,
 * built three times (now-bound with RELRO, lazily bound, and a control).
 * Its malloc-family references reach the allocator through every kind of
 * relocation an object has: PLT calls (JUMP_SLOT), function pointers
 * loaded from the GOT (GLOB_DAT) and a table of function pointers in
 * data (R_X86_64_64, in RELRO when bound now).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void *plug_malloc(size_t n) { return malloc(n); }
void plug_free(void *p) { free(p); }
void *plug_realloc(void *p, size_t n) { return realloc(p, n); }
void *plug_calloc(size_t n, size_t s) { return calloc(n, s); }
size_t plug_usable(void *p) { return malloc_usable_size(p); }
char *plug_strdup(const char *s) { return strdup(s); }   /* the C library's strdup, its malloc */

/* function pointers taken in code (GLOB_DAT) */
void (*volatile plug_free_ptr)(void *);
void plug_take_ptr(void) { plug_free_ptr = free; }

/* and in data (R_X86_64_64) */
void *(*const plug_table_alloc)(size_t) = malloc;
void (*const plug_table_free)(void *) = free;
