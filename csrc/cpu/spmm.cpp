// CPU kernel of graphpro::spmm_kernel: y[r] = sum_e w[perm[e] or e] * x[col[e]]. Used for the
// forward over the CSR and, with perm, for the x-gradient over the transpose (no atomics).
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

at::Tensor spmm_kernel_cpu(const at::Tensor& rowptr_, const at::Tensor& col_,
                           const std::optional<at::Tensor>& weight_, const at::Tensor& x_,
                           const std::optional<at::Tensor>& perm_) {
  check_spmm_inputs(rowptr_, col_, weight_, x_, perm_);
  const int64_t n = rowptr_.numel() - 1, num_edges = col_.numel(), d = x_.size(1);
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(), x = x_.contiguous();
  const at::Tensor weight = weight_.has_value() ? weight_->contiguous() : at::Tensor();
  const at::Tensor perm = perm_.has_value() ? perm_->contiguous() : at::Tensor();
  check_rowptr_ends(rowptr, num_edges, "spmm");
  at::Tensor y = at::empty({n, d}, x.options());
  std::atomic<int> err{kOk};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "spmm", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      const int64_t* rp = rowptr.data_ptr<int64_t>();
      const index_t* cp = col.data_ptr<index_t>();
      const scalar_t* w = weight.defined() ? weight.data_ptr<scalar_t>() : nullptr;
      const int64_t* pm = perm.defined() ? perm.data_ptr<int64_t>() : nullptr;
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      const int64_t num_cols = x.size(0);
      parallel_rows(rp, n, [&](int64_t r0, int64_t r1) {
        std::vector<acc_t> acc(d);
        for (int64_t r = r0; r < r1; ++r) {
          std::fill(acc.begin(), acc.end(), acc_t(0));
          if (row_bounds_ok(rp, r, num_edges, err)) {
            const int64_t end = rp[r + 1];
            for (int64_t j = rp[r]; j < end; ++j) {
              if (j + kPrefetchDistance < num_edges) {  // across row ends: rows are short
                const int64_t cn = static_cast<int64_t>(cp[j + kPrefetchDistance]);
                if (static_cast<uint64_t>(cn) < static_cast<uint64_t>(num_cols)) prefetch_row(xp + cn * d, d);
              }
              const index_t c = cp[j];
              if (!col_ok(c, num_cols, err)) continue;
              int64_t widx = j;
              if (pm != nullptr) {
                widx = pm[j];
                if (static_cast<uint64_t>(widx) >= static_cast<uint64_t>(num_edges)) {
                  err.store(kColumnOutOfRange, std::memory_order_relaxed);
                  continue;
                }
              }
              const acc_t wj = w != nullptr ? static_cast<acc_t>(w[widx]) : acc_t(1);
              axpy(acc.data(), xp + static_cast<int64_t>(c) * d, wj, d);
            }
          }
          for (int64_t k = 0; k < d; ++k) yp[r * d + k] = static_cast<scalar_t>(acc[k]);
        }
      });
    });
  });
  raise_on_error(err.load(), "spmm");
  return y;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("spmm_kernel", &graphpro::cpu::spmm_kernel_cpu); }
