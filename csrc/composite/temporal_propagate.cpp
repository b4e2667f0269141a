// graphpro::temporal_propagate: one GraphPro layer = row statistics + fused weighted SpMM.
// Device-generic (CompositeExplicitAutograd); autograd lives in ops.py.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace graphpro {

// GraphPro eqs. (5)-(6): y_r = sum_c (lam * softmax_r(t)_c + (1 - lam) / sqrt(d_r d_c)) x_c.
std::tuple<at::Tensor, at::Tensor> temporal_propagate(
    const at::Tensor& rowptr, const at::Tensor& col, const std::optional<at::Tensor>& edge_time,
    const at::Tensor& node_norm, const at::Tensor& x, double time_weight, double keep_prob,
    int64_t seed) {
  static auto stats = c10::Dispatcher::singleton()
                          .findSchemaOrThrow("graphpro::temporal_row_stats", "")
                          .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                            const std::optional<at::Tensor>&, double, int64_t)>();
  static auto apply =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("graphpro::temporal_spmm", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            const at::Tensor&, const at::Tensor&, const at::Tensor&, double, double,
                            int64_t, bool)>();
  // Without a temporal term the statistics are never read: skip the extra pass over the edges.
  const bool need_stats = time_weight != 0.0 && edge_time.has_value();
  at::Tensor lse = need_stats ? stats.call(rowptr, col, edge_time, keep_prob, seed)
                              : at::zeros({rowptr.numel() - 1},
                                          x.options().dtype(x.scalar_type() == at::kDouble
                                                                ? at::kDouble
                                                                : at::kFloat));
  at::Tensor y = apply.call(rowptr, col, edge_time, node_norm, lse, x, time_weight, keep_prob, seed,
                            /*transpose=*/false);
  return {y, lse};
}

}  // namespace graphpro

TORCH_LIBRARY_IMPL(graphpro, CompositeExplicitAutograd, m) {
  m.impl("temporal_propagate", &graphpro::temporal_propagate);
}
