/*
 * globals.c - state that every layer may name: the parameters (params.h)
 * and the main arena (internal.h).  Defined here, at the bottom, so that
 * naming them is never a call into a higher layer.
 */
#include "internal.h"

struct tm_fixed tm_fix = { .pagesize = 4096, .ncpus = 1 };

struct tm_params tm_mp = {
    .max_fast = TM_DEFAULT_MAX_FAST,
    .trim_threshold = TM_DEFAULT_TRIM_THRESHOLD,
    .top_pad = TM_DEFAULT_TOP_PAD,
    .mmap_threshold = TM_DEFAULT_MMAP_THRESHOLD,
    .n_mmaps_max = TM_DEFAULT_MMAP_MAX,
    .arena_test = TM_DEFAULT_ARENA_TEST,
    .tcache_count = TM_TCACHE_DEFAULT_COUNT,
    .tcache_max_req = TM_TCACHE_MAX_REQ,
    .tcache_bytes = TM_TCACHE_DEFAULT_BYTES,
    .decay_ms = TM_DEFAULT_DECAY_MS,
    .background = TM_BG_AUTO,
    .thp_split = 1,
    .deepbind = TM_DEEPBIND_DEFAULT,
    .populate = 1,
};

tm_arena tm_main_arena;
/* Page aligned and page sized: made read-only after initialization
 * (control.c), so that no stray write can change the keys.          */
union tm_secret_page tm_secret_page __attribute__((aligned(4096)));
tm_event tm_bg_event;
_Atomic size_t tm_narenas = 1;
_Atomic bool tm_bg_active;
/* (used: dlopen.c reads it from asm, which link-time optimization cannot see) */
__attribute__((used)) _Atomic int tm_dlopen_mode = TM_DEEPBIND_DEFAULT;
_Atomic bool tm_multi_threaded;
_Atomic bool tm_solo_bg_wanted;
