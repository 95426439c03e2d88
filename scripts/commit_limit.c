/*
 * commit_limit.c - take the whole commit limit with mmap, then call malloc
 * (run by scripts/commit_limit.sh under vm.overcommit_memory=2).
 *
 * glibc's malloc returns NULL there.  Before 86af30c tidemalloc died with
 * SIGBUS: its statistics channel is a shared memfd, whose pages are
 * charged when first touched, and the first refresh touched them.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
    size_t got = 0;
    for (size_t sz = (size_t)1 << 30; sz >= 4096;) {
        void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            sz /= 2;
            continue;
        }
        got += sz;
    }
    int ok = 0, null = 0;
    for (int r = 0; r < 300; r++) {             /* 0.6 s: the statistics refresh runs */
        for (int k = 0; k < 200; k++) {
            void *q = malloc(100 + (size_t)k * 50);
            if (q)
                ok++;
            else
                null++;
            free(q);
        }
        usleep(2000);
    }
    printf("took %zu MiB of commit; then %d mallocs ok, %d NULL: survived\n", got >> 20, ok, null);
    return 0;
}
