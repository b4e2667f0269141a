// CUDA glue of graphpro::lightgcn and lightgcn_backward: the shared temporal checks, row
// statistics through the dispatcher (as the CPU file does), ping-pong buffers in the
// accumulation dtype, launch, and the fused-validation error round trip.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "common/op_calls.h"

#include "cuda/check_symmetric_glue.h"
#include "cuda/glue_utils.h"
#include "cuda/lightgcn.cuh"

namespace graphpro::cuda {
namespace {

// out = sum_{l=0..L} M^l x with M = A (transpose=false) or A^T; never writes x.
at::Tensor propagate_sum(const at::Tensor& rowptr, const at::Tensor& col,
                         const at::Tensor& edge_time, const at::Tensor& node_norm,
                         const at::Tensor& row_lse, const at::Tensor& x, int64_t num_layers,
                         double time_weight, double keep_prob, int64_t seed, bool transpose,
                         const char* op) {
  const int64_t n = rowptr.numel() - 1, d = x.size(1), num_edges = col.numel();
  const bool use_time = time_weight != 0.0;
  const auto acc_dtype = opmath_dtype(x.scalar_type());
  const bool same_dtype = acc_dtype == x.scalar_type();
  // x in the accumulation dtype (x itself when it already is): only ever read.
  const at::Tensor x_acc = x.to(acc_dtype).contiguous();
  const bool trivial = num_layers == 0 || n == 0;
  const bool need_out_acc = !trivial && (same_dtype || num_layers >= 2);
  const at::Tensor out_acc = need_out_acc ? at::empty_like(x_acc) : at::Tensor();
  at::Tensor out = trivial ? at::Tensor()
                           : (same_dtype ? out_acc : at::empty({n, d}, x.options()));
  const at::Tensor buf0 = !trivial && num_layers >= 2 ? at::empty_like(x_acc) : at::Tensor();
  const at::Tensor buf1 = !trivial && num_layers >= 3 ? at::empty_like(x_acc) : at::Tensor();
  const at::Tensor err = error_buffer(rowptr);
  const at::Tensor ws = workspace(
      rowptr, trivial ? 0 : lightgcn_workspace_bytes(num_edges, d, acc_dtype == at::kDouble));
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lightgcn", [&] {
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      GP_CUDA_LAUNCH_CHECK(lightgcn_launch<cuda_scalar_t<scalar_t>, index_t>(
          rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(),
          use_time ? edge_time.data_ptr() : nullptr, node_norm.data_ptr(),
          use_time ? row_lse.data_ptr() : nullptr, x_acc.data_ptr(),
          buf0.defined() ? buf0.data_ptr() : nullptr, buf1.defined() ? buf1.data_ptr() : nullptr,
          out_acc.defined() ? out_acc.data_ptr() : nullptr,
          out.defined() ? mptr<scalar_t>(out) : nullptr, n, num_edges, d,
          trivial ? 0 : num_layers, time_weight, keep_prob, seed, transpose, ws.data_ptr(),
          err.data_ptr<int>(), stream));
    });
  });
  raise_device_error(err, op);
  // Zero layers (or no nodes): a fresh copy of x, exactly as the CPU's round trip through acc.
  if (trivial) return x_acc.clone().to(x.scalar_type());
  return out;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> lightgcn_cuda(const at::Tensor& rowptr_, const at::Tensor& col_,
                                                 const std::optional<at::Tensor>& edge_time,
                                                 const at::Tensor& node_norm_, const at::Tensor& x,
                                                 int64_t num_layers, double time_weight,
                                                 double keep_prob, int64_t seed) {
  check_temporal_inputs(rowptr_, col_, edge_time, node_norm_, nullptr, x, time_weight, keep_prob,
                        "lightgcn");
  check_num_layers(num_layers, "lightgcn");
  check_cuda(rowptr_, "lightgcn");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous();
  const bool use_time = time_weight != 0.0;
  const at::Tensor et = use_time ? edge_time->contiguous() : at::Tensor();
  // Computed once; temporal_row_stats also validates columns, times and rowptr.
  const at::Tensor lse = use_time ? call_temporal_row_stats(rowptr, col, et, keep_prob, seed)
                                  : at::zeros({rowptr.numel() - 1}, node_norm.options());
  at::Tensor out = propagate_sum(rowptr, col, et, node_norm, lse, x, num_layers, time_weight,
                                 keep_prob, seed, /*transpose=*/false, "lightgcn");
  return {out, lse};
}

at::Tensor lightgcn_backward_cuda(const at::Tensor& rowptr_, const at::Tensor& col_,
                                  const std::optional<at::Tensor>& edge_time,
                                  const at::Tensor& node_norm_, const at::Tensor& row_lse,
                                  const at::Tensor& grad, int64_t num_layers, double time_weight,
                                  double keep_prob, int64_t seed) {
  check_temporal_inputs(rowptr_, col_, edge_time, node_norm_, &row_lse, grad, time_weight,
                        keep_prob, "lightgcn_backward");
  check_num_layers(num_layers, "lightgcn_backward");
  check_cuda(rowptr_, "lightgcn_backward");
  const c10::cuda::CUDAGuard guard(rowptr_.device());
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous();
  const bool use_time = time_weight != 0.0;
  const at::Tensor et = use_time ? edge_time->contiguous() : at::Tensor();
  // The transposed layers walk the rows of A: a general CSR raises instead of a wrong gradient.
  if (num_layers > 0) check_symmetric_cuda(rowptr, col, et, "lightgcn");
  return propagate_sum(rowptr, col, et, node_norm,
                       use_time ? row_lse.contiguous() : at::Tensor(), grad, num_layers,
                       time_weight, keep_prob, seed, /*transpose=*/true, "lightgcn_backward");
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) {
  m.impl("lightgcn", &graphpro::cuda::lightgcn_cuda);
  m.impl("lightgcn_backward", &graphpro::cuda::lightgcn_backward_cuda);
}
