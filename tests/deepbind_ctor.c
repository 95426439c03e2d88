/*
 * deepbind_ctor.c - a plugin whose constructor, run inside dlopen, frees
 * a block the C library allocated for it (strdup, as getline or fopen
 * would) and keeps one of its own for later.  Opened with RTLD_DEEPBIND:
 * with the flag dropped (tidemalloc's default) both are tidemalloc's;
 * deep-bound, its free is glibc's while the C library's strdup called
 * tidemalloc, and the constructor crashes before anything can patch it.
 */
#include <stdlib.h>
#include <string.h>

static char *kept;

__attribute__((constructor)) static void set_up(void)
{
    free(strdup("a block the C library allocates"));
    kept = malloc(100);
    if (kept)
        strcpy(kept, "kept since the constructor");
}

int ctor_check_and_free(void)
{
    int ok = kept != NULL && strcmp(kept, "kept since the constructor") == 0;
    free(kept);
    kept = NULL;
    return ok;
}
