/*
 * wl_cfrac - cfrac-like churn: one thread, many small short-lived objects.
 * cfrac (in mimalloc-bench and the Hoard/Zorn suites) factors numbers with
 * the continued-fraction method on a bignum library that allocates a fresh
 * number for every intermediate result; its allocation pattern is a storm of
 * 20-100 B blocks that mostly die right after the next operation.  This is
 * not cfrac; it is written from scratch to make the same pattern:
 *
 * CHAINS independent chains of x <- x*x + c on immutable bignums of W
 * 32-bit limbs (W = 2..24, so 16..100 B numbers), truncated to W limbs
 * (arithmetic mod 2^(32W)).  Each step allocates the square (2W limbs), the
 * sum and the truncated result, and frees the square, the sum and the
 * previous x; every chain also keeps its last HISTORY values alive in a
 * ring (freed as they fall out), so lifetimes are mixed.  Check: the low 64
 * bits of every chain must equal the same recurrence computed in uint64_t
 * (mod 2^64 the truncation is exact), and the final checksum (the low words
 * of all chains) is printed for run.py to compare across allocators.
 * Fixed work: 1500 steps x 2000 chains (60 steps with --quick).
 * ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>
#include <string.h>

#define CHAINS 2000
#define HISTORY 8

struct bn { uint32_t n; uint32_t d[]; };

static uint64_t ops;

static struct bn *bn_new(uint32_t n)
{
    struct bn *b = malloc(sizeof *b + (size_t)n * 4);
    if (!b)
        bench_fail("malloc returned NULL");
    b->n = n;
    ops++;
    return b;
}

static void bn_free(struct bn *b)
{
    if (b) {
        free(b);
        ops++;
    }
}

static struct bn *bn_mul(const struct bn *a, const struct bn *b)
{
    struct bn *r = bn_new(a->n + b->n);
    memset(r->d, 0, (size_t)r->n * 4);
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t carry = 0;
        for (uint32_t j = 0; j < b->n; j++) {
            uint64_t t = (uint64_t)a->d[i] * b->d[j] + r->d[i + j] + carry;
            r->d[i + j] = (uint32_t)t;
            carry = t >> 32;
        }
        r->d[i + b->n] = (uint32_t)carry;
    }
    return r;
}

static struct bn *bn_add_small(const struct bn *a, uint32_t c)
{
    struct bn *r = bn_new(a->n);
    uint64_t carry = c;
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t t = (uint64_t)a->d[i] + carry;
        r->d[i] = (uint32_t)t;
        carry = t >> 32;
    }
    return r;
}

static struct bn *bn_trunc(const struct bn *a, uint32_t n)
{
    struct bn *r = bn_new(n);
    memcpy(r->d, a->d, (size_t)n * 4);
    return r;
}

static uint64_t bn_low64(const struct bn *a)
{
    return (uint64_t)a->d[0] | (uint64_t)a->d[1] << 32;
}

struct chain {
    struct bn *x;
    struct bn *hist[HISTORY];
    uint64_t shadow;       /* the same recurrence mod 2^64 */
    uint32_t w, c;
};

int main(int argc, char **argv)
{
    bench_set_name("cfrac");
    int quick = bench_quick(argc, argv);
    long steps = bench_arg_long(argc, argv, "--steps", quick ? 60 : 1500);
    static struct chain ch[CHAINS];
    rng_t r;
    rng_seed(&r, 2718);

    double t0 = now_s();
    for (int i = 0; i < CHAINS; i++) {
        ch[i].w = (uint32_t)rng_range(&r, 2, 24);
        ch[i].c = (uint32_t)rng_range(&r, 1, 1u << 30);
        ch[i].x = bn_new(ch[i].w);
        for (uint32_t k = 0; k < ch[i].w; k++)
            ch[i].x->d[k] = (uint32_t)rng_next(&r);
        ch[i].shadow = bn_low64(ch[i].x);
    }
    for (long s = 0; s < steps; s++) {
        for (int i = 0; i < CHAINS; i++) {
            struct chain *c = &ch[i];
            struct bn *sq = bn_mul(c->x, c->x);
            struct bn *sum = bn_add_small(sq, c->c);
            bn_free(sq);
            struct bn *nx = bn_trunc(sum, c->w);
            bn_free(sum);
            /* the previous x joins the history ring; the oldest leaves */
            bn_free(c->hist[s % HISTORY]);
            c->hist[s % HISTORY] = c->x;
            c->x = nx;
            c->shadow = c->shadow * c->shadow + c->c;
            if (bn_low64(c->x) != c->shadow)
                bench_fail("chain %d step %ld: low word %016llx, expected %016llx", i, s,
                           (unsigned long long)bn_low64(c->x), (unsigned long long)c->shadow);
        }
    }
    uint64_t sum = 0;
    for (int i = 0; i < CHAINS; i++) {
        sum = sum * 31 + bn_low64(ch[i].x);
        for (int h = 0; h < HISTORY; h++)
            bn_free(ch[i].hist[h]);
        bn_free(ch[i].x);
    }
    double el = now_s() - t0;
    bench_result(el, ops, "checksum=%016llx", (unsigned long long)sum);
    return 0;
}
