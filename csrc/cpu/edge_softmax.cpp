// CPU kernels of graphpro::edge_softmax and its backward: per-row max -> exp -> sum -> divide
// (DGL's formulation); backward grad = out * (g - sum_row(out * g)). NaN scores make their row
// NaN; an all -inf row gives zeros.
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

at::Tensor edge_softmax_cpu(const at::Tensor& rowptr_, const at::Tensor& scores_) {
  check_edge_values(rowptr_, scores_, "scores");
  const at::Tensor rowptr = rowptr_.contiguous(), scores = scores_.contiguous();
  const int64_t n = rowptr.numel() - 1, num_edges = scores.numel();
  check_rowptr_ends(rowptr, num_edges, "edge_softmax");
  at::Tensor out = at::empty_like(scores);
  std::atomic<int> err{kOk};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "edge_softmax", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t* rp = rowptr.data_ptr<int64_t>();
    const scalar_t* s = scores.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    parallel_rows(rp, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        if (!row_bounds_ok(rp, r, num_edges, err)) continue;
        // The running max keeps a NaN once it sees one (std::max would skip it), so a row holding
        // a NaN comes out all NaN, as torch.softmax and the reference give, also when the rest of
        // the row is -inf.
        acc_t m = -std::numeric_limits<acc_t>::infinity();
        for (int64_t j = rp[r]; j < rp[r + 1]; ++j) {
          const acc_t v = static_cast<acc_t>(s[j]);
          if (std::isnan(v) || v > m) m = v;
        }
        // A row of -inf scores (all masked) has no defined softmax: give it zeros, not NaN (the
        // reference and torch.softmax give NaN there; documented in ops.edge_softmax).
        if (m == -std::numeric_limits<acc_t>::infinity()) {
          for (int64_t j = rp[r]; j < rp[r + 1]; ++j) o[j] = scalar_t(0);
          continue;
        }
        acc_t z = 0;
        for (int64_t j = rp[r]; j < rp[r + 1]; ++j) z += std::exp(static_cast<acc_t>(s[j]) - m);
        const acc_t inv = acc_t(1) / z;
        for (int64_t j = rp[r]; j < rp[r + 1]; ++j)
          o[j] = static_cast<scalar_t>(std::exp(static_cast<acc_t>(s[j]) - m) * inv);
      }
    });
  });
  raise_on_error(err.load(), "edge_softmax");
  return out;
}

at::Tensor edge_softmax_backward_cpu(const at::Tensor& rowptr_, const at::Tensor& out_,
                                     const at::Tensor& grad_) {
  check_edge_values(rowptr_, out_, "out");
  check_edge_values(rowptr_, grad_, "grad_out");
  TORCH_CHECK(out_.sizes() == grad_.sizes() && out_.scalar_type() == grad_.scalar_type(),
              "graphpro.edge_softmax_backward: out and grad_out must match in shape and dtype");
  const at::Tensor rowptr = rowptr_.contiguous(), out = out_.contiguous(), grad = grad_.contiguous();
  const int64_t n = rowptr.numel() - 1, num_edges = out.numel();
  check_rowptr_ends(rowptr, num_edges, "edge_softmax_backward");
  at::Tensor gin = at::empty_like(out);
  std::atomic<int> err{kOk};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "edge_softmax_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t* rp = rowptr.data_ptr<int64_t>();
    const scalar_t* o = out.data_ptr<scalar_t>();
    const scalar_t* g = grad.data_ptr<scalar_t>();
    scalar_t* gi = gin.data_ptr<scalar_t>();
    parallel_rows(rp, n, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        if (!row_bounds_ok(rp, r, num_edges, err)) continue;
        acc_t dot = 0;
        for (int64_t j = rp[r]; j < rp[r + 1]; ++j)
          dot += static_cast<acc_t>(o[j]) * static_cast<acc_t>(g[j]);
        for (int64_t j = rp[r]; j < rp[r + 1]; ++j)
          gi[j] = static_cast<scalar_t>(static_cast<acc_t>(o[j]) * (static_cast<acc_t>(g[j]) - dot));
      }
    });
  });
  raise_on_error(err.load(), "edge_softmax_backward");
  return gin;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) {
  m.impl("edge_softmax", &graphpro::cpu::edge_softmax_cpu);
  m.impl("edge_softmax_backward", &graphpro::cpu::edge_softmax_backward_cpu);
}
