/*
 * CR_HOT marks the loops that decide crucible's speed (conversions, FP8
 * blocks, merge kernels, statistics).  On x86-64 with GCC they are built
 * three times, for AVX-512, AVX2 and the baseline, and the loader picks the
 * one the CPU runs (glibc ifunc).  The results are the same bits on every
 * CPU: nothing relies on fast-math, and the build sets -ffp-contract=off so
 * the AVX2/AVX-512 copies do not fuse a multiply and an add the baseline
 * rounds twice.
 */
#ifndef CRUCIBLE_HOT_H
#define CRUCIBLE_HOT_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__linux__)
#define CR_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CR_HOT
#endif

#endif
