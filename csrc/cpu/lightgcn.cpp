// CPU kernels of graphpro::lightgcn and lightgcn_backward: L fused GraphPro layers summed,
// sum_{l=0..L} A^l x, with the running sum accumulated in the layer pass (no layer activations
// kept for the backward: A does not depend on x, so the backward is sum_l (A^T)^l g).
#include <torch/library.h>

#include "cpu/temporal_kernel.h"

namespace graphpro::cpu {
namespace {

// Per-thread scratch buffers reused across calls of the same shape: on the CPU a fresh N x d
// allocation costs page faults comparable to a whole propagation layer. Reused only while no
// one else holds a reference (use_count() == 1), so a returned tensor is never overwritten.
at::Tensor scratch(int slot, const at::Tensor& like) {
  thread_local at::Tensor cache[2];
  at::Tensor& t = cache[slot];
  if (!t.defined() || t.use_count() != 1 || t.sizes() != like.sizes() ||
      t.scalar_type() != like.scalar_type()) {
    t = at::empty_like(like);
  }
  return t;
}

at::Tensor row_stats(const at::Tensor& rowptr, const at::Tensor& col,
                     const std::optional<at::Tensor>& edge_time, double keep_prob, int64_t seed) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("graphpro::temporal_row_stats", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, double, int64_t)>();
  return op.call(rowptr, col, edge_time, keep_prob, seed);
}

// out = sum_{l=0..L} M^l x with M = A (transpose=false) or A^T, all in the accumulation dtype.
at::Tensor propagate_sum(const at::Tensor& rowptr, const at::Tensor& col,
                         const at::Tensor& edge_time, const at::Tensor& node_norm,
                         const at::Tensor& row_lse, const at::Tensor& x, int64_t num_layers,
                         double time_weight, double keep_prob, int64_t seed, bool transpose,
                         const char* op) {
  const int64_t n = rowptr.numel() - 1, d = x.size(1), num_edges = col.numel();
  const bool use_time = time_weight != 0.0;
  const auto acc_dtype = opmath_dtype(x.scalar_type());
  // Layers ping-pong between two scratch buffers (x is never written); the first layer writes
  // out = x + A x directly, so out needs no separate copy of x.
  const at::Tensor xa = x.to(acc_dtype).contiguous();
  at::Tensor out = num_layers == 0 || n == 0 ? xa.clone() : at::empty_like(xa);
  if (num_layers == 0 || n == 0) return out.to(x.scalar_type());
  at::Tensor bufs[2] = {num_layers > 1 ? scratch(0, xa) : at::Tensor(),
                        num_layers > 2 ? scratch(1, xa) : at::Tensor()};
  std::atomic<int> err{kOk};
  AT_DISPATCH_FLOATING_TYPES(acc_dtype, "lightgcn", [&] {
    using acc_t = scalar_t;
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      TemporalGraphView<acc_t, index_t> g{rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(),
                                          use_time ? edge_time.data_ptr<acc_t>() : nullptr,
                                          node_norm.data_ptr<acc_t>(),
                                          use_time ? row_lse.data_ptr<acc_t>() : nullptr,
                                          n, num_edges, static_cast<acc_t>(time_weight),
                                          seed_key(seed), keep_threshold(keep_prob)};
      GP_BOOL_SWITCH(use_time, kTime, [&] {
        GP_BOOL_SWITCH(keep_prob < 1.0, kDrop, [&] {
          const acc_t* x0 = xa.data_ptr<acc_t>();
          acc_t* op_ = out.data_ptr<acc_t>();
          for (int64_t layer = 0; layer < num_layers; ++layer) {
            const acc_t* xp = layer == 0 ? x0 : bufs[(layer - 1) & 1].data_ptr<acc_t>();
            acc_t* yp = layer + 1 < num_layers ? bufs[layer & 1].data_ptr<acc_t>() : nullptr;
            const bool first = layer == 0;
            const bool last = layer == num_layers - 1;
            parallel_rows(g.rowptr, n, [&](int64_t r0, int64_t r1) {
              std::vector<acc_t> tmp(last ? d : 0);
              for (int64_t r = r0; r < r1; ++r) {
                acc_t* orow = op_ + r * d;
                // An empty row contributes 0 to out after the first layer: only its (reused)
                // scratch row is cleared, in case an asymmetric graph gathers it.
                if (g.rowptr[r] == g.rowptr[r + 1] && !first) {
                  if (!last) std::fill(yp + r * d, yp + (r + 1) * d, acc_t(0));
                  continue;
                }
                // The last layer's value is only summed into out: keep it in a row buffer.
                acc_t* yr = last ? tmp.data() : yp + r * d;
                temporal_row<kTime, kDrop>(g, transpose, r, xp, d, yr, err);
                if (first) {
                  const acc_t* xr = x0 + r * d;
                  for (int64_t k = 0; k < d; ++k) orow[k] = xr[k] + yr[k];
                } else {
                  for (int64_t k = 0; k < d; ++k) orow[k] += yr[k];
                }
              }
            });
          }
        });
      });
    });
  });
  raise_on_error(err.load(), op);
  return out.to(x.scalar_type());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> lightgcn_cpu(const at::Tensor& rowptr_, const at::Tensor& col_,
                                                const std::optional<at::Tensor>& edge_time,
                                                const at::Tensor& node_norm_, const at::Tensor& x,
                                                int64_t num_layers, double time_weight,
                                                double keep_prob, int64_t seed) {
  check_temporal_inputs(rowptr_, col_, edge_time, node_norm_, nullptr, x, time_weight, keep_prob,
                        "lightgcn");
  TORCH_CHECK(num_layers >= 0, "graphpro.lightgcn: num_layers must be >= 0, got ", num_layers);
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous();
  check_rowptr_ends(rowptr, col.numel(), "lightgcn");
  const bool use_time = time_weight != 0.0;
  const at::Tensor et = use_time ? edge_time->contiguous() : at::Tensor();
  const at::Tensor lse = use_time ? row_stats(rowptr, col, et, keep_prob, seed)
                                  : at::zeros({rowptr.numel() - 1}, node_norm.options());
  at::Tensor out = propagate_sum(rowptr, col, et, node_norm, lse, x, num_layers, time_weight,
                                 keep_prob, seed, /*transpose=*/false, "lightgcn");
  return {out, lse};
}

at::Tensor lightgcn_backward_cpu(const at::Tensor& rowptr_, const at::Tensor& col_,
                                 const std::optional<at::Tensor>& edge_time,
                                 const at::Tensor& node_norm_, const at::Tensor& row_lse,
                                 const at::Tensor& grad, int64_t num_layers, double time_weight,
                                 double keep_prob, int64_t seed) {
  check_temporal_inputs(rowptr_, col_, edge_time, node_norm_, &row_lse, grad, time_weight,
                        keep_prob, "lightgcn_backward");
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous();
  check_rowptr_ends(rowptr, col.numel(), "lightgcn_backward");
  const bool use_time = time_weight != 0.0;
  return propagate_sum(rowptr, col, use_time ? edge_time->contiguous() : at::Tensor(), node_norm,
                       use_time ? row_lse.contiguous() : at::Tensor(), grad, num_layers,
                       time_weight, keep_prob, seed, /*transpose=*/true, "lightgcn_backward");
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) {
  m.impl("lightgcn", &graphpro::cpu::lightgcn_cpu);
  m.impl("lightgcn_backward", &graphpro::cpu::lightgcn_backward_cpu);
}
