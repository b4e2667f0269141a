// graphpro::spmm: the differentiable public SpMM. Device-generic (CompositeExplicitAutograd): the
// forward is spmm_kernel; the transpose arguments only matter to the backward (ops.py).
#include <torch/library.h>

#include "common/checks.h"

namespace graphpro {

at::Tensor spmm(const at::Tensor& rowptr, const at::Tensor& col,
                const std::optional<at::Tensor>& weight, const at::Tensor& x,
                const std::optional<at::Tensor>& t_colptr, const std::optional<at::Tensor>& t_row,
                const std::optional<at::Tensor>& t_perm) {
  const bool any = t_colptr.has_value() || t_row.has_value() || t_perm.has_value();
  const bool all = t_colptr.has_value() && t_row.has_value() && t_perm.has_value();
  TORCH_CHECK(!any || all, "graphpro.spmm: pass all of t_colptr, t_row, t_perm or none of them");
  if (all) {
    check_csr(*t_colptr, *t_row);
    check_index(*t_perm, "t_perm");
    TORCH_CHECK(t_colptr->numel() == x.size(0) + 1, "graphpro.spmm: t_colptr must have x.size(0)+1 = ",
                x.size(0) + 1, " entries, got ", t_colptr->numel());
    TORCH_CHECK(t_row->numel() == col.numel() && t_perm->numel() == col.numel(),
                "graphpro.spmm: t_row and t_perm must have one entry per edge (", col.numel(), ")");
  }
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("graphpro::spmm_kernel", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, const at::Tensor&,
                                         const std::optional<at::Tensor>&)>();
  return op.call(rowptr, col, weight, x, std::nullopt);
}

}  // namespace graphpro

TORCH_LIBRARY_IMPL(graphpro, CompositeExplicitAutograd, m) { m.impl("spmm", &graphpro::spmm); }
