// CUDA glue of graphpro::spmm_kernel: the CPU kernel's checks, device guard, current stream,
// dtype dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/glue_utils.h"
#include "cuda/spmm.cuh"

namespace graphpro::cuda {

at::Tensor spmm_kernel_cuda(const at::Tensor& rowptr_, const at::Tensor& col_,
                            const std::optional<at::Tensor>& weight_, const at::Tensor& x_,
                            const std::optional<at::Tensor>& perm_) {
  check_spmm_inputs(rowptr_, col_, weight_, x_, perm_);
  const int64_t n = rowptr_.numel() - 1, num_edges = col_.numel(), d = x_.size(1);
  check_cuda(rowptr_, "spmm");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(), x = x_.contiguous();
  const at::Tensor weight = weight_.has_value() ? weight_->contiguous() : at::Tensor();
  const at::Tensor perm = perm_.has_value() ? perm_->contiguous() : at::Tensor();
  at::Tensor y = at::empty({n, d}, x.options());
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws =
      workspace(rowptr, spmm_workspace_bytes(num_edges, d, x.scalar_type() == at::kDouble));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "spmm", [&] {
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      GP_CUDA_LAUNCH_CHECK(spmm_launch<cuda_scalar_t<scalar_t>, index_t>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(),
          weight.defined() ? cptr<scalar_t>(weight) : nullptr,
          perm.defined() ? perm.data_ptr<int64_t>() : nullptr, cptr<scalar_t>(x),
          mptr<scalar_t>(y), n, x.size(0), num_edges, d, ws.data_ptr(), err.data_ptr<int>(),
          stream));
    });
  });
  raise_device_error(err, "spmm");
  return y;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) { m.impl("spmm_kernel", &graphpro::cuda::spmm_kernel_cuda); }
