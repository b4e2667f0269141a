// CUDA glue of the symmetric-graph check (not an op of its own: lightgcn_backward and
// temporal_spmm(transpose=True) call it before walking the rows of A as A^T's).
#include "cuda/check_symmetric_glue.h"

#include "cuda/check_symmetric.cuh"
#include "cuda/glue_utils.h"

namespace graphpro::cuda {

void check_symmetric_cuda(const at::Tensor& rowptr, const at::Tensor& col,
                          const at::Tensor& edge_time, const char* op) {
  const int64_t n = rowptr.numel() - 1, num_edges = col.numel();
  const at::Tensor err = error_buffer(rowptr);
  const cudaStream_t stream = current_stream();
  const bool f64 = edge_time.defined() && edge_time.scalar_type() == at::kDouble;
  GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
    if (f64) {
      GP_CUDA_LAUNCH_CHECK(check_symmetric_launch<index_t, double>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(), edge_time.data_ptr<double>(), n,
          num_edges, err.data_ptr<int>(), stream));
    } else {
      GP_CUDA_LAUNCH_CHECK(check_symmetric_launch<index_t, float>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(),
          edge_time.defined() ? edge_time.data_ptr<float>() : nullptr, n, num_edges,
          err.data_ptr<int>(), stream));
    }
  });
  raise_device_error(err, op);
}

}  // namespace graphpro::cuda
