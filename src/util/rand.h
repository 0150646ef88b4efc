/* Counter-based pseudo-random numbers: value i of stream `seed` without state, so C code, tests
 * and tools/make_fixtures.py (the same uint32 formula in numpy) agree bit for bit. */
#ifndef DFRCL_UTIL_RAND_H
#define DFRCL_UTIL_RAND_H
#include <stdint.h>

/* The formula must not be contracted into an FMA, or values differ from the fixtures. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static inline uint32_t dfr_rand_u32(uint32_t seed, uint32_t i)
{
    uint32_t x = i * 0x9E3779B9u + seed * 0x85EBCA6Bu + 0x27D4EB2Fu;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

/* Uniform in [lo, hi): 24 random bits scaled exactly, then one multiply and one add in float. */
static inline float dfr_rand_uniform(uint32_t seed, uint32_t i, float lo, float hi)
{
    float u = (float)(dfr_rand_u32(seed, i) >> 8) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}
#endif
