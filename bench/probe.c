/*
 * libbench_probe.so - preloaded by run.py beside the allocator into the real
 * programs it benchmarks (python3, gcc, sqlite3, ...), which cannot print a
 * RESULT line themselves.  When BENCH_PROBE_FILE is set, every process of
 * the program (gcc's cc1, as, ld included) appends to that file:
 *
 *   start pid=<pid> lib=<shared object serving malloc> exe=<executable>
 *   end pid=<pid> hwm_kb=<VmHWM> rss_kb=<VmRSS>        (at a normal exit)
 *
 * `lib` is found exactly as the workloads do it (dlsym(RTLD_DEFAULT,
 * "malloc") + dladdr), so run.py can check that every process was served
 * by the allocator it meant to preload.  Lines are written with one
 * write(2) on an O_APPEND descriptor, so concurrent processes do not
 * interleave them; nothing here allocates except what dlsym/dladdr may do.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static void put_line(const char *line)
{
    const char *path = getenv("BENCH_PROBE_FILE");
    if (!path || !path[0])
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    size_t n = strlen(line);
    while (write(fd, line, n) < 0 && errno == EINTR)
        ;
    close(fd);
}

static long status_field_kb(const char *buf, const char *field)
{
    size_t flen = strlen(field);
    for (const char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, field, flen) == 0 && l[flen] == ':')
            return strtol(l + flen + 1, NULL, 10);
    return -1;
}

/* Load address of the main executable: dladdr of its program headers. */
static void *main_base(void)
{
    Dl_info info;
    void *phdr = (void *)getauxval(AT_PHDR);
    return phdr && dladdr(phdr, &info) ? info.dli_fbase : NULL;
}

__attribute__((constructor)) static void probe_start(void)
{
    if (!getenv("BENCH_PROBE_FILE"))
        return;
    char exe[1024], line[3072];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    const char *lib = "unknown";
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname && info.dli_fname[0])
        lib = info.dli_fname;
    /* A non-PIE executable that calls malloc (Debian's python3) holds the
     * symbol's canonical PLT entry, so dlsym names the executable itself.
     * Then the library that really serves it is the first object after the
     * executable, in link-map (= global search) order, that defines malloc
     * itself.                                                              */
    struct link_map *map = NULL;
    void *self = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
    if (m && self && dlinfo(self, RTLD_DI_LINKMAP, &map) == 0 && map &&
        dladdr(m, &info) && info.dli_fbase == main_base()) {
        for (struct link_map *l = map->l_next; l; l = l->l_next) {
            void *h = l->l_name[0] ? dlopen(l->l_name, RTLD_LAZY | RTLD_NOLOAD) : NULL;
            void *s = h ? dlsym(h, "malloc") : NULL;
            Dl_info si;
            if (s && dladdr(s, &si) && si.dli_fname && strcmp(si.dli_fname, l->l_name) == 0) {
                lib = l->l_name;
                break;
            }
        }
    }
    snprintf(line, sizeof line, "start pid=%ld lib=%s exe=%s\n", (long)getpid(), lib, exe);
    put_line(line);
}

__attribute__((destructor)) static void probe_end(void)
{
    if (!getenv("BENCH_PROBE_FILE"))
        return;
    char buf[8192], line[256];
    size_t len = 0;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (len += (size_t)r) >= sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    snprintf(line, sizeof line, "end pid=%ld hwm_kb=%ld rss_kb=%ld\n", (long)getpid(),
             status_field_kb(buf, "VmHWM"), status_field_kb(buf, "VmRSS"));
    put_line(line);
}
