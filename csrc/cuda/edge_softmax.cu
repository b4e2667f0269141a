// CUDA kernels of graphpro::edge_softmax and its backward (DGL's per-row max -> exp -> sum ->
// divide; backward out * (g - sum_row(out * g))). A lane group per row with group reductions;
// heavy rows (> kScalarChunk edges) are split into slots: (1) slots reduce their share to
// partial statistics, (2) the row's group combines them in slot order (deterministic, no
// atomics) and writes its head, (3) slots write their share with the combined statistics.
#include "cuda/cuda_common.cuh"
#include "cuda/edge_softmax.cuh"

namespace graphpro::cuda {
namespace {

constexpr int64_t kChunk = kScalarChunk;

struct Shape {
  const int64_t* rowptr;
  int64_t num_rows, num_edges, num_slots;
  int group;
  const int64_t* slot_row;
  int* err;
};

// Workspace: slot_row, then two acc_t statistics per slot (double-sized so every dtype fits).
int64_t* ws_slot_row(void* ws) { return static_cast<int64_t*>(ws); }
template <typename acc_t>
acc_t* ws_stats(void* ws, int64_t num_edges) {
  return reinterpret_cast<acc_t*>(
      static_cast<char*>(ws) + align256(sizeof(int64_t) * num_slots_for(num_edges, kChunk)));
}

// ---------------------------------------------------------------------------------- forward
// Max and sum of exp(s - max) of scores[jb, je) over the group (z = 0 when every score is -inf).
// The max keeps NaN, so a NaN score makes m, z and the whole row NaN (as on the CPU).
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ void segment_max_sum(const LaneGroup& g, const scalar_t* __restrict__ s,
                                                int64_t jb, int64_t je, acc_t& m, acc_t& z) {
  acc_t lm = neg_inf<acc_t>();
  for (int64_t j = jb + g.lane; j < je; j += g.width) lm = gp_max_nan(lm, to_acc<acc_t>(s[j]));
  m = group_max_nan(g, lm);
  acc_t lz = acc_t(0);
  if (m != neg_inf<acc_t>()) {
    for (int64_t j = jb + g.lane; j < je; j += g.width) lz += gp_exp(to_acc<acc_t>(s[j]) - m);
  }
  z = group_sum(g, lz);
}

// out[jb, je) = exp(s - m) / z, or zeros for a row of -inf scores (no defined softmax).
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ void segment_normalize(const LaneGroup& g, const scalar_t* __restrict__ s,
                                                  scalar_t* __restrict__ o, int64_t jb, int64_t je,
                                                  acc_t m, acc_t z) {
  if (m == neg_inf<acc_t>()) {
    for (int64_t j = jb + g.lane; j < je; j += g.width) o[j] = from_acc<scalar_t>(acc_t(0));
    return;
  }
  const acc_t inv = acc_t(1) / z;
  for (int64_t j = jb + g.lane; j < je; j += g.width)
    o[j] = from_acc<scalar_t>(gp_exp(to_acc<acc_t>(s[j]) - m) * inv);
}

// (1) partial (max, sum) of each heavy slot.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_slot_stats(Shape sh, const scalar_t* __restrict__ s, acc_type_t<scalar_t>* stats) {
  using acc_t = acc_type_t<scalar_t>;
  const LaneGroup g(kWarpSize);
  const int64_t sl = g.global_index();
  if (sl >= sh.num_slots) return;
  const int64_t r = sh.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * kChunk, je = imin(sh.rowptr[r + 1], jb + kChunk);
  acc_t m, z;
  segment_max_sum(g, s, jb, je, m, z);
  if (g.lane == 0) {
    stats[2 * sl] = m;
    stats[2 * sl + 1] = z;
  }
}

// (2) one group per row: light rows whole; heavy rows combine head + slot partials, publish the
// row's (max, sum) in its first slot's entry and normalise the head.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_rows(Shape sh, const scalar_t* __restrict__ s, scalar_t* __restrict__ o,
                 acc_type_t<scalar_t>* stats) {
  using acc_t = acc_type_t<scalar_t>;
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(sh.rowptr, sh.num_rows, sh.num_edges, sh.err);
  const LaneGroup g(sh.group);
  const int64_t r = g.global_index();
  if (r >= sh.num_rows) return;
  int64_t b, e;
  if (!load_row(sh.rowptr, r, sh.num_edges, b, e)) {
    if (g.lane == 0) report_error(sh.err, kRowptrNotMonotone);
    return;
  }
  const bool heavy = e - b > kChunk;
  const int64_t head_end = heavy ? imin(e, first_slot(b, kChunk) * kChunk) : e;
  acc_t m, z;
  segment_max_sum(g, s, b, head_end, m, z);
  if (heavy) {
    const int64_t s0 = first_slot(b, kChunk), s1 = (e - 1) / kChunk;
    acc_t lm = m;
    for (int64_t sl = s0 + g.lane; sl <= s1; sl += g.width) lm = gp_max_nan(lm, stats[2 * sl]);
    const acc_t mm = group_max_nan(g, lm);
    acc_t lz = acc_t(0);
    if (mm != neg_inf<acc_t>()) {
      if (g.lane == 0 && m != neg_inf<acc_t>()) lz = z * gp_exp(m - mm);
      for (int64_t sl = s0 + g.lane; sl <= s1; sl += g.width) {
        const acc_t ms = stats[2 * sl];
        if (ms != neg_inf<acc_t>()) lz += stats[2 * sl + 1] * gp_exp(ms - mm);
      }
    }
    m = mm;
    z = group_sum(g, lz);  // every lane has read stats[s0] before lane 0 overwrites it
    if (g.lane == 0) {
      stats[2 * s0] = m;
      stats[2 * s0 + 1] = z;
    }
  }
  segment_normalize(g, s, o, b, head_end, m, z);
}

// (3) heavy slots normalise their share with their row's combined statistics.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_slot_write(Shape sh, const scalar_t* __restrict__ s, scalar_t* __restrict__ o,
                       const acc_type_t<scalar_t>* stats) {
  using acc_t = acc_type_t<scalar_t>;
  const LaneGroup g(kWarpSize);
  const int64_t sl = g.global_index();
  if (sl >= sh.num_slots) return;
  const int64_t r = sh.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * kChunk, je = imin(sh.rowptr[r + 1], jb + kChunk);
  const int64_t s0 = first_slot(sh.rowptr[r], kChunk);
  segment_normalize(g, s, o, jb, je, stats[2 * s0], stats[2 * s0 + 1]);
}

// --------------------------------------------------------------------------------- backward
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ acc_t segment_dot(const LaneGroup& g, const scalar_t* __restrict__ o,
                                             const scalar_t* __restrict__ gr, int64_t jb, int64_t je) {
  acc_t l = acc_t(0);
  for (int64_t j = jb + g.lane; j < je; j += g.width) l += to_acc<acc_t>(o[j]) * to_acc<acc_t>(gr[j]);
  return group_sum(g, l);
}

template <typename acc_t, typename scalar_t>
__device__ __forceinline__ void segment_grad(const LaneGroup& g, const scalar_t* __restrict__ o,
                                             const scalar_t* __restrict__ gr,
                                             scalar_t* __restrict__ gi, int64_t jb, int64_t je,
                                             acc_t dot) {
  for (int64_t j = jb + g.lane; j < je; j += g.width)
    gi[j] = from_acc<scalar_t>(to_acc<acc_t>(o[j]) * (to_acc<acc_t>(gr[j]) - dot));
}

template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_bwd_slot_dot(Shape sh, const scalar_t* __restrict__ o, const scalar_t* __restrict__ gr,
                         acc_type_t<scalar_t>* stats) {
  using acc_t = acc_type_t<scalar_t>;
  const LaneGroup g(kWarpSize);
  const int64_t sl = g.global_index();
  if (sl >= sh.num_slots) return;
  const int64_t r = sh.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * kChunk, je = imin(sh.rowptr[r + 1], jb + kChunk);
  const acc_t dot = segment_dot<acc_t>(g, o, gr, jb, je);
  if (g.lane == 0) stats[2 * sl] = dot;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_bwd_rows(Shape sh, const scalar_t* __restrict__ o, const scalar_t* __restrict__ gr,
                     scalar_t* __restrict__ gi, acc_type_t<scalar_t>* stats) {
  using acc_t = acc_type_t<scalar_t>;
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(sh.rowptr, sh.num_rows, sh.num_edges, sh.err);
  const LaneGroup g(sh.group);
  const int64_t r = g.global_index();
  if (r >= sh.num_rows) return;
  int64_t b, e;
  if (!load_row(sh.rowptr, r, sh.num_edges, b, e)) {
    if (g.lane == 0) report_error(sh.err, kRowptrNotMonotone);
    return;
  }
  const bool heavy = e - b > kChunk;
  const int64_t head_end = heavy ? imin(e, first_slot(b, kChunk) * kChunk) : e;
  acc_t dot = segment_dot<acc_t>(g, o, gr, b, head_end);
  if (heavy) {
    const int64_t s0 = first_slot(b, kChunk), s1 = (e - 1) / kChunk;
    acc_t l = g.lane == 0 ? dot : acc_t(0);
    for (int64_t sl = s0 + g.lane; sl <= s1; sl += g.width) l += stats[2 * sl];
    dot = group_sum(g, l);
    if (g.lane == 0) stats[2 * s0] = dot;
  }
  segment_grad(g, o, gr, gi, b, head_end, dot);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_bwd_slot_write(Shape sh, const scalar_t* __restrict__ o, const scalar_t* __restrict__ gr,
                           scalar_t* __restrict__ gi, const acc_type_t<scalar_t>* stats) {
  const LaneGroup g(kWarpSize);
  const int64_t sl = g.global_index();
  if (sl >= sh.num_slots) return;
  const int64_t r = sh.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * kChunk, je = imin(sh.rowptr[r + 1], jb + kChunk);
  segment_grad(g, o, gr, gi, jb, je, stats[2 * first_slot(sh.rowptr[r], kChunk)]);
}

Shape make_shape(const int64_t* rowptr, int64_t num_rows, int64_t num_edges, void* ws, int* err) {
  return Shape{rowptr,        num_rows, num_edges, num_slots_for(num_edges, kChunk),
               group_for_degree(num_edges, num_rows), ws_slot_row(ws), err};
}

}  // namespace

size_t edge_softmax_workspace_bytes(int64_t num_edges) {
  const size_t slots = static_cast<size_t>(num_slots_for(num_edges, kChunk));
  return align256(slots * sizeof(int64_t)) + align256(2 * slots * sizeof(double)) + 256;
}

template <typename scalar_t>
cudaError_t edge_softmax_launch(const int64_t* rowptr, const scalar_t* scores, scalar_t* out,
                                int64_t num_rows, int64_t num_edges, void* workspace, int* err,
                                cudaStream_t stream) {
  using acc_t = acc_type_t<scalar_t>;
  const Shape sh = make_shape(rowptr, num_rows, num_edges, workspace, err);
  acc_t* stats = ws_stats<acc_t>(workspace, num_edges);
  const unsigned slot_grid = grid_for(sh.num_slots, kBlockThreads / kWarpSize);
  if (sh.num_slots > 0) {
    GP_RETURN_IF_ERROR(find_slot_rows(rowptr, num_rows, num_edges, kChunk, ws_slot_row(workspace), stream));
    softmax_slot_stats<<<slot_grid, kBlockThreads, 0, stream>>>(sh, scores, stats);
    GP_LAUNCH_CHECK();
  }
  softmax_rows<<<grid_for(num_rows, kBlockThreads / sh.group), kBlockThreads, 0, stream>>>(
      sh, scores, out, stats);
  GP_LAUNCH_CHECK();
  if (sh.num_slots > 0) {
    softmax_slot_write<<<slot_grid, kBlockThreads, 0, stream>>>(sh, scores, out, stats);
    GP_LAUNCH_CHECK();
  }
  return cudaSuccess;
}

template <typename scalar_t>
cudaError_t edge_softmax_backward_launch(const int64_t* rowptr, const scalar_t* out,
                                         const scalar_t* grad_out, scalar_t* grad_in,
                                         int64_t num_rows, int64_t num_edges, void* workspace,
                                         int* err, cudaStream_t stream) {
  using acc_t = acc_type_t<scalar_t>;
  const Shape sh = make_shape(rowptr, num_rows, num_edges, workspace, err);
  acc_t* stats = ws_stats<acc_t>(workspace, num_edges);
  const unsigned slot_grid = grid_for(sh.num_slots, kBlockThreads / kWarpSize);
  if (sh.num_slots > 0) {
    GP_RETURN_IF_ERROR(find_slot_rows(rowptr, num_rows, num_edges, kChunk, ws_slot_row(workspace), stream));
    softmax_bwd_slot_dot<<<slot_grid, kBlockThreads, 0, stream>>>(sh, out, grad_out, stats);
    GP_LAUNCH_CHECK();
  }
  softmax_bwd_rows<<<grid_for(num_rows, kBlockThreads / sh.group), kBlockThreads, 0, stream>>>(
      sh, out, grad_out, grad_in, stats);
  GP_LAUNCH_CHECK();
  if (sh.num_slots > 0) {
    softmax_bwd_slot_write<<<slot_grid, kBlockThreads, 0, stream>>>(sh, out, grad_out, grad_in, stats);
    GP_LAUNCH_CHECK();
  }
  return cudaSuccess;
}

#define GP_INSTANTIATE(S)                                                                       \
  template cudaError_t edge_softmax_launch<S>(const int64_t*, const S*, S*, int64_t, int64_t,    \
                                              void*, int*, cudaStream_t);                       \
  template cudaError_t edge_softmax_backward_launch<S>(const int64_t*, const S*, const S*, S*,   \
                                                       int64_t, int64_t, void*, int*, cudaStream_t);
GP_FOR_EACH_FLOAT(GP_INSTANTIATE)
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
