// CUDA kernels of graphpro::sddmm: out[e] = <a[row(e)], b[col[e]]>, the weight gradient of spmm.
// One lane group per row (size from d and the vector width, as in SpMM); each edge's dot product
// is split over the group's lanes in V-wide vectors and finished by a group reduction. Each
// output is independent, so heavy rows need no combine: slot warps simply take their share.
#include "cuda/cuda_common.cuh"
#include "cuda/sddmm.cuh"

namespace graphpro::cuda {
namespace {

constexpr int64_t kChunk = kVectorChunk;

template <typename scalar_t, typename index_t>
struct Args {
  const int64_t* rowptr;
  const index_t* col;
  const scalar_t* a;
  const scalar_t* b;
  scalar_t* out;
  int64_t num_rows, num_cols, num_edges, dim, num_slots;
  int group;
  const int64_t* slot_row;
  int* err;
};

// out[jb, je) of row r. Lanes load G columns at once, then the group walks them; lane k keeps
// edge k's result so the G outputs are stored with one coalesced write.
template <int V, typename scalar_t, typename index_t>
__device__ __forceinline__ void sddmm_range(const LaneGroup& g, const Args<scalar_t, index_t>& p,
                                            int64_t r, int64_t jb, int64_t je) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t d = p.dim;
  const scalar_t* __restrict__ ar = p.a + r * d;
  for (int64_t j0 = jb; j0 < je; j0 += g.width) {
    const int64_t j = j0 + g.lane;
    long long c = -1;
    if (j < je) {
      const index_t cj = p.col[j];
      if (index_in_range(cj, p.num_cols)) c = static_cast<long long>(cj);
      else report_error(p.err, kColumnOutOfRange);
    }
    acc_t mine = acc_t(0);  // an invalid column's output is 0, as on the CPU
    const int cnt = static_cast<int>(imin(g.width, je - j0));
    for (int k = 0; k < cnt; ++k) {
      const long long ck = group_shfl(g, c, k);
      if (ck < 0) continue;
      const scalar_t* __restrict__ bc = p.b + static_cast<int64_t>(ck) * d;
      acc_t dot = acc_t(0);
      for (int64_t f = static_cast<int64_t>(g.lane) * V; f < d; f += static_cast<int64_t>(g.width) * V) {
        const Pack<scalar_t, V> va = load_pack<V>(ar + f);
        const Pack<scalar_t, V> vb = load_pack<V>(bc + f);
#pragma unroll
        for (int i = 0; i < V; ++i) dot += to_acc<acc_t>(va.v[i]) * to_acc<acc_t>(vb.v[i]);
      }
      dot = group_sum(g, dot);
      if (g.lane == k) mine = dot;
    }
    if (j < je) p.out[j] = from_acc<scalar_t>(mine);
  }
}

template <int V, typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlockThreads) sddmm_slots(Args<scalar_t, index_t> p) {
  const LaneGroup g(p.group);
  const int64_t sl = g.global_index();
  if (sl >= p.num_slots) return;
  const int64_t r = p.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * kChunk;
  sddmm_range<V>(g, p, r, jb, imin(p.rowptr[r + 1], jb + kChunk));
}

template <int V, typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlockThreads) sddmm_rows(Args<scalar_t, index_t> p) {
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(p.rowptr, p.num_rows, p.num_edges, p.err);
  const LaneGroup g(p.group);
  const int64_t r = g.global_index();
  if (r >= p.num_rows) return;
  int64_t b, e;
  if (!load_row(p.rowptr, r, p.num_edges, b, e)) {
    if (g.lane == 0) report_error(p.err, kRowptrNotMonotone);
    return;
  }
  // A heavy row's group only takes its head; the slot warps take the rest.
  const int64_t end = e - b > kChunk ? imin(e, first_slot(b, kChunk) * kChunk) : e;
  sddmm_range<V>(g, p, r, b, end);
}

template <int V, typename scalar_t, typename index_t>
cudaError_t run(Args<scalar_t, index_t> p, cudaStream_t stream) {
  p.group = group_for_dim(p.dim, V);
  const int64_t per_block = kBlockThreads / p.group;
  if (p.num_slots > 0) {
    GP_RETURN_IF_ERROR(find_slot_rows(p.rowptr, p.num_rows, p.num_edges, kChunk,
                                      const_cast<int64_t*>(p.slot_row), stream));
    sddmm_slots<V><<<grid_for(p.num_slots, per_block), kBlockThreads, 0, stream>>>(p);
    GP_LAUNCH_CHECK();
  }
  sddmm_rows<V><<<grid_for(p.num_rows, per_block), kBlockThreads, 0, stream>>>(p);
  GP_LAUNCH_CHECK();
  return cudaSuccess;
}

}  // namespace

size_t sddmm_workspace_bytes(int64_t num_edges) {
  return align256(sizeof(int64_t) * static_cast<size_t>(num_slots_for(num_edges, kChunk))) + 256;
}

template <typename scalar_t, typename index_t>
cudaError_t sddmm_launch(const int64_t* rowptr, const index_t* col, const scalar_t* a,
                         const scalar_t* b, scalar_t* out, int64_t num_rows, int64_t num_cols,
                         int64_t num_edges, int64_t dim, void* workspace, int* err,
                         cudaStream_t stream) {
  const Args<scalar_t, index_t> p{rowptr,   col,       a,   b,
                                  out,      num_rows,  num_cols,
                                  num_edges, dim,      num_slots_for(num_edges, kChunk),
                                  0,        static_cast<const int64_t*>(workspace), err};
  constexpr int kVec = vec16<scalar_t>();
  if (dim % kVec == 0 && aligned16(a) && aligned16(b)) return run<kVec>(p, stream);
  return run<1>(p, stream);
}

#define GP_INSTANTIATE(S, I)                                                                   \
  template cudaError_t sddmm_launch<S, I>(const int64_t*, const I*, const S*, const S*, S*,     \
                                          int64_t, int64_t, int64_t, int64_t, void*, int*,      \
                                          cudaStream_t);
#define GP_INSTANTIATE_INDEX(S) GP_INSTANTIATE(S, int32_t) GP_INSTANTIATE(S, int64_t)
GP_FOR_EACH_FLOAT(GP_INSTANTIATE_INDEX)
#undef GP_INSTANTIATE_INDEX
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
