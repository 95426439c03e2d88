/*
 * misuse_links.c - use-after-free writes to the links of free lists, then
 * the mallocs that follow them: thread-cache and fast-bin poisoning with a
 * raw pointer and with a correctly mangled one (the attacker knows a heap
 * address: the slot's own), aimed at a global fake chunk (attacker-placed
 * memory) and at a live heap block (overlap); a cached link redirected by
 * XOR (no secret needed) to a chunk cached in another class, and to one
 * of the same class in another thread's cache or in this thread's
 * outbox; small-bin bk
 * forging (house of lore); the fd of a chunk parked on a remote list.
 * See misuse.h.
 */
#include <pthread.h>
#include "misuse.h"

/* A fake 0x30-byte chunk in a global, with a sane size for the fast-bin
 * check ("memory corruption (fast)"): what the attacker prepares. */
static _Alignas(16) word fake[16];
static void *fake_mem(void)
{
    fake[0] = 0;
    fake[1] = 0x30 | 1;
    fake[6 + 1] = 0x30 | 1;
    return &fake[2];
}

static void pull(const char *what, void *target, size_t tlen, int n)
{
    for (int i = 0; i < n; i++)
        check_target(what, malloc(40), target, tlen);
}

/* Cache holds b -> a; b's link (word 0) is overwritten. */
static void tcache_poison(int mangled, int heap_target)
{
    word *a = malloc(40), *b = malloc(40);
    void *guard = malloc(40);
    void *live = malloc(40);
    void *target = heap_target ? live : fake_mem();
    free(a);
    free(b);
    W(b)[0] = mangled ? mangle(&b[0], target) : (word)target;
    if (heap_target) {
        for (int i = 0; i < 4; i++)
            check_overlap("thread-cache poisoning at a live block", malloc(40), 40, live, 40);
    } else {
        pull("thread-cache poisoning", target, 32, 4);
    }
    harness_sink(guard);
}
static void t_tc_raw(void *arg) { (void)arg; tcache_poison(0, 0); }
static void t_tc_mangled(void *arg) { (void)arg; tcache_poison(1, 0); }
static void t_tc_mangled_heap(void *arg) { (void)arg; tcache_poison(1, 1); }

/* A use-after-free read and write of a cached chunk's link, by someone
 * who knows two heap addresses: XORed with (a ^ c), the link of b (whose
 * target a is known) reveals c - a chunk cached in another class, which
 * holds the cache key legitimately - without the link secret.  The
 * class of 40-byte requests would hand c out as one of its own (too
 * small: an overflow into c's neighbour) while c stays cached in its own
 * class, to be handed out again (overlap).  Must stop at the pop: c is
 * not of the list's size.                                             */
static void t_tc_redirect(void *arg)
{
    (void)arg;
    word *c = malloc(24);                  /* a 32-byte chunk */
    word *a = malloc(40), *b = malloc(40);
    void *guard = malloc(40);
    free(c);
    free(a);
    free(b);                               /* class of 40: b -> a */
    W(b)[0] ^= (word)a ^ (word)c;
    void *x = malloc(40), *y = malloc(40);
    if (y == c || x == c)
        exploited("a 40-byte malloc returned %p, a 24-byte chunk still cached in its own class", (void *)c);
    void *z = malloc(24);
    check_overlap("thread-cache link redirected to another class's cached chunk", z, 24, y, 40);
    harness_sink(x);
    harness_sink(guard);
}

/* The same redirect, to an entry of the *same* class further up this
 * cache's own list: a cycle.  b -> a -> c, a's link turned to b: malloc
 * hands out b, then a, then b again - once the program, which holds b
 * after the first, has written into it the key it read from a.  With one
 * key per slot that was enough (glibc hands b out twice too); with a key
 * per entry, bound to its address under a secret, a's key is not b's -
 * but b's own words, read while b was cached and written back, were
 * (own_words): the keys are a chain rooted in the cache structure now,
 * and b's old key verifies only where the chain still has that value.  */
static void cycle(int own_words)
{
    word *a = malloc(40), *b = malloc(40), *c = malloc(40);
    void *guard = malloc(40);
    free(c);
    free(a);
    free(b);                               /* b -> a -> c */
    word *src = own_words ? b : a;
    word link = W(src)[0], key = W(src)[1];   /* use-after-free read */
    W(a)[0] ^= (word)c ^ (word)b;          /* a -> b: b -> a -> b */
    void *m1 = malloc(40);
    if (m1 == b) {                         /* the program's now: words written in */
        if (own_words)
            W(b)[0] = link;
        W(b)[1] = key;
    }
    void *m2 = malloc(40), *m3 = malloc(40);
    if (m1 == m3 || m2 == m3)
        exploited("%p handed out twice through a cycle in its class (%s key written in)", m3,
                  own_words ? "its own" : "a's");
    harness_sink(guard);
}
static void t_tc_cycle(void *arg) { (void)arg; cycle(0); }
static void t_tc_cycle_own(void *arg) { (void)arg; cycle(1); }

/* A key read from a cached entry of one class (48-byte chunks), written
 * 16 bytes further on - inside that entry's own chunk - makes a fake
 * entry for the class of 80-byte chunks, whose list head lies 16 bytes
 * after the first's, and a link of that class redirected to it hands it
 * out.  That worked while a key combined the slot's address and the
 * entry's by XOR alone: key(slot, e) = key(slot ^ 16, e ^ 16).  The fake
 * entry lies inside a chunk the cache still holds: overlapping memory. */
static void t_tc_slot_collision(void *arg)
{
    (void)arg;
    /* (an e with bit 4 clear, so that e ^ 16 lies inside its chunk: 48-byte
     * chunks alternate) */
    word *e = malloc(40);
    for (int k = 0; k < 8 && ((uintptr_t)e & 16); k++) {
        harness_sink(e);
        e = malloc(40);
    }
    word *x1 = malloc(72), *x2 = malloc(72);
    void *guard = malloc(72);
    free(e);
    word key = W(e)[1];                    /* use-after-free read: e's key */
    word *fake = (word *)((uintptr_t)e ^ 16);
    if ((char *)fake < (char *)e || (char *)fake + 16 > (char *)e + 40)
        setup_failed("the colliding address is not inside the cached chunk");
    W(fake)[1] = key;                      /* use-after-free write into e */
    free(x1);
    free(x2);                              /* x2 -> x1 */
    W(x2)[0] ^= (word)x1 ^ (word)fake;     /* x2 -> fake */
    void *m1 = malloc(72), *m2 = malloc(72);
    if (m2 == fake)
        exploited("malloc(72) returned %p, inside the cached chunk %p (m1 %p)", m2, (void *)e, m1);
    harness_sink(guard);
}

/* The same redirect, to a chunk of the *same* class that another thread
 * holds in its own cache: it has the class's size and a cache key, so a
 * key shared by all caches let this thread's malloc take it while the
 * other thread's cache still held it - both hand it out (the first pop
 * clears the key, but the chunk is then the program's, which writes the
 * key it read back).  Each cache has a key of its own now.            */
struct peer {                              /* a second thread's block x */
    word *x;
    void *again;                           /* what its later malloc returned */
    int go[2], done[2];
};
static void *oc_thread(void *arg)
{
    struct peer *o = arg;
    o->x = malloc(40);
    free(o->x);                            /* cached in this thread */
    misuse_post(o->done[1]);
    misuse_wait(o->go[0]);
    o->again = malloc(40);                 /* its cache hands x out */
    misuse_post(o->done[1]);
    return NULL;
}
static void t_tc_redirect_thread(void *arg)
{
    (void)arg;
    static struct peer o;
    word *a = malloc(40), *b = malloc(40);
    void *guard = malloc(40);
    pthread_t t = misuse_thread(oc_thread, &o, o.go, o.done);
    misuse_wait(o.done[0]);
    free(a);
    free(b);                               /* this thread's class of 40: b -> a */
    word key = W(b)[1];                    /* use-after-free read: the cache key */
    W(b)[0] ^= (word)a ^ (word)o.x;
    void *m1 = malloc(40), *m2 = malloc(40);
    if (m2 == o.x)
        W(m2)[1] = key;                    /* now the program's: the key put back */
    misuse_post(o.go[1]);
    misuse_wait(o.done[0]);
    pthread_join(t, NULL);
    if ((m1 == o.x || m2 == o.x) && o.again == o.x)
        exploited("%p handed out by both threads' caches", (void *)o.x);
    harness_sink(guard);
}

/* The same, to a chunk of the same class in this thread's own outbox (a
 * block of another thread's arena freed here, on its way home): taken,
 * it would go home while the program uses it, and its owner hands it
 * out again.  An outbox has a key of its own.                          */
static void *ob_thread(void *arg)
{
    struct peer *o = arg;
    o->x = malloc(40);                     /* a block of this thread's arena */
    misuse_post(o->done[1]);
    misuse_wait(o->go[0]);
    for (int k = 0; k < 64 && o->again != o->x; k++)
        o->again = malloc(40);             /* its class list brings x back */
    misuse_post(o->done[1]);
    return NULL;
}
static void t_tc_redirect_outbox(void *arg)
{
    (void)arg;
    static struct peer o;
    pthread_t t = misuse_thread(ob_thread, &o, o.go, o.done);
    misuse_wait(o.done[0]);
    word *a = malloc(40), *b = malloc(40);
    void *guard = malloc(40);
    free(o.x);                             /* another arena's: this thread's outbox */
    free(a);
    free(b);                               /* this thread's class of 40: b -> a */
    word key = W(b)[1];
    W(b)[0] ^= (word)a ^ (word)o.x;
    void *m1 = malloc(40), *m2 = malloc(40);
    if (m2 == o.x)
        W(m2)[1] = key;
    tide_thread_cache_flush();             /* the outbox goes home */
    misuse_post(o.go[1]);
    misuse_wait(o.done[0]);
    pthread_join(t, NULL);
    if ((m1 == o.x || m2 == o.x) && o.again == o.x)
        exploited("%p handed out here and by its owner", (void *)o.x);
    harness_sink(guard);
}

/* The same redirect, cashed in by a flush instead of a malloc: a cache
 * flush frees what its class's list holds into the arena, so a link
 * redirected to a *live* block (no key needed now: nothing pops it)
 * would free that block under the program - the next mallocs hand it
 * out again.  The flush must check each entry it reaches.             */
static void t_tc_flush_redirect(void *arg)
{
    (void)arg;
    word *a = malloc(40), *b = malloc(40);
    void *guard = malloc(40);
    word *live = malloc(40);
    free(a);
    free(b);                               /* b -> a */
    W(b)[0] ^= (word)a ^ (word)live;
    tide_thread_cache_flush();             /* frees b, then what b leads to */
    for (int i = 0; i < 64; i++)
        check_overlap("a cache flush through a redirected link", malloc(40), 40, live, 40);
    harness_sink(guard);
}

/* Fast bin holds b -> a (links to chunks, not user pointers). */
static void fast_poison(int mangled, int heap_target)
{
    tide_test_no_tcache();
    tide_test_fast_bins();
    word *a = malloc(40), *b = malloc(40);
    void *guard = malloc(40);
    word *live = malloc(40);
    void *target = heap_target ? (void *)live : fake_mem();
    free(a);
    free(b);
    void *tchunk = (char *)target - 16;
    W(b)[0] = mangled ? mangle(&b[0], tchunk) : (word)tchunk;
    if (heap_target) {
        for (int i = 0; i < 4; i++)
            check_overlap("fast-bin poisoning at a live block", malloc(40), 40, live, 40);
    } else {
        pull("fast-bin poisoning", target, 32, 4);
    }
    harness_sink(guard);
}
static void t_fast_raw(void *arg) { (void)arg; fast_poison(0, 0); }
static void t_fast_mangled(void *arg) { (void)arg; fast_poison(1, 0); }
static void t_fast_mangled_heap(void *arg) { (void)arg; fast_poison(1, 1); }

/* House of lore: v in its small bin, v->bk forged to a fake chunk f1 whose
 * fd points back at v and whose bk is f2 with f2->fd = f1. */
static _Alignas(16) word lore[2][8];
static void t_smallbin_bk(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    word *v = adjacent_triple(0x100, NULL, NULL);
    void *vchunk = (char *)v - 16;
    free(v);                           /* unsorted */
    void *big = malloc(0x400);         /* sorts v into its small bin */
    word *f1 = lore[0], *f2 = lore[1];
    f1[1] = 0x110 | 1;
    f1[2] = (word)vchunk;              /* fd -> v   */
    f1[3] = (word)f2;                  /* bk -> f2  */
    f2[1] = 0x110 | 1;
    f2[2] = (word)f1;                  /* fd -> f1  */
    W(v)[1] = (word)f1;                /* UAF: v->bk = f1 */
    for (int i = 0; i < 3; i++)
        check_target("small-bin bk forged (house of lore)", malloc(0x100), f1, sizeof lore);
    harness_sink(big);
}

/* ---- a remote list's link -------------------------------------------------- */
struct rl {
    word *p, *q;
    int go[2], done[2];
};
static void *rl_owner(void *arg)
{
    struct rl *r = arg;
    r->p = malloc(40);
    r->q = malloc(40);
    misuse_post(r->done[1]);
    misuse_wait(r->go[0]);
    for (int i = 0; i < 400; i++)
        check_target("remote-list link forged", malloc(40), &fake[2], 32);
    misuse_post(r->done[1]);
    return NULL;
}
static void t_remote_link(void *arg)
{
    (void)arg;
    static struct rl r;
    void *warm = malloc(40);
    fake_mem();
    pthread_t t = misuse_thread(rl_owner, &r, r.go, r.done);
    misuse_wait(r.done[0]);
    if (!(cflags(r.p) & 4))
        setup_failed("the other thread's blocks are not in a non-main arena");
    free(r.p);
    free(r.q);
    tide_thread_cache_flush();         /* both -> the owner arena's remote list */
    /* UAF: the list's last link (the one that reads NULL) now leads to the fake. */
    word *tail = W(r.p)[0] == 0 ? r.p : r.q;
    tail[0] = (word)((char *)&fake[2] - 16);
    misuse_post(r.go[1]);
    misuse_wait(r.done[0]);
    pthread_join(t, NULL);
    harness_sink(warm);
}

/* A link inside one arena's class list redirected by XOR to an entry
 * parked on another arena's list of the same class: the entry has the
 * class's size and a parked key, so with one parked key for every list
 * the first arena's thread installed it into its cache and handed it
 * out, and once the program wrote back the parked key it had read, the
 * second arena's thread handed it out again.  Every list has a parked
 * key of its own (its arena and class); an install requires its list's.
 * Set-up: this thread frees blocks of two other threads' arenas (its
 * outbox: q -> p -> x) and flushes it - q and p go home to arena 1's
 * class list (q's link leads to p), x to arena 2's.                   */
struct cl {
    word *b[2];                            /* two blocks of the thread's arena */
    void *want, *got;                      /* got == want: its malloc returned it */
    int go[2], done[2];
};
static void *cl_thread(void *arg)
{
    struct cl *c = arg;
    c->b[0] = malloc(40);
    c->b[1] = malloc(40);
    misuse_post(c->done[1]);
    misuse_wait(c->go[0]);
    for (int k = 0; k < 256 && c->got != c->want; k++)
        c->got = malloc(40);               /* its cache empties, then its class list */
    misuse_post(c->done[1]);
    return NULL;
}
static void t_class_list_redirect(void *arg)
{
    (void)arg;
    static struct cl c1, c2;
    void *warm = malloc(40);
    pthread_t t1 = misuse_thread(cl_thread, &c1, c1.go, c1.done);
    misuse_wait(c1.done[0]);
    pthread_t t2 = misuse_thread(cl_thread, &c2, c2.go, c2.done);
    misuse_wait(c2.done[0]);
    word *p = c1.b[0], *q = c1.b[1], *x = c2.b[0];
    if (!(cflags(p) & 4) || !(cflags(x) & 4) || ((word)p >> 26) == ((word)x >> 26))
        setup_failed("the two threads' blocks are not in two non-main arenas");
    free(x);
    free(p);
    free(q);                               /* this thread's outbox: q -> p -> x */
    tide_thread_cache_flush();             /* arena 1's list: q -> p; arena 2's: x */
    word key = W(x)[1];                    /* use-after-free read: x's parked key */
    W(q)[0] ^= (word)p ^ (word)x;          /* arena 1's list: q -> x */
    c1.want = x;
    misuse_post(c1.go[1]);
    misuse_wait(c1.done[0]);
    if (c1.got == x)
        W(x)[1] = key;                     /* now the program's: the key put back */
    c2.want = x;
    misuse_post(c2.go[1]);
    misuse_wait(c2.done[0]);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (c1.got == x && c2.got == x)
        exploited("%p handed out by the threads of both arenas", (void *)x);
    harness_sink(warm);
}

static const struct technique tab[] = {
    { "tcache_poison_raw", t_tc_raw, "cache b->a; b's link := &global fake (raw); malloc x4",
      { "malloc(): unaligned tcache chunk detected", "malloc(): corrupted tcache link" }, 0 },
    { "tcache_poison_mangled", t_tc_mangled, "the same, link mangled (slot>>12)^target",
      { "malloc(): unaligned tcache chunk detected", "malloc(): corrupted tcache link" }, 0 },
    { "tcache_poison_heap", t_tc_mangled_heap, "mangled link to a live heap block",
      { "malloc(): unaligned tcache chunk detected", "malloc(): corrupted tcache link" }, 0 },
    { "tcache_redirect", t_tc_redirect, "UAF read+write: b's link XORed to reveal a chunk cached in another class",
      { "malloc(): corrupted tcache link" }, 0 },
    { "tcache_cycle", t_tc_cycle,
      "UAF read+write: a link XORed into a cycle within its class, the read key written into the entry handed out",
      { "malloc(): corrupted tcache link" }, 0 },
    { "tcache_cycle_own_key", t_tc_cycle_own,
      "the cycle, with b's own link and key read while cached and written back after its first malloc",
      { "malloc(): corrupted tcache link" }, 0 },
    { "tcache_slot_collision", t_tc_slot_collision,
      "UAF read+write: a cached entry's key copied 16 bytes on, a link of another class redirected there",
      { "malloc(): corrupted tcache link" }, 0 },
    { "tcache_redirect_thread", t_tc_redirect_thread,
      "the same, to a chunk of the same class in another thread's cache",
      { "malloc(): corrupted tcache link" }, 0 },
    { "tcache_redirect_outbox", t_tc_redirect_outbox,
      "the same, to a chunk of the same class in this thread's outbox",
      { "malloc(): corrupted tcache link" }, 0 },
    { "tcache_flush_redirect", t_tc_flush_redirect,
      "b's link XORed to a live block, then the cache flushed",
      { "free(): corrupted tcache link" }, 0 },
    { "class_list_redirect", t_class_list_redirect,
      "a class list's link XORed to an entry parked on another arena's list of the class",
      { "malloc(): corrupted tcache link",
        /* (a drain of arena 1's lists before its thread installs it) */
        "malloc(): corrupted remote list link" }, 0 },
    { "fast_poison_raw", t_fast_raw, "cache off: fast bin b->a; b's fd := global fake chunk (raw)",
      { "malloc(): unaligned fastbin chunk detected", "malloc(): memory corruption (fast)",
        "malloc(): corrupted fastbin link" }, 0 },
    { "fast_poison_mangled", t_fast_mangled, "the same, fd mangled (slot>>12)^target",
      { "malloc(): unaligned fastbin chunk detected", "malloc(): memory corruption (fast)",
        "malloc(): corrupted fastbin link" }, 0 },
    { "fast_poison_heap", t_fast_mangled_heap, "mangled fd to a live heap block",
      { "malloc(): unaligned fastbin chunk detected", "malloc(): memory corruption (fast)",
        "malloc(): corrupted fastbin link" }, 0 },
    { "smallbin_bk", t_smallbin_bk, "cache off: small-bin chunk's bk forged to a global (house of lore)",
      { "corrupted double-linked list", "malloc(): corrupted chunk header",
        "malloc(): smallbin double linked list corrupted" }, 0 },
    { "remote_link", t_remote_link, "fd of a chunk parked on a remote list := global fake",
      { "malloc(): corrupted tcache link", "malloc(): corrupted chunk header",
        "malloc(): unaligned tcache chunk detected",
        /* (when the list is drained before the owner's cache installs it:
         * the background thread's round or the owner's arena visit) */
        "malloc(): corrupted remote list link" }, 0 },
};

MISUSE_MAIN("links", tab)
