/*
 * secure_target.c - for tests/secure.sh: linked with libtidemalloc (the
 * loader ignores LD_PRELOAD in a set-user-ID program, and a library on
 * its run path is how such a program would use tidemalloc), it makes a
 * few slow-path allocations and prints its real and effective uid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    for (int i = 0; i < 200; i++) {
        char *p = malloc(100000);
        if (!p)
            return 1;
        memset(p, i, 64);
        free(p);
    }
    printf("ruid %d euid %d\n", (int)getuid(), (int)geteuid());
    return 0;
}
