// CUDA kernel of graphpro::mask_history_: one warp per score row. The warp checks the history
// row's order on the first chunk (item_begin == 0, as the CPU does), binary-searches the chunk's
// first item and lets its lanes scatter -inf over the chunk's history items in parallel.
#include "cuda/cuda_common.cuh"
#include "cuda/mask_history.cuh"

namespace graphpro::cuda {
namespace {

template <typename scalar_t, typename item_t, typename user_t>
__global__ void __launch_bounds__(kBlockThreads)
    mask_history_kernel(scalar_t* __restrict__ scores, int64_t batch, int64_t width,
                        const int64_t* __restrict__ rp, const item_t* __restrict__ items,
                        const user_t* __restrict__ users, int64_t num_users, int64_t nnz,
                        int64_t item_begin, int* err) {
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(rp, num_users, nnz, err);
  const LaneGroup g(kWarpSize);
  const int64_t b = g.global_index();
  if (b >= batch) return;
  const int64_t u = users != nullptr ? static_cast<int64_t>(users[b]) : b;
  if (u < 0 || u >= num_users) {
    if (g.lane == 0) report_error(err, kUserOutOfRange);
    return;
  }
  int64_t hb, he;
  if (!load_row(rp, u, nnz, hb, he)) {
    if (g.lane == 0) report_error(err, kRowptrNotMonotone);
    return;
  }
  const item_t* __restrict__ h = items + hb;
  const int64_t n = he - hb;
  // Binary search needs a sorted row: verified once, on the first chunk.
  if (item_begin == 0) {
    bool sorted = true;
    for (int64_t j = 1 + g.lane; j < n; j += g.width) sorted &= h[j] > h[j - 1];
    if (!__all_sync(g.mask, sorted)) {
      if (g.lane == 0) report_error(err, kHistoryUnsorted);
      return;
    }
  }
  // Every lane runs the same search (broadcast loads): cheaper than a shuffle round trip.
  const int64_t j0 = lower_bound_idx(h, n, item_begin);
  const scalar_t minus_inf = from_acc<scalar_t>(neg_inf<float>());
  scalar_t* __restrict__ row = scores + b * width;
  for (int64_t base = j0; base < n; base += g.width) {
    const int64_t j = base + g.lane;
    bool past = false;
    if (j < n) {
      const int64_t i = static_cast<int64_t>(h[j]) - item_begin;
      if (i >= width) past = true;
      else if (i >= 0) row[i] = minus_inf;  // i >= 0 always holds for a sorted row
    }
    if (__any_sync(g.mask, past)) break;  // the rest of a sorted row lies past the chunk
  }
}

}  // namespace

template <typename scalar_t, typename item_t, typename user_t>
cudaError_t mask_history_launch(scalar_t* scores, int64_t batch, int64_t width,
                                const int64_t* hist_rowptr, const item_t* hist_items,
                                const user_t* users, int64_t num_users, int64_t nnz,
                                int64_t item_begin, int* err, cudaStream_t stream) {
  mask_history_kernel<<<grid_for(batch, kBlockThreads / kWarpSize), kBlockThreads, 0, stream>>>(
      scores, batch, width, hist_rowptr, hist_items, users, num_users, nnz, item_begin, err);
  return cudaGetLastError();
}

#define GP_INSTANTIATE(S, IT, UT)                                                                 \
  template cudaError_t mask_history_launch<S, IT, UT>(S*, int64_t, int64_t, const int64_t*,       \
                                                      const IT*, const UT*, int64_t, int64_t,     \
                                                      int64_t, int*, cudaStream_t);
#define GP_INSTANTIATE_IDX(S)                                                       \
  GP_INSTANTIATE(S, int32_t, int32_t) GP_INSTANTIATE(S, int32_t, int64_t)           \
  GP_INSTANTIATE(S, int64_t, int32_t) GP_INSTANTIATE(S, int64_t, int64_t)
GP_FOR_EACH_FLOAT(GP_INSTANTIATE_IDX)
#undef GP_INSTANTIATE_IDX
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
