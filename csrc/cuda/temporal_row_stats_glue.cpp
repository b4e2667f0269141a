// CUDA glue of graphpro::temporal_row_stats: the CPU kernel's checks, device guard, current
// stream, dtype dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/glue_utils.h"
#include "cuda/temporal_row_stats.cuh"

namespace graphpro::cuda {

at::Tensor temporal_row_stats_cuda(const at::Tensor& rowptr_, const at::Tensor& col_,
                                   const std::optional<at::Tensor>& edge_time_, double keep_prob,
                                   int64_t seed) {
  check_row_stats_inputs(rowptr_, col_, edge_time_, keep_prob);
  const int64_t n = rowptr_.numel() - 1, num_edges = col_.numel();
  check_cuda(rowptr_, "temporal_row_stats");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   edge_time = edge_time_->contiguous();
  at::Tensor lse = at::empty({n}, edge_time.options());
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws = workspace(rowptr, temporal_row_stats_workspace_bytes(num_edges));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES(edge_time.scalar_type(), "temporal_row_stats", [&] {
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      GP_CUDA_LAUNCH_CHECK(temporal_row_stats_launch<scalar_t, index_t>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(), edge_time.data_ptr<scalar_t>(),
          lse.data_ptr<scalar_t>(), n, num_edges, keep_prob, seed, ws.data_ptr(),
          err.data_ptr<int>(), stream));
    });
  });
  raise_device_error(err, "temporal_row_stats");
  return lse;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) {
  m.impl("temporal_row_stats", &graphpro::cuda::temporal_row_stats_cuda);
}
