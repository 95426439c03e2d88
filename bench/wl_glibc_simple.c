/*
 * wl_glibc_simple - one thread, small sizes, fixed counts: modelled on
 * glibc's benchtests/bench-malloc-simple.c (written from scratch here).
 *
 * For every block count N in {25, 100, 400, 1600} and size S in
 * {16, 32, 64, 128, 256, 512} B: ROUNDS / N times, allocate N blocks of S
 * bytes (writing the first and the last word of each), then check and free
 * them all, in allocation order.  Like the original, the whole series runs
 * twice: once in the main thread (glibc: the main arena) and once in a
 * second thread started afterwards (glibc: a thread arena) - never both at
 * once, so the workload stays single-threaded.
 * ROUNDS: 600k blocks per (N, S) pair (40k with --quick).
 * ops = malloc + free calls; time_s is the figure of merit.
 */
#include "bench_common.h"

#include <stdlib.h>

static const int counts[] = { 25, 100, 400, 1600 };
static const int sizes[] = { 16, 32, 64, 128, 256, 512 };
static long rounds;
static uint64_t ops_done;

static void *series(void *arg)
{
    (void)arg;
    void *p[1600];
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        int n = counts[ci];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t sz = (size_t)sizes[si];
            for (long it = 0; it < rounds / n; it++) {
                for (int i = 0; i < n; i++) {
                    uint64_t *b = malloc(sz);
                    if (!b)
                        bench_fail("malloc(%zu) returned NULL", sz);
                    b[0] = (uint64_t)i ^ (uint64_t)it << 20;
                    b[sz / 8 - 1] = ~b[0];
                    p[i] = b;
                }
                for (int i = 0; i < n; i++) {
                    uint64_t *b = p[i];
                    if (b[0] != ((uint64_t)i ^ (uint64_t)it << 20) || b[sz / 8 - 1] != ~b[0])
                        bench_fail("block %p (%zu B) corrupted", (void *)b, sz);
                    free(b);
                }
                ops_done += 2 * (uint64_t)n;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_set_name("glibc_simple");
    int quick = bench_quick(argc, argv);
    rounds = bench_arg_long(argc, argv, "--rounds", quick ? 40000 : 600000);
    double t0 = now_s();
    series(NULL);                              /* main thread */
    double t1 = now_s();
    bench_run_threads(1, series, NULL, 0);     /* one other thread, alone */
    double t2 = now_s();
    bench_result(t2 - t0, ops_done, "main_thread_s=%.4f other_thread_s=%.4f", t1 - t0, t2 - t1);
    return 0;
}
