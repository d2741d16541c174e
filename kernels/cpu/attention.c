/* Multi-head attention on the CPU, a block of query rows at a time: for each (batch, head)
 * and block, S = scale * Q_blk K^T goes into one scratch block, is softmaxed row by row
 * (exactly, over all keys at once), and O_blk = S V is written straight into out. The
 * scratch block holds at most SCORE_BUDGET floats (or one row of scores when a single
 * row is larger), so a 4096 x 4096 score matrix is never built. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

/* Floats of scores per block (2 MiB): 128 query rows against 4096 keys. */
#define SCORE_BUDGET ((int64_t)1 << 19)

/* One head's view of a [B, L, H*D] operand: row stride and batch stride in elements. */
typedef struct head_io {
    const float *base;
    int64_t rs, bs;
} head_io_t;

/* Softmax of each of `rows` rows of n scores, in place (max subtracted first). */
static void softmax_rows(float *s, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) {
        float *row = s + r * n, m = -INFINITY;
        for (int64_t j = 0; j < n; j++)
            m = row[j] > m ? row[j] : m;
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) {
            row[j] = (float)exp((double)(row[j] - m));
            sum += row[j];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++)
            row[j] *= inv;
    }
}

/* A q/k/v operand whose last dimension has unit stride (copied dense if not). */
static int as_rows(const kiln_tensor_t *t, kiln_tensor_t **hold, head_io_t *io)
{
    const kiln_tensor_t *f;
    int rc = kiln__cpu_as_f32(t, 0, hold, &f);
    if (rc == 0 && f->strides[2] != 1 && f->shape[2] != 1) {
        kiln_tensor_release(*hold);
        rc = kiln__cpu_as_f32(t, 1, hold, &f);
    }
    if (rc == 0) {
        io->base = f->data;
        io->rs = f->strides[1];
        io->bs = f->strides[0];
    }
    return rc;
}

int kiln__cpu_attention(kiln_tensor_t *out, const kiln_tensor_t *q, const kiln_tensor_t *k,
                        const kiln_tensor_t *v, int heads, float scale)
{
    int64_t nb = q->shape[0], lq = q->shape[1], lk = k->shape[1];
    int64_t d = q->shape[2] / heads, dv = v->shape[2] / heads;
    if (out->numel == 0)
        return 0;
    int64_t bq = SCORE_BUDGET / lk;
    bq = bq < 1 ? 1 : (bq > lq ? lq : bq);
    kiln_tensor_t *hq = NULL, *hk = NULL, *hv = NULL;
    head_io_t iq, ik, iv;
    float *s = kiln__cpu_scratch_alloc((size_t)(bq * lk) * sizeof(float)); // [bq, LK]
    int rc = s ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = as_rows(q, &hq, &iq);
    if (rc == 0)
        rc = as_rows(k, &hk, &ik);
    if (rc == 0)
        rc = as_rows(v, &hv, &iv);
    for (int64_t b = 0; rc == 0 && b < nb; b++) {
        for (int64_t h = 0; h < heads; h++) {
            const float *qh = iq.base + b * iq.bs + h * d;  // [LQ, D], row stride rs
            const float *kh = ik.base + b * ik.bs + h * d;  // [LK, D]
            const float *vh = iv.base + b * iv.bs + h * dv; // [LK, DV]
            float *oh = (float *)out->data + (b * lq) * heads * dv + h * dv; // [LQ, DV]
            for (int64_t i0 = 0; i0 < lq; i0 += bq) {
                int64_t rows = i0 + bq <= lq ? bq : lq - i0;
                kiln__cpu_gemm(0, 1, rows, lk, d, scale, qh + i0 * iq.rs, iq.rs, kh, ik.rs, 0.0f, s,
                               lk); // [rows, LK]
                softmax_rows(s, rows, lk);
                kiln__cpu_gemm(0, 0, rows, dv, lk, 1.0f, s, lk, vh, iv.rs, 0.0f,
                               oh + i0 * heads * dv, heads * dv); // [rows, DV]
            }
        }
    }
    kiln__cpu_scratch_free(s);
    kiln_tensor_release(hq);
    kiln_tensor_release(hk);
    kiln_tensor_release(hv);
    return rc;
}
