/*
 * alpaca_cuda.h: the C API of libalpaca_cuda.so, the CUDA backend of
 * pkg/backend (see docs/trainer-model.md, "CUDA backend").
 *
 * Plain C, no CUDA types: the Go side (pkg/backend/cuda) includes this
 * header only for the function types it calls through dlsym, so no CUDA
 * header or library is needed to build Go programs.
 *
 * Conventions
 *  - Device pointers travel as uint64_t (ac_dptr). Element counts and
 *    dimensions are int64_t.
 *  - Every function returns 0 on success or a non-zero AC_E* code; the
 *    message of the last failure is ac_last_error(). CUDA errors are
 *    sticky (a failed kernel poisons the context), so after one the
 *    backend is unusable.
 *  - All work is queued on one CUDA stream in call order. Functions that
 *    return host values (ac_download, ac_sum_squares, ac_cross_entropy,
 *    ac_sync) wait for the stream.
 *  - Semantics are those of the Backend interface methods of the same
 *    name in pkg/backend/backend.go; the CPU backend (pkg/backend/cpu) is
 *    the reference every function is tested against.
 */
#ifndef ALPACA_CUDA_H
#define ALPACA_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AC_API_VERSION 2

/* error codes */
#define AC_OK 0
#define AC_ECUDA 1   /* CUDA runtime error */
#define AC_ECUBLAS 2 /* cuBLAS error */
#define AC_EARG 3    /* bad argument (shape, dtype) */
#define AC_ENOMEM 4  /* device allocation failed */
#define AC_EINIT 5   /* ac_init not called, or no device */

/* dtypes (same numbers as backend.DType) */
#define AC_F32 1
#define AC_BF16 2
#define AC_F16 3
#define AC_I32 4

/* ac_init flags */
#define AC_FLAG_TF32 1      /* allow TF32 tensor cores in F32 MatMul */
#define AC_FLAG_BF16_GEMM 2 /* round A (and an F32 B) to bf16 for MatMul, fp32 accumulation */

typedef uint64_t ac_dptr;

int ac_api_version(void);
const char *ac_last_error(void);
/* Opens device dev (cudaSetDevice, a stream, a cuBLAS handle). */
int ac_init(int dev, int flags);
int ac_shutdown(void);
/* Device name and compute capability into name (n bytes). */
int ac_device_info(char *name, int n, int *major, int *minor);
int ac_mem_info(uint64_t *free_bytes, uint64_t *total_bytes);

int ac_alloc(ac_dptr *p, uint64_t bytes); /* zeroed */
int ac_free(ac_dptr p);
int ac_upload(ac_dptr dst, const void *src, uint64_t bytes);
int ac_download(void *dst, ac_dptr src, uint64_t bytes);
int ac_sync(void);

/* Elementwise (F32 unless noted). */
int ac_zero(ac_dptr x, uint64_t bytes);
int ac_copy(ac_dptr dst, ac_dptr src, int64_t n);
int ac_add(ac_dptr dst, ac_dptr src, int64_t n);
int ac_scale(ac_dptr x, int64_t n, float s);
/* dst = a * b elementwise (F32; dst may alias a or b). */
int ac_mul(ac_dptr dst, ac_dptr a, ac_dptr b, int64_t n);

/* Spans: off[i], len[i] (elements), decay[i] (0/1), nspans of them. */
int ac_sum_squares(ac_dptr x, const int64_t *off, const int64_t *len, int nspans, double *out);
/* AdamW constants are formed on the host exactly as the CPU backend does. */
int ac_adamw(ac_dptr w, ac_dptr g, ac_dptr m, ac_dptr v,
             const int64_t *off, const int64_t *len, const int32_t *decay, int nspans,
             float step_size, float bc2_sqrt, float b1, float b2, float omb1, float omb2,
             float eps, float decay_mul, int use_decay);

int ac_embedding(ac_dptr out, ac_dptr table, int table_dt, ac_dptr tokens, int64_t n, int64_t dim);
int ac_embedding_backward(ac_dptr dtable, ac_dptr dout, ac_dptr tokens, int64_t n, int64_t dim);
int ac_gather_rows(ac_dptr dst, ac_dptr src, ac_dptr rows, int64_t n, int64_t dim);
int ac_scatter_rows(ac_dptr dst, ac_dptr src, ac_dptr rows, int64_t n, int64_t dim);

/* Row-major C = alpha*op(A)*op(B) + beta*C; A and C F32, B F32/BF16/F16. */
int ac_matmul(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              ac_dptr a, int64_t lda, ac_dptr b, int b_dt, int64_t ldb,
              float beta, ac_dptr c, int64_t ldc);

int ac_rmsnorm(ac_dptr y, ac_dptr rstd, ac_dptr x, ac_dptr w, int64_t rows, int64_t dim, float eps);
int ac_rmsnorm_backward(ac_dptr dx, ac_dptr dw, ac_dptr dy, ac_dptr x, ac_dptr w, ac_dptr rstd,
                        int64_t rows, int64_t dim);
int ac_rope(ac_dptr x, ac_dptr pos, int64_t rows, int64_t heads, int64_t head_dim,
            ac_dptr cos, ac_dptr sin, int inverse);

int ac_attention(ac_dptr out, ac_dptr lse, ac_dptr q, ac_dptr k, ac_dptr v, ac_dptr seg,
                 int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD);
int ac_attention_backward(ac_dptr dq, ac_dptr dk, ac_dptr dv, ac_dptr dout, ac_dptr out, ac_dptr lse,
                          ac_dptr q, ac_dptr k, ac_dptr v, ac_dptr seg,
                          int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD);
int ac_attention_cached(ac_dptr out, ac_dptr q, ac_dptr k, ac_dptr v,
                        int64_t past, int64_t n, int64_t NH, int64_t NKV, int64_t HD);

int ac_swiglu(ac_dptr y, ac_dptr gate, ac_dptr up, int64_t n);
int ac_swiglu_backward(ac_dptr dgate, ac_dptr dup, ac_dptr dy, ac_dptr gate, ac_dptr up, int64_t n);

/* Fused masked cross-entropy; dlogits may equal logits. */
int ac_cross_entropy(ac_dptr dlogits, ac_dptr logits, ac_dptr targets, int64_t rows, int64_t vocab,
                     float scale, double *loss_sum, int64_t *count);

#ifdef __cplusplus
}
#endif
#endif
