#include "CNeighbourSearch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define NS_KERNEL __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define NS_KERNEL
#endif

enum {
    STRIP = 64,   // columns per packed strip: four 16-lane vectors
    ROWS = 6,     // rows per register block: 6 x 4 accumulators
    TILE = 1024,  // rows and columns per tile (a multiple of STRIP); 512 measured 4% slower
};

// Below any cosine similarity: every pair passes until a point has k neighbours.
static const float NO_BOUND = -1e30f;
// Covers float32 rounding in the approximate similarity (terms of size <= 3, a few operations)
// and in the stored exact similarities.
static const float ROUNDING_SLACK = 2e-5f;
// The same for the refined similarity, summed in double from float32 terms.
static const double REFINED_SLACK = 2e-6;

struct ns_points {
    const float *x;
    const int64_t *group;
    int64_t n, d, padded_n, padded_d, kgroups, tiles_per_side;
    uint8_t *rows;          // (padded_n + ROWS) x padded_d: q + 128, row-major (the broadcast operand)
    int8_t *strips;         // per strip of 64 points: [kgroup][point][4 bytes] (the vector operand)
    int32_t *bias128;       // 128 * sum(q_j): removes the +128 of the unsigned operand
    float *offset;          // m.r_i; -inf for padding, so padded pairs never pass
    float *inverse_scale;   // 1 / s_i
    float *quantised_norm;  // |q_i / s_i|
    float *error_norm;      // |r_i - q_i / s_i|
    float *norm_plus_error; // the two above, summed
    // The refinement: e_i = r_i - q_i / s_i rounded again, f_i = e_i - q2_i / s2_i.
    int8_t *fine;           // padded_n x padded_d: q2, row-major
    int32_t *fine_bias128;  // 128 * sum(q2_i)
    float *fine_scale;      // 1 / s2_i
    float *fine_norm;       // |q2_i / s2_i|
    float *refined_norm;    // |q_i / s_i + q2_i / s2_i|
    float *residual_norm;   // |f_i|
    double *length;         // |x_i|
    double *mean;           // m, d values
    float *mean_float;      // m in float32, for the rounding
    float mean_square;      // m.m
};

struct ns_screen {
    int k;
    int64_t n;
    int seeded;          // whether a tile may offer a pair the lists already hold
    float *similarity;   // n x k: the k largest exact similarities found for each point, ascending
    int32_t *neighbour;  // n x k: their points, -1 for none yet
    float *threshold;    // padded_n: similarity[i * k], the k-th largest; +inf for padding
    int64_t exact;
};

int64_t ns_max_dimension(void) { return INT32_MAX / (255 * 127) - 4; }

int ns_is_supported(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
NS_KERNEL static double dot_double(const float *a, const float *b, int64_t d) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t c = 0;
    for (; c + 16 <= d; c += 16) {
        s0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + c)), _mm512_cvtps_pd(_mm256_loadu_ps(b + c)), s0);
        s1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + c + 8)), _mm512_cvtps_pd(_mm256_loadu_ps(b + c + 8)), s1);
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; c < d; c++) sum += (double)a[c] * b[c];
    return sum;
}
#else
static double dot_double(const float *a, const float *b, int64_t d) {
    double sum = 0;
    for (int64_t c = 0; c < d; c++) sum += (double)a[c] * b[c];
    return sum;
}
#endif

// The cosine similarity in double precision; 1 within a duplicate group, 0 against a zero row.
static float exact_similarity(const ns_points *p, int64_t i, int64_t j) {
    if (p->group && p->group[i] >= 0 && p->group[i] == p->group[j]) return 1;
    double lengths = p->length[i] * p->length[j];
    if (!(lengths > 0)) return 0;
    return (float)(dot_double(p->x + i * p->d, p->x + j * p->d, p->d) / lengths);
}

// Row lengths and the mean unit vector.
NS_KERNEL static void measure(ns_points *p) {
    const int64_t n = p->n, d = p->d;
    for (int64_t i = 0; i < n; i++) {
        const float *row = p->x + i * d;
        p->length[i] = sqrt(dot_double(row, row, d));
        double inverse = p->length[i] > 0 ? 1 / p->length[i] : 0;
        for (int64_t c = 0; c < d; c++) p->mean[c] += row[c] * inverse;
    }
    double mean_square = 0;
    for (int64_t c = 0; c < d; c++) {
        p->mean[c] /= (double)n;
        p->mean_float[c] = (float)p->mean[c];
        mean_square += (double)p->mean_float[c] * p->mean_float[c];
    }
    p->mean_square = (float)mean_square;
}

void ns_points_destroy(ns_points *p) {
    if (!p) return;
    free(p->rows); free(p->strips); free(p->bias128); free(p->offset); free(p->inverse_scale);
    free(p->quantised_norm); free(p->error_norm); free(p->norm_plus_error); free(p->length); free(p->mean); free(p->mean_float);
    free(p->fine); free(p->fine_bias128); free(p->fine_scale); free(p->fine_norm); free(p->refined_norm);
    free(p->residual_norm);
    free(p);
}

ns_points *ns_points_create(const float *x, const int64_t *group, int64_t n, int64_t d) {
    if (n < 1 || d < 1 || d > ns_max_dimension()) return NULL;
    ns_points *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->x = x;
    p->group = group;
    p->n = n;
    p->d = d;
    p->padded_n = (n + STRIP - 1) / STRIP * STRIP;
    p->padded_d = (d + 3) / 4 * 4;
    p->kgroups = p->padded_d / 4;
    p->tiles_per_side = (n + TILE - 1) / TILE;
    // The last register block of a tile may read up to ROWS - 1 rows past the padding.
    size_t row_bytes = (size_t)((p->padded_n + ROWS) * p->padded_d);
    p->rows = malloc(row_bytes);
    p->strips = calloc((size_t)(p->padded_n * p->padded_d), 1);
    p->bias128 = calloc((size_t)p->padded_n, sizeof(int32_t));
    p->offset = malloc((size_t)p->padded_n * sizeof(float));
    p->inverse_scale = calloc((size_t)p->padded_n, sizeof(float));
    p->quantised_norm = calloc((size_t)p->padded_n, sizeof(float));
    p->error_norm = calloc((size_t)p->padded_n, sizeof(float));
    p->norm_plus_error = calloc((size_t)p->padded_n, sizeof(float));
    p->length = calloc((size_t)n, sizeof(double));
    p->mean = calloc((size_t)d, sizeof(double));
    p->mean_float = calloc((size_t)d, sizeof(float));
    p->fine = calloc((size_t)(p->padded_n * p->padded_d), 1);
    p->fine_bias128 = calloc((size_t)p->padded_n, sizeof(int32_t));
    p->fine_scale = calloc((size_t)p->padded_n, sizeof(float));
    p->fine_norm = calloc((size_t)p->padded_n, sizeof(float));
    p->refined_norm = calloc((size_t)p->padded_n, sizeof(float));
    p->residual_norm = calloc((size_t)p->padded_n, sizeof(float));
    if (!p->rows || !p->strips || !p->bias128 || !p->offset || !p->inverse_scale || !p->quantised_norm ||
        !p->error_norm || !p->norm_plus_error || !p->length || !p->mean || !p->mean_float || !p->fine || !p->fine_bias128 ||
        !p->fine_scale || !p->fine_norm || !p->refined_norm || !p->residual_norm) {
        ns_points_destroy(p);
        return NULL;
    }
    memset(p->rows, 128, row_bytes);
    for (int64_t i = 0; i < p->padded_n; i++) p->offset[i] = i < n ? 0 : -INFINITY;

    measure(p);
    return p;
}

#if defined(__x86_64__)
// Rounds one row to int8 twice, 16 values at a time, in float32. float is enough: its rounding
// moves each bound by under 1e-7, far inside the slack the bounds carry.
NS_KERNEL static void quantise_row(ns_points *p, int64_t i, float *residual, float *error) {
    const int64_t d = p->d;
    const float *row = p->x + i * d;
    const __m512 inverse_length = _mm512_set1_ps(p->length[i] > 0 ? (float)(1 / p->length[i]) : 0);
    const __m512 top = _mm512_set1_ps(127), bottom = _mm512_set1_ps(-127);
    const __m128i flip = _mm_set1_epi8((char)0x80);

    __m512 largest = _mm512_setzero_ps(), offset = _mm512_setzero_ps();
    for (int64_t c = 0; c < d; c += 16) {
        __mmask16 lanes = d - c >= 16 ? 0xFFFF : (__mmask16)((1u << (d - c)) - 1);
        __m512 r = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(lanes, row + c), inverse_length,
                                   _mm512_maskz_loadu_ps(lanes, p->mean_float + c));
        _mm512_storeu_ps(residual + c, r);
        largest = _mm512_max_ps(largest, _mm512_abs_ps(r));
        offset = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, p->mean_float + c), r, offset);
    }
    const float biggest = _mm512_reduce_max_ps(largest);
    const float scale = biggest > 0 ? 127 / biggest : 1, inverse_scale = 1 / scale;

    // First rounding: q = round(r s); e = r - q / s.
    __m512 value_square = _mm512_setzero_ps(), error_square = _mm512_setzero_ps(), largest_error = _mm512_setzero_ps();
    __m512i sum = _mm512_setzero_si512();
    uint8_t *out = p->rows + i * p->padded_d;
    int8_t *strip = p->strips + (i / STRIP) * STRIP * p->padded_d + (i % STRIP) * 4;
    for (int64_t c = 0; c < d; c += 16) {
        int64_t count = d - c >= 16 ? 16 : d - c;
        __m512 r = _mm512_loadu_ps(residual + c);  // zero past d
        __m512 q = _mm512_min_ps(top, _mm512_max_ps(bottom, _mm512_roundscale_ps(_mm512_mul_ps(r, _mm512_set1_ps(scale)),
                                                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
        __m512 value = _mm512_mul_ps(q, _mm512_set1_ps(inverse_scale));
        __m512 e = _mm512_sub_ps(r, value);
        _mm512_storeu_ps(error + c, e);
        value_square = _mm512_fmadd_ps(value, value, value_square);
        error_square = _mm512_fmadd_ps(e, e, error_square);
        largest_error = _mm512_max_ps(largest_error, _mm512_abs_ps(e));
        __m512i integers = _mm512_cvtps_epi32(q);
        sum = _mm512_add_epi32(sum, integers);
        __m128i bytes = _mm512_cvtepi32_epi8(integers);
        _mm_mask_storeu_epi8(out + c, (__mmask16)((1u << count) - 1), _mm_xor_si128(bytes, flip));
        int32_t groups[4];
        _mm_storeu_si128((__m128i *)groups, bytes);
        for (int64_t g = 0; g < (count + 3) / 4; g++) memcpy(strip + (c / 4 + g) * STRIP * 4, &groups[g], 4);
    }
    p->bias128[i] = 128 * _mm512_reduce_add_epi32(sum);
    p->offset[i] = _mm512_reduce_add_ps(offset);
    p->inverse_scale[i] = inverse_scale;
    p->quantised_norm[i] = sqrtf(_mm512_reduce_add_ps(value_square));
    p->error_norm[i] = sqrtf(_mm512_reduce_add_ps(error_square));
    p->norm_plus_error[i] = p->quantised_norm[i] + p->error_norm[i];

    // Second rounding, of what the first left: q2 = round(e s2); f = e - q2 / s2.
    const float biggest_error = _mm512_reduce_max_ps(largest_error);
    const float fine_scale = biggest_error > 0 ? 127 / biggest_error : 1, inverse_fine = 1 / fine_scale;
    __m512 fine_square = _mm512_setzero_ps(), refined_square = _mm512_setzero_ps(), left_square = _mm512_setzero_ps();
    __m512i fine_sum = _mm512_setzero_si512();
    int8_t *fine = p->fine + i * p->padded_d;
    for (int64_t c = 0; c < d; c += 16) {
        int64_t count = d - c >= 16 ? 16 : d - c;
        __m512 e = _mm512_loadu_ps(error + c);
        __m512 q = _mm512_min_ps(top, _mm512_max_ps(bottom, _mm512_roundscale_ps(_mm512_mul_ps(e, _mm512_set1_ps(fine_scale)),
                                                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
        __m512 value = _mm512_mul_ps(q, _mm512_set1_ps(inverse_fine));
        __m512 left = _mm512_sub_ps(e, value);
        __m512 refined = _mm512_sub_ps(_mm512_loadu_ps(residual + c), left);
        fine_square = _mm512_fmadd_ps(value, value, fine_square);
        refined_square = _mm512_fmadd_ps(refined, refined, refined_square);
        left_square = _mm512_fmadd_ps(left, left, left_square);
        __m512i integers = _mm512_cvtps_epi32(q);
        fine_sum = _mm512_add_epi32(fine_sum, integers);
        _mm_mask_storeu_epi8(fine + c, (__mmask16)((1u << count) - 1), _mm512_cvtepi32_epi8(integers));
    }
    p->fine_bias128[i] = 128 * _mm512_reduce_add_epi32(fine_sum);
    p->fine_scale[i] = inverse_fine;
    p->fine_norm[i] = sqrtf(_mm512_reduce_add_ps(fine_square));
    p->refined_norm[i] = sqrtf(_mm512_reduce_add_ps(refined_square));
    p->residual_norm[i] = sqrtf(_mm512_reduce_add_ps(left_square));
}
#endif

int ns_points_quantise(ns_points *p, int64_t first, int64_t last) {
#if defined(__x86_64__)
    // Rows padded to whole vectors: lanes past d read as zero and round to zero.
    const int64_t width = (p->d + 15) / 16 * 16;
    float *scratch = calloc((size_t)(2 * width), sizeof(float));
    if (!scratch) return -1;
    for (int64_t i = first; i < last; i++) quantise_row(p, i, scratch, scratch + width);
    free(scratch);
    return 0;
#else
    (void)p; (void)first; (void)last;
    return -1;
#endif
}

int64_t ns_tile_count(const ns_points *p) { return p->tiles_per_side * (p->tiles_per_side + 1) / 2; }

void ns_screen_destroy(ns_screen *s) {
    if (!s) return;
    free(s->similarity); free(s->neighbour); free(s->threshold);
    free(s);
}

ns_screen *ns_screen_create(const ns_points *p, int k) {
    ns_screen *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->k = k;
    s->n = p->n;
    s->similarity = malloc((size_t)(p->n * k) * sizeof(float));
    s->neighbour = malloc((size_t)(p->n * k) * sizeof(int32_t));
    s->threshold = malloc((size_t)p->padded_n * sizeof(float));
    if (!s->similarity || !s->neighbour || !s->threshold) { ns_screen_destroy(s); return NULL; }
    for (int64_t i = 0; i < p->n * k; i++) { s->similarity[i] = NO_BOUND; s->neighbour[i] = -1; }
    for (int64_t i = 0; i < p->padded_n; i++) s->threshold[i] = i < p->n ? NO_BOUND : INFINITY;
    return s;
}

void ns_screen_copy_rows(ns_screen *target, const ns_screen *source, int64_t first, int64_t last) {
    if (first >= last) return;
    const int64_t k = source->k;
    size_t count = (size_t)((last - first) * k);
    memcpy(target->similarity + first * k, source->similarity + first * k, count * sizeof(float));
    memcpy(target->neighbour + first * k, source->neighbour + first * k, count * sizeof(int32_t));
    memcpy(target->threshold + first, source->threshold + first, (size_t)(last - first) * sizeof(float));
    target->seeded |= source->seeded;
}

int64_t ns_screen_exact_count(const ns_screen *s) { return s->exact; }

// Keeps j among i's k most similar points if it belongs there. The list runs from the worst kept
// (the lowest similarity; among equal ones, the highest index) to the best, so that a tie goes to the
// lower index whatever order the pairs arrive in: the result does not depend on which worker took
// which tile.
static void keep(ns_screen *s, int64_t i, int32_t j, float similarity) {
    float *kept = s->similarity + i * s->k;
    int32_t *who = s->neighbour + i * s->k;
    if (similarity < s->threshold[i] || (similarity == s->threshold[i] && who[0] >= 0 && j > who[0])) return;
    if (s->seeded)
        for (int c = 0; c < s->k; c++) if (who[c] == j) return;
    int slot = 0;
    while (slot + 1 < s->k && (kept[slot + 1] < similarity || (kept[slot + 1] == similarity && who[slot + 1] > j))) {
        kept[slot] = kept[slot + 1];
        who[slot] = who[slot + 1];
        slot++;
    }
    kept[slot] = similarity;
    who[slot] = j;
    s->threshold[i] = kept[0];
}

void ns_screen_seed(ns_screen *s, const ns_points *p, const int32_t *previous, int64_t first, int64_t last) {
    s->seeded = 1;
    for (int64_t i = first; i < last; i++)
        for (int c = 0; c < s->k; c++) {
            int32_t j = previous[i * s->k + c];
            if (j < 0 || j >= p->n || j == i) continue;
            s->exact++;
            keep(s, i, j, exact_similarity(p, i, j));
        }
}

#if defined(__x86_64__)
// sum(u[c] * s[c]) over padded_d bytes: unsigned times signed, as VNNI multiplies.
NS_KERNEL static int32_t mixed_dot(const uint8_t *u, const int8_t *s, int64_t padded_d) {
    __m512i acc = _mm512_setzero_si512();
    int64_t c = 0;
    for (; c + 64 <= padded_d; c += 64)
        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(u + c), _mm512_loadu_si512(s + c));
    if (c < padded_d) {
        __mmask64 tail = (1ULL << (padded_d - c)) - 1;
        acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(tail, u + c), _mm512_maskz_loadu_epi8(tail, s + c));
    }
    return _mm512_reduce_add_epi32(acc);
}

// The upper bound of the similarity after the second rounding:
// r_i.r_j = q^_i.q^_j + q^_i.e^_j + e^_i.q^_j + [e^_i.e^_j + (q^_i + e^_i).f_j + f_i.(q^_j + e^_j) + f_i.f_j],
// the first three from integer dot products, the bracket bounded by norms.
NS_KERNEL static double refined_upper_bound(const ns_points *p, int64_t i, int64_t j, int32_t coarse_dot) {
    const int64_t stride = p->padded_d;
    int32_t coarse_fine = mixed_dot(p->rows + i * stride, p->fine + j * stride, stride) - p->fine_bias128[j];
    int32_t fine_coarse = mixed_dot(p->rows + j * stride, p->fine + i * stride, stride) - p->fine_bias128[i];
    double approx = (double)p->mean_square + p->offset[i] + p->offset[j] +
                    (double)coarse_dot * p->inverse_scale[i] * p->inverse_scale[j] +
                    (double)coarse_fine * p->inverse_scale[i] * p->fine_scale[j] +
                    (double)fine_coarse * p->fine_scale[i] * p->inverse_scale[j];
    double bound = (double)p->fine_norm[i] * p->fine_norm[j] + (double)p->refined_norm[i] * p->residual_norm[j] +
                   (double)p->residual_norm[i] * ((double)p->refined_norm[j] + p->residual_norm[j]);
    return approx + bound + REFINED_SLACK;
}

// Bounds the 6 x 64 similarities of one register block; refines the bound of those whose upper
// bound reaches the k-th largest similarity of either point, and computes exactly those that
// still reach it.
NS_KERNEL static void screen_block(ns_screen *s, const ns_points *p, __m512i acc[ROWS][4], int64_t row,
                                   int64_t row_end, int64_t column, int diagonal) {
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int r = 0; r < ROWS; r++) {
        int64_t i = row + r;
        if (i >= row_end) break;
        const __m512 row_base = _mm512_set1_ps(p->mean_square + p->offset[i]);
        const __m512 row_scale = _mm512_set1_ps(p->inverse_scale[i]);
        const __m512 row_norm = _mm512_set1_ps(p->quantised_norm[i]);
        const __m512 row_error = _mm512_set1_ps(p->error_norm[i]);
        for (int v = 0; v < 4; v++) {
            int64_t j = column + 16 * v;
            if (diagonal && j + 15 <= i) continue;
            __m512i dot = _mm512_sub_epi32(acc[r][v], _mm512_loadu_si512(p->bias128 + j));
            __m512 scale = _mm512_mul_ps(row_scale, _mm512_loadu_ps(p->inverse_scale + j));
            __m512 approx = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale,
                                            _mm512_add_ps(row_base, _mm512_loadu_ps(p->offset + j)));
            // |r_i.r_j - q_i.q_j / (s_i s_j)| <= |q_i||e_j| + |e_i|(|q_j| + |e_j|)
            __m512 bound = _mm512_fmadd_ps(row_norm, _mm512_loadu_ps(p->error_norm + j),
                                           _mm512_fmadd_ps(row_error, _mm512_loadu_ps(p->norm_plus_error + j),
                                                           _mm512_set1_ps(ROUNDING_SLACK)));
            __m512 upper = _mm512_add_ps(approx, bound);
            __mmask16 pass = _mm512_cmp_ps_mask(upper, _mm512_set1_ps(s->threshold[i]), _CMP_GE_OQ) |
                             _mm512_cmp_ps_mask(upper, _mm512_loadu_ps(s->threshold + j), _CMP_GE_OQ);
            if (diagonal)
                pass &= _mm512_cmpgt_epi32_mask(_mm512_add_epi32(_mm512_set1_epi32((int32_t)j), lanes),
                                                _mm512_set1_epi32((int32_t)i));
            if (!pass) continue;
            int32_t dots[16];
            _mm512_storeu_si512(dots, dot);
            while (pass) {
                int lane = __builtin_ctz(pass);
                int32_t other = (int32_t)(j + lane);
                pass &= pass - 1;
                double upper_bound = refined_upper_bound(p, i, other, dots[lane]);
                if (upper_bound < s->threshold[i] && upper_bound < s->threshold[other]) continue;
                float similarity = exact_similarity(p, i, other);
                s->exact++;
                keep(s, i, other, similarity);
                keep(s, other, (int32_t)i, similarity);
            }
        }
    }
}

NS_KERNEL static void screen_tile(ns_screen *s, const ns_points *p, int64_t row0, int64_t col0) {
    const int64_t row_end = row0 + TILE < p->n ? row0 + TILE : p->n;
    const int64_t col_end = col0 + TILE < p->padded_n ? col0 + TILE : p->padded_n;
    const int diagonal = row0 == col0;
    const int64_t stride = p->padded_d, kgroups = p->kgroups;
    for (int64_t column = col0; column < col_end; column += STRIP) {
        const int8_t *strip = p->strips + column * p->padded_d;
        for (int64_t row = row0; row < row_end; row += ROWS) {
            if (diagonal && row >= column + STRIP - 1) break;  // every pair left has j <= i
            const uint8_t *a = p->rows + row * stride;
            __m512i acc[ROWS][4];
            for (int r = 0; r < ROWS; r++)
                for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_si512();
            const int8_t *b = strip;
            for (int64_t g = 0; g < kgroups; g++, b += 4 * STRIP) {
                __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
                __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);
                for (int r = 0; r < ROWS; r++) {
                    int32_t word;
                    memcpy(&word, a + r * stride + 4 * g, 4);
                    __m512i broadcast = _mm512_set1_epi32(word);
                    acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], broadcast, b0);
                    acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], broadcast, b1);
                    acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], broadcast, b2);
                    acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], broadcast, b3);
                }
            }
            screen_block(s, p, acc, row, row_end, column, diagonal);
        }
    }
}
#endif

void ns_screen_tile(ns_screen *s, const ns_points *p, int64_t tile) {
#if defined(__x86_64__)
    // Tiles run row-major over the upper triangle of (row block, column block).
    int64_t row = 0, remaining = tile;
    while (remaining >= p->tiles_per_side - row) { remaining -= p->tiles_per_side - row; row++; }
    screen_tile(s, p, row * TILE, (row + remaining) * TILE);
#else
    (void)s; (void)p; (void)tile;
#endif
}

void ns_finish(const ns_points *p, ns_screen *const *screens, int count, int64_t first, int64_t last,
               float *distances, int32_t *neighbours) {
    const int k = screens[0]->k;
    (void)p;
    for (int64_t i = first; i < last; i++) {
        // By similarity, ties to the lower index, as `keep` ranks them (two similarities may round
        // to one distance): the same lists whichever screens the candidates come from.
        float *best = distances + i * k;
        int32_t *who = neighbours + i * k;
        for (int c = 0; c < k; c++) { best[c] = -INFINITY; who[c] = -1; }
        for (int w = 0; w < count; w++)
            for (int c = 0; c < k; c++) {
                int32_t j = screens[w]->neighbour[i * k + c];
                if (j < 0) continue;
                int seen = 0;
                for (int e = 0; e < k; e++) seen |= who[e] == j;
                if (seen) continue;
                float similarity = screens[w]->similarity[i * k + c];
                if (who[k - 1] >= 0 && (similarity < best[k - 1] || (similarity == best[k - 1] && j > who[k - 1]))) continue;
                int slot = k - 1;
                while (slot > 0 && (best[slot - 1] < similarity || (best[slot - 1] == similarity && who[slot - 1] > j))) {
                    best[slot] = best[slot - 1];
                    who[slot] = who[slot - 1];
                    slot--;
                }
                best[slot] = similarity;
                who[slot] = j;
            }
        for (int c = 0; c < k; c++)
            best[c] = who[c] < 0 ? INFINITY : fminf(fmaxf(1 - best[c], 0), 2);
    }
}
