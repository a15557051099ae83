// common.cuh: state and helpers shared by the .cu files of libalpaca_cuda.
#pragma once

#include <stdint.h>
#include <stdio.h>

#ifdef AC_EMULATE
// Host emulation of the CUDA subset used here (make cuda-emu): the same
// kernels run as host threads, for testing without a GPU.
#include "emu/emulate.h"
#else
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define AC_LAUNCH(k, grid, block, shm, stream) k<<<grid, block, shm, stream>>>
#define AC_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

#include "alpaca_cuda.h"

namespace ac {

struct State {
  bool ready = false;
  int dev = 0;
  int flags = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  // Scratch device memory, grown on demand (one stream: reuse is ordered).
  void *scratch = nullptr;
  size_t scratch_bytes = 0;
  // Pinned host staging for small results (loss rows, partial sums).
  void *host = nullptr;
  size_t host_bytes = 0;
};

extern State g;

int set_error(int code, const char *fmt, ...);
int cuda_fail(cudaError_t e, const char *what);
int blas_fail(cublasStatus_t s, const char *what);
// scratch returns at least bytes of device scratch, or nullptr (error set).
void *scratch(size_t bytes);
// host_buf returns at least bytes of pinned host memory, or nullptr.
void *host_buf(size_t bytes);

inline void *P(ac_dptr p) { return reinterpret_cast<void *>(static_cast<uintptr_t>(p)); }
inline float *F(ac_dptr p) { return reinterpret_cast<float *>(static_cast<uintptr_t>(p)); }
inline int32_t *I(ac_dptr p) { return reinterpret_cast<int32_t *>(static_cast<uintptr_t>(p)); }

inline unsigned blocks_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535LL * 32) b = 65535LL * 32; // grid-stride loops cover the rest
  if (b < 1) b = 1;
#ifdef AC_EMULATE
  if (b > 4) b = 4;  // grid-stride loops: fewer emulated blocks, same results
#endif
  return static_cast<unsigned>(b);
}

}  // namespace ac

#define AC_CHECK_READY()                                         \
  do {                                                           \
    if (!ac::g.ready) return ac::set_error(AC_EINIT, "ac_init was not called"); \
    if (ac::g.dev != 0) cudaSetDevice(ac::g.dev); /* per host thread */ \
  } while (0)

#define AC_LAUNCHED(what)                                        \
  do {                                                           \
    cudaError_t e_ = cudaGetLastError();                         \
    if (e_ != cudaSuccess) return ac::cuda_fail(e_, what);       \
  } while (0)

#define AC_CUDA(call, what)                                      \
  do {                                                           \
    cudaError_t e_ = (call);                                     \
    if (e_ != cudaSuccess) return ac::cuda_fail(e_, what);       \
  } while (0)

// Grid-stride loop over [0, n).
#define AC_FOR(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)

// Warp and block reductions (fixed order: deterministic).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// block_sum: sum of v over the block (blockDim.x a multiple of 32, <= 1024);
// every thread gets the result. sh must hold 32 elements.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T *sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  T r = 0;
  if (w == 0) {
    r = lane < nw ? sh[lane] : T(0);
    for (int o = 16; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
    if (lane == 0) sh[0] = r;
  }
  __syncthreads();
  r = sh[0];
  __syncthreads();
  return r;
}

__device__ __forceinline__ float block_max(float v, float *sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  if (w == 0) {
    float r = lane < nw ? sh[lane] : -INFINITY;
    r = warp_max(r);
    if (lane == 0) sh[0] = r;
  }
  __syncthreads();
  float r = sh[0];
  __syncthreads();
  return r;
}
