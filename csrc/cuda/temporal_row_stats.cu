// CUDA kernels of graphpro::temporal_row_stats: per-row log-sum-exp of the kept edge times (the
// O(N) state of GraphPro's temporal softmax). A lane group per row with group max/sum; heavy
// rows (> kScalarChunk edges) get (max, sum) partials from slot warps first, which the row's
// group then combines in slot order (no atomics, deterministic).
#include "cuda/cuda_common.cuh"
#include "cuda/temporal_row_stats.cuh"

namespace graphpro::cuda {
namespace {

constexpr int64_t kChunk = kScalarChunk;

template <typename acc_t, typename index_t>
struct Args {
  const int64_t* rowptr;
  const index_t* col;
  const acc_t* t;
  int64_t num_rows, num_edges, num_slots;
  int group;
  uint64_t key, threshold;
  bool drop;
  const int64_t* slot_row;
  acc_t* stats;  // 2 per slot
  int* err;
};

// Max and sum of exp(t - max) over the kept edges of row r in [jb, je), reporting (like the CPU
// loop) out-of-range columns and non-finite times on the first walk; (-inf, 0) when none is kept.
template <typename acc_t, typename index_t>
__device__ __forceinline__ void segment_lse(const LaneGroup& g, const Args<acc_t, index_t>& a,
                                            int64_t r, int64_t jb, int64_t je, acc_t& m, acc_t& z) {
  acc_t lm = neg_inf<acc_t>();
  for (int64_t j = jb + g.lane; j < je; j += g.width) {
    const index_t c = a.col[j];
    if (!index_in_range(c, a.num_rows)) {
      report_error(a.err, kColumnOutOfRange);
      continue;
    }
    const acc_t tj = a.t[j];
    if (!isfinite(tj)) report_error(a.err, kNonFiniteTime);
    if (a.drop && !edge_kept(a.key, r, static_cast<int64_t>(c), a.threshold)) continue;
    lm = gp_max(lm, tj);
  }
  m = group_max(g, lm);
  acc_t lz = acc_t(0);
  if (m != neg_inf<acc_t>()) {
    for (int64_t j = jb + g.lane; j < je; j += g.width) {
      const index_t c = a.col[j];
      if (!index_in_range(c, a.num_rows)) continue;
      if (a.drop && !edge_kept(a.key, r, static_cast<int64_t>(c), a.threshold)) continue;
      lz += gp_exp(a.t[j] - m);
    }
  }
  z = group_sum(g, lz);
}

template <typename acc_t, typename index_t>
__global__ void __launch_bounds__(kBlockThreads) row_stats_slots(Args<acc_t, index_t> a) {
  const LaneGroup g(kWarpSize);
  const int64_t sl = g.global_index();
  if (sl >= a.num_slots) return;
  const int64_t r = a.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * kChunk, je = imin(a.rowptr[r + 1], jb + kChunk);
  acc_t m, z;
  segment_lse(g, a, r, jb, je, m, z);
  if (g.lane == 0) {
    a.stats[2 * sl] = m;
    a.stats[2 * sl + 1] = z;
  }
}

template <typename acc_t, typename index_t>
__global__ void __launch_bounds__(kBlockThreads)
    row_stats_rows(Args<acc_t, index_t> a, acc_t* __restrict__ lse) {
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(a.rowptr, a.num_rows, a.num_edges, a.err);
  const LaneGroup g(a.group);
  const int64_t r = g.global_index();
  if (r >= a.num_rows) return;
  int64_t b, e;
  if (!load_row(a.rowptr, r, a.num_edges, b, e)) {
    if (g.lane == 0) {
      report_error(a.err, kRowptrNotMonotone);
      lse[r] = acc_t(0);
    }
    return;
  }
  const bool heavy = e - b > kChunk;
  const int64_t head_end = heavy ? imin(e, first_slot(b, kChunk) * kChunk) : e;
  acc_t m, z;
  segment_lse(g, a, r, b, head_end, m, z);
  if (heavy) {
    const int64_t s0 = first_slot(b, kChunk), s1 = (e - 1) / kChunk;
    acc_t lm = m;
    for (int64_t sl = s0 + g.lane; sl <= s1; sl += g.width) lm = gp_max(lm, a.stats[2 * sl]);
    const acc_t mm = group_max(g, lm);
    acc_t lz = acc_t(0);
    if (mm != neg_inf<acc_t>()) {
      if (g.lane == 0 && m != neg_inf<acc_t>()) lz = z * gp_exp(m - mm);
      for (int64_t sl = s0 + g.lane; sl <= s1; sl += g.width) {
        const acc_t ms = a.stats[2 * sl];
        if (ms != neg_inf<acc_t>()) lz += a.stats[2 * sl + 1] * gp_exp(ms - mm);
      }
    }
    m = mm;
    z = group_sum(g, lz);
  }
  // A row without kept edges gets lse 0 (its weights are never used), as on the CPU.
  if (g.lane == 0) lse[r] = m == neg_inf<acc_t>() ? acc_t(0) : m + gp_log(z);
}

}  // namespace

size_t temporal_row_stats_workspace_bytes(int64_t num_edges) {
  const size_t slots = static_cast<size_t>(num_slots_for(num_edges, kChunk));
  return align256(slots * sizeof(int64_t)) + align256(2 * slots * sizeof(double)) + 256;
}

template <typename scalar_t, typename index_t>
cudaError_t temporal_row_stats_launch(const int64_t* rowptr, const index_t* col,
                                      const scalar_t* edge_time, scalar_t* lse, int64_t num_rows,
                                      int64_t num_edges, double keep_prob, int64_t seed,
                                      void* workspace, int* err, cudaStream_t stream) {
  const int64_t slots = num_slots_for(num_edges, kChunk);
  int64_t* slot_row = static_cast<int64_t*>(workspace);
  scalar_t* stats = reinterpret_cast<scalar_t*>(static_cast<char*>(workspace) +
                                                align256(sizeof(int64_t) * slots));
  const Args<scalar_t, index_t> a{rowptr,   col,       edge_time,
                                  num_rows, num_edges, slots,
                                  group_for_degree(num_edges, num_rows),
                                  seed_key(seed), keep_threshold(keep_prob), keep_prob < 1.0,
                                  slot_row, stats,     err};
  if (slots > 0) {
    GP_RETURN_IF_ERROR(find_slot_rows(rowptr, num_rows, num_edges, kChunk, slot_row, stream));
    row_stats_slots<<<grid_for(slots, kBlockThreads / kWarpSize), kBlockThreads, 0, stream>>>(a);
    GP_LAUNCH_CHECK();
  }
  row_stats_rows<<<grid_for(num_rows, kBlockThreads / a.group), kBlockThreads, 0, stream>>>(a, lse);
  GP_LAUNCH_CHECK();
  return cudaSuccess;
}

#define GP_INSTANTIATE(S, I)                                                                  \
  template cudaError_t temporal_row_stats_launch<S, I>(const int64_t*, const I*, const S*, S*, \
                                                       int64_t, int64_t, double, int64_t, void*, \
                                                       int*, cudaStream_t);
GP_INSTANTIATE(float, int32_t)
GP_INSTANTIATE(float, int64_t)
GP_INSTANTIATE(double, int32_t)
GP_INSTANTIATE(double, int64_t)
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
