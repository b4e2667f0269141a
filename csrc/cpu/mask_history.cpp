// CPU kernel of graphpro::mask_history_: sets scores[b, i - item_begin] = -inf for each history
// item i of user row users[b] (or b) inside the chunk [item_begin, item_begin + width).
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

void mask_history_cpu(at::Tensor& scores, const at::Tensor& hist_rowptr_,
                      const at::Tensor& hist_items_, const std::optional<at::Tensor>& users_,
                      int64_t item_begin) {
  check_mask_history_inputs(scores, hist_rowptr_, hist_items_, users_);
  const at::Tensor rowptr = hist_rowptr_.contiguous(), items = hist_items_.contiguous();
  const int64_t batch = scores.size(0), width = scores.size(1), nnz = items.numel();
  const int64_t num_users = rowptr.numel() - 1;
  check_rowptr_ends(rowptr, nnz, "mask_history_");
  const at::Tensor users = users_.has_value() ? users_->contiguous().to(at::kLong)
                                              : at::arange(batch, rowptr.options());
  std::atomic<int> err{kOk};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "mask_history_", [&] {
    GP_INDEX_SWITCH(items.scalar_type(), item_t, [&] {
      const int64_t* rp = rowptr.data_ptr<int64_t>();
      const item_t* hp = items.data_ptr<item_t>();
      const int64_t* up = users.data_ptr<int64_t>();
      scalar_t* s = scores.data_ptr<scalar_t>();
      const scalar_t neg_inf = -std::numeric_limits<scalar_t>::infinity();
      at::parallel_for(0, batch, 64, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t u = up[b];
          if (u < 0 || u >= num_users) { err.store(kUserOutOfRange); continue; }
          if (!row_bounds_ok(rp, u, nnz, err)) continue;
          const item_t* h = hp + rp[u];
          const int64_t n = rp[u + 1] - rp[u];
          // Binary search needs a sorted row: verify it once, on the first chunk.
          if (item_begin == 0) {
            bool sorted = true;
            for (int64_t j = 1; j < n; ++j) sorted &= h[j] > h[j - 1];
            if (!sorted) { err.store(kHistoryUnsorted); continue; }
          }
          for (int64_t j = lower_bound_idx(h, n, item_begin); j < n; ++j) {
            const int64_t i = static_cast<int64_t>(h[j]) - item_begin;
            if (i >= width) break;
            if (i < 0) continue;  // only reachable with an unsorted row on a later chunk
            s[b * width + i] = neg_inf;
          }
        }
      });
    });
  });
  raise_on_error(err.load(), "mask_history_");
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("mask_history_", &graphpro::cpu::mask_history_cpu); }
