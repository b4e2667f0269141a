// CPU kernel of graphpro::temporal_row_stats: per-row log-sum-exp of the kept edge times, the only
// state the temporal softmax needs (O(N) instead of a per-edge weight tensor).
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

at::Tensor temporal_row_stats_cpu(const at::Tensor& rowptr_, const at::Tensor& col_,
                                  const std::optional<at::Tensor>& edge_time_, double keep_prob,
                                  int64_t seed) {
  check_row_stats_inputs(rowptr_, col_, edge_time_, keep_prob);
  const int64_t n = rowptr_.numel() - 1, num_edges = col_.numel();
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(),
                   edge_time = edge_time_->contiguous();
  check_rowptr_ends(rowptr, num_edges, "temporal_row_stats");
  at::Tensor lse = at::empty({n}, edge_time.options());
  std::atomic<int> err{kOk};
  const uint64_t key = seed_key(seed), thr = keep_threshold(keep_prob);
  AT_DISPATCH_FLOATING_TYPES(edge_time.scalar_type(), "temporal_row_stats", [&] {
    using acc_t = scalar_t;
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      GP_BOOL_SWITCH(keep_prob < 1.0, kDrop, [&] {
        const int64_t* rp = rowptr.data_ptr<int64_t>();
        const index_t* cp = col.data_ptr<index_t>();
        const acc_t* t = edge_time.data_ptr<acc_t>();
        acc_t* out = lse.data_ptr<acc_t>();
        parallel_rows(rp, n, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) {
            out[r] = acc_t(0);
            if (!row_bounds_ok(rp, r, num_edges, err)) continue;
            acc_t m = -std::numeric_limits<acc_t>::infinity();
            for (int64_t j = rp[r]; j < rp[r + 1]; ++j) {
              if (!col_ok(cp[j], n, err)) continue;
              if (!std::isfinite(t[j])) err.store(kNonFiniteTime, std::memory_order_relaxed);
              if (kDrop && !edge_kept(key, r, cp[j], thr)) continue;
              m = std::max(m, t[j]);
            }
            if (m == -std::numeric_limits<acc_t>::infinity()) continue;  // no kept edge
            acc_t s = 0;
            for (int64_t j = rp[r]; j < rp[r + 1]; ++j) {
              if (static_cast<uint64_t>(static_cast<int64_t>(cp[j])) >= static_cast<uint64_t>(n)) continue;
              if (kDrop && !edge_kept(key, r, cp[j], thr)) continue;
              s += std::exp(t[j] - m);
            }
            out[r] = m + std::log(s);
          }
        });
      });
    });
  });
  raise_on_error(err.load(), "temporal_row_stats");
  return lse;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) {
  m.impl("temporal_row_stats", &graphpro::cpu::temporal_row_stats_cpu);
}
