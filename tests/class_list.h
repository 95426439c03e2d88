/*
 * class_list.h - for INTERNAL tests: the entries of an arena's class list
 * (arena.h remote_cls), read in place without taking it.
 */
#ifndef TIDE_TEST_CLASS_LIST_H
#define TIDE_TEST_CLASS_LIST_H

#include "arena.h"
#include "tcache.h"

/* The entries of a class list (word w of remote_cls), at most max of
 * them, into out, in list order: what a miss that takes the list may
 * hand out (it installs the list re-chained, in reverse order: tcache.c
 * rekey_list). */
static inline size_t class_list_members(uintptr_t w, void **out, size_t max)
{
    tm_tc_entry *e = (tm_tc_entry *)(w & (((uintptr_t)1 << TM_RCLS_SHIFT) - 1));
    size_t n = w >> TM_RCLS_SHIFT, k = 0;
    for (; k < n && k < max && e; k++) {
        out[k] = e;
        e = k + 1 < n ? tc_reveal(e) : NULL;
    }
    return k;
}

#endif
