// CUDA kernel of graphpro::sample_negatives: one warp per user position b. The warp validates the
// user's history row cooperatively (reporting the CPU's error for the first bad position), then
// lanes draw samples j = lane, lane + 32, ... with the shared Philox sample_bits / bounded64 /
// nth_missing functions, so the output equals the CPU's bit for bit. Writes are coalesced.
#include "cuda/cuda_common.cuh"
#include "cuda/sample_negatives.cuh"

namespace graphpro::cuda {
namespace {

constexpr long long kNoPosition = 0x7fffffffffffffffLL;

template <typename item_t, typename user_t>
__global__ void __launch_bounds__(kBlockThreads)
    sample_negatives_kernel(const int64_t* __restrict__ rp, const item_t* __restrict__ items,
                            const user_t* __restrict__ users, int64_t* __restrict__ out,
                            int64_t num_users, int64_t nnz, int64_t batch, int64_t num_items,
                            int64_t k, int64_t seed, int* err) {
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(rp, num_users, nnz, err);
  const LaneGroup g(kWarpSize);
  const int64_t b = g.global_index();
  if (b >= batch) return;
  const int64_t u = static_cast<int64_t>(users[b]);
  int code = kOk;
  int64_t n = 0;
  const item_t* h = nullptr;
  int64_t hb, he;
  if (u < 0 || u >= num_users) {
    code = kUserOutOfRange;
  } else if (!load_row(rp, u, nnz, hb, he)) {
    code = kRowptrNotMonotone;
  } else {
    h = items + hb;
    n = he - hb;
    // The rank mapping needs a strictly increasing row inside [0, num_items): find the first
    // offending position (range is checked before order at the same position, as on the CPU).
    long long bad = kNoPosition;
    int bad_code = kOk;
    for (int64_t j = g.lane; j < n; j += g.width) {
      const int64_t v = static_cast<int64_t>(h[j]);
      int c = kOk;
      if (v < 0 || v >= num_items) c = kHistoryOutOfRange;
      else if (j > 0 && v <= static_cast<int64_t>(h[j - 1])) c = kHistoryUnsorted;
      if (c != kOk) {
        bad = j;
        bad_code = c;
        break;
      }
    }
    const long long first = group_min_ll(g, bad);
    // Lane j % 32 owns position j, so the owner of the first bad position holds its code.
    if (first != kNoPosition) code = group_shfl(g, bad_code, static_cast<int>(first & 31));
    if (code == kOk && k > 0 && n >= num_items) code = kComplementTooSmall;
  }
  if (code != kOk) {
    if (g.lane == 0) report_error(err, code);
    for (int64_t j = g.lane; j < k; j += g.width) out[b * k + j] = -1;
    return;
  }
  const uint64_t m = static_cast<uint64_t>(num_items - n);
  for (int64_t j = g.lane; j < k; j += g.width) {
    const int64_t r = static_cast<int64_t>(bounded64(sample_bits(seed, b, j), m));
    out[b * k + j] = nth_missing(h, n, r);
  }
}

}  // namespace

template <typename item_t, typename user_t>
cudaError_t sample_negatives_launch(const int64_t* hist_rowptr, const item_t* hist_items,
                                    const user_t* users, int64_t* out, int64_t num_users,
                                    int64_t nnz, int64_t batch, int64_t num_items, int64_t k,
                                    int64_t seed, int* err, cudaStream_t stream) {
  sample_negatives_kernel<<<grid_for(batch, kBlockThreads / kWarpSize), kBlockThreads, 0, stream>>>(
      hist_rowptr, hist_items, users, out, num_users, nnz, batch, num_items, k, seed, err);
  return cudaGetLastError();
}

#define GP_INSTANTIATE(IT, UT)                                                                  \
  template cudaError_t sample_negatives_launch<IT, UT>(const int64_t*, const IT*, const UT*,     \
                                                       int64_t*, int64_t, int64_t, int64_t,      \
                                                       int64_t, int64_t, int64_t, int*,          \
                                                       cudaStream_t);
GP_INSTANTIATE(int32_t, int32_t)
GP_INSTANTIATE(int32_t, int64_t)
GP_INSTANTIATE(int64_t, int32_t)
GP_INSTANTIATE(int64_t, int64_t)
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
