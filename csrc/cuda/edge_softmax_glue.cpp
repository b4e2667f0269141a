// CUDA glue of graphpro::edge_softmax and edge_softmax_backward: the CPU kernels' checks, device
// guard, current stream, dtype dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/edge_softmax.cuh"
#include "cuda/glue_utils.h"

namespace graphpro::cuda {

at::Tensor edge_softmax_cuda(const at::Tensor& rowptr_, const at::Tensor& scores_) {
  check_edge_values(rowptr_, scores_, "scores");
  check_cuda(rowptr_, "edge_softmax");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), scores = scores_.contiguous();
  const int64_t n = rowptr.numel() - 1, num_edges = scores.numel();
  at::Tensor out = at::empty_like(scores);
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws = workspace(rowptr, edge_softmax_workspace_bytes(num_edges));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "edge_softmax", [&] {
    GP_CUDA_LAUNCH_CHECK(edge_softmax_launch<cuda_scalar_t<scalar_t>>(
        rowptr.data_ptr<int64_t>(), cptr<scalar_t>(scores), mptr<scalar_t>(out), n, num_edges,
        ws.data_ptr(), err.data_ptr<int>(), stream));
  });
  raise_device_error(err, "edge_softmax");
  return out;
}

at::Tensor edge_softmax_backward_cuda(const at::Tensor& rowptr_, const at::Tensor& out_,
                                      const at::Tensor& grad_) {
  check_edge_values(rowptr_, out_, "out");
  check_edge_values(rowptr_, grad_, "grad_out");
  TORCH_CHECK(out_.sizes() == grad_.sizes() && out_.scalar_type() == grad_.scalar_type(),
              "graphpro.edge_softmax_backward: out and grad_out must match in shape and dtype");
  check_cuda(rowptr_, "edge_softmax_backward");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), out = out_.contiguous(), grad = grad_.contiguous();
  const int64_t n = rowptr.numel() - 1, num_edges = out.numel();
  at::Tensor gin = at::empty_like(out);
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws = workspace(rowptr, edge_softmax_workspace_bytes(num_edges));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "edge_softmax_backward", [&] {
    GP_CUDA_LAUNCH_CHECK(edge_softmax_backward_launch<cuda_scalar_t<scalar_t>>(
        rowptr.data_ptr<int64_t>(), cptr<scalar_t>(out), cptr<scalar_t>(grad), mptr<scalar_t>(gin),
        n, num_edges, ws.data_ptr(), err.data_ptr<int>(), stream));
  });
  raise_device_error(err, "edge_softmax_backward");
  return gin;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) {
  m.impl("edge_softmax", &graphpro::cuda::edge_softmax_cuda);
  m.impl("edge_softmax_backward", &graphpro::cuda::edge_softmax_backward_cuda);
}
