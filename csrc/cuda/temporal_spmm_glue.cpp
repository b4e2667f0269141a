// CUDA glue of graphpro::temporal_spmm: the shared temporal checks, device guard, current stream,
// dtype dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/check_symmetric_glue.h"
#include "cuda/glue_utils.h"
#include "cuda/temporal_spmm.cuh"

namespace graphpro::cuda {

at::Tensor temporal_spmm_cuda(const at::Tensor& rowptr_, const at::Tensor& col_,
                              const std::optional<at::Tensor>& edge_time_,
                              const at::Tensor& node_norm_, const at::Tensor& row_lse_,
                              const at::Tensor& x_, double time_weight, double keep_prob,
                              int64_t seed, bool transpose) {
  check_temporal_inputs(rowptr_, col_, edge_time_, node_norm_, &row_lse_, x_, time_weight,
                        keep_prob, "temporal_spmm");
  check_cuda(rowptr_, "temporal_spmm");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous(), row_lse = row_lse_.contiguous(),
                   x = x_.contiguous();
  const bool use_time = time_weight != 0.0;
  const at::Tensor edge_time = use_time ? edge_time_->contiguous() : at::Tensor();
  const int64_t n = rowptr.numel() - 1, d = x.size(1), num_edges = col.numel();
  // transpose walks the rows of A as A^T's: a general CSR raises instead of a wrong gradient.
  if (transpose) check_symmetric_cuda(rowptr, col, edge_time, "temporal_propagate");
  at::Tensor y = at::empty_like(x);
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws = workspace(
      rowptr, temporal_spmm_workspace_bytes(num_edges, d, x.scalar_type() == at::kDouble));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "temporal_spmm", [&] {
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      GP_CUDA_LAUNCH_CHECK(temporal_spmm_launch<cuda_scalar_t<scalar_t>, index_t>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(),
          use_time ? edge_time.data_ptr() : nullptr, node_norm.data_ptr(),
          use_time ? row_lse.data_ptr() : nullptr, cptr<scalar_t>(x), mptr<scalar_t>(y), n,
          num_edges, d, time_weight, keep_prob, seed, transpose, ws.data_ptr(),
          err.data_ptr<int>(), stream));
    });
  });
  raise_device_error(err, "temporal_spmm");
  return y;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) {
  m.impl("temporal_spmm", &graphpro::cuda::temporal_spmm_cuda);
}
