// OpenBLAS's CBLAS interface and LAPACKE (OpenBLAS is built without LAPACKE on Debian).
#include <cblas.h>
#include <lapacke.h>
