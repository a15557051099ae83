// attention.cu: causal attention over packed variable-length rows, flash
// style: keys and values stream through shared memory in tiles of 32, each
// query keeps a running max and sum (online softmax), and the T x T score
// matrix never exists. The backward pass recomputes the probabilities tile
// by tile from the stored log-sum-exp.
//
// Layout (pkg/backend): q, out [B*T, NH*HD]; k, v [B*T, NKV*HD]; lse
// [B*NH*T]; seg [B*T] (key j visible to query i iff j <= i and seg[j] ==
// seg[i]). GQA: query head h reads kv head h / (NH/NKV).
//
// Work split: one warp per query row (forward, dq) or per key row (dk, dv);
// lane l owns the head dimensions l, l+32, ... (NPL = ceil(HD/32) of them);
// for scores, lane l takes key (or query) l of the tile. No atomics: every
// output element is written by one warp, in a fixed order (deterministic).
#include <math.h>

#include "common.cuh"

using namespace ac;

#define TILE 32
#define WARPS 4

// Forward, shared by training (seg != null, lse != null, past = 0, Tq = Tk)
// and the KV-cache path (B = 1, queries at positions past..past+Tq-1).
template <int NPL>
__global__ void __launch_bounds__(WARPS * 32)
k_attn_fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg, int Tq,
           int Tk, int NH, int NKV, int HD, int past, float scale) {
  AC_DYNAMIC_SHARED(float, sm);
  const int LD = HD + 1;
  float *Ks = sm;                  // [TILE][LD]
  float *Vs = Ks + TILE * LD;      // [TILE][LD]
  float *Qs = Vs + TILE * LD;      // [WARPS][HD]
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int b = blockIdx.z, h = blockIdx.y, grp = NH / NKV, gk = h / grp;
  const int i0 = blockIdx.x * WARPS, i = i0 + w;
  const bool live = i < Tq;
  const int64_t qs = (int64_t)NH * HD, ks = (int64_t)NKV * HD;
  const float *qi = q + ((int64_t)b * Tq + i) * qs + (int64_t)h * HD;
  if (live)
    for (int d = lane; d < HD; d += 32) Qs[w * HD + d] = qi[d];
  const int qpos = past + i;
  const int32_t si = (seg && live) ? seg[(int64_t)b * Tk + i] : 0;
  float acc[NPL];
#pragma unroll
  for (int c = 0; c < NPL; c++) acc[c] = 0;
  float m = -INFINITY, l = 0;
  const int ilast = min(i0 + WARPS, Tq) - 1;
  const int kend = min(Tk, past + ilast + 1);
  for (int j0 = 0; j0 < kend; j0 += TILE) {
    __syncthreads();
    for (int t = threadIdx.x; t < TILE * HD; t += blockDim.x) {
      int r = t / HD, d = t % HD, j = j0 + r;
      float kv = 0, vv = 0;
      if (j < Tk) {
        int64_t o = ((int64_t)b * Tk + j) * ks + (int64_t)gk * HD + d;
        kv = k[o];
        vv = v[o];
      }
      Ks[r * LD + d] = kv;
      Vs[r * LD + d] = vv;
    }
    __syncthreads();
    if (!live) continue;
    const int j = j0 + lane;
    bool vis = j <= qpos && j < Tk;
    if (vis && seg) vis = seg[(int64_t)b * Tk + j] == si;
    float s = -INFINITY;
    if (vis) {
      float dot = 0;
      for (int d = 0; d < HD; d++) dot += Qs[w * HD + d] * Ks[lane * LD + d];
      s = scale * dot;
    }
    float mt = warp_max(s);
    if (mt == -INFINITY) continue;  // the whole tile is masked for this query
    float mn = fmaxf(m, mt);
    float corr = expf(m - mn);      // 0 on the first visible tile
    float p = vis ? expf(s - mn) : 0.0f;
    l = l * corr + warp_sum(p);
#pragma unroll
    for (int c = 0; c < NPL; c++) acc[c] *= corr;
    for (int jj = 0; jj < TILE; jj++) {
      float pj = __shfl_sync(0xffffffffu, p, jj);
      if (pj == 0.0f) continue;  // warp-uniform
#pragma unroll
      for (int c = 0; c < NPL; c++) {
        int d = lane + 32 * c;
        if (d < HD) acc[c] += pj * Vs[jj * LD + d];
      }
    }
    m = mn;
  }
  if (!live) return;
  float inv = 1.0f / l;
  float *oi = out + ((int64_t)b * Tq + i) * qs + (int64_t)h * HD;
#pragma unroll
  for (int c = 0; c < NPL; c++) {
    int d = lane + 32 * c;
    if (d < HD) oi[d] = acc[c] * inv;
  }
  if (lse && lane == 0) lse[((int64_t)b * NH + h) * Tq + i] = m + logf(l);
}

// D[b,h,i] = dot(dout_i, out_i) for head h: one warp per (b, i, h).
__global__ void k_attn_D(float *D, const float *dout, const float *out, int B, int T, int NH, int HD) {
  int64_t wid = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (wid >= (int64_t)B * T * NH) return;
  int h = wid % NH;
  int64_t row = wid / NH;  // b*T + i
  const float *a = dout + row * NH * HD + (int64_t)h * HD, *o = out + row * NH * HD + (int64_t)h * HD;
  float s = 0;
  for (int d = lane; d < HD; d += 32) s += a[d] * o[d];
  s = warp_sum(s);
  if (lane == 0) {
    int64_t b = row / T, i = row % T;
    D[(b * NH + h) * T + i] = s;
  }
}

// dq: one warp per query row, key/value tiles in shared memory.
template <int NPL>
__global__ void __launch_bounds__(WARPS * 32)
k_attn_dq(float *dq, const float *dout, const float *lse, const float *Dv, const float *q, const float *k,
          const float *v, const int32_t *seg, int T, int NH, int NKV, int HD, float scale) {
  AC_DYNAMIC_SHARED(float, sm);
  const int LD = HD + 1;
  float *Ks = sm;
  float *Vs = Ks + TILE * LD;
  float *Qs = Vs + TILE * LD;   // [WARPS][HD]
  float *Os = Qs + WARPS * HD;  // [WARPS][HD] dout rows
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int b = blockIdx.z, h = blockIdx.y, gk = h / (NH / NKV);
  const int i0 = blockIdx.x * WARPS, i = i0 + w;
  const bool live = i < T;
  const int64_t qs = (int64_t)NH * HD, ks = (int64_t)NKV * HD;
  const int64_t qo = ((int64_t)b * T + i) * qs + (int64_t)h * HD;
  if (live)
    for (int d = lane; d < HD; d += 32) {
      Qs[w * HD + d] = q[qo + d];
      Os[w * HD + d] = dout[qo + d];
    }
  const int32_t si = live ? seg[(int64_t)b * T + i] : 0;
  const float L = live ? lse[((int64_t)b * NH + h) * T + i] : 0;
  const float Di = live ? Dv[((int64_t)b * NH + h) * T + i] : 0;
  float acc[NPL];
#pragma unroll
  for (int c = 0; c < NPL; c++) acc[c] = 0;
  const int kend = min(T, i0 + WARPS);
  for (int j0 = 0; j0 < kend; j0 += TILE) {
    __syncthreads();
    for (int t = threadIdx.x; t < TILE * HD; t += blockDim.x) {
      int r = t / HD, d = t % HD, j = j0 + r;
      float kv = 0, vv = 0;
      if (j < T) {
        int64_t o = ((int64_t)b * T + j) * ks + (int64_t)gk * HD + d;
        kv = k[o];
        vv = v[o];
      }
      Ks[r * LD + d] = kv;
      Vs[r * LD + d] = vv;
    }
    __syncthreads();
    if (!live) continue;
    const int j = j0 + lane;
    bool vis = j <= i && seg[(int64_t)b * T + min(j, T - 1)] == si;
    float ds = 0;
    if (vis) {
      float dot = 0, dp = 0;
      for (int d = 0; d < HD; d++) {
        dot += Qs[w * HD + d] * Ks[lane * LD + d];
        dp += Os[w * HD + d] * Vs[lane * LD + d];
      }
      float p = expf(scale * dot - L);
      ds = p * (dp - Di) * scale;
    }
    for (int jj = 0; jj < TILE; jj++) {
      float x = __shfl_sync(0xffffffffu, ds, jj);
      if (x == 0.0f) continue;
#pragma unroll
      for (int c = 0; c < NPL; c++) {
        int d = lane + 32 * c;
        if (d < HD) acc[c] += x * Ks[jj * LD + d];
      }
    }
  }
  if (!live) return;
#pragma unroll
  for (int c = 0; c < NPL; c++) {
    int d = lane + 32 * c;
    if (d < HD) dq[qo + d] = acc[c];
  }
}

// dk, dv: one warp per key row j of kv head g, summing over the query heads
// of the group and the query tiles i >= j.
template <int NPL>
__global__ void __launch_bounds__(WARPS * 32)
k_attn_dkv(float *dk, float *dv, const float *dout, const float *lse, const float *Dv, const float *q,
           const float *k, const float *v, const int32_t *seg, int T, int NH, int NKV, int HD, float scale) {
  AC_DYNAMIC_SHARED(float, sm);
  const int LD = HD + 1;
  float *Qs = sm;                 // [TILE][LD]
  float *Os = Qs + TILE * LD;     // [TILE][LD]
  float *Ls = Os + TILE * LD;     // [TILE]
  float *Ds = Ls + TILE;          // [TILE]
  float *Kr = Ds + TILE;          // [WARPS][HD]
  float *Vr = Kr + WARPS * HD;    // [WARPS][HD]
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int b = blockIdx.z, gk = blockIdx.y, grp = NH / NKV;
  const int j0b = blockIdx.x * WARPS, j = j0b + w;
  const bool live = j < T;
  const int64_t qs = (int64_t)NH * HD, ks = (int64_t)NKV * HD;
  const int64_t ko = ((int64_t)b * T + j) * ks + (int64_t)gk * HD;
  if (live)
    for (int d = lane; d < HD; d += 32) {
      Kr[w * HD + d] = k[ko + d];
      Vr[w * HD + d] = v[ko + d];
    }
  const int32_t sj = live ? seg[(int64_t)b * T + j] : 0;
  float ak[NPL], av[NPL];
#pragma unroll
  for (int c = 0; c < NPL; c++) ak[c] = av[c] = 0;
  const int istart = (j0b / TILE) * TILE;
  for (int h = gk * grp; h < (gk + 1) * grp; h++) {
    for (int i0 = istart; i0 < T; i0 += TILE) {
      __syncthreads();
      for (int t = threadIdx.x; t < TILE * HD; t += blockDim.x) {
        int r = t / HD, d = t % HD, i = i0 + r;
        float qv = 0, ov = 0;
        if (i < T) {
          int64_t o = ((int64_t)b * T + i) * qs + (int64_t)h * HD + d;
          qv = q[o];
          ov = dout[o];
        }
        Qs[r * LD + d] = qv;
        Os[r * LD + d] = ov;
      }
      if (threadIdx.x < TILE) {
        int i = i0 + threadIdx.x;
        int64_t o = ((int64_t)b * NH + h) * T + i;
        Ls[threadIdx.x] = i < T ? lse[o] : 0;
        Ds[threadIdx.x] = i < T ? Dv[o] : 0;
      }
      __syncthreads();
      if (!live) continue;
      const int i = i0 + lane;
      bool vis = i >= j && i < T && seg[(int64_t)b * T + min(i, T - 1)] == sj;
      float p = 0, ds = 0;
      if (vis) {
        float dot = 0, dp = 0;
        for (int d = 0; d < HD; d++) {
          dot += Qs[lane * LD + d] * Kr[w * HD + d];
          dp += Os[lane * LD + d] * Vr[w * HD + d];
        }
        p = expf(scale * dot - Ls[lane]);
        ds = p * (dp - Ds[lane]) * scale;
      }
      for (int ii = 0; ii < TILE; ii++) {
        float pi = __shfl_sync(0xffffffffu, p, ii);
        float di = __shfl_sync(0xffffffffu, ds, ii);
        if (pi == 0.0f && di == 0.0f) continue;
#pragma unroll
        for (int c = 0; c < NPL; c++) {
          int d = lane + 32 * c;
          if (d < HD) {
            ak[c] += di * Qs[ii * LD + d];
            av[c] += pi * Os[ii * LD + d];
          }
        }
      }
    }
  }
  if (!live) return;
#pragma unroll
  for (int c = 0; c < NPL; c++) {
    int d = lane + 32 * c;
    if (d < HD) {
      dk[ko + d] = ak[c];
      dv[ko + d] = av[c];
    }
  }
}

static int npl_for(int64_t HD) {
  if (HD <= 32) return 1;
  if (HD <= 64) return 2;
  if (HD <= 128) return 4;
  return 0;
}

static int check_shape(const char *what, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HD) {
  if (B < 0 || T < 0 || NH <= 0 || NKV <= 0 || NH % NKV != 0 || HD <= 0 || npl_for(HD) == 0 || T > INT32_MAX ||
      B > 65535 || NH > 65535)
    return set_error(AC_EARG, "%s: shape B=%lld T=%lld NH=%lld NKV=%lld HD=%lld (head dim at most 128)", what,
                     (long long)B, (long long)T, (long long)NH, (long long)NKV, (long long)HD);
  return AC_OK;
}

static int fwd(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *seg, int64_t B,
               int64_t Tq, int64_t Tk, int64_t NH, int64_t NKV, int64_t HD, int64_t past) {
  float scale = (float)(1.0 / sqrt((double)HD));
  dim3 grid((unsigned)((Tq + WARPS - 1) / WARPS), (unsigned)NH, (unsigned)B);
  size_t shm = sizeof(float) * (2 * TILE * (HD + 1) + WARPS * HD);
  switch (npl_for(HD)) {
    case 1:
      AC_LAUNCH(k_attn_fwd<1>, grid, WARPS * 32, shm, g.stream)(out, lse, q, k, v, seg, (int)Tq, (int)Tk, (int)NH, (int)NKV,
                                                         (int)HD, (int)past, scale);
      break;
    case 2:
      AC_LAUNCH(k_attn_fwd<2>, grid, WARPS * 32, shm, g.stream)(out, lse, q, k, v, seg, (int)Tq, (int)Tk, (int)NH, (int)NKV,
                                                         (int)HD, (int)past, scale);
      break;
    default:
      AC_LAUNCH(k_attn_fwd<4>, grid, WARPS * 32, shm, g.stream)(out, lse, q, k, v, seg, (int)Tq, (int)Tk, (int)NH, (int)NKV,
                                                         (int)HD, (int)past, scale);
  }
  AC_LAUNCHED("attention");
  return AC_OK;
}

extern "C" {

int ac_attention(ac_dptr out, ac_dptr lse, ac_dptr q, ac_dptr k, ac_dptr v, ac_dptr seg, int64_t B, int64_t T,
                 int64_t NH, int64_t NKV, int64_t HD) {
  AC_CHECK_READY();
  if (int e = check_shape("attention", B, T, NH, NKV, HD)) return e;
  if (B == 0 || T == 0) return AC_OK;
  return fwd(F(out), F(lse), F(q), F(k), F(v), I(seg), B, T, T, NH, NKV, HD, 0);
}

int ac_attention_cached(ac_dptr out, ac_dptr q, ac_dptr k, ac_dptr v, int64_t past, int64_t n, int64_t NH,
                        int64_t NKV, int64_t HD) {
  AC_CHECK_READY();
  if (int e = check_shape("cached attention", 1, past + n, NH, NKV, HD)) return e;
  if (n <= 0) return AC_OK;
  if (past < 0) return set_error(AC_EARG, "cached attention: past %lld", (long long)past);
  return fwd(F(out), nullptr, F(q), F(k), F(v), nullptr, 1, n, past + n, NH, NKV, HD, past);
}

int ac_attention_backward(ac_dptr dq, ac_dptr dk, ac_dptr dv, ac_dptr dout, ac_dptr out, ac_dptr lse, ac_dptr q,
                          ac_dptr k, ac_dptr v, ac_dptr seg, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                          int64_t HD) {
  AC_CHECK_READY();
  if (int e = check_shape("attention backward", B, T, NH, NKV, HD)) return e;
  if (B == 0 || T == 0) return AC_OK;
  float scale = (float)(1.0 / sqrt((double)HD));
  float *D = (float *)scratch(sizeof(float) * (size_t)(B * T * NH));
  if (!D) return AC_ENOMEM;
  int64_t nw = B * T * NH;
  AC_LAUNCH(k_attn_D, (unsigned)((nw * 32 + 255) / 256), 256, 0, g.stream)(D, F(dout), F(out), (int)B, (int)T, (int)NH,
                                                                      (int)HD);
  AC_LAUNCHED("attention backward");
  dim3 gq((unsigned)((T + WARPS - 1) / WARPS), (unsigned)NH, (unsigned)B);
  dim3 gkv((unsigned)((T + WARPS - 1) / WARPS), (unsigned)NKV, (unsigned)B);
  size_t shq = sizeof(float) * (2 * TILE * (HD + 1) + 2 * WARPS * HD);
  size_t shkv = sizeof(float) * (2 * TILE * (HD + 1) + 2 * TILE + 2 * WARPS * HD);
  int t = (int)T, nh = (int)NH, nkv = (int)NKV, hd = (int)HD;
#define AC_BWD(NPL)                                                                                              \
  AC_LAUNCH(k_attn_dq<NPL>, gq, WARPS * 32, shq, g.stream)(F(dq), F(dout), F(lse), D, F(q), F(k), F(v), I(seg), t, nh,  \
                                                    nkv, hd, scale);                                             \
  AC_LAUNCH(k_attn_dkv<NPL>, gkv, WARPS * 32, shkv, g.stream)(F(dk), F(dv), F(dout), F(lse), D, F(q), F(k), F(v), I(seg), \
                                                       t, nh, nkv, hd, scale);
  switch (npl_for(HD)) {
    case 1:
      AC_BWD(1);
      break;
    case 2:
      AC_BWD(2);
      break;
    default:
      AC_BWD(4);
  }
#undef AC_BWD
  AC_LAUNCHED("attention backward");
  return AC_OK;
}

}  // extern "C"
