/*
 * dlopen.c - dlopen(RTLD_DEEPBIND) keeps a program on one malloc.
 *
 * A library opened with RTLD_DEEPBIND looks its symbols up in itself and
 * in its own dependencies before the global scope.  Its dependencies end
 * in the C library, so its malloc, free, realloc ... bind to glibc's while
 * the program, the C library's own calls and every other library use
 * tidemalloc's: a block that crosses from one side to the other is freed
 * by the wrong allocator.  PHP loads every extension that way; `php -r ''`
 * under LD_PRELOAD died with SIGSEGV in glibc's free (pdo.so freeing a
 * block of the program's), as it does under jemalloc, tcmalloc and
 * mimalloc (php-src #10670).
 *
 * tidemalloc's dlopen, by TIDEMALLOC_DEEPBIND (TIDE_M_DEEPBIND):
 *   1 (default)  drops RTLD_DEEPBIND: the library binds as any other, to
 *                the global scope first, where tidemalloc is - what PHP
 *                itself does since it stopped asking for deep binding
 *                (php-src #18612).  Its constructors, which run inside
 *                dlopen, get tidemalloc too.  Lost: the isolation deep
 *                binding gives, where a library's dependency defines a
 *                symbol that the program or an earlier library defines
 *                as well (then the global one wins), including a
 *                library's own malloc;
 *   2            keeps deep binding for every other symbol and, after the
 *                C library's dlopen returns, points the malloc-family
 *                relocations (the names api.c and stats.c define) of
 *                every object that call loaded at tidemalloc's functions:
 *                only references to a name the object does not define,
 *                only names that the deep binding took from the C library
 *                (not from an allocator of the library's own), and only
 *                slots that hold what it put there.  Not reached: the
 *                constructors, which dlopen ran before - a constructor
 *                that frees what the C library allocated for it
 *                (libnuma's, behind the gd extension: `php -r` aborted
 *                in glibc's free called from it), or that keeps a
 *                block of glibc's for a later free, still crosses;
 *   0            the C library's binding, crossings and all.
 *
 *   mode 2, before                  after
 *   php ---- malloc --> tidemalloc  php ---- malloc --> tidemalloc
 *   pdo.so - free ----> glibc       pdo.so - free ----> tidemalloc
 *            zend_* --> php                  zend_* --> php (unchanged)
 *
 * A call without RTLD_DEEPBIND, and one with it in modes 0 and 1 (in 1
 * the flag cleared in the register), is a bare jump to the C library's
 * dlopen (the assembly below), so that the caller glibc sees - whose
 * DT_RPATH/DT_RUNPATH a bare file name is searched in - is the
 * program's, as without tidemalloc.  In mode 2 (and before the library
 * is initialised) the caller it sees is this library (no run path): a
 * bare name found only through the caller's own run path is not found.
 *
 * Only in the shared library, and not under ASan or TSan (their runtimes
 * intercept dlopen themselves).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include "control.h"
#include "family.h"
#include "internal.h"
#include "os.h"
#include "tidemalloc.h"

#if defined(TM_SHARED_LIB) && !defined(TM_SANITIZER_INTERPOSES) && defined(__x86_64__)

typedef void *dlopen_fn(const char *, int);
/* The C library's dlopen (RTLD_NEXT), set by the constructor below.
 * (This and every name the assembly below uses are `used`: a link-time
 * optimized build cannot see references from assembly.) */
TM_HIDDEN __attribute__((used)) dlopen_fn *tm_real_dlopen;
TM_HIDDEN void *tm_dlopen_deep(const char *file, int mode);
TM_HIDDEN void *tm_dlopen_first(const char *file, int mode);

/* dlopen: without RTLD_DEEPBIND, or with it in modes 0 and 1 once the
 * library is initialised (mode 1: the flag cleared in the register), a
 * jump to the C library's, leaving the return address - the caller glibc
 * looks at - the program's; otherwise (mode 2, or not initialised yet)
 * tm_dlopen_deep.  Before the constructor ran (another library's
 * constructor opening something), tm_dlopen_first.  The mode is read
 * once, into %eax (scratch: dlopen is not variadic).                  */
/* (The assembler needs the modes as plain numbers.) */
#define TM_DEEPBIND_KEEP_ASM 0
#define TM_DEEPBIND_DROP_ASM 1
_Static_assert(TM_DEEPBIND_KEEP == TM_DEEPBIND_KEEP_ASM && TM_DEEPBIND_DROP == TM_DEEPBIND_DROP_ASM,
               "dlopen's assembly compares the mode with these numbers");
#define TM_STR2(x) #x
#define TM_STR(x) TM_STR2(x)
__asm__(".pushsection .text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        ".p2align 4\n"
        "dlopen:\n"
        "    endbr64\n"
        "    testl $" TM_STR(RTLD_DEEPBIND) ", %esi\n"
        "    jz 1f\n"
        "    cmpl $0, tm_initialized(%rip)\n"
        "    je tm_dlopen_deep\n"
        "    movl tm_dlopen_mode(%rip), %eax\n"
        "    cmpl $" TM_STR(TM_DEEPBIND_KEEP_ASM) ", %eax\n"
        "    je 1f\n"
        "    cmpl $" TM_STR(TM_DEEPBIND_DROP_ASM) ", %eax\n"
        "    jne tm_dlopen_deep\n"
        "    andl $~" TM_STR(RTLD_DEEPBIND) ", %esi\n"
        "1:  movq tm_real_dlopen(%rip), %rax\n"
        "    testq %rax, %rax\n"
        "    jz tm_dlopen_first\n"
        "    jmp *%rax\n"
        ".size dlopen, .-dlopen\n"
        ".popsection\n");

/* (Atomic: two threads may open before the constructor ran.) */
static dlopen_fn *resolve_dlopen(void)
{
    dlopen_fn *f = __atomic_load_n(&tm_real_dlopen, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (dlopen_fn *)dlsym(RTLD_NEXT, "dlopen");
        __atomic_store_n(&tm_real_dlopen, f, __ATOMIC_RELEASE);
    }
    return f;
}
__attribute__((constructor)) static void resolve_at_start(void) { (void)resolve_dlopen(); }

__attribute__((used)) void *tm_dlopen_first(const char *file, int mode)
{
    dlopen_fn *f = resolve_dlopen();
    return f ? f(file, mode) : NULL;
}

/* The names a loaded object may reference, and what they become. */
#define TM_FAMILY_ENTRY(name, target) { #name, (void *)target },
static const struct { const char *name; void *fn; } family[] = {
    TM_FAMILY_API(TM_FAMILY_ENTRY) TM_FAMILY_STATS(TM_FAMILY_ENTRY)
};

#define TM_FAMILY (sizeof family / sizeof family[0])

static size_t family_index(const char *name)
{
    for (size_t k = 0; k < TM_FAMILY; k++)
        if (strcmp(name, family[k].name) == 0)
            return k;
    return TM_FAMILY;
}

/* One loaded object: its dynamic section's tables, its RELRO range
 * (read-only once relocated: written through an mprotect) and its
 * segments.  A slot in neither RELRO nor a writable segment (a text
 * relocation) is left as it is.                                      */
#define TM_OBJ_SEGS 8
struct seg { uintptr_t lo, hi; bool w; };   /* a PT_LOAD segment, mapped */
struct obj {
    const bool *want;               /* per family name: redirect it */
    void *const *libc;              /* per family name: the C library's */
    ElfW(Addr) base;
    const ElfW(Sym) *symtab;
    const char *strtab;
    size_t strsz;
    uintptr_t relro_lo, relro_hi;   /* page-aligned; lo == hi: none */
    bool relro_open;
    unsigned nseg;
    struct seg seg[TM_OBJ_SEGS];
};

/* A d_ptr of the dynamic section: glibc relocates them in place on
 * x86-64; an unrelocated one (below the base) is an offset.           */
static uintptr_t dyn_ptr(const struct obj *o, ElfW(Addr) p)
{
    return p < o->base ? o->base + p : p;
}

struct phdr_find { ElfW(Addr) base; const char *name; struct obj *o; };
static int find_relro(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct phdr_find *f = arg;
    if (info->dlpi_addr != f->base || strcmp(info->dlpi_name ? info->dlpi_name : "", f->name) != 0)
        return 0;
    uintptr_t page = (uintptr_t)tm_fix.pagesize;
    for (int k = 0; k < info->dlpi_phnum; k++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
        if (ph->p_type == PT_GNU_RELRO) {
            /* (as ld.so protects it: whole pages inside the segment) */
            f->o->relro_lo = (f->base + ph->p_vaddr) & ~(page - 1);
            f->o->relro_hi = (f->base + ph->p_vaddr + ph->p_memsz) & ~(page - 1);
        } else if (ph->p_type == PT_LOAD && f->o->nseg < TM_OBJ_SEGS) {
            uintptr_t lo = f->base + ph->p_vaddr;
            f->o->seg[f->o->nseg++] = (struct seg){ lo, lo + ph->p_memsz, (ph->p_flags & PF_W) != 0 };
        }
    }
    return 1;
}

/* The segment of the object that holds [a, a + n), or NULL. */
static const struct seg *segment_of(const struct obj *o, uintptr_t a, size_t n)
{
    for (unsigned k = 0; k < o->nseg; k++)
        if (a >= o->seg[k].lo && a + n <= o->seg[k].hi)
            return &o->seg[k];
    return NULL;
}

/* Write v at slot (8-byte aligned: one store, which a thread calling
 * through the slot meanwhile sees whole) if it holds what the deep
 * binding put there: the C library's function (`was`), or for a lazy
 * PLT slot not yet bound, a PLT entry of the object itself.  Anything
 * else (an allocator of the object's own, bound since) stays.        */
static void put_slot(struct obj *o, uintptr_t slot, uintptr_t v, uintptr_t was, bool lazy_ok)
{
    bool relro = slot >= o->relro_lo && slot < o->relro_hi;
    if (!relro) {
        const struct seg *sg = segment_of(o, slot, sizeof(uintptr_t));
        if (!sg || !sg->w)
            return;                     /* (left as it was: glibc's) */
    }
    if (slot & (sizeof(uintptr_t) - 1))
        return;                         /* (left as it was: glibc's) */
    uintptr_t cur = __atomic_load_n((uintptr_t *)slot, __ATOMIC_RELAXED);
    if (cur == v || (cur != was && !(lazy_ok && segment_of(o, cur, 1))))
        return;
    if (relro && !o->relro_open) {
        if (mprotect((void *)o->relro_lo, o->relro_hi - o->relro_lo, PROT_READ | PROT_WRITE) != 0)
            return;
        o->relro_open = true;
    }
    __atomic_store_n((uintptr_t *)slot, v, __ATOMIC_RELAXED);
}

static void patch_relocs(struct obj *o, const ElfW(Rela) *r, size_t bytes)
{
    for (size_t k = 0; k < bytes / sizeof *r; k++) {
        unsigned type = ELF64_R_TYPE(r[k].r_info);
        size_t si = ELF64_R_SYM(r[k].r_info);
        if (si == 0 || (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && type != R_X86_64_64))
            continue;
        const ElfW(Sym) *s = &o->symtab[si];
        if (s->st_shndx != SHN_UNDEF || s->st_name >= o->strsz)
            continue;                   /* its own definition: deep binding meant it */
        size_t f = family_index(o->strtab + s->st_name);
        if (f == TM_FAMILY || !o->want[f])
            continue;
        uintptr_t add = type == R_X86_64_64 ? (uintptr_t)r[k].r_addend : 0;
        put_slot(o, o->base + r[k].r_offset, (uintptr_t)family[f].fn + add, (uintptr_t)o->libc[f] + add,
                 type == R_X86_64_JUMP_SLOT);
    }
}

/* Point object m's malloc-family references at tidemalloc. */
static void patch_object(const struct link_map *m, const bool *want, void *const *libc)
{
    struct obj o = { .want = want, .libc = libc, .base = m->l_addr };
    const ElfW(Rela) *rela = NULL, *jmprel = NULL;
    size_t relasz = 0, pltrelsz = 0;
    long pltrel = DT_RELA;
    for (const ElfW(Dyn) *d = m->l_ld; d && d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: o.symtab = (const ElfW(Sym) *)dyn_ptr(&o, d->d_un.d_ptr); break;
        case DT_STRTAB: o.strtab = (const char *)dyn_ptr(&o, d->d_un.d_ptr); break;
        case DT_STRSZ: o.strsz = d->d_un.d_val; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(&o, d->d_un.d_ptr); break;
        case DT_RELASZ: relasz = d->d_un.d_val; break;
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(&o, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
        case DT_PLTREL: pltrel = (long)d->d_un.d_val; break;
        default: break;
        }
    }
    if (!o.symtab || !o.strtab || pltrel != DT_RELA)
        return;
    struct phdr_find f = { m->l_addr, m->l_name ? m->l_name : "", &o };
    dl_iterate_phdr(find_relro, &f);
    if (rela)
        patch_relocs(&o, rela, relasz);
    if (jmprel)
        patch_relocs(&o, jmprel, pltrelsz);
    if (o.relro_open)
        mprotect((void *)o.relro_lo, o.relro_hi - o.relro_lo, PROT_READ);
}

/* The objects this open brought in follow the opened one in the base
 * namespace's list (it and its new dependencies, in load order); one
 * loaded meanwhile by another thread is patched too, harmlessly (its
 * references bind to tidemalloc anyway).  Not tidemalloc itself.
 * Only the names that the deep binding would take from the C library:
 * dlsym on the handle searches the object and its dependencies, as the
 * deep binding does; a library that brings an allocator of its own (a
 * dependency on jemalloc, or its own malloc) keeps it.                */
static void patch_from(void *handle)
{
    struct link_map *lm = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
        return;
    bool want[TM_FAMILY], any = false;
    void *libc[TM_FAMILY];
    for (size_t k = 0; k < TM_FAMILY; k++) {
        void *deep = dlsym(handle, family[k].name);
        libc[k] = dlsym(RTLD_NEXT, family[k].name);
        want[k] = deep != NULL && deep == libc[k];
        any = any || want[k];
    }
    if (!any)
        return;
    Dl_info self;
    struct link_map *own = NULL;
    if (!dladdr1((void *)patch_from, &self, (void **)&own, RTLD_DL_LINKMAP))
        own = NULL;
    for (const struct link_map *m = lm; m; m = m->l_next)
        if (m != own)
            patch_object(m, want, libc);
}

__attribute__((used)) void *tm_dlopen_deep(const char *file, int mode)
{
    dlopen_fn *f = resolve_dlopen();
    if (!f)
        return NULL;
    tm_ensure_init();
    int how = TM_P(deepbind);
    if (how == TM_DEEPBIND_DROP)
        return f(file, mode & ~RTLD_DEEPBIND);
    void *h = f(file, mode);
    if (h && how == TM_DEEPBIND_PATCH)
        patch_from(h);
    return h;
}

#endif
