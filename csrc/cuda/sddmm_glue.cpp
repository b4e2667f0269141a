// CUDA glue of graphpro::sddmm: the CPU kernel's checks, device guard, current stream, dtype
// dispatch, launch, and the fused-validation error round trip.
#include <torch/library.h>

#include "cuda/glue_utils.h"
#include "cuda/sddmm.cuh"

namespace graphpro::cuda {

at::Tensor sddmm_cuda(const at::Tensor& rowptr_, const at::Tensor& col_, const at::Tensor& a_,
                      const at::Tensor& b_) {
  check_sddmm_inputs(rowptr_, col_, a_, b_);
  const int64_t n = rowptr_.numel() - 1, num_edges = col_.numel();
  check_cuda(rowptr_, "sddmm");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(), a = a_.contiguous(),
                   b = b_.contiguous();
  at::Tensor out = at::empty({num_edges}, a.options());
  const int64_t d = a.size(1), num_cols = b.size(0);
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws = workspace(rowptr, sddmm_workspace_bytes(num_edges));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "sddmm", [&] {
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      GP_CUDA_LAUNCH_CHECK(sddmm_launch<cuda_scalar_t<scalar_t>, index_t>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(), cptr<scalar_t>(a),
          cptr<scalar_t>(b), mptr<scalar_t>(out), n, num_cols, num_edges, d, ws.data_ptr(),
          err.data_ptr<int>(), stream));
    });
  });
  raise_device_error(err, "sddmm");
  return out;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) { m.impl("sddmm", &graphpro::cuda::sddmm_cuda); }
