/*
 * Linked into the Native AOT builds of `backprop` for x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), see
 * Backprop.Cli.csproj. AOT fixes the instruction set at publish time, so a publish makes three builds: `backprop`
 * (x86-64-v4), `backprop-x86-64-v3` and `backprop-x86-64` (any x64 CPU). This constructor runs before the .NET
 * runtime starts (and so before any instruction of the build's own level): on a CPU that lacks this build's
 * instruction sets it replaces the process (execv: same arguments, same environment) with the fastest build beside it
 * that the CPU runs. On a CPU that has them it returns at once, so the common case costs one process start, not two:
 * a separate launcher program had cost 7 to 10 ms on every start (a second exec and a second runtime start-up, on a
 * VM that charges 11.7 us a page fault).
 *
 * BACKPROP_ISA=x86-64 or x86-64-v3 in the environment asks for a lower build than the CPU allows (the tests run the
 * fallbacks with it on an AVX-512 machine); it never raises the level. x86-64-v4, empty or unset: the CPU's best; any
 * other value is refused (exit 2), since running the top build would look like a lowering that did not happen. The
 * x86-64 build links no constructor: it runs whatever the value, which can only have asked for it or for more.
 */
#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BACKPROP_ISA_LEVEL
#error "compile with -DBACKPROP_ISA_LEVEL=3 or 4"
#endif
#ifndef BACKPROP_NAME
#define BACKPROP_NAME "backprop"
#endif

static int bit(unsigned reg, int b) { return (reg >> b) & 1u; }

/* XCR0, the register states the kernel saves on a context switch (XGETBV with ECX = 0; only valid once CPUID says
 * OSXSAVE). Intel SDM vol. 1, 13.3. */
static unsigned long long xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* The x86-64 micro-architecture level this machine runs: 4, 3 or 1 (CPUID, Intel SDM vol. 2A): the CPU must have the
 * instruction sets and the kernel must save their registers (XCR0: SSE and AVX state for v3; the opmask and both
 * halves of the upper ZMM state too for v4). A kernel booted with AVX-512 turned off, or a hypervisor that hides its
 * state, gets the lower build instead of a build that cannot start. */
static int cpu_level(void)
{
    /* four CPUID instructions, no more: each traps to the hypervisor on a VM (12.8 us on this project's), and
       __get_cpuid_count would add a maximum-leaf query before each leaf. Leaf 0x80000001 exists on every x86-64 CPU
       (it holds the long-mode bit). */
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    unsigned max_leaf = a;
    if (max_leaf < 7) return 1;
    __cpuid_count(1, 0, a, b, c, d);
    unsigned ecx1 = c;
    if (!bit(ecx1, 27)) return 1;                                                                  /* OSXSAVE */
    unsigned long long xcr = xcr0();
    __cpuid_count(7, 0, a, b, c, d);
    unsigned ebx7 = b;
    __cpuid(0x80000001u, a, b, c, d);
    unsigned ecx_ext = c;
    int v3 = bit(ecx1, 28) && bit(ecx1, 12) && bit(ecx1, 22) && bit(ecx1, 29)                     /* AVX FMA MOVBE F16C */
          && bit(ebx7, 5) && bit(ebx7, 3) && bit(ebx7, 8)                                         /* AVX2 BMI1 BMI2 */
          && bit(ecx_ext, 5)                                                                      /* LZCNT */
          && (xcr & 0x6) == 0x6;                                                                  /* XMM and YMM state */
    if (!v3) return 1;
    int v4 = bit(ebx7, 16) && bit(ebx7, 17) && bit(ebx7, 28) && bit(ebx7, 30) && bit(ebx7, 31)  /* AVX512 F DQ CD BW VL */
          && (xcr & 0xE6) == 0xE6;                                                                /* opmask, ZMM_Hi256, Hi16_ZMM */
    return v4 ? 4 : 3;
}

static int asked_level(void)
{
    const char *isa = getenv("BACKPROP_ISA");
    if (isa == NULL || *isa == 0) return 4;
    if (strcmp(isa, "x86-64") == 0) return 1;
    if (strcmp(isa, "x86-64-v3") == 0) return 3;
    if (strcmp(isa, "x86-64-v4") == 0) return 4;
    /* a misspelt level would otherwise run the top build without a word, and the user would believe it lowered; the
       value is printed on one line whatever it holds, control characters as '?' */
    char shown[101];
    size_t i = 0;
    for (; i < sizeof shown - 1 && isa[i] != 0; i++) shown[i] = (unsigned char)isa[i] < 0x20 || isa[i] == 0x7f ? '?' : isa[i];
    shown[i] = 0;
    fprintf(stderr, "backprop: BACKPROP_ISA=%s: expected x86-64, x86-64-v3 or x86-64-v4 (or unset for this CPU's best)\n", shown);
    _exit(2);
}

__attribute__((constructor(101))) static void backprop_isa_handover(int argc, char **argv, char **envp)
{
    (void)argc; (void)envp;
    int level = cpu_level(), asked = asked_level();
    if (asked < level) level = asked;
    if (level >= BACKPROP_ISA_LEVEL) return;

    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { fputs("backprop: cannot tell where this program is, to run the build for this CPU\n", stderr); _exit(2); }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash != NULL) slash[1] = 0; else self[0] = 0;

    static const struct { int level; const char *suffix; } builds[] = { { 3, "-x86-64-v3" }, { 1, "-x86-64" } };
    char path[4200];
    path[0] = 0;
    for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++)
    {
        if (builds[i].level > level || builds[i].level >= BACKPROP_ISA_LEVEL) continue;
        snprintf(path, sizeof path, "%s%s%s", self, BACKPROP_NAME, builds[i].suffix);
        if (access(path, X_OK) != 0) continue;
        execv(path, argv);   /* returns only on failure: try the next */
    }
    fprintf(stderr, "backprop: this CPU lacks the instruction sets of this build (x86-64-v%d) and no build for it was found beside it (%s%s-x86-64)\n",
            BACKPROP_ISA_LEVEL, self, BACKPROP_NAME);
    _exit(2);
}
