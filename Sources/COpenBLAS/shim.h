#include <cblas.h>

// LAPACK's symmetric eigensolver (OpenBLAS exports LAPACK; Debian ships no lapack.h beside cblas.h).
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);
