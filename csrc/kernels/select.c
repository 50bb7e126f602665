/* select.c: runtime choice of the kernel path. The x86 paths are compiled
 * with per-function target attributes, so one build runs on any x86-64 and
 * this file decides, by asking the CPU, which of them may be called. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* F16C from CPUID leaf 1 (ECX bit 29): clang before 15 has no "f16c" for
 * __builtin_cpu_supports, and the fuzz targets are built with clang. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

/* Whether this CPU (and OS) can run path k. */
static int supported(const bn_kernels *k) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (k == &bn_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (k == &bn_kernels_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
#endif
#if defined(__aarch64__)
    if (k == &bn_kernels_neondot)
#if defined(__linux__)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
        return 0;
#endif
    if (k == &bn_kernels_neon) return 1; /* Advanced SIMD is part of AArch64 */
#endif
    return k == &bn_kernels_ref;
}

/* Every path this build has, best first. */
static const bn_kernels *const all_paths[] = {
#if defined(__x86_64__) || defined(__i386__)
    &bn_kernels_avx512,
    &bn_kernels_avx2,
#endif
#if defined(__aarch64__)
    &bn_kernels_neondot,
    &bn_kernels_neon,
#endif
    &bn_kernels_ref,
};
#define N_PATHS (sizeof all_paths / sizeof all_paths[0])

int bn_kernels_available(const bn_kernels **out, int max) {
    int n = 0;
    for (size_t i = 0; i < N_PATHS && n < max - 1; i++)
        if (supported(all_paths[i])) out[n++] = all_paths[i];
    if (max > 0) out[n] = NULL;
    return n;
}

const bn_kernels *bn_kernels_select(const char *force) {
    if (!force || !*force) force = getenv("BITNET_KERNEL");
    int any = !force || !*force || strcmp(force, "auto") == 0;
    for (size_t i = 0; i < N_PATHS; i++)
        if ((any || strcmp(force, all_paths[i]->name) == 0) && supported(all_paths[i])) return all_paths[i];
    return NULL;
}

/* Every path name of every architecture: a name from another CPU family is
 * known (it cannot run here), a misspelling is not. */
static const char *const known_names[] = {"avx512", "avx2", "neondot", "neon", "ref"};

void bn_kernels_refusal(const char *name, char *buf, size_t cap) {
    int known = 0;
    for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
        if (strcmp(name, known_names[i]) == 0) known = 1;
    const bn_kernels *runs[16];
    int n = bn_kernels_available(runs, 16);
    size_t len = (size_t)snprintf(buf, cap, known ? "kernel path '%s' cannot run on this CPU (it runs:"
                                                  : "unknown kernel path '%s' (this CPU runs:", name);
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s %s", i ? "," : "", runs[i]->name);
    if (len < cap) snprintf(buf + len, cap - len, ")");
}
