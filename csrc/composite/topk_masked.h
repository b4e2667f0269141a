// graphpro::topk_masked, shared by its two implementations: the input checks and the
// device-generic composite (CUDA's path, and the CPU kernel's fallback).
#pragma once

#include <optional>
#include <tuple>

#include "common/checks.h"

namespace graphpro {

inline void check_topk_masked_inputs(const at::Tensor& user_emb, const at::Tensor& item_emb,
                                     const at::Tensor& hist_rowptr, const at::Tensor& hist_items,
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
}

std::tuple<at::Tensor, at::Tensor> topk_masked(const at::Tensor& user_emb, const at::Tensor& item_emb,
                                               const at::Tensor& hist_rowptr,
                                               const at::Tensor& hist_items,
                                               const std::optional<at::Tensor>& users, int64_t k,
                                               int64_t chunk_items);

}  // namespace graphpro
