// CPU kernels of graphpro::lightgcn and lightgcn_backward: L fused GraphPro layers summed,
// sum_{l=0..L} A^l x, evaluated in Horner form: z_1 = x + A x, z_l = x + A z_{l-1}, out = z_L.
// Each layer is one pass that gathers z_{l-1} and adds the row of x, the same bytes as summing
// the layers separately, but only two N x d buffers (z ping-pongs between a scratch buffer and
// out) whatever L is. It is also more accurate through hub rows: a hub's power-form layer sums
// thousands of same-sign terms (its degree-1 neighbours all hold a scaled copy of the hub), while
// Horner adds each neighbour's own x first (measured figures in docs/DESIGN.md, "Precision"). No
// layer activations are kept for the backward: A does not depend on x, so the backward is the same
// computation with A^T (checked: the graph must be structurally symmetric, see check_symmetric.h).
#include <torch/library.h>

#include "common/op_calls.h"

#include "cpu/check_symmetric.h"
#include "cpu/temporal_kernel.h"

namespace graphpro::cpu {
namespace {

// Per-thread scratch buffer reused across calls of the same shape: on the CPU a fresh N x d
// allocation costs page faults comparable to a whole propagation layer. Reused only while no
// one else holds a reference (use_count() == 1), so a returned tensor is never overwritten.
at::Tensor scratch_like(const at::Tensor& like) {
  thread_local at::Tensor cached;
  if (!cached.defined() || cached.use_count() != 1 || cached.sizes() != like.sizes() ||
      cached.scalar_type() != like.scalar_type()) {
    cached = at::empty_like(like);
  }
  return cached;
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
  const at::Tensor xa = x.to(acc_dtype).contiguous();
  if (num_layers == 0 || n == 0) return xa.clone().to(x.scalar_type());
  at::Tensor out = at::empty_like(xa);
  // z_l lands in out when L - l is even, so z_L does; z_{l-1} is always in the other buffer.
  at::Tensor other = num_layers >= 2 ? scratch_like(xa) : out;
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
          acc_t* bufs[2] = {out.data_ptr<acc_t>(), other.data_ptr<acc_t>()};
          for (int64_t layer = 1; layer <= num_layers; ++layer) {
            const acc_t* src = layer == 1 ? x0 : bufs[(num_layers - layer + 1) & 1];
            acc_t* dst = bufs[(num_layers - layer) & 1];
            parallel_rows(g.rowptr, n, [&](int64_t r0, int64_t r1) {
              for (int64_t r = r0; r < r1; ++r) {
                acc_t* zr = dst + r * d;
                const acc_t* xr = x0 + r * d;
                temporal_row<kTime, kDrop>(g, transpose, r, src, d, zr, err);  // 0 on empty rows
                for (int64_t k = 0; k < d; ++k) zr[k] += xr[k];
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
  check_num_layers(num_layers, "lightgcn");
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous();
  check_rowptr_ends(rowptr, col.numel(), "lightgcn");
  const bool use_time = time_weight != 0.0;
  const at::Tensor et = use_time ? edge_time->contiguous() : at::Tensor();
  const at::Tensor lse = use_time ? call_temporal_row_stats(rowptr, col, et, keep_prob, seed)
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
  check_num_layers(num_layers, "lightgcn_backward");
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous();
  check_rowptr_ends(rowptr, col.numel(), "lightgcn_backward");
  const bool use_time = time_weight != 0.0;
  const at::Tensor et = use_time ? edge_time->contiguous() : at::Tensor();
  // The transposed layers walk the rows of A (no transposed copy): valid only on a symmetric
  // graph, so a general CSR raises here instead of returning a wrong gradient. Cost: O(E) index
  // reads once per backward (not per layer); see docs/DESIGN.md.
  if (num_layers > 0) check_symmetric_cpu(rowptr, col, et, "lightgcn");
  return propagate_sum(rowptr, col, et, node_norm,
                       use_time ? row_lse.contiguous() : at::Tensor(), grad, num_layers,
                       time_weight, keep_prob, seed, /*transpose=*/true, "lightgcn_backward");
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) {
  m.impl("lightgcn", &graphpro::cpu::lightgcn_cpu);
  m.impl("lightgcn_backward", &graphpro::cpu::lightgcn_backward_cpu);
}
