// CUDA glue of graphpro::sample_negatives: the CPU kernel's checks, device guard, current
// stream, index dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/glue_utils.h"
#include "cuda/sample_negatives.cuh"

namespace graphpro::cuda {

at::Tensor sample_negatives_cuda(const at::Tensor& hist_rowptr_, const at::Tensor& hist_items_,
                                 const at::Tensor& users_, int64_t num_items, int64_t k,
                                 int64_t seed) {
  check_history_inputs(hist_rowptr_, hist_items_, &users_, "sample_negatives");
  TORCH_CHECK(num_items >= 1, "graphpro.sample_negatives: num_items must be >= 1, got ", num_items);
  TORCH_CHECK(k >= 0, "graphpro.sample_negatives: k must be >= 0, got ", k);
  check_cuda(hist_rowptr_, "sample_negatives");
  const c10::cuda::CUDAGuard guard(hist_rowptr_.device());
  const at::Tensor rowptr = hist_rowptr_.contiguous(), items = hist_items_.contiguous(),
                   users = users_.contiguous();
  const int64_t num_users = rowptr.numel() - 1, nnz = items.numel(), batch = users.numel();
  at::Tensor out = at::empty({batch, k}, users.options().dtype(at::kLong));
  const at::Tensor err = error_buffer(rowptr);
  const cudaStream_t stream = current_stream();
  GP_INDEX_SWITCH(items.scalar_type(), item_t, [&] {
    GP_INDEX_SWITCH(users.scalar_type(), user_t, [&] {
      GP_CUDA_LAUNCH_CHECK(sample_negatives_launch<item_t, user_t>(
          rowptr.data_ptr<int64_t>(), items.data_ptr<item_t>(), users.data_ptr<user_t>(),
          out.data_ptr<int64_t>(), num_users, nnz, batch, num_items, k, seed, err.data_ptr<int>(),
          stream));
    });
  });
  raise_device_error(err, "sample_negatives");
  return out;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) {
  m.impl("sample_negatives", &graphpro::cuda::sample_negatives_cuda);
}
