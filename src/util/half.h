/* IEEE fp16 <-> fp32 on the host, as the kernels' vload_half / vstore_half do it (round to
 * nearest, ties to even; overflow to infinity; NaN kept): reading fp16 activations back, and the
 * references of the fp16 tests. */
#ifndef DFRCL_UTIL_HALF_H
#define DFRCL_UTIL_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t dfr_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float dfr_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t dfr_float_to_half(float f)
{
    uint32_t x = dfr_f32_bits(f), s = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u);  /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00u); /* rounds to >= 65536: infinity */
    if (a < 0x38800000u) /* below 2^-14: subnormal, a multiple of 2^-24 (exact product) */
        return (uint16_t)(s | (uint32_t)nearbyintf(dfr_bits_f32(a) * 16777216.0f));
    uint32_t h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu), rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry moves into the exponent */
    return (uint16_t)(s | h);
}

static inline float dfr_half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return dfr_bits_f32(s | dfr_f32_bits((float)m * 5.9604644775390625e-8f));
    if (e == 31) return dfr_bits_f32(s | 0x7f800000u | (m << 13));
    return dfr_bits_f32(s | ((e + 112u) << 23) | (m << 13));
}

/* f rounded to the nearest fp16 value, as a float. */
static inline float dfr_round_half(float f)
{
    return dfr_half_to_float(dfr_float_to_half(f));
}

#endif
