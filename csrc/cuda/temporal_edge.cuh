// The fused GraphPro edge weight shared by temporal_spmm.cu and lightgcn.cu (torch-free), the
// CUDA twin of cpu/temporal_kernel.h: weights are rebuilt per edge, never stored.
#pragma once
#include "cuda/cuda_common.cuh"

namespace graphpro::cuda {

// Everything a temporal layer reads about the graph.
template <typename acc_t, typename index_t>
struct TemporalEdge {
  const index_t* __restrict__ col;
  const acc_t* __restrict__ edge_time;  // null when time_weight == 0
  const acc_t* __restrict__ node_norm;
  const acc_t* __restrict__ row_lse;    // null when time_weight == 0
  int64_t num_rows;
  acc_t time_weight;
  uint64_t seed_key, threshold;
  bool use_time, drop, transpose;
  int* err;

  // GraphPro eqs. (5)-(6): the weight of kept edge (r, c) is
  //   (1 - tw) * norm_r * norm_c + tw * exp(t_rc - lse_s),  s = r (forward) or c (transpose),
  // and an edge is dropped iff graphpro::edge_kept says so -- the same hash as the CPU, so both
  // backends drop exactly the same interactions.
  __device__ __forceinline__ bool edge(int64_t r, int64_t j, int64_t& c, acc_t& w) const {
    const index_t cj = col[j];
    if (!index_in_range(cj, num_rows)) {
      report_error(err, kColumnOutOfRange);
      return false;
    }
    c = static_cast<int64_t>(cj);
    if (drop && !edge_kept(seed_key, r, c, threshold)) return false;
    const acc_t beta_r = (acc_t(1) - time_weight) * node_norm[r];
    acc_t wj = beta_r * node_norm[c];
    if (use_time) wj += time_weight * gp_exp(edge_time[j] - (transpose ? row_lse[c] : row_lse[r]));
    w = wj;
    return true;
  }
};

}  // namespace graphpro::cuda
