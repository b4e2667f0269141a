// graphpro::topk_masked: full-ranking top-k with each user's history excluded, chunked over items
// (and over users) so the score block stays bounded however many items there are.
// Device-generic: torch.mm + topk per chunk, history masking by the per-backend mask_history_.
#include <torch/library.h>

#include "common/checks.h"

namespace graphpro {

std::tuple<at::Tensor, at::Tensor> topk_masked(const at::Tensor& user_emb, const at::Tensor& item_emb,
                                               const at::Tensor& hist_rowptr,
                                               const at::Tensor& hist_items,
                                               const std::optional<at::Tensor>& users, int64_t k,
                                               int64_t chunk_items) {
  TORCH_CHECK(user_emb.dim() == 2 && item_emb.dim() == 2 && user_emb.size(1) == item_emb.size(1),
              "graphpro.topk_masked: user_emb [B, d] and item_emb [I, d] must share d, got ",
              user_emb.sizes(), " and ", item_emb.sizes());
  check_float(user_emb, "user_emb");
  TORCH_CHECK(item_emb.scalar_type() == user_emb.scalar_type(),
              "graphpro.topk_masked: user_emb and item_emb must have the same dtype");
  check_same_device(user_emb, item_emb, "item_emb");
  check_csr(hist_rowptr, hist_items);
  check_same_device(user_emb, hist_rowptr, "hist_rowptr");
  const int64_t B = user_emb.size(0), I = item_emb.size(0);
  TORCH_CHECK(k >= 1 && k <= I, "graphpro.topk_masked: k must be in [1, num_items = ", I, "], got ", k);
  TORCH_CHECK(chunk_items >= 1, "graphpro.topk_masked: chunk_items must be >= 1");
  if (users.has_value()) {
    check_index(*users, "users");
    check_same_device(user_emb, *users, "users");
    TORCH_CHECK(users->numel() == B, "graphpro.topk_masked: users must have one entry per row of "
                                     "user_emb (", B, "), got ", users->numel());
  } else {
    TORCH_CHECK(hist_rowptr.numel() == B + 1, "graphpro.topk_masked: without users, hist_rowptr "
                "must have user_emb.size(0)+1 = ", B + 1, " entries, got ", hist_rowptr.numel());
  }
  // Out-of-range history ids would silently mask nothing (one reduction; a sync on CUDA).
  if (hist_items.numel() > 0) {
    const auto [lo, hi] = at::aminmax(hist_items);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < I,
                "graphpro.topk_masked: a history item is outside [0, num_items = ", I, ")");
  }
  static auto mask = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("graphpro::mask_history_", "")
                         .typed<void(at::Tensor&, const at::Tensor&, const at::Tensor&,
                                     const std::optional<at::Tensor>&, int64_t)>();
  const int64_t chunk = std::min(chunk_items, I);
  // Score blocks of at most ~2^25 elements (128 MiB in fp32).
  const int64_t user_block = std::max<int64_t>(1, (int64_t{1} << 25) / chunk);
  at::Tensor out_scores = at::empty({B, k}, user_emb.options());
  at::Tensor out_ids = at::empty({B, k}, user_emb.options().dtype(at::kLong));
  const at::Tensor item_t = item_emb.t();
  for (int64_t b0 = 0; b0 < B; b0 += user_block) {
    const int64_t nb = std::min(user_block, B - b0);
    const at::Tensor ub = user_emb.narrow(0, b0, nb);
    at::Tensor rows;
    std::optional<at::Tensor> urows;
    if (users.has_value()) {
      urows = users->narrow(0, b0, nb);
    } else {
      // Rows b0..b0+nb of the history, addressed explicitly so the mask kernel sees one layout.
      urows = at::arange(b0, b0 + nb, hist_rowptr.options());
    }
    at::Tensor best_s, best_i;
    for (int64_t i0 = 0; i0 < I; i0 += chunk) {
      const int64_t ni = std::min(chunk, I - i0);
      at::Tensor s = at::mm(ub, item_t.narrow(1, i0, ni));
      mask.call(s, hist_rowptr, hist_items, urows, i0);
      const int64_t kk = std::min(k, ni);
      auto [v, idx] = s.topk(kk, /*dim=*/1, /*largest=*/true, /*sorted=*/false);
      idx.add_(i0);
      if (!best_s.defined()) {
        best_s = v;
        best_i = idx;
      } else {
        at::Tensor cs = at::cat({best_s, v}, 1), ci = at::cat({best_i, idx}, 1);
        const int64_t keep = std::min(k, cs.size(1));
        auto [v2, pos] = cs.topk(keep, 1, true, false);
        best_s = v2;
        best_i = ci.gather(1, pos);
      }
    }
    auto [vs, order] = best_s.sort(/*dim=*/1, /*descending=*/true);
    at::Tensor ids = best_i.gather(1, order);
    // Fewer than k unmasked items: report the missing slots as id -1 with score -inf.
    ids.masked_fill_(vs == -std::numeric_limits<double>::infinity(), -1);
    out_scores.narrow(0, b0, nb).copy_(vs);
    out_ids.narrow(0, b0, nb).copy_(ids);
  }
  return {out_scores, out_ids};
}

}  // namespace graphpro

TORCH_LIBRARY_IMPL(graphpro, CompositeExplicitAutograd, m) {
  m.impl("topk_masked", &graphpro::topk_masked);
}
