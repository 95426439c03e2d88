/*
 * tide_test.h - test helpers that drive tidemalloc's own options
 * (tidemalloc.h), shared by the corruption, hardening and misuse tests.
 */
#ifndef TIDE_TEST_H
#define TIDE_TEST_H

#include <malloc.h>
#include "tidemalloc.h"

/* The thread cache off (documented mallopt), so frees reach the bins, as
 * an attacker gets by filling the cache first. */
static inline void tide_test_no_tcache(void)
{
    mallopt(TIDE_M_TCACHE_COUNT, 0);
    tide_thread_cache_flush();
}

/* The fast bins on, at glibc's default bound (tidemalloc's default is
 * none: config.h), for tests of what happens in them.                */
static inline void tide_test_fast_bins(void)
{
    mallopt(M_MXFAST, 128);
}

#endif
