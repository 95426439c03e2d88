/*
 * test_deepbind.c - a plugin opened with dlopen(RTLD_DEEPBIND) allocates
 * and frees with tidemalloc, as the program does (src/dlopen.c).
 *
 * Deep binding makes a plugin look symbols up in itself and its own
 * dependencies first, which end in the C library: its malloc and free
 * were glibc's, the program's tidemalloc's, and a block passed between
 * them crashed the process (PHP's extensions: `php -r ''` died in
 * glibc's free under any preloaded allocator).  Each stage runs in a
 * forked child:
 *   drop       the default (TIDE_M_DEEPBIND 1, the flag dropped):
 *              deepbind_now.so - a block of the program freed and
 *              reallocated by the plugin, blocks of the plugin (malloc,
 *              calloc, realloc, strdup) tidemalloc's and freed by the
 *              program, through PLT calls, a function pointer taken in
 *              code and a table of them in data; the heap checks;
 *   ctor       the default: deepbind_ctor.so's constructor frees a block
 *              the C library allocated for it and keeps one of its own,
 *              freed later;
 *   now, lazy  mode 2 (deep binding kept, the malloc family patched):
 *              the crossings again, bound now (RELRO) and lazily;
 *   own        mode 2: deepbind_own.so defines malloc itself: its calls
 *              stay with its own (deep binding's purpose);
 *   priv       mode 2: deepbind_priv.so's malloc comes from its
 *              dependency (deepbind_alloc.c, a bump allocator): it keeps
 *              that one, also after an object loaded before it is opened
 *              again with RTLD_DEEPBIND (the slots that hold its
 *              allocator stay);
 *   ctor-2     mode 2 cannot reach a constructor (dlopen runs it before
 *              returning): deepbind_ctor.so dies in it - why 1 is the
 *              default;
 *   plain      a bare file name without RTLD_DEEPBIND, and with it in the
 *              default mode and in mode 0, is found through the
 *              program's DT_RUNPATH:
 *              the jump to the C library's dlopen leaves the program its
 *              caller;
 *   control    mode 0: the plugin's malloc is the C library's again.
 * Modules are found in TIDE_DEEPBIND_DIR (the build's tests directory).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "tidemalloc.h"

static const char *dir;

static void *open_plugin(const char *name, int mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    void *h = dlopen(path, mode);
    if (!h)
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    return h;
}

#define SYM(h, name) dlsym((h), (name))

struct stage { const char *plugin; int mode; };

static void set_mode(int mode)
{
    if (mallopt(TIDE_M_DEEPBIND, mode) != 1)
        _exit(9);
}

/* The round trips between the program and the plugin; exit status 0 if
 * every block crossed over and came back intact. */
static void crossings(void *arg)
{
    const struct stage *st = arg;
    set_mode(st->mode);
    void *h = open_plugin(st->plugin, RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        _exit(10);
    void *(*p_malloc)(size_t) = SYM(h, "plug_malloc");
    void (*p_free)(void *) = SYM(h, "plug_free");
    void *(*p_realloc)(void *, size_t) = SYM(h, "plug_realloc");
    void *(*p_calloc)(size_t, size_t) = SYM(h, "plug_calloc");
    size_t (*p_usable)(void *) = SYM(h, "plug_usable");
    char *(*p_strdup)(const char *) = SYM(h, "plug_strdup");
    void (*p_take)(void) = SYM(h, "plug_take_ptr");
    void (*volatile *p_free_ptr)(void *) = SYM(h, "plug_free_ptr");
    void *(*const *t_alloc)(size_t) = SYM(h, "plug_table_alloc");
    void (*const *t_free)(void *) = SYM(h, "plug_table_free");
    if (!p_malloc || !p_free || !p_realloc || !p_calloc || !p_usable || !p_strdup || !p_take ||
        !p_free_ptr || !t_alloc || !t_free)
        _exit(11);
    for (int round = 0; round < 2000; round++) {
        size_t n = 16 + (size_t)(round * 97) % 70000;
        /* the program's block, freed and grown by the plugin */
        char *a = malloc(n);
        memset(a, 0x5a, n);
        if (p_usable(a) < n || p_usable(a) != malloc_usable_size(a))
            _exit(12);
        a = p_realloc(a, n * 2);
        if (!a || a[n - 1] != 0x5a || !tide_owns(a))
            _exit(13);
        p_free(a);
        /* the plugin's blocks, tidemalloc's, freed by the program */
        char *b = p_malloc(n), *c = p_calloc(1, n), *d = p_strdup("deep binding");
        if (!b || !c || !d || !tide_owns(b) || !tide_owns(c) || !tide_owns(d) || c[n - 1] != 0 ||
            strcmp(d, "deep binding") != 0)
            _exit(14);
        free(b);
        free(c);
        free(d);
        /* through pointers taken in code and in data */
        p_take();
        char *e = malloc(n), *f = (*t_alloc)(n);
        if (!f || !tide_owns(f))
            _exit(15);
        (*p_free_ptr)(e);
        (*t_free)(f);
    }
    _exit(tide_check_heap() > 0 ? 0 : 16);
}

/* A constructor that frees what the C library allocated for it. */
static void ctor_stage(void *arg)
{
    set_mode((int)(intptr_t)arg);
    void *h = open_plugin("deepbind_ctor.so", RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        _exit(10);
    int (*check)(void) = SYM(h, "ctor_check_and_free");
    _exit(check && check() && tide_check_heap() > 0 ? 0 : 11);
}

/* A plugin with a malloc of its own keeps it. */
static void own_stage(void *arg)
{
    (void)arg;
    set_mode(2);
    void *h = open_plugin("deepbind_own.so", RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        _exit(10);
    void *(*call)(size_t) = SYM(h, "own_call_malloc");
    int (*count)(void) = SYM(h, "own_count");
    void *(*block)(void) = SYM(h, "own_block_addr");
    if (!call || !count || !block)
        _exit(11);
    void *p = call(100);
    if (p != block() || count() != 1)
        _exit(12);
    void *q = malloc(100);               /* the program's: tidemalloc's */
    if (!tide_owns(q) || q == block())
        _exit(13);
    free(q);
    _exit(0);
}

/* A plugin whose dependency brings its own malloc keeps that one - also
 * when an object loaded before it is opened again with RTLD_DEEPBIND
 * (the objects after that one are looked at then: the plugin's slots
 * hold its allocator's address, not the C library's, and stay). */
static void priv_stage(void *arg)
{
    (void)arg;
    set_mode(2);
    void *early = open_plugin("deepbind_lazy.so", RTLD_NOW);
    void *h = open_plugin("deepbind_priv.so", RTLD_NOW | RTLD_DEEPBIND);
    if (!h || !early)
        _exit(10);
    void *(*call)(size_t) = SYM(h, "priv_call_malloc");
    int (*owns)(const void *) = SYM(h, "alloc_owns");
    if (!call || !owns)
        _exit(11);
    void *p = call(100);
    if (!p || !owns(p) || tide_owns(p))
        _exit(12);
    if (open_plugin("deepbind_lazy.so", RTLD_NOW | RTLD_DEEPBIND) != early)
        _exit(13);
    p = call(100);
    _exit(p && owns(p) && !tide_owns(p) ? 0 : 14);
}

/* Found through the program's run path: dlopen's caller is the program.
 * arg: -1 without RTLD_DEEPBIND, else with it in that mode (0 or 1). */
static void plain_stage(void *arg)
{
    int how = (int)(intptr_t)arg;
    if (how >= 0)
        set_mode(how);
    void *h = dlopen("deepbind_lazy.so", RTLD_NOW | (how >= 0 ? RTLD_DEEPBIND : 0));
    if (!h) {
        fprintf(stderr, "dlopen by bare name: %s\n", dlerror());
        _exit(10);
    }
    if (how == 0) {                      /* deep-bound: its malloc is glibc's */
        void *(*p_malloc)(size_t) = SYM(h, "plug_malloc");
        void *b = p_malloc ? p_malloc(64) : NULL;
        _exit(b && !tide_owns(b) ? 0 : 13);
    }
    void (*p_free)(void *) = SYM(h, "plug_free");
    if (!p_free)
        _exit(11);
    p_free(malloc(64));                  /* (no deep binding: tidemalloc's free) */
    _exit(dlclose(h) == 0 ? 0 : 12);
}

/* Mode 0: the plugin's malloc is glibc's. */
static void control_stage(void *arg)
{
    (void)arg;
    set_mode(0);
    void *h = open_plugin("deepbind_ctl.so", RTLD_NOW | RTLD_DEEPBIND);
    if (!h)
        _exit(11);
    void *(*p_malloc)(size_t) = SYM(h, "plug_malloc");
    if (!p_malloc)
        _exit(12);
    void *b = p_malloc(100);             /* glibc's block, not tidemalloc's */
    _exit(b && !tide_owns(b) ? 0 : 13);
}

int main(void)
{
    dir = getenv("TIDE_DEEPBIND_DIR");
    if (!dir)
        dir = ".";
    CHECK("mallopt(TIDE_M_DEEPBIND, 3) refused", mallopt(TIDE_M_DEEPBIND, 3) == 0);
    CHECK("mallopt(TIDE_M_DEEPBIND, -1) refused", mallopt(TIDE_M_DEEPBIND, -1) == 0);
    static const struct stage drop = { "deepbind_now.so", 1 }, now = { "deepbind_now.so", 2 },
                              lazy = { "deepbind_lazy.so", 2 };
    CHECK_EXIT("RTLD_DEEPBIND dropped (the default): blocks cross between the program and the plugin "
               "both ways", crossings, (void *)&drop, 0);
    CHECK_EXIT("RTLD_DEEPBIND dropped: a constructor frees what the C library allocated for it and "
               "keeps a block for later", ctor_stage, (void *)(intptr_t)1, 0);
    CHECK_EXIT("RTLD_DEEPBIND patched (mode 2), bound now: blocks cross both ways", crossings, (void *)&now, 0);
    CHECK_EXIT("RTLD_DEEPBIND patched, bound lazily: the same", crossings, (void *)&lazy, 0);
    CHECK_EXIT("patched: a plugin's own malloc stays its own", own_stage, NULL, 0);
    CHECK_EXIT("patched: a plugin whose dependency has a malloc of its own keeps it", priv_stage, NULL, 0);
    if (TIDE_CHECKS) {                  /* (without them the foreign free goes unnoticed) */
        int st = harness_run_child(ctor_stage, (void *)(intptr_t)2);
        CHECKF("patched: the constructor, run inside dlopen, is not reached (it dies: why mode 1 is the "
               "default)", st != -1 && WIFSIGNALED(st), "status %#x", st);
    } else {
        printf("skipped without TIDE_CHECKS: patched, the constructor's foreign free\n");
    }
    CHECK_EXIT("without RTLD_DEEPBIND a bare name is found through the program's run path", plain_stage,
               (void *)(intptr_t)-1, 0);
    CHECK_EXIT("with RTLD_DEEPBIND, dropped (the default), the same", plain_stage, (void *)(intptr_t)1, 0);
    CHECK_EXIT("with RTLD_DEEPBIND in mode 0 (glibc's binding), the same, deep-bound", plain_stage,
               (void *)(intptr_t)0, 0);
    CHECK_EXIT("control: with TIDE_M_DEEPBIND 0 the plugin's malloc is the C library's again", control_stage,
               NULL, 0);
    return harness_finish();
}
