// The UMAP epoch's inner loop, eight samples to an AVX2 vector (Sources/Projection/UMAP.swift).
#ifndef CLAYOUT_KERNEL_H
#define CLAYOUT_KERNEL_H

#include <stdint.h>

enum { LK_LANES = 8 };

/// 1 when this CPU has AVX2 and FMA (the kernel runs only there), else 0.
int lk_is_supported(void);

/// Moves eight samples, one to a lane, from (x[l], y[l]) through their moves: lane l's are
/// `moves[start[l] ..< start[l] + count[l]]`, each the index of a sample to move towards (>= 0)
/// or `~index` of one to move away from; `rows` is the largest count. Positions of the
/// others are read from `other_x`, `other_y` (the epoch's start). The gradients are UMAP's with
/// the curve `a`, `b`: towards, `2 rate clip(-2ab d^(2(b-1)) / (1 + a d^2b) dx)`; away,
/// `rate clip(2b / ((0.001 + d^2)(1 + a d^2b)) dx)`; nothing at distance 0. Powers come from
/// short polynomials of log2 and exp2 (within a few millionths).
void lk_move_eight(const int32_t *moves, const int32_t *start, const int32_t *count, int64_t rows, float *x,
                   float *y, const float *other_x, const float *other_y, float a, float b, float rate, float clip);

#endif
