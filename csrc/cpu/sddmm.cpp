// CPU kernel of graphpro::sddmm: out[e] = <a[row(e)], b[col[e]]> (the weight gradient of spmm).
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

at::Tensor sddmm_cpu(const at::Tensor& rowptr_, const at::Tensor& col_, const at::Tensor& a_,
                     const at::Tensor& b_) {
  check_sddmm_inputs(rowptr_, col_, a_, b_);
  const int64_t n = rowptr_.numel() - 1, num_edges = col_.numel();
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous(), a = a_.contiguous(),
                   b = b_.contiguous();
  check_rowptr_ends(rowptr, num_edges, "sddmm");
  at::Tensor out = at::empty({num_edges}, a.options());
  std::atomic<int> err{kOk};
  const int64_t d = a.size(1), num_cols = b.size(0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "sddmm", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
      const int64_t* rp = rowptr.data_ptr<int64_t>();
      const index_t* cp = col.data_ptr<index_t>();
      const scalar_t* ap = a.data_ptr<scalar_t>();
      const scalar_t* bp = b.data_ptr<scalar_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      parallel_rows(rp, n, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          if (!row_bounds_ok(rp, r, num_edges, err)) continue;
          const scalar_t* ar = ap + r * d;
          const int64_t end = rp[r + 1];
          for (int64_t j = rp[r]; j < end; ++j) {
            if (j + kPrefetchDistance < num_edges) {
              const int64_t cn = static_cast<int64_t>(cp[j + kPrefetchDistance]);
              if (static_cast<uint64_t>(cn) < static_cast<uint64_t>(num_cols)) prefetch_row(bp + cn * d, d);
            }
            const index_t c = cp[j];
            if (!col_ok(c, num_cols, err)) { o[j] = scalar_t(0); continue; }
            const scalar_t* bc = bp + static_cast<int64_t>(c) * d;
            acc_t s = 0;
            for (int64_t k = 0; k < d; ++k) s += static_cast<acc_t>(ar[k]) * static_cast<acc_t>(bc[k]);
            o[j] = static_cast<scalar_t>(s);
          }
        }
      });
    });
  });
  raise_on_error(err.load(), "sddmm");
  return out;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("sddmm", &graphpro::cpu::sddmm_cpu); }
