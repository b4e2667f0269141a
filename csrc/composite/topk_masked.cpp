// graphpro::topk_masked: full-ranking top-k with each user's history excluded, chunked over items
// (and over users) so the score block stays bounded however many items there are.
// Device-generic: torch.mm + topk per chunk, history masking by the per-backend mask_history_.
// CUDA runs this; the CPU has a fused kernel (cpu/topk_masked.cpp) that falls back to it for
// half/bf16 and for non-finite embeddings.
#include <torch/library.h>

#include "composite/topk_masked.h"

namespace graphpro {

std::tuple<at::Tensor, at::Tensor> topk_masked(const at::Tensor& user_emb, const at::Tensor& item_emb,
                                               const at::Tensor& hist_rowptr,
                                               const at::Tensor& hist_items,
                                               const std::optional<at::Tensor>& users, int64_t k,
                                               int64_t chunk_items) {
  check_topk_masked_inputs(user_emb, item_emb, hist_rowptr, hist_items, users, k, chunk_items);
  const int64_t B = user_emb.size(0), I = item_emb.size(0);
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
