/*
 * thp_quiet.c - a program that builds MiB (argv[1], default 1024) of
 * blocks of 100 B..64 KiB, frees 95 % of them at random and sleeps
 * argv[2] seconds (default 30), printing its RSS, its huge pages
 * (AnonHugePages), the system's THP counters and its map count as it
 * goes.  Run under each allocator by bench/thp_quiet.sh, which sets the
 * system's transparent huge pages to "always" (docs/design.md §7).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
static long field(const char *file, const char *key) {
    FILE *f = fopen(file, "r"); char line[256]; long v = -1; size_t k = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) if (!strncmp(line, key, k)) { v = atol(line + k); break; }
    fclose(f); return v;
}
static long vm(const char *key) { return field("/proc/vmstat", key); }
static long memfree0;
static int nmaps(void) { FILE *f = fopen("/proc/self/maps", "r"); int n = 0, c; while ((c = fgetc(f)) != EOF) n += c == '\n'; fclose(f); return n; }
static void show(const char *what) {
    printf("%-22s RSS %5ld MiB  AnonHuge %5ld MiB  MemFree-delta %6ld MiB  split %ld defer %ld collapse %ld maps %d\n", what,
           field("/proc/self/status", "VmRSS:") / 1024, field("/proc/self/smaps_rollup", "AnonHugePages:") / 1024,
           (memfree0 - field("/proc/meminfo", "MemFree:")) / 1024, vm("thp_split_page "), vm("thp_deferred_split_page "),
           vm("thp_collapse_alloc "), nmaps());
    fflush(stdout);
}
int main(int argc, char **argv) {
    size_t total = (argc > 1 ? atol(argv[1]) : 1024) << 20;
    int watch = argc > 2 ? atoi(argv[2]) : 30;
    memfree0 = field("/proc/meminfo", "MemFree:");
    srand(1);
    size_t n = 0, cap = 1 << 22; void **b = calloc(cap, sizeof *b); size_t got = 0;
    while (got < total && n < cap) { size_t s = 100 + rand() % (64 << 10); b[n] = malloc(s); memset(b[n], 1, s); got += s; n++; }
    show("built");
    for (size_t i = 0; i < n; i++) if (rand() % 100 < 95) { free(b[i]); b[i] = NULL; }
    show("freed 95%");
    for (int t = 0; t < watch; t++) { sleep(1); if (t == 0 || t == 4 || t % 10 == 9) { char w[32]; snprintf(w, sizeof w, "quiet %d s", t + 1); show(w); } }
    return 0;
}
