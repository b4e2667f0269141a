// Helpers shared by the CUDA glue files (torch side): device guard + stream, dtype mapping to the
// CUDA scalar types, workspace allocation and the error-flag round trip. Only *_glue.cpp include
// this; the kernels (.cu) stay torch-free.
#pragma once
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/checks.h"
#include "common/device_math.h"
#include "common/dispatch.h"

// The launchers return cudaGetLastError() after their launches: this is our
// C10_CUDA_KERNEL_LAUNCH_CHECK() (variadic so template arguments with commas pass through).
#define GP_CUDA_LAUNCH_CHECK(...) C10_CUDA_CHECK((__VA_ARGS__))

namespace graphpro::cuda {

// at:: scalar type -> the CUDA type the kernels are instantiated for (same bit layout).
template <typename T>
struct CudaScalar {
  using type = T;
};
template <>
struct CudaScalar<c10::Half> {
  using type = __half;
};
template <>
struct CudaScalar<c10::BFloat16> {
  using type = __nv_bfloat16;
};
template <typename T>
using cuda_scalar_t = typename CudaScalar<T>::type;

template <typename T>
inline const cuda_scalar_t<T>* cptr(const at::Tensor& t) {
  return reinterpret_cast<const cuda_scalar_t<T>*>(t.data_ptr<T>());
}
template <typename T>
inline cuda_scalar_t<T>* mptr(const at::Tensor& t) {
  return reinterpret_cast<cuda_scalar_t<T>*>(t.data_ptr<T>());
}

// The current stream of the guarded device (same as at::cuda::getCurrentCUDAStream()).
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline void check_cuda(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.is_cuda(), "graphpro.", op, ": expected CUDA tensors, got one on ", t.device());
}

// Device scratch memory from the caching allocator (freed when the tensor dies; the allocator
// keeps it stream-ordered, so returning before the kernels finish is safe).
inline at::Tensor workspace(const at::Tensor& like, size_t bytes) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

// The two error ints of cuda_common.cuh, zeroed on the current stream.
inline at::Tensor error_buffer(const at::Tensor& like) {
  return at::zeros({2}, like.options().dtype(at::kInt));
}

// One small D2H copy (which synchronises with the current stream) and the same exception as the
// CPU backend: the rowptr-ends error first (the CPU checks it before its kernel), then the first
// error a kernel recorded.
inline void raise_device_error(const at::Tensor& err, const char* op) {
  const at::Tensor h = err.to(at::kCPU);
  const int* p = h.data_ptr<int>();
  raise_on_error(p[0], op);
  raise_on_error(p[1], op);
}

}  // namespace graphpro::cuda
