// CUDA glue of graphpro::mask_history_: the CPU kernel's checks, device guard, current stream,
// dtype/index dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/glue_utils.h"
#include "cuda/mask_history.cuh"

namespace graphpro::cuda {

void mask_history_cuda(at::Tensor& scores, const at::Tensor& hist_rowptr_,
                       const at::Tensor& hist_items_, const std::optional<at::Tensor>& users_,
                       int64_t item_begin) {
  check_mask_history_inputs(scores, hist_rowptr_, hist_items_, users_);
  const int64_t batch = scores.size(0), width = scores.size(1), nnz = hist_items_.numel();
  const int64_t num_users = hist_rowptr_.numel() - 1;
  check_cuda(scores, "mask_history_");
  const c10::cuda::CUDAGuard guard(scores.device());
  const at::Tensor rowptr = hist_rowptr_.contiguous(), items = hist_items_.contiguous();
  const at::Tensor users = users_.has_value() ? users_->contiguous() : at::Tensor();
  const at::Tensor err = error_buffer(rowptr);
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "mask_history_", [&] {
    GP_INDEX_SWITCH(items.scalar_type(), item_t, [&] {
      // Without users, row b is user b; the kernel then never reads the (null) users pointer.
      GP_INDEX_SWITCH(users.defined() ? users.scalar_type() : at::kLong, user_t, [&] {
        GP_CUDA_LAUNCH_CHECK(mask_history_launch<cuda_scalar_t<scalar_t>, item_t, user_t>(
            mptr<scalar_t>(scores), batch, width, rowptr.data_ptr<int64_t>(),
            items.data_ptr<item_t>(), users.defined() ? users.data_ptr<user_t>() : nullptr,
            num_users, nnz, item_begin, err.data_ptr<int>(), stream));
      });
    });
  });
  raise_device_error(err, "mask_history_");
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) { m.impl("mask_history_", &graphpro::cuda::mask_history_cuda); }
