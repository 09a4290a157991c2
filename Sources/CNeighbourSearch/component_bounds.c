#include "CNeighbourSearch.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define CB_KERNEL __attribute__((target("avx2,fma")))
#endif

// The portable loops: what CPUs without AVX2 and FMA run, and the reference in tests.
static void bounds_portable(const float *coordinates, int64_t stride, const float *residual_low,
                            const float *residual_high, int64_t slot, int64_t first, int64_t last, float *out) {
    for (int64_t t = first; t < last; t++) {
        float sum = 0;
        for (int c = 0; c < CB_COMPONENTS; c++) {
            float d = coordinates[c * stride + t] - coordinates[c * stride + slot];
            sum += d * d;
        }
        float gap = residual_low[t] - residual_high[slot];
        float other = residual_low[slot] - residual_high[t];
        if (other > gap) gap = other;
        if (gap < 0) gap = 0;
        out[t - first] = sum + gap * gap;
    }
}

static int64_t survivors_portable(const float *coordinates, int64_t stride, const float *residual_low,
                                  const float *residual_high, int64_t slot, int64_t first, int64_t last,
                                  float threshold, int32_t *out, float *partial) {
    float bound[8];
    int64_t count = 0;
    for (int64_t t = first; t < last; t += 8) {
        bounds_portable(coordinates, stride, residual_low, residual_high, slot, t, t + 8, bound);
        for (int l = 0; l < 8 && t + l < last; l++) {
            if (bound[l] > threshold) continue;
            float sum = 0;
            for (int c = 0; c < CB_COMPONENTS; c++) {
                float d = coordinates[c * stride + t + l] - coordinates[c * stride + slot];
                sum += d * d;
            }
            out[count] = (int32_t)(t + l);
            partial[count++] = sum;
        }
    }
    return count;
}

// The second bound: the first's components, the next CB_FURTHER ones, and the gap between the
// norms of what is left after all of them.
static inline int64_t refine_loops(const float *further, const float *residual_low, const float *residual_high,
                                   int64_t slot, const int32_t *candidates, const float *partial, int64_t count,
                                   float threshold, int32_t *out) {
    const float *own = further + slot * CB_FURTHER;
    int64_t kept = 0;
    for (int64_t s = 0; s < count; s++) {
        int64_t t = candidates[s];
        const float *other = further + t * CB_FURTHER;
        float sum = 0;
        for (int c = 0; c < CB_FURTHER; c++) {
            float d = other[c] - own[c];
            sum += d * d;
        }
        float gap = residual_low[t] - residual_high[slot];
        float reverse = residual_low[slot] - residual_high[t];
        if (reverse > gap) gap = reverse;
        if (gap < 0) gap = 0;
        if (partial[s] + sum + gap * gap <= threshold) out[kept++] = (int32_t)t;
    }
    return kept;
}

static float dot_portable(const float *a, const float *b, int64_t d) {
    float s[8] = {0};
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
        for (int l = 0; l < 8; l++) s[l] += a[c + l] * b[c + l];
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; c < d; c++) sum += a[c] * b[c];
    return sum;
}

#if defined(__x86_64__)
// The bound between one point (its components broadcast in `point`, its residual interval in
// `own_low`, `own_high`) and slots t .. t+7; `projected` gets the components' part alone.
CB_KERNEL static inline __m256 bound_eight(const float *coordinates, int64_t stride, const __m256 *point,
                                           const float *residual_low, const float *residual_high, __m256 own_low,
                                           __m256 own_high, int64_t t, __m256 *projected) {
    __m256 sum = _mm256_setzero_ps();
    for (int c = 0; c < CB_COMPONENTS; c++) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(coordinates + c * stride + t), point[c]);
        sum = _mm256_fmadd_ps(d, d, sum);
    }
    __m256 gap = _mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(residual_low + t), own_high),
                               _mm256_sub_ps(own_low, _mm256_loadu_ps(residual_high + t)));
    gap = _mm256_max_ps(gap, _mm256_setzero_ps());
    *projected = sum;
    return _mm256_fmadd_ps(gap, gap, sum);
}

CB_KERNEL static void bounds_avx2(const float *coordinates, int64_t stride, const float *residual_low,
                                  const float *residual_high, int64_t slot, int64_t first, int64_t last, float *out) {
    __m256 point[CB_COMPONENTS];
    for (int c = 0; c < CB_COMPONENTS; c++) point[c] = _mm256_set1_ps(coordinates[c * stride + slot]);
    const __m256 own_low = _mm256_set1_ps(residual_low[slot]), own_high = _mm256_set1_ps(residual_high[slot]);
    // Eight slots at a time; the last group may read into the padding after the slots.
    for (int64_t t = first; t < last; t += 8) {
        __m256 projected;
        _mm256_storeu_ps(out + (t - first), bound_eight(coordinates, stride, point, residual_low, residual_high,
                                                        own_low, own_high, t, &projected));
    }
}

CB_KERNEL static int64_t refine_avx2(const float *further, const float *residual_low, const float *residual_high,
                                     int64_t slot, const int32_t *candidates, const float *partial, int64_t count,
                                     float threshold, int32_t *out) {
    return refine_loops(further, residual_low, residual_high, slot, candidates, partial, count, threshold, out);
}

CB_KERNEL static int64_t survivors_avx2(const float *coordinates, int64_t stride, const float *residual_low,
                                        const float *residual_high, int64_t slot, int64_t first, int64_t last,
                                        float threshold, int32_t *out, float *partial) {
    __m256 point[CB_COMPONENTS];
    for (int c = 0; c < CB_COMPONENTS; c++) point[c] = _mm256_set1_ps(coordinates[c * stride + slot]);
    const __m256 own_low = _mm256_set1_ps(residual_low[slot]), own_high = _mm256_set1_ps(residual_high[slot]);
    const __m256 limit = _mm256_set1_ps(threshold);
    int64_t count = 0;
    for (int64_t t = first; t < last; t += 8) {
        __m256 sum;
        __m256 bound = bound_eight(coordinates, stride, point, residual_low, residual_high, own_low, own_high, t, &sum);
        unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(bound, limit, _CMP_LE_OQ));
        if (!mask) continue;
        float sums[8];
        _mm256_storeu_ps(sums, sum);
        while (mask) {
            int l = __builtin_ctz(mask);
            mask &= mask - 1;
            if (t + l >= last) continue;
            out[count] = (int32_t)(t + l);
            partial[count++] = sums[l];
        }
    }
    return count;
}

CB_KERNEL static float dot_avx2(const float *a, const float *b, int64_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= d; c += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8), _mm256_loadu_ps(b + c + 8), s1);
    }
    if (c + 8 <= d) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s0);
        c += 8;
    }
    __m256 s = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float sum = _mm_cvtss_f32(h);
    for (; c < d; c++) sum += a[c] * b[c];
    return sum;
}

static int has_avx2(void) {
    static int known = -1;  // written by whichever thread asks first; every writer writes the same
    int value = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (value < 0) {
        __builtin_cpu_init();
        value = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&known, value, __ATOMIC_RELAXED);
    }
    return value;
}
#endif

void cb_bounds(const float *coordinates, int64_t stride, const float *residual_low, const float *residual_high,
               int64_t slot, int64_t first, int64_t last, float *out) {
#if defined(__x86_64__)
    if (has_avx2()) { bounds_avx2(coordinates, stride, residual_low, residual_high, slot, first, last, out); return; }
#endif
    bounds_portable(coordinates, stride, residual_low, residual_high, slot, first, last, out);
}

int64_t cb_survivors(const float *coordinates, int64_t stride, const float *residual_low, const float *residual_high,
                     int64_t slot, int64_t first, int64_t last, float threshold, int32_t *out, float *partial) {
#if defined(__x86_64__)
    if (has_avx2())
        return survivors_avx2(coordinates, stride, residual_low, residual_high, slot, first, last, threshold, out,
                              partial);
#endif
    return survivors_portable(coordinates, stride, residual_low, residual_high, slot, first, last, threshold, out,
                              partial);
}

int64_t cb_survivors_portable(const float *coordinates, int64_t stride, const float *residual_low,
                              const float *residual_high, int64_t slot, int64_t first, int64_t last, float threshold,
                              int32_t *out, float *partial) {
    return survivors_portable(coordinates, stride, residual_low, residual_high, slot, first, last, threshold, out,
                              partial);
}

int64_t cb_refine(const float *further, const float *residual_low, const float *residual_high, int64_t slot,
                  const int32_t *candidates, const float *partial, int64_t count, float threshold, int32_t *out) {
#if defined(__x86_64__)
    if (has_avx2())
        return refine_avx2(further, residual_low, residual_high, slot, candidates, partial, count, threshold, out);
#endif
    return refine_loops(further, residual_low, residual_high, slot, candidates, partial, count, threshold, out);
}

float cb_dot(const float *a, const float *b, int64_t d) {
#if defined(__x86_64__)
    if (has_avx2()) return dot_avx2(a, b, d);
#endif
    return dot_portable(a, b, d);
}

void cb_bounds_portable(const float *coordinates, int64_t stride, const float *residual_low,
                        const float *residual_high, int64_t slot, int64_t first, int64_t last, float *out) {
    bounds_portable(coordinates, stride, residual_low, residual_high, slot, first, last, out);
}

float cb_dot_portable(const float *a, const float *b, int64_t d) { return dot_portable(a, b, d); }
