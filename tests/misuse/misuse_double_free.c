/*
 * misuse_double_free.c - double frees on every path: thread cache (plain
 * and with the cache key wiped by a use-after-free write, the usual bypass
 * of glibc's check), fast bin (a-b-a, which glibc's "fasttop" check does
 * not see), small and large chunks, mmapped chunks, across threads (the
 * second free from another thread), and a chunk parked on another arena's
 * remote list, and a chunk whose first free merged it backward into its
 * free predecessor (its header left behind, intact; and the word left in
 * its place, with the retire undone by a use-after-free write; or with
 * the in-use header read while it was live written back), and a chunk
 * in a bin or a fast bin whose live header was written back; a cached
 * or parked chunk's key wiped and its words written back after the
 * second free.  The follow-up: two
 * mallocs of the size must never return the same block.  See misuse.h.
 */
#include <pthread.h>
#include <stdbool.h>
#include "misuse.h"

static void two_mallocs(const char *what, size_t n, int tries)
{
    void *got[128];
    for (int i = 0; i < tries && i < 128; i++) {
        got[i] = malloc(n);
        for (int j = 0; j < i; j++)
            if (got[j] && got[j] == got[i])
                exploited("%s: malloc(%zu) returned %p twice", what, n, got[i]);
    }
}

static void cached_twice(size_t n, const char *what)
{
    void *p = malloc(n), *guard = malloc(n);
    free(p);
    free(harness_launder(p));
    two_mallocs(what, n, 4);
    harness_sink(guard);
}
static void t_tcache(void *arg) { (void)arg; cached_twice(40, "tcache double free"); }
/* The same in a medium class (1152..8192-byte chunks, slow paths). */
static void t_tcache_medium(void *arg) { (void)arg; cached_twice(2000, "medium-class cache double free"); }

static void t_tcache_key_wiped(void *arg)
{
    (void)arg;
    word *p = malloc(40);
    void *guard = malloc(40);
    free(p);
    W(p)[1] = 0;                       /* use after free: the key word */
    free(harness_launder(p));
    two_mallocs("tcache double free, key wiped", 40, 4);
    harness_sink(guard);
}

/* The key wiped as above, and the words the cache kept in p (its link
 * and key, read while p was cached) written back once the first of the
 * two mallocs hands p out: p's second place in the list verifies again,
 * as if p had never left it.  Until 2026-12-05 only the key in p's body
 * said "cached": the second free pushed p again, and the third malloc
 * returned p a second time.                                          */
static void t_tcache_key_wiped_replayed(void *arg)
{
    (void)arg;
    word *p = malloc(40);
    void *x = malloc(40), *guard = malloc(40);
    free(p);
    word link = W(p)[0], key = W(p)[1];   /* use after free: read */
    free(x);
    W(p)[1] = 0;                          /* use after free: the key wiped */
    free(harness_launder(p));
    void *a = malloc(40);
    if (a == p) {
        W(a)[0] = link;                   /* p's words as the list had them */
        W(a)[1] = key;
    }
    void *b = malloc(40), *c = malloc(40);
    if (a == c || b == c || a == b)
        exploited("tcache double free, key wiped, words replayed: malloc(40) returned %p twice", a == c ? a : c);
    harness_sink(guard);
}

static void t_fast_aba(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    tide_test_fast_bins();
    void *a = malloc(40), *b = malloc(40), *guard = malloc(40);
    free(a);
    free(b);
    free(harness_launder(a));          /* a is not the bin's top: fasttop misses it */
    two_mallocs("fast-bin a-b-a double free", 40, 4);
    harness_sink(guard);
}

static void t_fast_top(void *arg)
{
    (void)arg;
    tide_test_no_tcache();
    tide_test_fast_bins();
    void *a = malloc(40), *guard = malloc(40);
    free(a);
    free(harness_launder(a));
    two_mallocs("fast-bin double free", 40, 4);
    harness_sink(guard);
}

static void sized(size_t n, const char *what)
{
    tide_test_no_tcache();
    void *x = adjacent_triple(n, NULL, NULL);
    free(x);
    free(harness_launder(x));
    two_mallocs(what, n, 4);
}
static void t_small(void *arg) { (void)arg; sized(500, "small double free"); }
static void t_large(void *arg) { (void)arg; sized(2000, "large double free"); }

/* The first free merged p backward into its free predecessor, so p's
 * header - in use, intact - was left inside the merged free chunk.  Both
 * blocks reach the arena through realloc (it moves them and frees the old
 * chunk there, cache on, default settings).  free(p) again: the free fast
 * path reads only p's header.  The follow-up: malloc(n) gives p back
 * while the merged chunk is free, and a malloc of both blocks' size takes
 * the merged chunk, over p.                                            */
enum mb_mode { MB_PLAIN, MB_UNRETIRE, MB_REPLAY };
static void merged_backward(enum mb_mode mode)
{
    size_t n = 100;
    void *lo;
    char *y = adjacent_triple_any(n, &lo, NULL), *x = lo;   /* (x, y and an allocated z after y) */
    size_t cs = csize(x);
    word live_hdr = W(y)[-1];              /* read while y is in use (a leak) */
    void *x2 = realloc(x, 100000), *y2 = realloc(y, 100000);
    if (!x2 || !y2)
        setup_failed("realloc failed");
    if (mode == MB_REPLAY) {
        /* The header read while y was live, written back over the word
         * the merge left (through x's stale pointer): a header that
         * verifies - it was the allocator's own.  Only the next chunk's
         * P bit (y's successor still records y as free) tells.         */
        W(y)[-1] = live_hdr;
    }
    if (mode == MB_UNRETIRE) {
        /* A use-after-free read and write of y's header word (through x,
         * the predecessor's stale pointer): the word the merge left there,
         * with the allocator's public retire transformation undone.
         * tidemalloc flipped bit 48 of the in-use header until 2026-12-04,
         * and this put it back.                                        */
        word *h = &W(y)[-1];
        *h ^= (word)1 << 48;
    }
    free(harness_launder(y));
    void *again = malloc(n), *both = malloc(2 * cs - 16);
    if (again == y && (char *)both <= y && y < (char *)both + 2 * cs)
        exploited("double free of a chunk merged backward: malloc(%zu) %p inside malloc(%zu) %p", n, again,
                  2 * cs - 16, both);
    two_mallocs("double free of a chunk merged backward", n, 4);
    harness_sink(x2);
    harness_sink(y2);
}
static void t_merged_backward(void *arg) { (void)arg; merged_backward(MB_PLAIN); }
static void t_merged_backward_unretired(void *arg) { (void)arg; merged_backward(MB_UNRETIRE); }
static void t_merged_backward_replayed(void *arg) { (void)arg; merged_backward(MB_REPLAY); }

/* A chunk freed into a bin with its in-use header written back
 * (replayed_in_bin, misuse.h), then freed again: the header verifies
 * (it was the allocator's own), the fast path would cache a chunk that
 * also lies in a bin.  The follow-up: malloc(n) gives y from the cache and a
 * malloc of its chunk's size from the bin.                           */
static void t_binned_replayed(void *arg)
{
    (void)arg;
    size_t n = 100;
    void *y2;
    char *y = replayed_in_bin(n, &y2);
    size_t cs = csize(y);
    free(harness_launder(y));
    void *again = malloc(n), *other = malloc(cs - 16);
    if (again == y && other == y)
        exploited("double free of a binned chunk, header replayed: malloc(%zu) and malloc(%zu) both %p", n,
                  cs - 16, again);
    two_mallocs("double free of a binned chunk, header replayed", n, 4);
    harness_sink(y2);
}

/* The same with fast bins on (M_MXFAST): the chunk freed by realloc
 * goes into a fast bin, where it stays "in use" in the boundary tags, so
 * its successor's P bit is set and free's test of it passes: the
 * replayed free is cached.  The fast bin's pop names it when the bin
 * would hand the chunk out again (after the cache gave it once): the
 * cache's link overwrote the bin's, and the chunk's header is not FAST.
 * Not at the free, as for the other replays: a later malloc.          */
static void t_fast_replayed(void *arg)
{
    (void)arg;
    tide_test_fast_bins();
    size_t n = 40;
    word *y = malloc(n);
    void *guard = malloc(n);
    word live_hdr = W(y)[-1];
    void *y2 = realloc(y, 100000);
    if (!y2)
        setup_failed("realloc failed");
    if (W(y)[-1] == live_hdr)
        setup_failed("the freed chunk's header did not change");
    W(y)[-1] = live_hdr;                         /* the replay */
    free(harness_launder(y));
    void *first = malloc(n);                     /* from the cache */
    tide_test_no_tcache();                       /* the next from the fast bin */
    void *second = malloc(n);
    if (first == y && second == y)
        exploited("double free of a fast-bin chunk, header replayed: malloc(%zu) gave %p twice", n, y);
    two_mallocs("double free of a fast-bin chunk, header replayed", n, 4);
    harness_sink(y2);
    harness_sink(guard);
}

static void t_mmapped(void *arg)
{
    (void)arg;
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    void *p = malloc(1 << 20);
    if (!(cflags(p) & 2))
        setup_failed("1 MiB block not mmapped");
    free(p);
    free(harness_launder(p));
    two_mallocs("mmapped double free", 1 << 20, 3);
}

/* ---- across threads ------------------------------------------------------ */
struct xt {
    void *p;
    void *got;
    int fd_go[2], fd_done[2];
};

/* The other thread frees p (into its cache: the outbox, p being another
 * arena's), then waits, then takes
 * the same size once. */
static void *xt_freer(void *arg)
{
    struct xt *x = arg;
    free(x->p);
    misuse_post(x->fd_done[1]);
    misuse_wait(x->fd_go[0]);
    x->got = malloc(40);
    misuse_post(x->fd_done[1]);
    misuse_wait(x->fd_go[0]);              /* stay alive until the parent looked */
    return NULL;
}

static void t_cross_thread(void *arg)
{
    (void)arg;
    static struct xt x;
    x.p = malloc(40);
    void *guard = malloc(40);
    pthread_t t = misuse_thread(xt_freer, &x, x.fd_go, x.fd_done);
    misuse_wait(x.fd_done[0]);
    free(harness_launder(x.p));        /* second free, from this thread */
    void *mine = malloc(40);
    misuse_post(x.fd_go[1]);
    misuse_wait(x.fd_done[0]);
    if (mine && mine == x.got)
        exploited("double free across threads: both threads got %p", mine);
    misuse_post(x.fd_go[1]);
    pthread_join(t, NULL);
    harness_sink(guard);
}

/* ---- a chunk parked on another arena's remote list ------------------------ */
struct rl {
    void *p;
    int fd_go[2], fd_done[2];
    void *hit;
};
static void *rl_owner(void *arg)
{
    struct rl *r = arg;
    r->p = malloc(40);                 /* from this thread's arena */
    misuse_post(r->fd_done[1]);
    misuse_wait(r->fd_go[0]);
    /* Use up the cache of the class; misses take the remote list. */
    for (int i = 0; i < 400 && !r->hit; i++) {
        void *m = malloc(40);
        if (m == r->p)
            r->hit = m;
    }
    misuse_post(r->fd_done[1]);
    misuse_wait(r->fd_go[0]);
    return NULL;
}

static void remote_list(bool wipe)
{
    static struct rl r;
    /* No background thread: its rounds drain every arena's remote lists,
     * and one that came between the wipe and the second free named the
     * wiped key itself ("malloc(): corrupted remote list link": a UBSan
     * CI run), before the free under test could. */
    mallopt(TIDE_M_BACKGROUND_THREAD, 0);
    void *warm = malloc(40);           /* this thread's arena: the main one */
    pthread_t t = misuse_thread(rl_owner, &r, r.fd_go, r.fd_done);
    misuse_wait(r.fd_done[0]);
    if (!(cflags(r.p) & 4))
        setup_failed("the other thread's block is not in a non-main arena");
    free(r.p);                         /* into this thread's cache          */
    tide_thread_cache_flush();         /* -> the owner arena's remote list */
    word link = W(r.p)[0], key = W(r.p)[1];
    if (wipe)
        W(r.p)[1] = 0;                 /* use after free: its parked key   */
    free(harness_launder(r.p));        /* second free while it is parked   */
    void *mine = malloc(40);           /* this thread gets p back ...      */
    if (wipe && mine == r.p) {
        W(mine)[0] = link;             /* ... and puts back what the list   */
        W(mine)[1] = key;              /*     holds of it                   */
    }
    misuse_post(r.fd_go[1]);
    misuse_wait(r.fd_done[0]);             /* ... and the owner takes the list */
    if (mine == r.p && r.hit == r.p)
        exploited("double free of a chunk on a remote list: both threads got %p", mine);
    misuse_post(r.fd_go[1]);
    pthread_join(t, NULL);
    harness_sink(warm);
}
static void t_remote_list(void *arg) { (void)arg; remote_list(false); }
static void t_remote_list_key_wiped(void *arg) { (void)arg; remote_list(true); }

static const struct technique tab[] = {
    { "tcache", t_tcache, "free(p) twice, p in the thread cache",
      { "free(): double free detected in tcache 2", "free(): double free detected" }, 0 },
    { "tcache_medium", t_tcache_medium, "free(p) twice, p of 2000 bytes in a medium cache class",
      { "free(): double free detected in tcache 2", "free(): double free detected" }, 0 },
    { "tcache_key_wiped", t_tcache_key_wiped, "free(p), zero the cache key word (UAF), free(p)",
      { "free(): double free detected" }, 0 },
    { "tcache_key_wiped_replayed", t_tcache_key_wiped_replayed,
      "free(p), free(x), zero p's key (UAF), free(p); p's cached words (read by UAF) written back into it once handed out",
      { "free(): double free detected" }, 0 },
    { "fast_aba", t_fast_aba, "cache off: free(a), free(b), free(a) - fast bin",
      { "free(): double free detected", "double free or corruption (fasttop)" }, 0 },
    { "fast_top", t_fast_top, "cache off: free(a) twice - fast bin",
      { "free(): double free detected", "double free or corruption (fasttop)" }, 0 },
    { "small", t_small, "cache off: free of a 500-byte block twice",
      { "free(): double free detected", "double free or corruption (!prev)" }, 0 },
    { "large", t_large, "cache off: free of a 2000-byte block twice",
      { "free(): double free detected", "double free or corruption (!prev)" }, 0 },
    { "merged_backward", t_merged_backward,
      "free(p) twice where the first free merged p into its free predecessor (both freed by realloc moves)",
      { "free(): double free detected" }, 0 },
    { "merged_backward_unretired", t_merged_backward_unretired,
      "merged_backward, with the retired header word read and its retire undone (UAF), then free(p) again",
      { "free(): double free detected", "free(): corrupted chunk header" }, 0 },
    { "merged_backward_replayed", t_merged_backward_replayed,
      "merged_backward, with p's in-use header (read while p was live) written back, then free(p) again",
      { "double free or corruption (!prev)" }, 0 },
    { "binned_replayed", t_binned_replayed,
      "p freed into a bin, its in-use header (read while live) written back, then free(p) again",
      { "double free or corruption (!prev)" }, 0 },
    { "fast_replayed", t_fast_replayed,
      "fast bins on: p freed into a fast bin, its in-use header (read while live) written back, then free(p) again",
      { "malloc(): corrupted fastbin link", "malloc(): corrupted chunk header" }, 0 },
    { "mmapped", t_mmapped, "free of a 1 MiB mmapped block twice",
      { "free(): double free detected", "munmap_chunk(): invalid pointer",
        "free(): invalid pointer (not a chunk of this heap)" }, 0 },
    { "cross_thread", t_cross_thread, "thread B frees p into its cache, thread A frees p again",
      { "free(): double free detected" }, 0 },
    { "remote_list", t_remote_list, "p parked on its arena's remote list by a flush, then freed again",
      { "free(): double free detected (remote list)", "free(): double free detected" }, 0 },
    { "remote_list_key_wiped", t_remote_list_key_wiped,
      "remote_list with p's parked key zeroed (UAF) before the second free, and its parked words written back once handed out",
      { "free(): double free detected" }, 0 },
};

MISUSE_MAIN("double_free", tab)
