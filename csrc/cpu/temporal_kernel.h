// The fused GraphPro row kernel shared by temporal_spmm and lightgcn on the CPU.
#pragma once
#include <cmath>
#include <type_traits>

#include "cpu/cpu_isa.h"
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

// Accumulators of one output row. MemRow adds into the output row itself (any d, any dtype).
template <typename acc_t>
struct MemRow {
  acc_t* __restrict__ a;
  int64_t d;
  GP_INLINE void zero() { for (int64_t k = 0; k < d; ++k) a[k] = acc_t(0); }
  template <typename scalar_t>
  GP_INLINE void add(const scalar_t* __restrict__ x, acc_t w) {
    axpy(a, x, w, d);
  }
  GP_INLINE void store() {}
};

#if GP_HAVE_AVX2_PATH
// d = 64 fp32 in eight 8-float vectors the compiler keeps in ymm registers for the whole row
// (a local array would stay on the stack: one load and one store per element per edge).
typedef float gp_v8f __attribute__((vector_size(32)));
// Unaligned, aliasing view of 8 floats of a feature row (loads and stores without taking the
// accumulator's address, which would pin it to the stack).
typedef float gp_v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
struct Reg64f {
  float* __restrict__ out;
  gp_v8f a0, a1, a2, a3, a4, a5, a6, a7;
  GP_INLINE void zero() { a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = gp_v8f{}; }
  GP_INLINE void add(const float* __restrict__ x, float w) {
    const gp_v8f_u* v = reinterpret_cast<const gp_v8f_u*>(x);
    a0 += w * v[0];
    a1 += w * v[1];
    a2 += w * v[2];
    a3 += w * v[3];
    a4 += w * v[4];
    a5 += w * v[5];
    a6 += w * v[6];
    a7 += w * v[7];
  }
  GP_INLINE void store() {
    gp_v8f_u* o = reinterpret_cast<gp_v8f_u*>(out);
    o[0] = a0; o[1] = a1; o[2] = a2; o[3] = a3; o[4] = a4; o[5] = a5; o[6] = a6; o[7] = a7;
  }
};
#endif

// GraphPro eqs. (5)-(6), one output row per call:
//   y_r = sum_{c in N(r), kept} (tw * exp(t_rc - lse_s) + (1 - tw) * norm_r * norm_c) x_c
// with s = r (forward: softmax over row r) or s = c (transpose: the gradient of row c's softmax
// flows back to r; valid because the graph and its times are symmetric and the dropout hash is).
template <bool kTime, bool kDrop, typename Acc, typename acc_t, typename index_t, typename scalar_t>
GP_INLINE void temporal_row_impl(
    const TemporalGraphView<acc_t, index_t>& g, bool transpose, int64_t r,
    const scalar_t* __restrict__ x, int64_t d, Acc& acc, std::atomic<int>& err) {
  acc.zero();
  if (row_bounds_ok(g.rowptr, r, g.num_edges, err)) {
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
      acc.add(x + static_cast<int64_t>(c) * d, w);
    }
  }
  acc.store();
}

#if GP_HAVE_AVX2_PATH
// The row compiled for AVX2+FMA (see cpu_isa.h); never inlined into baseline code.
template <bool kTime, bool kDrop, typename acc_t, typename index_t, typename scalar_t>
GP_TARGET_AVX2 void temporal_row_avx2(const TemporalGraphView<acc_t, index_t>& g, bool transpose,
                                      int64_t r, const scalar_t* __restrict__ x, int64_t d,
                                      acc_t* __restrict__ out, std::atomic<int>& err) {
  if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<scalar_t, float>) {
    if (d == 64) {
      Reg64f acc{out, {}, {}, {}, {}, {}, {}, {}, {}};
      return temporal_row_impl<kTime, kDrop>(g, transpose, r, x, 64, acc, err);
    }
  }
  MemRow<acc_t> acc{out, d};
  temporal_row_impl<kTime, kDrop>(g, transpose, r, x, d, acc, err);
}
#endif

// Row r of the fused layer into out[0..d), on the widest ISA available (cpu_isa.h).
template <bool kTime, bool kDrop, typename acc_t, typename index_t, typename scalar_t>
inline void temporal_row(const TemporalGraphView<acc_t, index_t>& g, bool transpose, int64_t r,
                         const scalar_t* __restrict__ x, int64_t d, acc_t* __restrict__ out,
                         std::atomic<int>& err) {
#if GP_HAVE_AVX2_PATH
  if (use_avx2()) return temporal_row_avx2<kTime, kDrop>(g, transpose, r, x, d, out, err);
#endif
  MemRow<acc_t> acc{out, d};
  temporal_row_impl<kTime, kDrop>(g, transpose, r, x, d, acc, err);
}

}  // namespace graphpro::cpu
