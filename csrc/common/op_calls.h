// Typed dispatcher handles for ops that other ops call (so the callee runs on whichever backend
// the inputs live on), shared by the CPU kernels and the CUDA glue.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace graphpro {

inline at::Tensor call_temporal_row_stats(const at::Tensor& rowptr, const at::Tensor& col,
                                          const std::optional<at::Tensor>& edge_time,
                                          double keep_prob, int64_t seed) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("graphpro::temporal_row_stats", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, double, int64_t)>();
  return op.call(rowptr, col, edge_time, keep_prob, seed);
}

}  // namespace graphpro
