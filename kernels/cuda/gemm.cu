/* Matrix products on CUDA through cuBLASLt: a row-major GEMM wrapper (kiln__cudak_gemm)
 * with a per-stream cache of matmul descriptors and heuristic algorithm choices, and on it
 * torch.matmul (broadcast batches as one strided-batched call when the strides allow,
 * else one call per batch) and F.linear. F16 x F16 and BF16 x BF16 run on tensor cores
 * with float32 accumulation; every other dtype mix runs in float32 (TF32 only when
 * KILN_CUDA_TF32=1). Biases go into cuBLASLt's epilogue where it takes them, else are
 * broadcast into the output first and accumulated (beta 1); a fused addend (linear_add)
 * is the GEMM's C operand. */
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

struct gemm_key {
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, batch;
    int ta, tb, dt_ab, dt_c, tf32, align;
    int bias; /* 1: bias epilogue (a bias of dtype dt_c per output column) */
};

struct gemm_entry {
    gemm_key key;
    bool used;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

#define GEMM_CACHE_SLOTS 1024

struct gemm_cache {
    gemm_entry e[GEMM_CACHE_SLOTS];
    int count;
};

static cudaDataType_t cuda_dt(int dt)
{
    return dt == KILN_DTYPE_F16 ? CUDA_R_16F : (dt == KILN_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F);
}

static void entry_destroy(gemm_entry *e)
{
    cublasLtMatrixLayoutDestroy(e->la);
    cublasLtMatrixLayoutDestroy(e->lb);
    cublasLtMatrixLayoutDestroy(e->lc);
    cublasLtMatmulDescDestroy(e->op);
    e->used = false;
}

static uint64_t key_hash(const gemm_key &k)
{
    const unsigned char *p = (const unsigned char *)&k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof k; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static cublasLtMatrixLayout_t layout(int dt, int64_t rows, int64_t cols, int64_t ld,
                                     int64_t batch, int64_t stride, bool *ok)
{
    cublasLtMatrixLayout_t l = NULL;
    if (ld < rows)
        ld = rows; /* only possible for a single column, where ld is never used */
    if (cublasLtMatrixLayoutCreate(&l, cuda_dt(dt), (uint64_t)rows, (uint64_t)cols, ld) !=
        CUBLAS_STATUS_SUCCESS) {
        *ok = false;
        return NULL;
    }
    if (batch > 1) {
        int32_t bc = (int32_t)batch;
        *ok &= cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc,
                                                sizeof bc) == CUBLAS_STATUS_SUCCESS;
        *ok &= cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &stride, sizeof stride) == CUBLAS_STATUS_SUCCESS;
    }
    return l;
}

/* Builds the descriptors of key k and asks cuBLASLt's heuristic for an algorithm. The
 * row-major product C = A B is issued as the column-major C^T = B^T A^T. */
static bool entry_build(kiln__cuda_exec_t *x, const gemm_key &k, gemm_entry *e)
{
    bool ok = true;
    cublasComputeType_t ct = k.dt_ab == KILN_DTYPE_F32 && k.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                : CUBLAS_COMPUTE_32F;
    if (cublasLtMatmulDescCreate(&e->op, ct, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS)
        return false;
    cublasOperation_t opa = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N; /* on B's storage */
    cublasOperation_t opb = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N; /* on A's storage */
    ok &= cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa) ==
          CUBLAS_STATUS_SUCCESS;
    ok &= cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb) ==
          CUBLAS_STATUS_SUCCESS;
    if (k.bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bdt = cuda_dt(k.dt_c);
        ok &= cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                             sizeof epi) == CUBLAS_STATUS_SUCCESS;
        ok &= cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bdt,
                                             sizeof bdt) == CUBLAS_STATUS_SUCCESS;
    }
    e->la = layout(k.dt_ab, k.tb ? k.k : k.n, k.tb ? k.n : k.k, k.ldb, k.batch, k.sb, &ok);
    e->lb = layout(k.dt_ab, k.ta ? k.m : k.k, k.ta ? k.k : k.m, k.lda, k.batch, k.sa, &ok);
    e->lc = layout(k.dt_c, k.n, k.m, k.ldc, k.batch, k.sc, &ok);
    cublasLtMatmulPreference_t pref = NULL;
    ok &= cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        uint64_t ws = x->workspace_bytes;
        uint32_t al = (uint32_t)k.align;
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                             sizeof ws);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                             &al, sizeof al);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                             &al, sizeof al);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                             &al, sizeof al);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                             &al, sizeof al);
        cublasLtMatmulHeuristicResult_t res = {};
        int found = 0;
        ok = cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)x->lt, e->op, e->la, e->lb, e->lc,
                                            e->lc, pref, 1, &res, &found) ==
                 CUBLAS_STATUS_SUCCESS &&
             found > 0;
        if (ok)
            e->algo = res.algo;
    }
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    e->key = k;
    e->used = true;
    if (!ok)
        entry_destroy(e);
    return ok;
}

/* The cached entry for k, built on first use; NULL when cuBLASLt has no algorithm. */
static gemm_entry *entry_get(kiln__cuda_exec_t *x, const gemm_key &k)
{
    gemm_cache *c = (gemm_cache *)*x->gemm_cache;
    if (!c) {
        c = (gemm_cache *)calloc(1, sizeof *c);
        if (!c)
            return NULL;
        *x->gemm_cache = c;
    }
    if (c->count >= GEMM_CACHE_SLOTS / 2) { /* keep probes short: start over */
        for (int i = 0; i < GEMM_CACHE_SLOTS; i++)
            if (c->e[i].used)
                entry_destroy(&c->e[i]);
        c->count = 0;
    }
    uint64_t h = key_hash(k);
    for (int p = 0; p < GEMM_CACHE_SLOTS; p++) {
        gemm_entry *e = &c->e[(h + (uint64_t)p) % GEMM_CACHE_SLOTS];
        if (e->used && memcmp(&e->key, &k, sizeof k) == 0)
            return e;
        if (!e->used) {
            if (!entry_build(x, k, e))
                return NULL;
            c->count++;
            return e;
        }
    }
    return NULL;
}

static int ptr_align(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    return (v & 15u) == 0 ? 16 : (v & 7u) == 0 ? 8 : (v & 3u) == 0 ? 4 : 2;
}

/* bias: NULL, or a dense vector of n elements of dtype dt_c added to every row of C
 * through cuBLASLt's epilogue (KILN_EUNSUPPORTED when it has no algorithm for that). */
static int gemm_rm(kiln__cuda_exec_t *x, int ta, int tb, int64_t m, int64_t n, int64_t k,
                   const void *a, int64_t lda, int64_t sa, const void *b, int64_t ldb,
                   int64_t sb, int dt_ab, void *c, int64_t ldc, int64_t sc, int dt_c, float beta,
                   int64_t batch, const void *bias = NULL, const void *cin = NULL)
{
    if (m == 0 || n == 0 || batch == 0)
        return 0;
    size_t es = dtype_size(dt_c);
    if (k == 0 && bias)
        return KILN_EUNSUPPORTED; /* the caller broadcasts the bias itself */
    if (k == 0) { /* an empty sum: C = beta C */
        for (int64_t i = 0; beta == 0.0f && i < batch; i++)
            if (cudaMemset2DAsync((char *)c + i * sc * es, (size_t)ldc * es, 0, (size_t)n * es,
                                  (size_t)m, stream_of(x)) != cudaSuccess)
                return KILN_EDEVICE;
        return 0;
    }
    gemm_key key;
    memset(&key, 0, sizeof key); /* the key is hashed and compared as bytes */
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.sa = sa, key.sb = sb, key.sc = sc, key.batch = batch;
    key.ta = ta, key.tb = tb, key.dt_ab = dt_ab, key.dt_c = dt_c, key.tf32 = x->tf32;
    cin = cin ? cin : c; /* C (read when beta is 1) may live apart from D, in D's layout */
    int al = ptr_align(a), bl = ptr_align(b), cl = ptr_align(c), il = ptr_align(cin);
    cl = il < cl ? il : cl;
    key.align = al < bl ? (al < cl ? al : cl) : (bl < cl ? bl : cl);
    key.bias = bias != NULL;
    gemm_entry *e = entry_get(x, key);
    if (!e)
        return KILN_EUNSUPPORTED;
    if (bias && cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                               sizeof bias) != CUBLAS_STATUS_SUCCESS)
        return KILN_EUNSUPPORTED;
    float alpha = 1.0f;
    cublasStatus_t st = cublasLtMatmul((cublasLtHandle_t)x->lt, e->op, &alpha, b, e->la, a, e->lb,
                                       &beta, cin, e->lc, c, e->lc, &e->algo, x->workspace,
                                       x->workspace_bytes, stream_of(x));
    return st == CUBLAS_STATUS_SUCCESS ? 0 : KILN_EDEVICE;
}

__global__ void bias_fill_k(void *out, int dt_out, int64_t total, int64_t c, int64_t inner,
                            const void *bias, int bdt, int64_t bs)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        st_f(out, dt_out, i, ld_f(bias, bdt, ((i / inner) % c) * bs));
}

int bias_fill(kiln__cuda_exec_t *x, void *out, int dt_out, int64_t outer, int64_t c,
              int64_t inner, const kiln__cuda_desc_t *bias)
{
    int64_t total = outer * c * inner;
    if (total == 0)
        return 0;
    bias_fill_k<<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
        out, dt_out, total, c, inner, bias->ptr, bias->dtype, bias->strides[0]);
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* The GEMM dtype for operands of dtypes da and db: F16 or BF16 when both are, else F32. */
static int compute_dtype(int da, int db)
{
    return da == db && (da == KILN_DTYPE_F16 || da == KILN_DTYPE_BF16) ? da : KILN_DTYPE_F32;
}

/* How the last two dimensions of d read as a GEMM operand: 0 = row-major (ld the row
 * stride), 1 = column-major; false when neither (a dense copy is needed). */
static bool mat_layout(const kiln__cuda_desc_t *d, int *trans, int64_t *ld)
{
    int nd = d->ndim;
    int64_t rows = d->shape[nd - 2], cols = d->shape[nd - 1];
    int64_t rs = d->strides[nd - 2], cs = d->strides[nd - 1];
    if (cs == 1 || cols == 1) {
        *trans = 0;
        *ld = rows == 1 ? cols : rs;
        return *ld >= cols;
    }
    if (rs == 1 || rows == 1) {
        *trans = 1;
        *ld = cs;
        return *ld >= rows;
    }
    return false;
}

/* Operand d in dtype dt with a usable matrix layout (a dense scratch copy if needed). */
static int as_operand(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *d, int dt,
                      kiln__cuda_desc_t *res, int *trans, int64_t *ld)
{
    *res = *d;
    if (d->dtype == dt && mat_layout(d, trans, ld))
        return 0;
    int rc = dense_as(x, d, dt, res);
    *trans = 0;
    *ld = d->shape[d->ndim - 1];
    return rc;
}

/* The output buffer: out itself when cuBLASLt can write its dtype, else F32 scratch
 * (converted into out by finish_out). */
static int prepare_out(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out, int dt,
                       kiln__cuda_desc_t *c)
{
    *c = *out;
    if (out->dtype == KILN_DTYPE_F32 || out->dtype == dt)
        return 0;
    c->dtype = KILN_DTYPE_F32;
    c->ptr = kiln__cuda_scratch(x, (size_t)out->numel * sizeof(float));
    return c->ptr ? 0 : x->scratch_rc;
}

static int finish_out(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *c)
{
    return c->ptr == out->ptr ? 0 : kiln__cudak_copy(x, out, c);
}

/* 1 when d's batch offsets (broadcast to out's batch dims) are bi * stride for one stride. */
static bool uniform_batch(const int64_t *shape, const int64_t *st, int nb, int64_t *stride)
{
    int64_t s = 0, span = 1;
    bool have = false;
    for (int i = nb - 1; i >= 0; i--) {
        if (shape[i] == 1)
            continue;
        if (!have) {
            if (st[i] % span)
                return false;
            s = st[i] / span;
            have = true;
        }
        if (st[i] != s * span)
            return false;
        span *= shape[i];
    }
    *stride = s;
    return true;
}

/* Strides of d's batch dimensions broadcast to out's nb leading dimensions. */
static void batch_strides(const kiln__cuda_desc_t *d, int nb, int64_t *st)
{
    int tb = d->ndim - 2, lead = nb - tb;
    for (int i = 0; i < nb; i++) {
        int j = i - lead;
        st[i] = (j < 0 || d->shape[j] == 1) ? 0 : d->strides[j];
    }
}

static int matmul_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b, int transpose_b)
{
    int dt = compute_dtype(a->dtype, b->dtype), ta, tb;
    int64_t lda, ldb;
    kiln__cuda_desc_t fa, fb, c;
    int rc = as_operand(x, a, dt, &fa, &ta, &lda);
    if (rc == 0)
        rc = as_operand(x, b, dt, &fb, &tb, &ldb);
    if (rc == 0)
        rc = prepare_out(x, out, dt, &c);
    if (rc < 0 || out->numel == 0)
        return rc;
    int nb = out->ndim - 2;
    int64_t m = out->shape[nb], n = out->shape[nb + 1], k = fa.shape[fa.ndim - 1];
    int64_t sa[KILN_TENSOR_MAX_DIMS], sb[KILN_TENSOR_MAX_DIMS], batches = 1, ua, ub;
    batch_strides(&fa, nb, sa);
    batch_strides(&fb, nb, sb);
    for (int i = 0; i < nb; i++)
        batches *= out->shape[i];
    tb ^= transpose_b != 0;
    size_t ea = dtype_size(dt), ec = dtype_size(c.dtype);
    if (uniform_batch(out->shape, sa, nb, &ua) && uniform_batch(out->shape, sb, nb, &ub)) {
        rc = gemm_rm(x, ta, tb, m, n, k, fa.ptr, lda, ua, fb.ptr, ldb, ub, dt, c.ptr, n, m * n,
                     c.dtype, 0.0f, batches);
    } else {
        int64_t idx[KILN_TENSOR_MAX_DIMS] = {0};
        for (int64_t bi = 0; rc == 0 && bi < batches; bi++) { // out[bi] = a[bi] @ op(b[bi])
            int64_t oa = 0, ob = 0;
            for (int i = 0; i < nb; i++) {
                oa += idx[i] * sa[i];
                ob += idx[i] * sb[i];
            }
            rc = gemm_rm(x, ta, tb, m, n, k, (const char *)fa.ptr + oa * ea, lda, 0,
                         (const char *)fb.ptr + ob * ea, ldb, 0, dt,
                         (char *)c.ptr + bi * m * n * ec, n, 0, c.dtype, 0.0f, 1);
            for (int i = nb - 1; i >= 0 && ++idx[i] == out->shape[i]; i--)
                idx[i] = 0;
        }
    }
    return rc == 0 ? finish_out(x, out, &c) : rc;
}

/* 1 when d's leading dimensions fold into rows of uniform stride *ld with unit stride
 * along the last dimension (d reads as a [rows, last] row-major matrix). */
static bool rows_fold(const kiln__cuda_desc_t *d, int64_t *ld)
{
    int last = d->ndim - 1;
    if (d->strides[last] != 1 && d->shape[last] != 1)
        return false;
    int64_t stride = d->shape[last];
    bool seen = false;
    for (int i = last - 1; i >= 0; i--) {
        if (d->shape[i] == 1)
            continue;
        if (!seen) {
            stride = d->strides[i];
            seen = true;
        } else if (d->strides[i] != d->strides[i + 1] * d->shape[i + 1]) {
            return false;
        }
    }
    *ld = stride;
    return stride >= d->shape[last];
}

static int linear_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                      const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add)
{
    int64_t nin = w->shape[1], nout = w->shape[0];
    int64_t m = nout ? out->numel / nout : 0;
    int dt = compute_dtype(in->dtype, w->dtype), tw;
    int64_t ldx = nin, ldw;
    kiln__cuda_desc_t fx = *in, fw, c;
    int rc = 0;
    if (in->dtype != dt || !rows_fold(in, &ldx)) {
        rc = dense_as(x, in, dt, &fx);
        ldx = nin;
    }
    if (rc == 0)
        rc = as_operand(x, w, dt, &fw, &tw, &ldw);
    if (rc == 0)
        rc = prepare_out(x, out, dt, &c);
    if (rc < 0 || out->numel == 0)
        return rc;
    /* W is stored [OUT, IN]: x W^T wants it transposed, unless the view already is. A bias
     * of out's dtype goes into cuBLASLt's epilogue, and an addend laid out like out is its
     * C operand (D = x W^T + C + bias in one kernel). Otherwise out starts as the bias plus
     * the addend and the product accumulates onto it. */
    bool done = false, epi = bias && bias->dtype == c.dtype && (bias->strides[0] == 1 || nout == 1);
    if ((!bias || epi) && (!add || same_layout(add, &c))) {
        rc = gemm_rm(x, 0, !tw, m, nout, nin, fx.ptr, ldx, 0, fw.ptr, ldw, 0, dt, c.ptr, nout, 0,
                     c.dtype, add ? 1.0f : 0.0f, 1, bias ? bias->ptr : NULL,
                     add ? add->ptr : NULL);
        done = rc != KILN_EUNSUPPORTED;
        rc = done ? rc : 0;
    }
    if (!done && (bias || add))
        rc = out_start(x, &c, c.ndim - 1, bias, add);
    if (!done && rc == 0)
        rc = gemm_rm(x, 0, !tw, m, nout, nin, fx.ptr, ldx, 0, fw.ptr, ldw, 0, dt, c.ptr, nout, 0,
                     c.dtype, bias || add ? 1.0f : 0.0f, 1);
    return rc == 0 ? finish_out(x, out, &c) : rc;
}

} // namespace kiln_cuda

using namespace kiln_cuda;

extern "C" int kiln__cudak_gemm(kiln__cuda_exec_t *x, int trans_a, int trans_b, int64_t m,
                                int64_t n, int64_t k, const void *a, int64_t lda, int64_t sa,
                                const void *b, int64_t ldb, int64_t sb, int dt_ab, void *c,
                                int64_t ldc, int64_t sc, int dt_c, float beta, int64_t batch)
{
    return gemm_rm(x, trans_a, trans_b, m, n, k, a, lda, sa, b, ldb, sb, dt_ab, c, ldc, sc, dt_c,
                   beta, batch);
}

extern "C" int kiln__cudak_matmul(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                  const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b,
                                  int transpose_b)
{
    return matmul_run(x, out, a, b, transpose_b);
}

extern "C" int kiln__cudak_linear(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                  const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                                  const kiln__cuda_desc_t *b, const kiln__cuda_desc_t *add)
{
    return linear_run(x, out, in, w, b, add);
}
