// ops.cu: RMSNorm, RoPE, SwiGLU and the fused masked cross-entropy.
#include <math.h>

#include "common.cuh"

using namespace ac;

// ---------------------------------------------------------------- RMSNorm

// One block per row.
__global__ void k_rmsnorm(float *y, float *rstd, const float *x, const float *w, int64_t dim, float eps) {
  __shared__ float sh[32];
  int64_t r = blockIdx.x;
  const float *xr = x + r * dim;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum<float>(ss, sh);
  float rs = (float)(1.0 / sqrt((double)(ss / (float)dim + eps)));
  if (threadIdx.x == 0) rstd[r] = rs;
  float *yr = y + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = w[i] * (xr[i] * rs);
}

// dx += rs*w*dy - rs^3*dot(w*dy, x)/dim * x, one block per row.
__global__ void k_rmsnorm_bwd_dx(float *dx, const float *dy, const float *x, const float *w, const float *rstd,
                                 int64_t dim) {
  __shared__ float sh[32];
  int64_t r = blockIdx.x;
  const float *xr = x + r * dim, *dyr = dy + r * dim;
  float dot = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dot += w[i] * dyr[i] * xr[i];
  dot = block_sum<float>(dot, sh);
  float rs = rstd[r];
  float k = rs * rs * rs * dot / (float)dim;
  float *dxr = dx + r * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dxr[i] += rs * w[i] * dyr[i] - k * xr[i];
}

// dw partials: chunk blockIdx.y of the rows, column per thread.
__global__ void k_rmsnorm_bwd_dw(float *part, const float *dy, const float *x, const float *rstd, int64_t rows,
                                 int64_t dim, int nch) {
  int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (c >= dim) return;
  int ch = blockIdx.y;
  int64_t lo = ch * rows / nch, hi = (ch + 1) * rows / nch;
  float s = 0;
  for (int64_t r = lo; r < hi; r++) s += dy[r * dim + c] * x[r * dim + c] * rstd[r];
  part[(int64_t)ch * dim + c] = s;
}

__global__ void k_rmsnorm_bwd_dw_sum(float *dw, const float *part, int64_t dim, int nch) {
  AC_FOR(c, dim) {
    float s = 0;
    for (int ch = 0; ch < nch; ch++) s += part[(int64_t)ch * dim + c];
    dw[c] += s;
  }
}

// ---------------------------------------------------------------- RoPE

__global__ void k_rope(float *x, const int32_t *pos, int64_t rows, int64_t heads, int64_t hd,
                       const float *cs, const float *sn, int inverse) {
  int64_t half = hd / 2;
  AC_FOR(t, rows * heads * half) {
    int64_t i = t % half, rh = t / half;
    int64_t r = rh / heads;
    int64_t p = pos[r];
    float c = cs[p * half + i], s = sn[p * half + i];
    float *v = x + rh * hd;
    float a = v[i], b = v[i + half];
    if (inverse) {
      v[i] = a * c + b * s;
      v[i + half] = b * c - a * s;
    } else {
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

// ---------------------------------------------------------------- SwiGLU

__global__ void k_swiglu(float *y, const float *gate, const float *up, int64_t n) {
  AC_FOR(i, n) {
    float g = gate[i];
    float s = 1.0f / (1.0f + expf(-g));
    y[i] = g * s * up[i];
  }
}

__global__ void k_swiglu_bwd(float *dgate, float *dup, const float *dy, const float *gate, const float *up,
                             int64_t n) {
  AC_FOR(i, n) {
    float g = gate[i], d = dy[i];
    float s = 1.0f / (1.0f + expf(-g));
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

// ---------------------------------------------------------------- cross-entropy

// One block per row: an online max/sum pass over the logits, then one pass
// writing dlogits = scale*softmax - scale*onehot(t). The per-row loss (as
// double) and a counted flag go to loss/cnt; the host adds rows in order.
__global__ void k_cross_entropy(float *d, const float *l, const int32_t *tg, int64_t vocab, float scale,
                                double *loss, int32_t *cnt) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  int64_t r = blockIdx.x;
  const float *lr = l + r * vocab;
  float *dr = d + r * vocab;
  int32_t t = tg[r];
  if (t < 0 || t >= vocab) {
    for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) dr[i] = 0;
    if (threadIdx.x == 0) {
      loss[r] = 0;
      cnt[r] = 0;
    }
    return;
  }
  float lt = lr[t];
  float m = -INFINITY, s = 0;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float v = lr[i];
    if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  float M = block_max(m, shf);
  double part = (m == -INFINITY) ? 0.0 : (double)s * exp((double)m - (double)M);
  double S = block_sum<double>(part, shd);
  if (threadIdx.x == 0) {
    loss[r] = (double)M + log(S) - (double)lt;
    cnt[r] = 1;
  }
  float k = scale * (float)(1.0 / S);
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    float e = k * expf(lr[i] - M);
    if (i == t) e -= scale;
    dr[i] = e;
  }
}

extern "C" {

int ac_rmsnorm(ac_dptr y, ac_dptr rstd, ac_dptr x, ac_dptr w, int64_t rows, int64_t dim, float eps) {
  AC_CHECK_READY();
  if (rows <= 0 || dim <= 0) return AC_OK;
  AC_LAUNCH(k_rmsnorm, (unsigned)rows, 256, 0, g.stream)(F(y), F(rstd), F(x), F(w), dim, eps);
  AC_LAUNCHED("rmsnorm");
  return AC_OK;
}

int ac_rmsnorm_backward(ac_dptr dx, ac_dptr dw, ac_dptr dy, ac_dptr x, ac_dptr w, ac_dptr rstd, int64_t rows,
                        int64_t dim) {
  AC_CHECK_READY();
  if (rows <= 0 || dim <= 0) return AC_OK;
  int nch = rows < 64 ? (int)rows : 64;  // depends on rows only: deterministic
  float *part = (float *)scratch(sizeof(float) * (size_t)nch * dim);
  if (!part) return AC_ENOMEM;
  dim3 grid((unsigned)((dim + 127) / 128), (unsigned)nch);
  AC_LAUNCH(k_rmsnorm_bwd_dw, grid, 128, 0, g.stream)(part, F(dy), F(x), F(rstd), rows, dim, nch);
  AC_LAUNCHED("rmsnorm backward");
  AC_LAUNCH(k_rmsnorm_bwd_dw_sum, blocks_for(dim, 256), 256, 0, g.stream)(F(dw), part, dim, nch);
  AC_LAUNCHED("rmsnorm backward");
  AC_LAUNCH(k_rmsnorm_bwd_dx, (unsigned)rows, 256, 0, g.stream)(F(dx), F(dy), F(x), F(w), F(rstd), dim);
  AC_LAUNCHED("rmsnorm backward");
  return AC_OK;
}

int ac_rope(ac_dptr x, ac_dptr pos, int64_t rows, int64_t heads, int64_t head_dim, ac_dptr cos, ac_dptr sin,
            int inverse) {
  AC_CHECK_READY();
  int64_t n = rows * heads * (head_dim / 2);
  if (n <= 0) return AC_OK;
  AC_LAUNCH(k_rope, blocks_for(n, 256), 256, 0, g.stream)(F(x), I(pos), rows, heads, head_dim, F(cos), F(sin), inverse);
  AC_LAUNCHED("rope");
  return AC_OK;
}

int ac_swiglu(ac_dptr y, ac_dptr gate, ac_dptr up, int64_t n) {
  AC_CHECK_READY();
  if (n <= 0) return AC_OK;
  AC_LAUNCH(k_swiglu, blocks_for(n, 256), 256, 0, g.stream)(F(y), F(gate), F(up), n);
  AC_LAUNCHED("swiglu");
  return AC_OK;
}

int ac_swiglu_backward(ac_dptr dgate, ac_dptr dup, ac_dptr dy, ac_dptr gate, ac_dptr up, int64_t n) {
  AC_CHECK_READY();
  if (n <= 0) return AC_OK;
  AC_LAUNCH(k_swiglu_bwd, blocks_for(n, 256), 256, 0, g.stream)(F(dgate), F(dup), F(dy), F(gate), F(up), n);
  AC_LAUNCHED("swiglu backward");
  return AC_OK;
}

int ac_cross_entropy(ac_dptr dlogits, ac_dptr logits, ac_dptr targets, int64_t rows, int64_t vocab, float scale,
                     double *loss_sum, int64_t *count) {
  AC_CHECK_READY();
  *loss_sum = 0;
  *count = 0;
  if (rows <= 0) return AC_OK;
  if (vocab <= 0) return set_error(AC_EARG, "cross-entropy: vocab %lld", (long long)vocab);
  size_t bytes = (size_t)rows * (sizeof(double) + sizeof(int32_t));
  double *loss = (double *)scratch(bytes);
  if (!loss) return AC_ENOMEM;
  int32_t *cnt = (int32_t *)(loss + rows);
  AC_LAUNCH(k_cross_entropy, (unsigned)rows, 512, 0, g.stream)(F(dlogits), F(logits), I(targets), vocab, scale, loss, cnt);
  AC_LAUNCHED("cross-entropy");
  char *h = (char *)host_buf(bytes);
  if (!h) return AC_ENOMEM;
  AC_CUDA(cudaMemcpyAsync(h, loss, bytes, cudaMemcpyDeviceToHost, g.stream), "cross-entropy");
  AC_CUDA(cudaStreamSynchronize(g.stream), "cross-entropy");
  const double *hl = (const double *)h;
  const int32_t *hc = (const int32_t *)(hl + rows);
  double s = 0;
  int64_t c = 0;
  for (int64_t r = 0; r < rows; r++) {
    s += hl[r];
    c += hc[r];
  }
  *loss_sum = s;
  *count = c;
  return AC_OK;
}

}  // extern "C"
