// Exact cosine k-nearest-neighbour search that screens pairs with 8-bit dot products.
//
// Every row is normalised, the mean unit vector m is taken out (u_i = m + r_i), and r_i is
// rounded to int8 with its own scale. The int8 products bound each similarity within an
// interval proved from the rounding errors (Cauchy-Schwarz on the error vectors). A pair whose
// upper bound reaches the k-th largest exact similarity found so far for either point gets a
// narrower interval from a second rounding of what the first left, and is computed exactly
// only if it still reaches. The int8 products run on AVX-512 VNNI, four times the multiply
// rate of float32.
#ifndef CNEIGHBOUR_SEARCH_H
#define CNEIGHBOUR_SEARCH_H

#include <stdint.h>

typedef struct ns_points ns_points;
typedef struct ns_screen ns_screen;

/// 1 when this CPU can run the screening kernels (AVX-512 with VNNI), else 0.
int ns_is_supported(void);

/// Largest dimension the int32 accumulators take without overflow.
int64_t ns_max_dimension(void);

/// Prepares `n` rows of `d` floats (row-major): lengths and the mean unit vector. `x` and
/// `group` (equal rows share a group >= 0, others -1; may be NULL) must outlive the result.
/// NULL when memory runs out.
ns_points *ns_points_create(const float *x, const int64_t *group, int64_t n, int64_t d);
/// Rounds rows [first, last) to int8; disjoint ranges may run on different threads.
/// Returns 0, or -1 when memory runs out (the points must not be searched then).
int ns_points_quantise(ns_points *points, int64_t first, int64_t last);
void ns_points_destroy(ns_points *points);

/// Square tiles of the upper triangle of the pair matrix; each pair lies in exactly one.
int64_t ns_tile_count(const ns_points *points);

/// One worker's k most similar points so far, for every point. NULL when memory runs out.
/// A screen belongs to one thread at a time: every call below writes its fields.
ns_screen *ns_screen_create(const ns_points *points, int k);
void ns_screen_destroy(ns_screen *screen);
/// Starts points [first, last) from the exact similarities to `previous[i * k ...]` (for example
/// the neighbours at the last checkpoint; -1 entries are skipped). Only raises thresholds, so the
/// result stays exact however good the guess.
void ns_screen_seed(ns_screen *screen, const ns_points *points, const int32_t *previous, int64_t first, int64_t last);
/// Copies points [first, last) of another worker's lists (after seeding), but not its count of exact pairs.
void ns_screen_copy_rows(ns_screen *target, const ns_screen *source, int64_t first, int64_t last);
/// Screens every pair of tile `tile`.
void ns_screen_tile(ns_screen *screen, const ns_points *points, int64_t tile);
/// Exact similarities computed by this worker so far.
int64_t ns_screen_exact_count(const ns_screen *screen);

/// For points [first, last): merges the workers' results and writes each point's k smallest
/// cosine distances (clipped to [0, 2]; 0 within a duplicate group), ascending, to
/// `distances[i * k ...]` and the points they belong to to `neighbours[i * k ...]`.
void ns_finish(const ns_points *points, ns_screen *const *screens, int count, int64_t first, int64_t last,
               float *distances, int32_t *neighbours);

// The kernels of the leading-component search (Sources/Projection/LeadingComponentSearch.swift),
// AVX2 with FMA where the CPU has them.

/// Components per point in the first bound, and the further ones the second bound adds.
enum { CB_COMPONENTS = 16, CB_FURTHER = 32 };

/// For each slot t in [first, last): the lower bound on the squared distance between the points
/// in `slot` and t, `sum_c (x[c][t] - x[c][slot])^2 + gap^2`, into `out[t - first]`.
/// Component c of slot t is `coordinates[c * stride + t]`; `gap` is the distance between the
/// residual intervals `[residual_low, residual_high]` of the two slots. Reads up to seven slots
/// past `last` (padding), and writes `out` up to the next multiple of eight.
void cb_bounds(const float *coordinates, int64_t stride, const float *residual_low, const float *residual_high,
               int64_t slot, int64_t first, int64_t last, float *out);
/// The slots t in [first, last) whose bound (as `cb_bounds`) is at most `threshold`, ascending,
/// into `out`, and their bounds without the residual term into `partial`; returns how many. Reads
/// up to seven slots past `last` (padding).
int64_t cb_survivors(const float *coordinates, int64_t stride, const float *residual_low, const float *residual_high,
                     int64_t slot, int64_t first, int64_t last, float threshold, int32_t *out, float *partial);
/// Of `count` survivors of `cb_survivors` (`candidates`, `partial`), those whose second bound,
/// `partial + sum_c (f[t][c] - f[slot][c])^2 + gap^2`, is at most `threshold`, into `out` (may be
/// `candidates`); returns how many. `further` holds CB_FURTHER components a slot, row by row;
/// `gap` is between the intervals of the norms left after them.
int64_t cb_refine(const float *further, const float *residual_low, const float *residual_high, int64_t slot,
                  const int32_t *candidates, const float *partial, int64_t count, float threshold, int32_t *out);
/// The float dot product of two rows of `d` values.
float cb_dot(const float *a, const float *b, int64_t d);
/// The same with the x86-64 baseline loops only, for tests.
void cb_bounds_portable(const float *coordinates, int64_t stride, const float *residual_low,
                        const float *residual_high, int64_t slot, int64_t first, int64_t last, float *out);
float cb_dot_portable(const float *a, const float *b, int64_t d);
int64_t cb_survivors_portable(const float *coordinates, int64_t stride, const float *residual_low,
                              const float *residual_high, int64_t slot, int64_t first, int64_t last, float threshold,
                              int32_t *out, float *partial);

#endif
