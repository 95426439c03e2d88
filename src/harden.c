/* harden.c - the strong mode's poison and quarantine (see harden.h). */
#include <string.h>
#include "arena.h"
#include "engine.h"
#include "harden.h"
#include "os.h"

/* One arena's FIFO: slot[(head + k) % SLOTS] for k < count, oldest first. */
typedef struct tm_quarantine {
    size_t head, count, bytes;
    tm_chunk *slot[TM_HARDEN_QUAR_SLOTS];
} tm_quarantine;

static const uint64_t POISON_WORD = 0x0101010101010101ull * TM_HARDEN_BYTE;

static size_t poison_len(const tm_chunk *p)
{
    size_t n = chunk_usable(p);
    return n < TM_HARDEN_POISON_MAX ? n : TM_HARDEN_POISON_MAX;
}

/* A page of poison to compare with: libc's memcmp is vectorized, a loop
 * here is not at -O2 (callgrind, wl_pairs --quick with the mode on:
 * 4.91 G instructions in all with a word loop, 4.07 G with memcmp).    */
#define POISON_REF 4096u
static const unsigned char poison_ref[POISON_REF] = {
    [0 ... POISON_REF - 1] = TM_HARDEN_BYTE,
};

static bool still_poisoned(const tm_chunk *p)
{
    const unsigned char *m = chunk2mem(p);
    for (size_t left = poison_len(p); left > 0;) {
        size_t n = left < POISON_REF ? left : POISON_REF;
        if (memcmp(m, poison_ref, n) != 0)
            return false;
        m += n;
        left -= n;
    }
    return true;
}

static tm_quarantine *quarantine_of(tm_arena *av)
{
    if (unlikely(av->quarantine == NULL)) {
        size_t bytes = align_up(sizeof(tm_quarantine), tm_fix.pagesize);
        av->quarantine = tm_os_map(bytes);   /* zero: an empty ring */
    }
    return av->quarantine;
}

static void evict_oldest(tm_arena *av, tm_quarantine *q, const char *msg)
{
    tm_chunk *p = q->slot[q->head];
    q->head = (q->head + 1) % TM_HARDEN_QUAR_SLOTS;
    q->count--;
    q->bytes -= chunksize(p);
    if (unlikely(!still_poisoned(p)))
        tm_corrupt(msg, chunk2mem(p));
    tm_int_free(av, p);
}

bool tm_harden_quarantined(tm_arena *av, tm_chunk *p)
{
    tm_quarantine *q = av->quarantine;
    if (!q || ((const uint64_t *)chunk2mem(p))[0] != POISON_WORD)
        return false;
    for (size_t k = 0; k < q->count; k++)
        if (q->slot[(q->head + k) % TM_HARDEN_QUAR_SLOTS] == p)
            return true;
    return false;
}

void tm_harden_free(tm_arena *av, tm_chunk *p)
{
    if (unlikely(tm_harden_quarantined(av, p)))
        tm_corrupt("free(): double free detected", chunk2mem(p));
    size_t size = chunksize(p);
    memset(chunk2mem(p), TM_HARDEN_BYTE, poison_len(p));
    tm_quarantine *q = size <= TM_HARDEN_QUAR_CHUNK_MAX ? quarantine_of(av) : NULL;
    if (!q) {                         /* too big, or no ring to be had */
        tm_int_free(av, p);
        return;
    }
    while (q->count > 0 && (q->count == TM_HARDEN_QUAR_SLOTS || q->bytes + size > 2 * TM_HARDEN_QUAR_BYTES))
        evict_oldest(av, q, "free(): freed chunk modified after free (use after free)");
    q->slot[(q->head + q->count) % TM_HARDEN_QUAR_SLOTS] = p;
    q->count++;
    q->bytes += size;
}

void tm_harden_drain(tm_arena *av)
{
    tm_quarantine *q = av->quarantine;
    if (!q)
        return;
    while (q->count > TM_HARDEN_QUAR_COUNT || q->bytes > TM_HARDEN_QUAR_BYTES)
        evict_oldest(av, q, "malloc(): freed chunk modified after free (use after free)");
}

static void flush_one(tm_arena *av, void *arg)
{
    (void)arg;
    tm_quarantine *q = av->quarantine;
    while (q && q->count > 0)
        evict_oldest(av, q, "free(): freed chunk modified after free (use after free)");
}

void tm_harden_flush_all(void)
{
    tm_for_each_arena(flush_one, NULL);
}
