// CPU kernel of graphpro::temporal_spmm: one fused GraphPro layer (or its transpose) with the edge
// weights rebuilt on the fly from edge_time, row_lse and node_norm.
#include <torch/library.h>

#include "cpu/check_symmetric.h"
#include "cpu/temporal_kernel.h"

namespace graphpro::cpu {

at::Tensor temporal_spmm_cpu(const at::Tensor& rowptr_, const at::Tensor& col_,
                             const std::optional<at::Tensor>& edge_time_,
                             const at::Tensor& node_norm_, const at::Tensor& row_lse_,
                             const at::Tensor& x_, double time_weight, double keep_prob,
                             int64_t seed, bool transpose) {
  check_temporal_inputs(rowptr_, col_, edge_time_, node_norm_, &row_lse_, x_, time_weight,
                        keep_prob, "temporal_spmm");
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   node_norm = node_norm_.contiguous(), row_lse = row_lse_.contiguous(),
                   x = x_.contiguous();
  const bool use_time = time_weight != 0.0;
  const at::Tensor edge_time = use_time ? edge_time_->contiguous() : at::Tensor();
  const int64_t n = rowptr.numel() - 1, d = x.size(1), num_edges = col.numel();
  check_rowptr_ends(rowptr, num_edges, "temporal_spmm");
  // transpose walks the rows of A as if they were A^T's: a general CSR raises instead of returning
  // a wrong gradient (temporal_propagate's backward is the only caller).
  if (transpose) check_symmetric_cpu(rowptr, col, edge_time, "temporal_propagate");
  at::Tensor y = at::empty_like(x);
  std::atomic<int> err{kOk};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "temporal_spmm", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      TemporalGraphView<acc_t, index_t> g{rowptr.data_ptr<int64_t>(), col.data_ptr<index_t>(),
                                          use_time ? edge_time.data_ptr<acc_t>() : nullptr,
                                          node_norm.data_ptr<acc_t>(),
                                          use_time ? row_lse.data_ptr<acc_t>() : nullptr,
                                          n, num_edges, static_cast<acc_t>(time_weight),
                                          seed_key(seed), keep_threshold(keep_prob)};
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      GP_BOOL_SWITCH(use_time, kTime, [&] {
        GP_BOOL_SWITCH(keep_prob < 1.0, kDrop, [&] {
          parallel_rows(g.rowptr, n, [&](int64_t r0, int64_t r1) {
            std::vector<acc_t> acc(d);
            for (int64_t r = r0; r < r1; ++r) {
              temporal_row<kTime, kDrop>(g, transpose, r, xp, d, acc.data(), err);
              for (int64_t k = 0; k < d; ++k) yp[r * d + k] = static_cast<scalar_t>(acc[k]);
            }
          });
        });
      });
    });
  });
  raise_on_error(err.load(), "temporal_spmm");
  return y;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("temporal_spmm", &graphpro::cpu::temporal_spmm_cpu); }
