#include "CLayoutKernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

int lk_is_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define LK_KERNEL __attribute__((target("avx2,fma")))

// log2 of positive normal floats: the exponent, plus log2 of the mantissa taken into
// [sqrt 1/2, sqrt 2) by the series of atanh, 2/ln 2 (t + t^3/3 + t^5/5 + t^7/7), t = (m-1)/(m+1).
LK_KERNEL static inline __m256 log2_eight(__m256 x) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i fraction = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff));
    const __m256i large = _mm256_cmpgt_epi32(fraction, _mm256_set1_epi32(0x3504f3));  // mantissa above sqrt 2
    const __m256i biased = _mm256_srli_epi32(bits, 23);
    const __m256i exponent = _mm256_sub_epi32(biased, _mm256_blendv_epi8(_mm256_set1_epi32(127),
                                                                         _mm256_set1_epi32(126), large));
    const __m256i top = _mm256_blendv_epi8(_mm256_set1_epi32(0x3f800000), _mm256_set1_epi32(0x3f000000), large);
    const __m256 mantissa = _mm256_castsi256_ps(_mm256_or_si256(fraction, top));
    const __m256 one = _mm256_set1_ps(1);
    const __m256 t = _mm256_div_ps(_mm256_sub_ps(mantissa, one), _mm256_add_ps(mantissa, one));
    const __m256 t2 = _mm256_mul_ps(t, t);
    __m256 series = _mm256_fmadd_ps(t2, _mm256_set1_ps(0.41219858f), _mm256_set1_ps(0.57707802f));
    series = _mm256_fmadd_ps(series, t2, _mm256_set1_ps(0.96179669f));
    series = _mm256_fmadd_ps(series, t2, _mm256_set1_ps(2.88539008f));
    return _mm256_fmadd_ps(t, series, _mm256_cvtepi32_ps(exponent));
}

// 2^y for y held to [-126, 127]: 2^n by the exponent bits for the nearest whole n, times the
// Taylor series of e^(f ln 2) for the rest f in [-1/2, 1/2].
LK_KERNEL static inline __m256 exp2_eight(__m256 y) {
    const __m256 held = _mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(-126)), _mm256_set1_ps(127));
    const __m256 whole = _mm256_round_ps(held, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_mul_ps(_mm256_sub_ps(held, whole), _mm256_set1_ps(0.69314718f));
    __m256 series = _mm256_fmadd_ps(f, _mm256_set1_ps(1.0f / 720), _mm256_set1_ps(1.0f / 120));
    series = _mm256_fmadd_ps(series, f, _mm256_set1_ps(1.0f / 24));
    series = _mm256_fmadd_ps(series, f, _mm256_set1_ps(1.0f / 6));
    series = _mm256_fmadd_ps(series, f, _mm256_set1_ps(0.5f));
    series = _mm256_fmadd_ps(series, f, _mm256_set1_ps(1));
    series = _mm256_fmadd_ps(series, f, _mm256_set1_ps(1));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(whole), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(series, _mm256_castsi256_ps(scale));
}

LK_KERNEL void lk_move_eight(const int32_t *moves, const int32_t *start, const int32_t *count, int64_t rows,
                             float *x, float *y, const float *other_x, const float *other_y, float a, float b,
                             float rate, float clip) {
    __m256 cx = _mm256_loadu_ps(x), cy = _mm256_loadu_ps(y);
    const __m256i counts = _mm256_loadu_si256((const __m256i *)count);
    const __m256i starts = _mm256_loadu_si256((const __m256i *)start);
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), one = _mm256_set1_ps(1), zero = _mm256_setzero_ps();
    const __m256 towards = _mm256_set1_ps(-2 * a * b), away = _mm256_set1_ps(2 * b), offset = _mm256_set1_ps(0.001f);
    const __m256 towards_rate = _mm256_set1_ps(2 * rate), away_rate = _mm256_set1_ps(rate);
    const __m256 high = _mm256_set1_ps(clip), low = _mm256_set1_ps(-clip);
    for (int64_t m = 0; m < rows; m++) {
        // Each lane's m-th move (lanes that have made all theirs read nothing and get 0).
        const __m256i step = _mm256_set1_epi32((int32_t)m);
        const __m256i live = _mm256_cmpgt_epi32(counts, step);
        const __m256i move = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), moves, _mm256_add_epi32(starts, step),
                                                         live, 4);
        const __m256i attracts = _mm256_cmpgt_epi32(move, _mm256_set1_epi32(-1));
        const __m256i other = _mm256_blendv_epi8(_mm256_xor_si256(move, _mm256_set1_epi32(-1)), move, attracts);
        const __m256 ox = _mm256_i32gather_ps(other_x, other, 4), oy = _mm256_i32gather_ps(other_y, other, 4);
        const __m256 dx = _mm256_sub_ps(cx, ox), dy = _mm256_sub_ps(cy, oy);
        const __m256 d2 = _mm256_fmadd_ps(dy, dy, _mm256_mul_ps(dx, dx));
        const __m256 active = _mm256_castsi256_ps(live);
        const __m256 moving = _mm256_and_ps(active, _mm256_cmp_ps(d2, zero, _CMP_GT_OQ));
        const __m256 safe = _mm256_blendv_ps(one, d2, moving);
        const __m256 power = exp2_eight(_mm256_mul_ps(vb, log2_eight(safe)));
        const __m256 denominator = _mm256_fmadd_ps(va, power, one);
        const __m256 attraction = _mm256_div_ps(_mm256_mul_ps(towards, _mm256_div_ps(power, safe)), denominator);
        const __m256 repulsion = _mm256_div_ps(away, _mm256_mul_ps(_mm256_add_ps(offset, safe), denominator));
        const __m256 pulls = _mm256_castsi256_ps(attracts);
        const __m256 coefficient = _mm256_blendv_ps(repulsion, attraction, pulls);
        const __m256 step_rate = _mm256_blendv_ps(away_rate, towards_rate, pulls);
        const __m256 sx = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(coefficient, dx), low), high);
        const __m256 sy = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(coefficient, dy), low), high);
        cx = _mm256_blendv_ps(cx, _mm256_fmadd_ps(step_rate, sx, cx), moving);
        cy = _mm256_blendv_ps(cy, _mm256_fmadd_ps(step_rate, sy, cy), moving);
    }
    _mm256_storeu_ps(x, cx);
    _mm256_storeu_ps(y, cy);
}

#else
int lk_is_supported(void) { return 0; }

void lk_move_eight(const int32_t *moves, const int32_t *start, const int32_t *count, int64_t rows, float *x,
                   float *y, const float *other_x, const float *other_y, float a, float b, float rate, float clip) {
    (void)moves; (void)start; (void)rows; (void)count; (void)x; (void)y; (void)other_x; (void)other_y;
    (void)a; (void)b; (void)rate; (void)clip;
}
#endif
