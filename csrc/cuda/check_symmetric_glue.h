// Torch side of the CUDA graph check run before the temporal ops' backward
// (check_symmetric_glue.cpp; the kernel is in check_symmetric.cu).
#pragma once
#include <ATen/ATen.h>

namespace graphpro::cuda {

// Raises a one-line error naming op unless the CSR (contiguous, on the current device) is
// structurally symmetric with sorted rows and, when edge_time is defined, symmetric edge times.
// One kernel over the edges and one small device-to-host copy.
void check_symmetric_cuda(const at::Tensor& rowptr, const at::Tensor& col,
                          const at::Tensor& edge_time, const char* op);

}  // namespace graphpro::cuda
