/* An LD_PRELOAD library that makes this process see an AVX2-only x86-64 CPU (no AVX-512, no VNNI of
 * any width, no native bf16, no AMX), like the AMD Zen 3 that most users' CPUs resemble.
 *
 * Why: every library in a benchmark (torch and its oneDNN, ONNX Runtime's MLAS, numpy, MKL) picks
 * its kernels from the CPUID instruction. Environment variables can cap torch, oneDNN and MKL, but
 * nothing caps ONNX Runtime, so its int8 path cannot be measured in AVX2 on an AVX-512 machine
 * without this. Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID, /proc/cpuinfo flag cpuid_fault)
 * makes each CPUID raise SIGSEGV; the handler runs the real CPUID with faulting off for one
 * instruction, clears the feature bits above AVX2 and steps over the instruction. The setting is
 * inherited by threads and forks and dropped at execve, where LD_PRELOAD sets it up again.
 *
 * The result is an emulation: the kernels are AVX2, but caches, memory and clocks are this CPU's.
 * CPUID_CAP=avx512 keeps AVX-512 F/DQ/CD/BW/VL instead (a Skylake-X: AVX-512 without VNNI or bf16).
 * Build: gcc -O2 -shared -fPIC -o libcpuid_avx2.so cpuid_avx2.c
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

static struct sigaction previous;
static volatile unsigned long trapped;  /* CPUIDs answered; printed at exit with CPUID_AVX2_COUNT=1 */

static long set_cpuid_enabled(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

/* Leaf 7 sub-leaf 0: EBX AVX512F(16) DQ(17) IFMA(21) PF(26) ER(27) CD(28) BW(30) VL(31);
 * ECX VBMI(1) VBMI2(6) VNNI(11) BITALG(12) VPOPCNTDQ(14); EDX 4VNNIW(2) 4FMAPS(3) VP2INTERSECT(8)
 * AMX-BF16(22) AVX512-FP16(23) AMX-TILE(24) AMX-INT8(25). Leaf 7 sub-leaf 1: EAX AVX-VNNI(4)
 * AVX512-BF16(5) AMX-FP16(21) AVX-IFMA(23); EDX AVX-VNNI-INT8(4) AVX-NE-CONVERT(5) AMX-COMPLEX(8)
 * AVX10(19). Leaf 0xD sub-leaf 0 EAX: the opmask/ZMM (5-7) and tile (17-18) state components. */
/* CPUID_CAP=avx512 keeps AVX-512 F/DQ/CD/BW/VL and the ZMM state (a Skylake-X: AVX-512 without VNNI). */
static int keep_avx512;
#define AVX512_SKX ((1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31))

static void mask(uint32_t leaf, uint32_t subleaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d) {
    if (leaf == 7 && subleaf == 0) {
        uint32_t cleared = (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31);
        *b &= ~(keep_avx512 ? cleared & ~AVX512_SKX : cleared);
        *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && subleaf == 1) {
        *a &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        *d &= ~((1u << 4) | (1u << 5) | (1u << 8) | (1u << 19));
    } else if (leaf == 0xD && subleaf == 0) {
        *a &= ~((keep_avx512 ? 0u : (1u << 5) | (1u << 6) | (1u << 7)) | (1u << 17) | (1u << 18));
    } else if (leaf == 0x1D || leaf == 0x1E || leaf == 0x24) {  /* AMX tile and AVX10 information */
        *a = *b = *c = *d = 0;
    }
}

static void on_fault(int signal_number, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *registers = uc->uc_mcontext.gregs;
    const unsigned char *instruction = (const unsigned char *)registers[REG_RIP];
    if (instruction[0] != 0x0F || instruction[1] != 0xA2) {  /* not CPUID: a real fault */
        sigaction(SIGSEGV, &previous, NULL);
        if (previous.sa_flags & SA_SIGINFO && previous.sa_sigaction) {
            previous.sa_sigaction(signal_number, info, context);
        }
        return;  /* the default action: the instruction faults again and the process dies */
    }
    uint32_t leaf = (uint32_t)registers[REG_RAX], subleaf = (uint32_t)registers[REG_RCX];
    uint32_t a, b, c, d;
    set_cpuid_enabled(1);
    __cpuid_count(leaf, subleaf, a, b, c, d);
    set_cpuid_enabled(0);
    mask(leaf, subleaf, &a, &b, &c, &d);
    registers[REG_RAX] = a;
    registers[REG_RBX] = b;
    registers[REG_RCX] = c;
    registers[REG_RDX] = d;
    registers[REG_RIP] += 2;
    trapped++;
}

__attribute__((destructor)) static void stop(void) {
    const char *count = getenv("CPUID_AVX2_COUNT");
    if (count && count[0] == '1') fprintf(stderr, "cpuid_avx2: %lu CPUID instructions answered\n", trapped);
}

__attribute__((constructor)) static void start(void) {
    const char *cap = getenv("CPUID_CAP");
    keep_avx512 = cap != NULL && strcmp(cap, "avx512") == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &previous) != 0 || set_cpuid_enabled(0) != 0) {
        fprintf(stderr, "cpuid_avx2: this kernel or CPU offers no CPUID faulting: nothing is capped\n");
        _exit(97);
    }
}
