// The fused GraphPro row kernel shared by temporal_spmm and lightgcn on the CPU.
#pragma once
#include <cmath>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

// Everything a temporal layer reads; edge weights are rebuilt per edge, never stored.
template <typename acc_t, typename index_t>
struct TemporalGraphView {
  const int64_t* rowptr;
  const index_t* col;
  const acc_t* edge_time;  // null when time_weight == 0
  const acc_t* node_norm;
  const acc_t* row_lse;
  int64_t num_rows, num_edges;
  acc_t time_weight;
  uint64_t seed_key, threshold;
};

// GraphPro eqs. (5)-(6), one output row per call:
//   y_r = sum_{c in N(r), kept} (tw * exp(t_rc - lse_s) + (1 - tw) * norm_r * norm_c) x_c
// with s = r (forward: softmax over row r) or s = c (transpose: the gradient of row c's softmax
// flows back to r; valid because the graph and its times are symmetric and the dropout hash is).
template <bool kTime, bool kDrop, typename acc_t, typename index_t, typename scalar_t>
inline void temporal_row(const TemporalGraphView<acc_t, index_t>& g, bool transpose, int64_t r,
                         const scalar_t* __restrict__ x, int64_t d, acc_t* __restrict__ acc,
                         std::atomic<int>& err) {
  std::fill(acc, acc + d, acc_t(0));
  if (!row_bounds_ok(g.rowptr, r, g.num_edges, err)) return;
  const acc_t beta_r = (acc_t(1) - g.time_weight) * g.node_norm[r];
  const acc_t lse_r = kTime ? g.row_lse[r] : acc_t(0);
  const int64_t end = g.rowptr[r + 1];
  for (int64_t j = g.rowptr[r]; j < end; ++j) {
    // Prefetch across row ends too: rows average a handful of edges, so a within-row window
    // would rarely fire. The per-node factors of the gathered node are prefetched with its row.
    const int64_t jp = j + kPrefetchDistance;
    if (jp < g.num_edges) {
      const int64_t cp = static_cast<int64_t>(g.col[jp]);
      if (static_cast<uint64_t>(cp) < static_cast<uint64_t>(g.num_rows)) {
        prefetch_row(x + cp * d, d);
        __builtin_prefetch(g.node_norm + cp, 0, 1);
        if (kTime && transpose) __builtin_prefetch(g.row_lse + cp, 0, 1);
      }
    }
    const index_t c = g.col[j];
    if (!col_ok(c, g.num_rows, err)) continue;
    if (kDrop && !edge_kept(g.seed_key, r, c, g.threshold)) continue;
    acc_t w = beta_r * g.node_norm[c];
    if (kTime) w += g.time_weight * edge_exp(g.edge_time[j] - (transpose ? g.row_lse[c] : lse_r));
    axpy(acc, x + static_cast<int64_t>(c) * d, w, d);
  }
}

}  // namespace graphpro::cpu
