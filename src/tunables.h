/*
 * tunables.h - parameters from the environment (read once, at start,
 * without allocating) and from mallopt.  Part of the control layer.
 */
#ifndef TM_TUNABLES_H
#define TM_TUNABLES_H

#include "internal.h"

/* Defaults, then GLIBC_TUNABLES, then the MALLOC_* and TIDEMALLOC_*
 * variables (which win). */
TM_HIDDEN void tm_tunables_init(void);
/* One parameter (mallopt numbering); 1 on success, 0 on a rejected value,
 * 1 for a parameter it does not know (as glibc).                     */
TM_HIDDEN int tm_tunable_set(int param, int value);
/* The value of an environment variable, found without allocating. */
TM_HIDDEN const char *tm_env_get(const char *name);

#endif
