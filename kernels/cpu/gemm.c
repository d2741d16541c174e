/* The CPU GEMM every product op ends in: cblas_sgemm when the build found BLAS (OpenBLAS
 * threads it over the machine's cores on its own), else plain float loops ordered so the
 * innermost loop runs along contiguous memory. */
#include <limits.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

#ifdef KILN_HAVE_BLAS
#include <cblas.h>
#endif

/* C = beta * C, with beta == 0 clearing (so NaN or garbage in C does not survive). */
static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f)
            memset(row, 0, (size_t)n * sizeof *row);
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++)
                row[j] *= beta;
    }
}

/* C += alpha * A B for B stored [K, N]: rows of C accumulate scaled rows of B. */
static void loops_nn(int trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *crow = c + i * ldc;
        for (int64_t p = 0; p < k; p++) {
            float av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            const float *brow = b + p * ldb;
            for (int64_t j = 0; j < n; j++)
                crow[j] += av * brow[j];
        }
    }
}

/* C += alpha * A B^T for B stored [N, K]: each entry is a dot product of two rows. */
static void loops_nt(int trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            const float *brow = b + j * ldb;
            float acc = 0.0f;
            if (trans_a)
                for (int64_t p = 0; p < k; p++)
                    acc += a[p * lda + i] * brow[p];
            else
                for (int64_t p = 0; p < k; p++)
                    acc += a[i * lda + p] * brow[p];
            c[i * ldc + j] += alpha * acc;
        }
    }
}

#ifdef KILN_HAVE_BLAS
/* cblas takes int sizes; anything larger goes to the loops (never the case for models). */
static int fits_int(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc)
{
    return m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
           ldc <= INT_MAX;
}
#endif

void kiln__cpu_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef KILN_HAVE_BLAS
    /* BLAS rejects leading dimensions below the row width, which size-1 views can have
     * (their stride is arbitrary); those and empty K take the loops. */
    int64_t lda_min = trans_a ? m : k, ldb_min = trans_b ? k : n;
    if (k > 0 && lda >= lda_min && ldb >= ldb_min && ldc >= n && fits_int(m, n, k, lda, ldb, ldc)) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                    b, (int)ldb, beta, c, (int)ldc);
        return;
    }
#endif
    scale_c(m, n, beta, c, ldc);
    if (trans_b)
        loops_nt(trans_a, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else
        loops_nn(trans_a, m, n, k, alpha, a, lda, b, ldb, c, ldc);
}
