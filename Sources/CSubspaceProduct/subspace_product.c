#include "CSubspaceProduct.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Rows summed in float before they are added to the double total: short float sums, long double one.
enum { FLUSH_ROWS = 64 };

int64_t sp_scratch_count(int64_t d) { return d * SP_BLOCK + d; }

static void flush(double *restrict z, float *restrict partial, int64_t count) {
    for (int64_t e = 0; e < count; e++) { z[e] += partial[e]; partial[e] = 0; }
}

#if defined(__x86_64__)
// One 8-lane vector per basis row: lane c belongs to basis vector c.
__attribute__((target("avx2,fma")))
static void product_avx2(const float *restrict x, int64_t first, int64_t last, int64_t d, const float *restrict v,
                         const float *restrict mean, double *restrict z, float *restrict scratch) {
    float *partial = scratch, *centred = scratch + d * SP_BLOCK;
    memset(partial, 0, (size_t)(d * SP_BLOCK) * sizeof(float));
    int64_t pending = 0;
    for (int64_t i = first; i < last; i++) {
        const float *row = x + i * d;
        // Centring first keeps the products small: no cancellation against a large shared offset.
        for (int64_t j = 0; j < d; j++) centred[j] = row[j] - mean[j];
        // Four independent sums, so that the fused multiply-adds overlap.
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 4 <= d; j += 4) {
            s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(centred + j), _mm256_loadu_ps(v + j * SP_BLOCK), s0);
            s1 = _mm256_fmadd_ps(_mm256_broadcast_ss(centred + j + 1), _mm256_loadu_ps(v + (j + 1) * SP_BLOCK), s1);
            s2 = _mm256_fmadd_ps(_mm256_broadcast_ss(centred + j + 2), _mm256_loadu_ps(v + (j + 2) * SP_BLOCK), s2);
            s3 = _mm256_fmadd_ps(_mm256_broadcast_ss(centred + j + 3), _mm256_loadu_ps(v + (j + 3) * SP_BLOCK), s3);
        }
        for (; j < d; j++) s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(centred + j), _mm256_loadu_ps(v + j * SP_BLOCK), s0);
        __m256 w = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
        for (j = 0; j < d; j++) {
            float *target = partial + j * SP_BLOCK;
            _mm256_storeu_ps(target, _mm256_fmadd_ps(_mm256_broadcast_ss(centred + j), w, _mm256_loadu_ps(target)));
        }
        if (++pending == FLUSH_ROWS || i + 1 == last) { flush(z, partial, d * SP_BLOCK); pending = 0; }
    }
}
#endif

static void product_baseline(const float *restrict x, int64_t first, int64_t last, int64_t d, const float *restrict v,
                             const float *restrict mean, double *restrict z, float *restrict scratch) {
    float *partial = scratch, *centred = scratch + d * SP_BLOCK;
    memset(partial, 0, (size_t)(d * SP_BLOCK) * sizeof(float));
    int64_t pending = 0;
    for (int64_t i = first; i < last; i++) {
        const float *row = x + i * d;
        for (int64_t j = 0; j < d; j++) centred[j] = row[j] - mean[j];
        float w[SP_BLOCK] = {0};
        for (int64_t j = 0; j < d; j++)
            for (int c = 0; c < SP_BLOCK; c++) w[c] += centred[j] * v[j * SP_BLOCK + c];
        for (int64_t j = 0; j < d; j++)
            for (int c = 0; c < SP_BLOCK; c++) partial[j * SP_BLOCK + c] += centred[j] * w[c];
        if (++pending == FLUSH_ROWS || i + 1 == last) { flush(z, partial, d * SP_BLOCK); pending = 0; }
    }
}

void sp_centred_product(const float *x, int64_t first, int64_t last, int64_t d, const float *v, const float *mean,
                        double *z, float *scratch) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        product_avx2(x, first, last, d, v, mean, z, scratch);
        return;
    }
#endif
    product_baseline(x, first, last, d, v, mean, z, scratch);
}

void sp_centred_product_portable(const float *x, int64_t first, int64_t last, int64_t d, const float *v,
                                 const float *mean, double *z, float *scratch) {
    product_baseline(x, first, last, d, v, mean, z, scratch);
}
