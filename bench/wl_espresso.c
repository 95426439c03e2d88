/*
 * wl_espresso - espresso-like churn: one thread, many small short-lived
 * objects of a few sizes, in growing and shrinking lists.  espresso (the
 * Berkeley two-level logic minimizer, in mimalloc-bench and the Zorn suite)
 * spends its allocations on "cubes" (bit vectors of a few words) and
 * "covers" (arrays of cubes that are built, grown with realloc, filtered and
 * thrown away).  This is not espresso; it is written from scratch to make
 * the same pattern:
 *
 * A cover of random cubes (W = 1..6 64-bit words each plus a header with a
 * content hash) goes through PASSES passes; each pass builds a new cover
 * from pairs of cubes - their intersection (AND) when it is not empty, and
 * for some pairs their supercube (OR) - growing the new cover's array with
 * realloc, then frees the old cover and every cube in it, checking each
 * cube's hash first.  When a cover gets small, fresh random cubes refill
 * it; when it gets big (over 600), cubes with few bits set are dropped,
 * then the newest ones.  The final
 * checksum (count and bit total of the last cover) is printed for run.py to
 * compare across allocators.
 * Fixed work: 10000 passes (500 with --quick).
 * ops = malloc + free + realloc calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>

struct cube { uint32_t w; uint32_t bits; uint64_t hash; uint64_t v[]; };
struct cover { size_t n, cap; struct cube **c; };

static uint64_t ops;

static uint64_t cube_hash(const struct cube *c)
{
    uint64_t h = 0x243F6A8885A308D3ull ^ c->w;
    for (uint32_t i = 0; i < c->w; i++)
        h = (h ^ c->v[i]) * 0x100000001B3ull;
    return h;
}

static struct cube *cube_seal(struct cube *c)
{
    uint32_t bits = 0;
    for (uint32_t i = 0; i < c->w; i++)
        bits += (uint32_t)__builtin_popcountll(c->v[i]);
    c->bits = bits;
    c->hash = cube_hash(c);
    return c;
}

static struct cube *cube_new(uint32_t w)
{
    struct cube *c = malloc(sizeof *c + (size_t)w * 8);
    if (!c)
        bench_fail("malloc returned NULL");
    c->w = w;
    ops++;
    return c;
}

static void cube_free(struct cube *c)
{
    if (c->hash != cube_hash(c))
        bench_fail("cube %p (%u words) corrupted", (void *)c, c->w);
    free(c);
    ops++;
}

static void cover_add(struct cover *cv, struct cube *c)
{
    if (cv->n == cv->cap) {
        cv->cap = cv->cap ? cv->cap + cv->cap / 2 + 4 : 16;
        struct cube **nc = realloc(cv->c, cv->cap * sizeof *nc);
        if (!nc)
            bench_fail("realloc returned NULL");
        cv->c = nc;
        ops++;
    }
    cv->c[cv->n++] = c;
}

static void cover_clear(struct cover *cv)
{
    for (size_t i = 0; i < cv->n; i++)
        cube_free(cv->c[i]);
    free(cv->c);
    ops += cv->c != NULL;
    cv->c = NULL;
    cv->n = cv->cap = 0;
}

static struct cube *cube_random(rng_t *r, uint32_t w)
{
    struct cube *c = cube_new(w);
    for (uint32_t i = 0; i < w; i++)
        c->v[i] = rng_next(r) | rng_next(r);    /* ~75 % of the bits set */
    return cube_seal(c);
}

int main(int argc, char **argv)
{
    bench_set_name("espresso");
    int quick = bench_quick(argc, argv);
    long passes = bench_arg_long(argc, argv, "--passes", quick ? 500 : 10000);
    rng_t r;
    rng_seed(&r, 1984);
    struct cover cur = { 0, 0, NULL };

    double t0 = now_s();
    for (long p = 0; p < passes; p++) {
        uint32_t w = (uint32_t)(1 + p % 6);   /* cube width changes every pass */
        while (cur.n < 200)
            cover_add(&cur, cube_random(&r, w));
        struct cover next = { 0, 0, NULL };
        for (size_t i = 0; i + 1 < cur.n; i++) {
            const struct cube *a = cur.c[i], *b = cur.c[(i + 1 + rng_next(&r) % 3) % cur.n];
            uint32_t cw = a->w < b->w ? a->w : b->w;
            struct cube *x = cube_new(cw);
            uint64_t any = 0;
            for (uint32_t k = 0; k < cw; k++)
                any |= x->v[k] = a->v[k] & b->v[k];
            cube_seal(x);
            if (any && x->bits >= 16 * cw)     /* keep if >= 1/4 of the bits set */
                cover_add(&next, x);
            else
                cube_free(x);
            if (rng_next(&r) % 4 == 0) {
                struct cube *s = cube_new(cw);
                for (uint32_t k = 0; k < cw; k++)
                    s->v[k] = a->v[k] | b->v[k];
                cover_add(&next, cube_seal(s));
            }
        }
        if (next.n > 600) {            /* drop the sparsest cubes */
            size_t keep = 0;
            for (size_t i = 0; i < next.n; i++) {
                if (next.c[i]->bits >= 24 * next.c[i]->w || keep < 100)
                    next.c[keep++] = next.c[i];
                else
                    cube_free(next.c[i]);
            }
            next.n = keep;
            while (next.n > 600)       /* still too big: the newest go too */
                cube_free(next.c[--next.n]);
        }
        cover_clear(&cur);
        cur = next;
    }
    uint64_t bits = 0;
    for (size_t i = 0; i < cur.n; i++)
        bits += cur.c[i]->bits;
    size_t final_n = cur.n;
    cover_clear(&cur);
    double el = now_s() - t0;
    bench_result(el, ops, "checksum=%zu-%llu", final_n, (unsigned long long)bits);
    return 0;
}
