// CPU kernel of graphpro::topk_masked. Two things make it several times faster than the composite
// (mm over a [users x chunk] block written to memory, then masked and re-read by topk):
// - Tiles: a tile of users is scored against a tile of items into a cache-sized buffer and each
//   score is compared with its user's running k-th best right away; history is looked up only for
//   the rare score that beats it. With d = 64 a big mm is bound by writing its output, a tile mm
//   by arithmetic.
// - Items in decreasing norm: once a user's k-th best exceeds |u| * |i| for the largest remaining
//   item norm (with a margin for rounding), no remaining item can enter its top-k
//   (Cauchy-Schwarz), and a tile of users stops when all of its users are there. Exact; how much
//   it saves depends on the spread of item norms (popular items have the larger ones).
// half/bf16 and embeddings that could overflow or are not finite go to the composite.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common/dispatch.h"
#include "composite/topk_masked.h"
#include "cpu/cpu_utils.h"

namespace graphpro::cpu {
namespace {

constexpr int64_t kTileItems = 1024;
constexpr int64_t kMaxTileUsers = 128;
constexpr int64_t kMinUsersForNormOrder = 64;

// One user's k best so far (scores and item ids), unordered, with the position of the worst:
// the smallest score, among equal scores the largest id, so that ties are broken by item id
// whatever order the items are visited in.
template <typename scalar_t>
struct Running {
  scalar_t* val;
  int64_t* id;
  int64_t k, n = 0, arg_min = 0;
  scalar_t thr = -std::numeric_limits<scalar_t>::infinity();

  // Whether (v, item) beats the worst kept; the caller has checked v >= thr.
  GP_INLINE bool beats(scalar_t v, int64_t item) const {
    return v > thr || (n == k && item < id[arg_min]);
  }
  GP_INLINE void push(scalar_t v, int64_t item) {
    if (n < k) {
      val[n] = v;
      id[n] = item;
      if (++n == k) refresh();
      return;
    }
    val[arg_min] = v;
    id[arg_min] = item;
    refresh();
  }
  GP_INLINE void refresh() {
    arg_min = 0;
    for (int64_t j = 1; j < k; ++j) {
      if (val[j] < val[arg_min] || (val[j] == val[arg_min] && id[j] > id[arg_min])) arg_min = j;
    }
    thr = val[arg_min];
  }
};

template <typename index_t>
GP_INLINE bool in_row(const index_t* h, int64_t n, int64_t item) {
  const index_t* e = h + n;
  const index_t* it = std::lower_bound(h, e, static_cast<index_t>(item));
  return it != e && static_cast<int64_t>(*it) == item;
}

template <typename scalar_t, typename item_t>
void run(const at::Tensor& U, const at::Tensor& items_sorted, const std::vector<int64_t>& perm,
         const std::vector<double>& item_norm, const std::vector<double>& user_norm,
         const int64_t* rp, const item_t* hp, const int64_t* up, int64_t num_hist_rows,
         int64_t nnz, int64_t k, int64_t tile_items, at::Tensor& out_s, at::Tensor& out_i,
         std::atomic<int>& err) {
  const int64_t B = U.size(0), I = items_sorted.size(0);
  const int threads = std::max(1, at::get_num_threads());
  // Enough tiles for every thread, none larger than the cache-sized maximum.
  const int64_t tile_users = std::clamp<int64_t>((B + 2 * threads - 1) / (2 * threads), 1,
                                                 kMaxTileUsers);
  const int64_t num_tiles = (B + tile_users - 1) / tile_users;
  // Computed scores differ from the exact dot product by at most gamma_d * |u| * |i|.
  const double margin =
      1.0 + 4.0 * static_cast<double>(U.size(1) + 1) * std::numeric_limits<scalar_t>::epsilon();
  scalar_t* os = out_s.data_ptr<scalar_t>();
  int64_t* oi = out_i.data_ptr<int64_t>();
  at::parallel_for(0, num_tiles, 1, [&](int64_t t0, int64_t t1) {
    at::Tensor buf = at::empty({tile_users * tile_items}, U.options());
    std::vector<scalar_t> val(tile_users * k);
    std::vector<int64_t> ids(tile_users * k);
    std::vector<Running<scalar_t>> run(tile_users);
    std::vector<char> done(tile_users);
    std::vector<std::pair<scalar_t, int64_t>> order(k);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b0 = t * tile_users, nb = std::min(tile_users, B - b0);
      int64_t active = nb;
      for (int64_t b = 0; b < nb; ++b) {
        run[b] = Running<scalar_t>{val.data() + b * k, ids.data() + b * k, k};
        done[b] = 0;
        const int64_t u = up ? up[b0 + b] : b0 + b;
        bool ok = u >= 0 && u < num_hist_rows;
        if (!ok) err.store(kUserOutOfRange);
        ok = ok && row_bounds_ok(rp, u, nnz, err);
        for (int64_t j = ok ? rp[u] + 1 : 0; ok && j < rp[u + 1]; ++j) {
          if (hp[j] <= hp[j - 1]) {
            err.store(kHistoryUnsorted);
            ok = false;
          }
        }
        if (!ok) {  // reported after the loop; skip the user meanwhile
          done[b] = 1;
          --active;
        }
      }
      // The users still scanning: rows of `ub` (compacted once a quarter of them are done, so
      // the matrix products shrink with them).
      at::Tensor ub = U.narrow(0, b0, nb);
      std::vector<int64_t> rows(nb);
      std::iota(rows.begin(), rows.end(), int64_t{0});
      for (int64_t i0 = 0; i0 < I && active > 0; i0 += tile_items) {
        if (active * 4 <= static_cast<int64_t>(rows.size()) * 3) {
          std::vector<int64_t> keep;
          for (int64_t b : rows) {
            if (!done[b]) keep.push_back(b + b0);
          }
          ub = U.index_select(0, at::from_blob(keep.data(), {active}, at::kLong));
          for (int64_t r = 0; r < active; ++r) keep[r] -= b0;
          rows.swap(keep);
        }
        const int64_t nr = static_cast<int64_t>(rows.size());
        const int64_t ni = std::min(tile_items, I - i0);
        at::Tensor s = buf.narrow(0, 0, nr * ni).view({nr, ni});
        at::mm_out(s, ub, items_sorted.narrow(0, i0, ni).t());
        const scalar_t* sp = s.const_data_ptr<scalar_t>();
        const double next_norm = i0 + ni < I ? item_norm[i0 + ni] : 0.0;
        for (int64_t r_i = 0; r_i < nr; ++r_i) {
          const int64_t b = rows[r_i];
          if (done[b]) continue;
          Running<scalar_t>& r = run[b];
          const int64_t u = up ? up[b0 + b] : b0 + b;
          const item_t* h = hp + rp[u];
          const int64_t hn = rp[u + 1] - rp[u];
          const scalar_t* row = sp + r_i * ni;
          for (int64_t j = 0; j < ni; ++j) {
            if (row[j] >= r.thr) {
              const int64_t item = perm[i0 + j];
              if (r.beats(row[j], item) && !in_row(h, hn, item)) r.push(row[j], item);
            }
          }
          if (r.n == k && static_cast<double>(r.thr) > user_norm[b0 + b] * next_norm * margin) {
            done[b] = 1;
            --active;
          }
        }
      }
      for (int64_t b = 0; b < nb; ++b) {
        const Running<scalar_t>& r = run[b];
        for (int64_t j = 0; j < r.n; ++j) order[j] = {r.val[j], r.id[j]};
        // Best first; equal scores by item id, so the result depends neither on the tiling nor
        // on the visiting order (norm order from kMinUsersForNormOrder users on).
        std::sort(order.begin(), order.begin() + r.n, [](const auto& a, const auto& c) {
          return a.first > c.first || (a.first == c.first && a.second < c.second);
        });
        scalar_t* vs = os + (b0 + b) * k;
        int64_t* is = oi + (b0 + b) * k;
        for (int64_t j = 0; j < k; ++j) {
          vs[j] = j < r.n ? order[j].first : -std::numeric_limits<scalar_t>::infinity();
          is[j] = j < r.n ? order[j].second : -1;
        }
      }
    }
  });
}

// Row norms in double into `out`, the largest into `largest`; false when one is not finite.
template <typename scalar_t>
bool norms(const at::Tensor& x, std::vector<double>& out, double& largest) {
  const int64_t n = x.size(0), d = x.size(1);
  out.resize(n);
  const scalar_t* p = x.const_data_ptr<scalar_t>();
  at::parallel_for(0, n, 2048, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double acc = 0.0;
      for (int64_t c = 0; c < d; ++c) acc += static_cast<double>(p[r * d + c]) * p[r * d + c];
      out[r] = std::sqrt(acc);
    }
  });
  largest = 0.0;
  for (double v : out) {
    if (!std::isfinite(v)) return false;
    largest = std::max(largest, v);
  }
  return true;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> topk_masked_cpu(const at::Tensor& user_emb,
                                                   const at::Tensor& item_emb,
                                                   const at::Tensor& hist_rowptr,
                                                   const at::Tensor& hist_items,
                                                   const std::optional<at::Tensor>& users,
                                                   int64_t k, int64_t chunk_items) {
  const auto dtype = user_emb.scalar_type();
  if ((dtype != at::kFloat && dtype != at::kDouble) || item_emb.size(0) >= (int64_t{1} << 32)) {
    return graphpro::topk_masked(user_emb, item_emb, hist_rowptr, hist_items, users, k,
                                 chunk_items);
  }
  check_topk_masked_inputs(user_emb, item_emb, hist_rowptr, hist_items, users, k, chunk_items);
  const at::Tensor U = user_emb.contiguous(), It = item_emb.contiguous();
  const at::Tensor rowptr = hist_rowptr.contiguous(), items = hist_items.contiguous();
  const int64_t B = U.size(0), I = It.size(0), nnz = items.numel();
  check_rowptr_ends(rowptr, nnz, "topk_masked");
  std::vector<double> unorm, inorm;
  double umax = 0.0, imax = 0.0;
  bool finite = false;  // and no score can overflow the dtype
  AT_DISPATCH_FLOATING_TYPES(dtype, "topk_masked", [&] {
    finite = norms<scalar_t>(U, unorm, umax) && norms<scalar_t>(It, inorm, imax) &&
             umax * imax * static_cast<double>(U.size(1) + 1) <
                 static_cast<double>(std::numeric_limits<scalar_t>::max()) / 4;
  });
  if (!finite) {
    return graphpro::topk_masked(user_emb, item_emb, hist_rowptr, hist_items, users, k,
                                 chunk_items);
  }
  // Decreasing norm, equal norms by id: one sort of 64-bit keys (a non-negative float's bits
  // order like the float; the id in the low half). Few users cannot repay the sort and the copy.
  std::vector<int64_t> perm(I);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  const bool by_norm = B >= kMinUsersForNormOrder;
  if (by_norm) {
    std::vector<uint64_t> keys(I);
    for (int64_t j = 0; j < I; ++j) {
      const float f = static_cast<float>(inorm[j]);
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      keys[j] = (static_cast<uint64_t>(~bits) << 32) | static_cast<uint64_t>(j);
    }
    std::sort(keys.begin(), keys.end());
    for (int64_t j = 0; j < I; ++j) perm[j] = static_cast<int64_t>(keys[j] & 0xffffffffu);
  }
  // The largest norm from position j on (the keys' float rounding can leave a later item a
  // hair larger than an earlier one).
  std::vector<double> sorted_norm(I);
  for (int64_t j = I - 1; j >= 0; --j) {
    sorted_norm[j] = std::max(inorm[perm[j]], j + 1 < I ? sorted_norm[j + 1] : 0.0);
  }
  const at::Tensor items_sorted =
      by_norm ? It.index_select(0, at::from_blob(perm.data(), {I}, at::kLong)) : It;
  const at::Tensor up = users.has_value() ? users->contiguous().to(at::kLong) : at::Tensor();
  at::Tensor out_s = at::empty({B, k}, U.options());
  at::Tensor out_i = at::empty({B, k}, U.options().dtype(at::kLong));
  std::atomic<int> err{kOk};
  const int64_t tile_items = std::min(chunk_items, kTileItems);
  AT_DISPATCH_FLOATING_TYPES(dtype, "topk_masked", [&] {
    GP_INDEX_SWITCH(items.scalar_type(), item_t, [&] {
      run<scalar_t, item_t>(U, items_sorted, perm, sorted_norm, unorm,
                            rowptr.const_data_ptr<int64_t>(), items.const_data_ptr<item_t>(),
                            up.defined() ? up.const_data_ptr<int64_t>() : nullptr,
                            rowptr.numel() - 1, nnz, k, tile_items, out_s, out_i, err);
    });
  });
  raise_on_error(err.load(), "topk_masked");
  return {out_s, out_i};
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("topk_masked", &graphpro::cpu::topk_masked_cpu); }
