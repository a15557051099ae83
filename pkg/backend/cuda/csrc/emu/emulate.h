// emulate.h: a host (CPU) emulation of the CUDA subset libalpaca_cuda uses,
// so that the very same kernel and API code can be built with g++ and run
// without a GPU (make cuda-emu builds libalpaca_cuda_emu.so; the GPU tests in
// pkg/backend/cuda then run against the CPU backend through it).
//
// What is emulated, and how:
//  - A kernel launch runs its blocks one after another; each block's threads
//    are fibers (ucontext) on the calling thread, switched at barriers:
//    __syncthreads waits for the block, a warp shuffle exchanges through a
//    per-warp buffer between two barriers of the warp. Threads that return
//    no longer count at either barrier, as exited CUDA threads do not.
//  - __shared__ variables become function statics: one block runs at a
//    time, so a static is exactly the block's shared memory. Dynamic shared
//    memory is one host buffer sized at launch.
//  - Device memory is host memory (malloc); copies are memcpy; streams are
//    synchronous; cuBLAS's GemmEx is a plain column-major triple loop
//    accumulating in double.
// What it does not show: timing, occupancy, memory-model races between
// blocks (blocks never run concurrently here), or nvcc's code generation.
// It checks the kernels' logic: indexing, masking, online softmax,
// reductions, the launch shapes and the C API.
#pragma once

#include <algorithm>
#include <array>
#include <mutex>
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

using std::max;
using std::min;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace emu {
// Every CUDA thread of a block is a fiber (ucontext) on the calling host
// thread; a small scheduler runs the fibers until each waits at a barrier
// (__syncthreads: the block's; a shuffle: its warp's) or returns, then
// releases the barriers whose participants have all arrived. One OS thread,
// deterministic, no spinning.
enum State { RUN, WAIT_BLOCK, WAIT_WARP, DONE };
struct Fiber {
  ucontext_t ctx;
  State st;
};
inline dim3 tIdx, bIdx, bDim, gDim;
inline int lane, cur;
inline unsigned nthreads;
inline ucontext_t sched;
inline std::vector<Fiber> fibers;
inline std::vector<unsigned char> stacks;
inline std::vector<std::array<std::array<unsigned char, 8>, 32>> warp_buf;
inline std::vector<unsigned char> dyn_shared;
inline std::function<void(unsigned)> job;
inline std::mutex launch_mu;
constexpr size_t kStack = 64 << 10;

inline void fiber_main(int t) {
  job((unsigned)t);
  fibers[t].st = DONE;  // returning resumes the scheduler (uc_link)
}

inline void wait(State s) {
  fibers[cur].st = s;
  swapcontext(&fibers[cur].ctx, &sched);
}

inline void run_block(unsigned nt) {
  nthreads = nt;
  for (unsigned t = 0; t < nt; t++) {
    Fiber &f = fibers[t];
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stacks.data() + t * kStack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, (void (*)())fiber_main, 1, (int)t);
    f.st = RUN;
  }
  for (;;) {
    for (unsigned t = 0; t < nt; t++) {
      if (fibers[t].st != RUN) continue;
      cur = (int)t;
      lane = (int)(t % 32);
      tIdx = dim3(t % bDim.x, (t / bDim.x) % bDim.y, t / (bDim.x * bDim.y));
      swapcontext(&sched, &fibers[t].ctx);
    }
    bool released = false, all_done = true, all_block = true;
    for (unsigned w = 0; w < nt / 32; w++) {
      bool any = false, all = true;
      for (unsigned t = w * 32; t < w * 32 + 32; t++) {
        State s = fibers[t].st;
        if (s == DONE) continue;
        any = true;
        all_done = false;
        if (s != WAIT_WARP) all = false;
        if (s != WAIT_BLOCK) all_block = false;
      }
      if (any && all) {
        for (unsigned t = w * 32; t < w * 32 + 32; t++)
          if (fibers[t].st == WAIT_WARP) fibers[t].st = RUN;
        released = true;
      }
    }
    if (all_done) return;
    if (released) continue;
    if (!all_block) {
      fprintf(stderr, "emulate.h: deadlock (threads wait at different barriers)\n");
      abort();
    }
    for (unsigned t = 0; t < nt; t++)
      if (fibers[t].st == WAIT_BLOCK) fibers[t].st = RUN;
  }
}

template <class T, class... P, class... A>
void launch_kernel(dim3 grid, dim3 block, size_t shm, void (*k)(P...), A... args) {
  std::lock_guard<std::mutex> lk(launch_mu);
  unsigned nt = block.x * block.y * block.z;
  if (nt % 32 != 0 || nt == 0 || nt > 1024) abort();
  if (dyn_shared.size() < shm + 16) dyn_shared.resize(shm + 16);
  if (fibers.size() < nt) {
    fibers.resize(nt);
    stacks.resize(nt * kStack);
  }
  warp_buf.resize(nt / 32);
  bDim = block;
  gDim = grid;
  job = [&](unsigned) { k(args...); };
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        bIdx = dim3(x, y, z);
        run_block(nt);
      }
}

}  // namespace emu

#define threadIdx emu::tIdx
#define blockIdx emu::bIdx
#define blockDim emu::bDim
#define gridDim emu::gDim

// AC_LAUNCH(k, grid, block, shm, stream)(args...) -> emu::launch_kernel
#define AC_LAUNCH(k, grid, block, shm, stream) emu_launch_helper(k, dim3(grid), dim3(block), (size_t)(shm))
template <class... P>
struct EmuCall {
  void (*k)(P...);
  dim3 grid, block;
  size_t shm;
  template <class... A>
  void operator()(A... args) const {
    emu::launch_kernel<void>(grid, block, shm, k, static_cast<P>(args)...);
  }
};
template <class... P>
EmuCall<P...> emu_launch_helper(void (*k)(P...), dim3 grid, dim3 block, size_t shm) {
  return EmuCall<P...>{k, grid, block, shm};
}

#define AC_DYNAMIC_SHARED(T, name) T *name = reinterpret_cast<T *>(emu::dyn_shared.data())

inline void __syncthreads() { emu::wait(emu::WAIT_BLOCK); }

template <class T>
inline T emu_shfl(T v, int src) {
  int me = emu::lane;  // the scheduler changes emu::lane while we wait
  auto &buf = emu::warp_buf[emu::cur / 32];
  memcpy(buf[me].data(), &v, sizeof(T));
  emu::wait(emu::WAIT_WARP);
  T r;
  memcpy(&r, buf[src & 31].data(), sizeof(T));
  emu::wait(emu::WAIT_WARP);
  return r;
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src) { return emu_shfl(v, src); }
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int o) { return emu_shfl(v, emu::lane ^ o); }

// Arithmetic intrinsics: the library is compiled with -ffp-contract=off, so
// these are single IEEE operations like their CUDA counterparts.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }

struct __nv_bfloat16 {
  uint16_t x;
};
struct __half {
  uint16_t x;
};
inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t b = (uint32_t)h.x << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  if (f != f) return __nv_bfloat16{(uint16_t)((b >> 16) | 0x40)};
  return __nv_bfloat16{(uint16_t)((b + 0x7FFF + ((b >> 16) & 1)) >> 16)};
}
inline float __half2float(__half h) {
  uint32_t s = (h.x >> 15) & 1, e = (h.x >> 10) & 31, m = h.x & 1023;
  float v;
  if (e == 0)
    v = ldexpf((float)m, -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = ldexpf((float)(m | 1024), (int)e - 25);
  return s ? -v : v;
}

// ---------------------------------------------------------------- runtime

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorNoDevice = 100 };
typedef void *cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define cudaStreamNonBlocking 1
struct cudaDeviceProp {
  char name[256];
  int major, minor;
};
inline const char *cudaGetErrorString(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "out of memory" : "error"; }
inline const char *cudaGetErrorName(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaError"; }
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, int) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
  strcpy(p->name, "CPU emulation (emulate.h)");
  p->major = 0;
  p->minor = 0;
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t *f, size_t *t) {
  *f = (size_t)8 << 30;
  *t = (size_t)8 << 30;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void **p, size_t n) {
  *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <class T>
inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc(reinterpret_cast<void **>(p), n); }
inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
inline cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
inline cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
  memmove(d, s, n);
  return cudaSuccess;
}

// ---------------------------------------------------------------- cuBLAS

typedef void *cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
typedef int cublasMath_t;
enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
typedef int cublasOperation_t;
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
typedef int cudaDataType;
enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 };
typedef int cublasComputeType_t;
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum { CUBLAS_GEMM_DEFAULT = -1 };
inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = nullptr; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, int) { return CUBLAS_STATUS_SUCCESS; }

inline double emu_elem(const void *p, int t, int64_t i) {
  if (t == CUDA_R_32F) return static_cast<const float *>(p)[i];
  return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}

// Column-major C[m,n] = alpha*op(A)[m,k]*op(B)[k,n] + beta*C.
inline cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void *alpha, const void *A, int at, int lda, const void *B, int bt, int ldb,
                                   const void *beta, void *C, int ct, int ldc, int, int) {
  if (ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
  float *c = static_cast<float *>(C);
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int p = 0; p < k; p++) {
        double a = ta == CUBLAS_OP_N ? emu_elem(A, at, i + (int64_t)p * lda) : emu_elem(A, at, p + (int64_t)i * lda);
        double b = tb == CUBLAS_OP_N ? emu_elem(B, bt, p + (int64_t)j * ldb) : emu_elem(B, bt, j + (int64_t)p * ldb);
        s += a * b;
      }
      float &cij = c[i + (int64_t)j * ldc];
      cij = (float)(al * s + (be == 0 ? 0.0 : (double)be * cij));
    }
  return CUBLAS_STATUS_SUCCESS;
}
