// One pass over the data for a step of block subspace iteration, without a centred copy.
#ifndef CSUBSPACE_PRODUCT_H
#define CSUBSPACE_PRODUCT_H

#include <stdint.h>

enum { SP_BLOCK = 8 };

/// For rows [first, last) of `x` (row-major, `d` columns), with `shift = mean . v`:
///   w_i = x_i . v - shift            (the centred rows times the d x 8 basis `v`, row-major)
///   z  += x_i^T w_i                   (accumulated in double, d x 8)
///   w_sum += w_i                      (so that the caller can centre z: z - mean w_sum^T)
/// `w` may be NULL. Reads each row once; `v` and the float partial sums stay in L1.
void sp_centred_product(const float *x, int64_t first, int64_t last, int64_t d, const float *v, const float *shift,
                        double *z, double *w_sum, float *scratch);

/// Floats of scratch space `sp_centred_product` needs for `d` columns.
int64_t sp_scratch_count(int64_t d);

#endif
