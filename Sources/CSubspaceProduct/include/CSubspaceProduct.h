// One pass over the data for a step of block subspace iteration, without a centred copy.
#ifndef CSUBSPACE_PRODUCT_H
#define CSUBSPACE_PRODUCT_H

#include <stdint.h>

enum { SP_BLOCK = 8 };

/// For rows [first, last) of `x` (row-major, `d` columns), centred one at a time (c_i = x_i - mean):
///   z += c_i^T (c_i . v)      (v: the d x 8 basis, row-major; z: d x 8, accumulated in double)
/// so that over all rows z = Xc^T Xc v. Reads each row once; the basis and the float partial
/// sums stay in L1. `scratch` holds `sp_scratch_count(d)` floats.
void sp_centred_product(const float *x, int64_t first, int64_t last, int64_t d, const float *v, const float *mean,
                        double *z, float *scratch);

/// The same with the x86-64 baseline loops only (what CPUs without AVX2 and FMA run), for tests.
void sp_centred_product_portable(const float *x, int64_t first, int64_t last, int64_t d, const float *v,
                                 const float *mean, double *z, float *scratch);

/// Floats of scratch space `sp_centred_product` needs for `d` columns.
int64_t sp_scratch_count(int64_t d);

#endif
