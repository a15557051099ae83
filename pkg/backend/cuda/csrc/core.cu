// core.cu: device setup, memory, transfers, elementwise ops, the arena ops
// (SumSquares, AdamW) and the row ops (Embedding, Gather/ScatterRows).
#include <stdarg.h>
#include <string.h>
#include <math.h>

#include "common.cuh"

namespace ac {

State g;
static char last_err[512];

int set_error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_err, sizeof last_err, fmt, ap);
  va_end(ap);
  return code;
}

int cuda_fail(cudaError_t e, const char *what) {
  return set_error(e == cudaErrorMemoryAllocation ? AC_ENOMEM : AC_ECUDA, "%s: %s (%s)", what,
                   cudaGetErrorString(e), cudaGetErrorName(e));
}

int blas_fail(cublasStatus_t s, const char *what) {
  return set_error(AC_ECUBLAS, "%s: cuBLAS status %d", what, (int)s);
}

void *scratch(size_t bytes) {
  if (bytes <= g.scratch_bytes) return g.scratch;
  if (g.scratch) {
    cudaStreamSynchronize(g.stream);
    cudaFree(g.scratch);
    g.scratch = nullptr;
    g.scratch_bytes = 0;
  }
  size_t want = bytes < (1u << 20) ? (1u << 20) : bytes;
  cudaError_t e = cudaMalloc(&g.scratch, want);
  if (e != cudaSuccess) {
    cuda_fail(e, "scratch allocation");
    g.scratch = nullptr;
    return nullptr;
  }
  g.scratch_bytes = want;
  return g.scratch;
}

void *host_buf(size_t bytes) {
  if (bytes <= g.host_bytes) return g.host;
  if (g.host) {
    cudaStreamSynchronize(g.stream);
    cudaFreeHost(g.host);
    g.host = nullptr;
    g.host_bytes = 0;
  }
  size_t want = bytes < (1u << 16) ? (1u << 16) : bytes;
  cudaError_t e = cudaMallocHost(&g.host, want);
  if (e != cudaSuccess) {
    cuda_fail(e, "pinned host allocation");
    return nullptr;
  }
  g.host_bytes = want;
  return g.host;
}

}  // namespace ac

using namespace ac;

// ---------------------------------------------------------------- kernels

__global__ void k_add(float *d, const float *s, int64_t n) {
  AC_FOR(i, n) d[i] += s[i];
}

__global__ void k_mul(float *d, const float *a, const float *b, int64_t n) {
  AC_FOR(i, n) d[i] = a[i] * b[i];
}

__global__ void k_scale(float *x, int64_t n, float s) {
  AC_FOR(i, n) x[i] *= s;
}

// Sum of squares of one span in double: block partials (fixed grid).
__global__ void k_sumsq_partial(const float *x, int64_t n, double *part) {
  __shared__ double sh[32];
  double s = 0;
  AC_FOR(i, n) {
    double v = (double)x[i];
    s += v * v;
  }
  s = block_sum<double>(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// One block per span: partials of span s are part[s*nb .. s*nb+nb).
__global__ void k_sumsq_final(const double *part, int nb, double *out) {
  __shared__ double sh[32];
  double s = 0;
  for (int i = threadIdx.x; i < nb; i += blockDim.x) s += part[blockIdx.x * (int64_t)nb + i];
  s = block_sum<double>(s, sh);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// AdamW over one span, with the CPU backend's float32 operations in the same
// order and no fused multiply-adds (the __f*_rn intrinsics are never
// contracted), so results are bit-identical to pkg/backend/cpu.
__global__ void k_adamw(float *w, const float *gr, float *m, float *v, int64_t n, float step_size,
                        float bc2_sqrt, float b1, float b2, float omb1, float omb2, float eps,
                        float decay_mul, int decay) {
  AC_FOR(i, n) {
    float wj = w[i];
    if (decay) wj = __fmul_rn(wj, decay_mul);
    float gj = gr[i];
    float mj = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(gj, omb1));
    float vj = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(omb2, __fmul_rn(gj, gj)));
    m[i] = mj;
    v[i] = vj;
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vj), bc2_sqrt), eps);
    wj = __fadd_rn(wj, __fmul_rn(-step_size, __fdiv_rn(mj, denom)));
    w[i] = wj;
  }
}

__device__ __forceinline__ float widen(const void *t, int dt, int64_t i) {
  if (dt == AC_F32) return static_cast<const float *>(t)[i];
  if (dt == AC_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(t)[i]);
  return __half2float(static_cast<const __half *>(t)[i]);
}

__global__ void k_embedding(float *out, const void *table, int dt, const int32_t *tok, int64_t n,
                            int64_t dim) {
  AC_FOR(i, n * dim) {
    int64_t r = i / dim, c = i % dim;
    out[i] = widen(table, dt, (int64_t)tok[r] * dim + c);
  }
}

// Column-parallel, tokens in position order: every element sees the same
// additions in the same order as the CPU backend (bit-identical, no atomics).
__global__ void k_embedding_bwd(float *dt, const float *dout, const int32_t *tok, int64_t n,
                                int64_t dim) {
  AC_FOR(c, dim) {
    for (int64_t i = 0; i < n; i++) dt[(int64_t)tok[i] * dim + c] += dout[i * dim + c];
  }
}

__global__ void k_gather(float *d, const float *s, const int32_t *rows, int64_t n, int64_t dim) {
  AC_FOR(i, n * dim) {
    int64_t r = i / dim, c = i % dim;
    d[i] = s[(int64_t)rows[r] * dim + c];
  }
}

__global__ void k_scatter(float *d, const float *s, const int32_t *rows, int64_t n, int64_t dim) {
  AC_FOR(i, n * dim) {
    int64_t r = i / dim, c = i % dim;
    d[(int64_t)rows[r] * dim + c] = s[i];
  }
}

__global__ void k_widen(float *d, const void *s, int dt, int64_t n) {
  AC_FOR(i, n) d[i] = widen(s, dt, i);
}

__global__ void k_to_bf16(__nv_bfloat16 *d, const void *s, int dt, int64_t n) {
  AC_FOR(i, n) d[i] = __float2bfloat16_rn(widen(s, dt, i));
}

// ---------------------------------------------------------------- API

extern "C" {

int ac_api_version(void) { return AC_API_VERSION; }

const char *ac_last_error(void) { return ac::last_err; }

int ac_init(int dev, int flags) {
  if (g.ready) return AC_OK;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return cuda_fail(e, "cudaGetDeviceCount");
  if (n == 0) return set_error(AC_EINIT, "no CUDA device");
  if (dev < 0 || dev >= n) return set_error(AC_EINIT, "device %d: this machine has %d CUDA device(s)", dev, n);
  AC_CUDA(cudaSetDevice(dev), "cudaSetDevice");
  AC_CUDA(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cublasStatus_t s = cublasCreate(&g.blas);
  if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(s, "cublasCreate");
  s = cublasSetStream(g.blas, g.stream);
  if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(s, "cublasSetStream");
  s = cublasSetMathMode(g.blas, (flags & AC_FLAG_TF32) ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  if (s != CUBLAS_STATUS_SUCCESS) return blas_fail(s, "cublasSetMathMode");
  g.dev = dev;
  g.flags = flags;
  g.ready = true;
  return AC_OK;
}

int ac_shutdown(void) {
  if (!g.ready) return AC_OK;
  cudaStreamSynchronize(g.stream);
  if (g.scratch) cudaFree(g.scratch);
  if (g.host) cudaFreeHost(g.host);
  cublasDestroy(g.blas);
  cudaStreamDestroy(g.stream);
  g = State();
  return AC_OK;
}

int ac_device_info(char *name, int n, int *major, int *minor) {
  AC_CHECK_READY();
  cudaDeviceProp p;
  AC_CUDA(cudaGetDeviceProperties(&p, g.dev), "cudaGetDeviceProperties");
  if (n > 0) {
    strncpy(name, p.name, n - 1);
    name[n - 1] = 0;
  }
  *major = p.major;
  *minor = p.minor;
  return AC_OK;
}

int ac_mem_info(uint64_t *free_bytes, uint64_t *total_bytes) {
  AC_CHECK_READY();
  size_t f = 0, t = 0;
  AC_CUDA(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
  *free_bytes = f;
  *total_bytes = t;
  return AC_OK;
}

int ac_alloc(ac_dptr *p, uint64_t bytes) {
  AC_CHECK_READY();
  void *d = nullptr;
  if (bytes == 0) bytes = 16;
  cudaError_t e = cudaMalloc(&d, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // allocation failures are not sticky
    return set_error(AC_ENOMEM, "cudaMalloc of %llu bytes: %s", (unsigned long long)bytes, cudaGetErrorString(e));
  }
  AC_CUDA(cudaMemsetAsync(d, 0, bytes, g.stream), "cudaMemset");
  *p = (ac_dptr)(uintptr_t)d;
  return AC_OK;
}

int ac_free(ac_dptr p) {
  AC_CHECK_READY();
  AC_CUDA(cudaFree(P(p)), "cudaFree");
  return AC_OK;
}

int ac_upload(ac_dptr dst, const void *src, uint64_t bytes) {
  AC_CHECK_READY();
  if (bytes == 0) return AC_OK;
  // Synchronous with respect to src: the caller's (Go) memory may move or be
  // reused as soon as this returns.
  AC_CUDA(cudaMemcpyAsync(P(dst), src, bytes, cudaMemcpyHostToDevice, g.stream), "upload");
  AC_CUDA(cudaStreamSynchronize(g.stream), "upload");
  return AC_OK;
}

int ac_download(void *dst, ac_dptr src, uint64_t bytes) {
  AC_CHECK_READY();
  if (bytes == 0) return AC_OK;
  AC_CUDA(cudaMemcpyAsync(dst, P(src), bytes, cudaMemcpyDeviceToHost, g.stream), "download");
  AC_CUDA(cudaStreamSynchronize(g.stream), "download");
  return AC_OK;
}

int ac_sync(void) {
  AC_CHECK_READY();
  AC_CUDA(cudaStreamSynchronize(g.stream), "synchronize");
  return AC_OK;
}

int ac_zero(ac_dptr x, uint64_t bytes) {
  AC_CHECK_READY();
  if (bytes == 0) return AC_OK;
  AC_CUDA(cudaMemsetAsync(P(x), 0, bytes, g.stream), "zero");
  return AC_OK;
}

int ac_copy(ac_dptr dst, ac_dptr src, int64_t n) {
  AC_CHECK_READY();
  if (n <= 0 || dst == src) return AC_OK;
  AC_CUDA(cudaMemcpyAsync(P(dst), P(src), (size_t)n * 4, cudaMemcpyDeviceToDevice, g.stream), "copy");
  return AC_OK;
}

int ac_add(ac_dptr dst, ac_dptr src, int64_t n) {
  AC_CHECK_READY();
  if (n <= 0) return AC_OK;
  AC_LAUNCH(k_add, blocks_for(n, 256), 256, 0, g.stream)(F(dst), F(src), n);
  AC_LAUNCHED("add");
  return AC_OK;
}

int ac_mul(ac_dptr dst, ac_dptr a, ac_dptr b, int64_t n) {
  AC_CHECK_READY();
  if (n <= 0) return AC_OK;
  AC_LAUNCH(k_mul, blocks_for(n, 256), 256, 0, g.stream)(F(dst), F(a), F(b), n);
  AC_LAUNCHED("mul");
  return AC_OK;
}

int ac_scale(ac_dptr x, int64_t n, float s) {
  AC_CHECK_READY();
  if (n <= 0) return AC_OK;
  AC_LAUNCH(k_scale, blocks_for(n, 256), 256, 0, g.stream)(F(x), n, s);
  AC_LAUNCHED("scale");
  return AC_OK;
}

int ac_sum_squares(ac_dptr x, const int64_t *off, const int64_t *len, int nspans, double *out) {
  AC_CHECK_READY();
  *out = 0;
  if (nspans <= 0) return AC_OK;
  const int NB = 64;  // blocks per span: fixed, so the result is deterministic
  double *part = (double *)scratch(sizeof(double) * ((size_t)nspans * NB + nspans));
  if (!part) return AC_ENOMEM;
  double *sums = part + (size_t)nspans * NB;
  for (int s = 0; s < nspans; s++) {
    AC_LAUNCH(k_sumsq_partial, NB, 256, 0, g.stream)(F(x) + off[s], len[s], part + (size_t)s * NB);
  }
  AC_LAUNCHED("sum of squares");
  AC_LAUNCH(k_sumsq_final, nspans, 64, 0, g.stream)(part, NB, sums);
  AC_LAUNCHED("sum of squares");
  double *h = (double *)host_buf(sizeof(double) * nspans);
  if (!h) return AC_ENOMEM;
  AC_CUDA(cudaMemcpyAsync(h, sums, sizeof(double) * nspans, cudaMemcpyDeviceToHost, g.stream), "sum of squares");
  AC_CUDA(cudaStreamSynchronize(g.stream), "sum of squares");
  double t = 0;
  for (int s = 0; s < nspans; s++) t += h[s];  // spans in order, as the CPU backend
  *out = t;
  return AC_OK;
}

int ac_adamw(ac_dptr w, ac_dptr gr, ac_dptr m, ac_dptr v, const int64_t *off, const int64_t *len,
             const int32_t *decay, int nspans, float step_size, float bc2_sqrt, float b1, float b2,
             float omb1, float omb2, float eps, float decay_mul, int use_decay) {
  AC_CHECK_READY();
  for (int s = 0; s < nspans; s++) {
    int64_t o = off[s], n = len[s];
    if (n <= 0) continue;
    AC_LAUNCH(k_adamw, blocks_for(n, 256), 256, 0, g.stream)(F(w) + o, F(gr) + o, F(m) + o, F(v) + o, n, step_size,
                                                      bc2_sqrt, b1, b2, omb1, omb2, eps, decay_mul,
                                                      use_decay && decay[s]);
  }
  AC_LAUNCHED("adamw");
  return AC_OK;
}

int ac_embedding(ac_dptr out, ac_dptr table, int table_dt, ac_dptr tokens, int64_t n, int64_t dim) {
  AC_CHECK_READY();
  if (table_dt != AC_F32 && table_dt != AC_BF16 && table_dt != AC_F16)
    return set_error(AC_EARG, "embedding: table dtype %d", table_dt);
  if (n * dim <= 0) return AC_OK;
  AC_LAUNCH(k_embedding, blocks_for(n * dim, 256), 256, 0, g.stream)(F(out), P(table), table_dt, I(tokens), n, dim);
  AC_LAUNCHED("embedding");
  return AC_OK;
}

int ac_embedding_backward(ac_dptr dtable, ac_dptr dout, ac_dptr tokens, int64_t n, int64_t dim) {
  AC_CHECK_READY();
  if (n * dim <= 0) return AC_OK;
  AC_LAUNCH(k_embedding_bwd, blocks_for(dim, 128), 128, 0, g.stream)(F(dtable), F(dout), I(tokens), n, dim);
  AC_LAUNCHED("embedding backward");
  return AC_OK;
}

int ac_gather_rows(ac_dptr dst, ac_dptr src, ac_dptr rows, int64_t n, int64_t dim) {
  AC_CHECK_READY();
  if (n * dim <= 0) return AC_OK;
  AC_LAUNCH(k_gather, blocks_for(n * dim, 256), 256, 0, g.stream)(F(dst), F(src), I(rows), n, dim);
  AC_LAUNCHED("gather rows");
  return AC_OK;
}

int ac_scatter_rows(ac_dptr dst, ac_dptr src, ac_dptr rows, int64_t n, int64_t dim) {
  AC_CHECK_READY();
  if (n * dim <= 0) return AC_OK;
  AC_LAUNCH(k_scatter, blocks_for(n * dim, 256), 256, 0, g.stream)(F(dst), F(src), I(rows), n, dim);
  AC_LAUNCHED("scatter rows");
  return AC_OK;
}

// Row-major C[m,n] = alpha*op(A)[m,k]*op(B)[k,n] + beta*C is, read as
// column-major, C^T = op(B)^T * op(A)^T: cuBLAS gets (B, A) swapped with
// m and n swapped and the same transpose flags and leading dimensions.
int ac_matmul(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, ac_dptr a,
              int64_t lda, ac_dptr b, int b_dt, int64_t ldb, float beta, ac_dptr c, int64_t ldc) {
  AC_CHECK_READY();
  if (m == 0 || n == 0) return AC_OK;
  if (m < 0 || n < 0 || k < 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return set_error(AC_EARG, "matmul: shape %lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
  if (k == 0) {  // C = beta*C
    for (int64_t r = 0; r < m; r++) {
      if (beta == 0) {
        AC_CUDA(cudaMemsetAsync(F(c) + r * ldc, 0, n * 4, g.stream), "matmul");
      } else if (beta != 1) {
        AC_LAUNCH(k_scale, blocks_for(n, 256), 256, 0, g.stream)(F(c) + r * ldc, n, beta);
      }
    }
    AC_LAUNCHED("matmul");
    return AC_OK;
  }
  int64_t rows_a = trans_a ? k : m, cols_a = trans_a ? m : k;
  int64_t rows_b = trans_b ? n : k, cols_b = trans_b ? k : n;
  if (lda < cols_a || ldb < cols_b || ldc < n)
    return set_error(AC_EARG, "matmul: leading dimensions %lld %lld %lld too small", (long long)lda,
                     (long long)ldb, (long long)ldc);
  int64_t nb = (rows_b - 1) * ldb + cols_b;  // elements of B touched
  int64_t na = (rows_a - 1) * lda + cols_a;
  cublasOperation_t ob = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t oa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t st;
  if (g.flags & AC_FLAG_BF16_GEMM) {
    // Fast mixed-precision path: bf16 inputs, fp32 accumulation and output.
    int64_t boff = (na + 127) & ~(int64_t)127;  // B at a 256-byte boundary (tensor-core alignment)
    size_t need = sizeof(__nv_bfloat16) * (size_t)(boff + nb);
    __nv_bfloat16 *sa = (__nv_bfloat16 *)scratch(need);
    if (!sa) return AC_ENOMEM;
    __nv_bfloat16 *sb = sa + boff;
    AC_LAUNCH(k_to_bf16, blocks_for(na, 256), 256, 0, g.stream)(sa, P(a), AC_F32, na);
    if (b_dt == AC_BF16) {
      AC_CUDA(cudaMemcpyAsync(sb, P(b), nb * 2, cudaMemcpyDeviceToDevice, g.stream), "matmul");
    } else {
      AC_LAUNCH(k_to_bf16, blocks_for(nb, 256), 256, 0, g.stream)(sb, P(b), b_dt, nb);
    }
    AC_LAUNCHED("matmul");
    st = cublasGemmEx(g.blas, ob, oa, (int)n, (int)m, (int)k, &alpha, sb, CUDA_R_16BF, (int)ldb, sa,
                      CUDA_R_16BF, (int)lda, &beta, F(c), CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "matmul (bf16 cublasGemmEx)");
    return AC_OK;
  }
  const float *bp = F(b);
  if (b_dt == AC_BF16 || b_dt == AC_F16) {
    // Widen the half-precision weights exactly (like the CPU's packing),
    // then a plain fp32 GEMM.
    float *wb = (float *)scratch(sizeof(float) * (size_t)nb);
    if (!wb) return AC_ENOMEM;
    AC_LAUNCH(k_widen, blocks_for(nb, 256), 256, 0, g.stream)(wb, P(b), b_dt, nb);
    AC_LAUNCHED("matmul widen");
    bp = wb;
  } else if (b_dt != AC_F32) {
    return set_error(AC_EARG, "matmul: B dtype %d", b_dt);
  }
  cublasComputeType_t ct = (g.flags & AC_FLAG_TF32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  st = cublasGemmEx(g.blas, ob, oa, (int)n, (int)m, (int)k, &alpha, bp, CUDA_R_32F, (int)ldb, F(a), CUDA_R_32F,
                    (int)lda, &beta, F(c), CUDA_R_32F, (int)ldc, ct, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "matmul (cublasGemmEx)");
  return AC_OK;
}

}  // extern "C"
