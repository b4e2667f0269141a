// CPU kernel of graphpro::sample_negatives: uniform negatives from each user's complement, one
// Philox draw per sample mapped to the r-th missing item (exact, no rejection loop, so near-full
// histories cost the same and can never hang). Identical to the CUDA kernel for the same seed.
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

at::Tensor sample_negatives_cpu(const at::Tensor& hist_rowptr_, const at::Tensor& hist_items_,
                                const at::Tensor& users_, int64_t num_items, int64_t k,
                                int64_t seed) {
  check_history_inputs(hist_rowptr_, hist_items_, &users_, "sample_negatives");
  TORCH_CHECK(num_items >= 1, "graphpro.sample_negatives: num_items must be >= 1, got ", num_items);
  TORCH_CHECK(k >= 0, "graphpro.sample_negatives: k must be >= 0, got ", k);
  const at::Tensor rowptr = hist_rowptr_.contiguous(), items = hist_items_.contiguous(),
                   users = users_.contiguous();
  const int64_t num_users = rowptr.numel() - 1, nnz = items.numel(), batch = users.numel();
  check_rowptr_ends(rowptr, nnz, "sample_negatives");
  at::Tensor out = at::empty({batch, k}, users.options().dtype(at::kLong));
  std::atomic<int> err{kOk};
  GP_INDEX_SWITCH(items.scalar_type(), item_t, [&] {
    GP_INDEX_SWITCH(users.scalar_type(), user_t, [&] {
      const int64_t* rp = rowptr.data_ptr<int64_t>();
      const item_t* hp = items.data_ptr<item_t>();
      const user_t* up = users.data_ptr<user_t>();
      int64_t* o = out.data_ptr<int64_t>();
      at::parallel_for(0, batch, 256, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t u = static_cast<int64_t>(up[b]);
          int code = kOk;
          int64_t n = 0;
          const item_t* h = nullptr;
          if (u < 0 || u >= num_users) {
            code = kUserOutOfRange;
          } else if (!row_bounds_ok(rp, u, nnz, err)) {
            code = kRowptrNotMonotone;
          } else {
            h = hp + rp[u];
            n = rp[u + 1] - rp[u];
            // The rank mapping needs a strictly increasing row inside [0, num_items).
            for (int64_t j = 0; j < n && code == kOk; ++j) {
              if (h[j] < 0 || h[j] >= num_items) code = kHistoryOutOfRange;
              else if (j > 0 && h[j] <= h[j - 1]) code = kHistoryUnsorted;
            }
            if (code == kOk && k > 0 && n >= num_items) code = kComplementTooSmall;
          }
          if (code != kOk) {
            err.store(code, std::memory_order_relaxed);
            for (int64_t j = 0; j < k; ++j) o[b * k + j] = -1;
            continue;
          }
          const uint64_t m = static_cast<uint64_t>(num_items - n);
          for (int64_t j = 0; j < k; ++j) {
            const int64_t r = static_cast<int64_t>(bounded64(sample_bits(seed, b, j), m));
            o[b * k + j] = nth_missing(h, n, r);
          }
        }
      });
    });
  });
  raise_on_error(err.load(), "sample_negatives");
  return out;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) {
  m.impl("sample_negatives", &graphpro::cpu::sample_negatives_cpu);
}
