/* Matrix products on the CPU: batched broadcasting matmul and F.linear, both mapped onto
 * kiln__cpu_gemm without copies whenever the operands' strides already describe a
 * row-major or column-major matrix (a transposed view costs nothing). */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

/* How a strided [rows, cols] matrix reads as a GEMM operand: *trans = 0 when it is
 * row-major with row stride *ld, 1 when its transpose is (column-major, *ld the column
 * stride). Returns 0 when neither holds and the matrix needs a dense copy. A size-1
 * dimension's stride is irrelevant, so it never forces a copy. */
static int mat_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *trans, int64_t *ld)
{
    if (cs == 1 || cols == 1) {
        *trans = 0;
        *ld = rows == 1 ? cols : rs;
        return 1;
    }
    if (rs == 1 || rows == 1) {
        *trans = 1;
        *ld = cs;
        return 1;
    }
    return 0;
}

/* The matrix layout of t's last two dimensions; when they have none, *hold receives a
 * dense copy and *res points at it. */
static int as_matrix(const kiln_tensor_t *t, kiln_tensor_t **hold, const kiln_tensor_t **res,
                     int *trans, int64_t *ld)
{
    int rc = kiln__cpu_as_f32(t, 0, hold, res);
    if (rc < 0)
        return rc;
    int nd = (*res)->ndim;
    const int64_t *sh = (*res)->shape, *st = (*res)->strides;
    if (mat_layout(sh[nd - 2], sh[nd - 1], st[nd - 2], st[nd - 1], trans, ld))
        return 0;
    kiln_tensor_t *dense = NULL;
    int64_t cols = sh[nd - 1];
    rc = kiln_tensor_contiguous(*res, &dense);
    kiln_tensor_release(*hold); /* a converted copy, if any; sh dies with it */
    *hold = dense;
    *res = dense;
    *trans = 0;
    *ld = cols;
    return rc;
}

/* Strides of t's batch dimensions (all but the last two) broadcast to the nb leading
 * dimensions of the output. */
static void batch_strides(const kiln_tensor_t *t, int nb, int64_t *st)
{
    int tb = t->ndim - 2, lead = nb - tb;
    for (int i = 0; i < nb; i++) {
        int j = i - lead;
        st[i] = (j < 0 || t->shape[j] == 1) ? 0 : t->strides[j];
    }
}

int kiln__cpu_matmul(kiln_tensor_t *out, const kiln_tensor_t *a, const kiln_tensor_t *b,
                     int transpose_b)
{
    kiln_tensor_t *ha = NULL, *hb = NULL;
    const kiln_tensor_t *fa = NULL, *fb = NULL;
    int ta = 0, tb = 0;
    int64_t lda = 0, ldb = 0;
    int rc = as_matrix(a, &ha, &fa, &ta, &lda);
    if (rc == 0)
        rc = as_matrix(b, &hb, &fb, &tb, &ldb);
    if (rc == 0) {
        int nb = out->ndim - 2;
        int64_t m = out->shape[nb], n = out->shape[nb + 1], k = fa->shape[fa->ndim - 1];
        int64_t sa[KILN_TENSOR_MAX_DIMS], sb[KILN_TENSOR_MAX_DIMS], idx[KILN_TENSOR_MAX_DIMS];
        batch_strides(fa, nb, sa);
        batch_strides(fb, nb, sb);
        int64_t batches = 1;
        for (int i = 0; i < nb; i++) {
            batches *= out->shape[i];
            idx[i] = 0;
        }
        float *c = out->data;
        for (int64_t bi = 0; bi < batches; bi++) { // out[bi] = a[bi] @ op(b[bi])
            int64_t oa = 0, ob = 0;
            for (int i = 0; i < nb; i++) {
                oa += idx[i] * sa[i];
                ob += idx[i] * sb[i];
            }
            kiln__cpu_gemm(ta, tb ^ (transpose_b != 0), m, n, k, 1.0f, (const float *)fa->data + oa,
                           lda, (const float *)fb->data + ob, ldb, 0.0f, c + bi * m * n, n);
            for (int i = nb - 1; i >= 0 && ++idx[i] == out->shape[i]; i--)
                idx[i] = 0;
        }
    }
    kiln_tensor_release(ha);
    kiln_tensor_release(hb);
    return rc;
}

/* 1 when t's leading dimensions fold into one of uniform row stride *ld with unit
 * stride along the last dimension, so t reads as a [rows, last] row-major matrix. */
static int rows_fold(const kiln_tensor_t *t, int64_t *ld)
{
    int last = t->ndim - 1;
    if (t->strides[last] != 1 && t->shape[last] != 1)
        return 0;
    int64_t stride = t->shape[last]; /* any row stride >= width works for 1 row */
    int seen = 0;
    for (int i = last - 1; i >= 0; i--) {
        if (t->shape[i] == 1)
            continue;
        if (!seen) {
            stride = t->strides[i];
            seen = 1;
        } else if (t->strides[i] != t->strides[i + 1] * t->shape[i + 1]) {
            return 0;
        }
    }
    *ld = stride;
    return 1;
}

int kiln__cpu_linear(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                     const kiln_tensor_t *b)
{
    kiln_tensor_t *hx = NULL, *hw = NULL, *hb = NULL;
    const kiln_tensor_t *fx = NULL, *fw = NULL, *fb = NULL;
    int tw = 0;
    int64_t ldx = 0, ldw = 0;
    int rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0 && !rows_fold(fx, &ldx)) {
        kiln_tensor_release(hx);
        rc = kiln__cpu_as_f32(x, 1, &hx, &fx);
        ldx = x->shape[x->ndim - 1];
    }
    if (rc == 0)
        rc = as_matrix(w, &hw, &fw, &tw, &ldw);
    if (rc == 0 && b)
        rc = kiln__cpu_as_f32(b, 1, &hb, &fb);
    if (rc == 0) {
        int64_t in = fw->shape[1], nout = fw->shape[0];
        int64_t m = out->numel / (nout ? nout : 1); // x as [M, IN], out as [M, OUT]
        float *o = out->data;
        if (fb)
            for (int64_t i = 0; i < m; i++)
                memcpy(o + i * nout, fb->data, (size_t)nout * sizeof(float));
        /* W is stored [OUT, IN]; x W^T wants it transposed, unless the view already is. */
        kiln__cpu_gemm(0, !tw, m, nout, in, 1.0f, fx->data, ldx, fw->data, ldw, fb ? 1.0f : 0.0f, o,
                       nout);
    }
    kiln_tensor_release(hx);
    kiln_tensor_release(hw);
    kiln_tensor_release(hb);
    return rc;
}
