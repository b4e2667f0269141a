// CUDA kernels of graphpro::spmm_kernel: y[r] = sum_e w[perm[e] or e] * x[col[e]], one lane group
// per row (spmm_rows.cuh), heavy rows split into slots combined without atomics. With perm it
// computes the x-gradient over the precomputed transpose, also without atomics.
#include "cuda/spmm.cuh"
#include "cuda/spmm_rows.cuh"

namespace graphpro::cuda {
namespace {

// Column + weight of edge j, with the CPU kernel's fused checks (column, then perm range).
template <typename scalar_t, typename index_t, typename acc_t>
struct SpmmEdge {
  const index_t* __restrict__ col;
  const scalar_t* __restrict__ weight;
  const int64_t* __restrict__ perm;
  int64_t num_cols, num_edges;
  int* err;
  __device__ __forceinline__ bool edge(int64_t /*r*/, int64_t j, int64_t& c, acc_t& w) const {
    const index_t cj = col[j];
    if (!index_in_range(cj, num_cols)) {
      report_error(err, kColumnOutOfRange);
      return false;
    }
    int64_t widx = j;
    if (perm != nullptr) {
      widx = perm[j];
      if (static_cast<uint64_t>(widx) >= static_cast<uint64_t>(num_edges)) {
        report_error(err, kColumnOutOfRange);
        return false;
      }
    }
    w = weight != nullptr ? to_acc<acc_t>(weight[widx]) : acc_t(1);
    c = static_cast<int64_t>(cj);
    return true;
  }
};

template <int V, typename scalar_t, typename index_t>
cudaError_t run(const int64_t* rowptr, const index_t* col, const scalar_t* weight,
                const int64_t* perm, const scalar_t* x, scalar_t* y, int64_t num_rows,
                int64_t num_cols, int64_t num_edges, int64_t dim, void* workspace, int* err,
                cudaStream_t stream) {
  using acc_t = acc_type_t<scalar_t>;
  int64_t* slot_row = workspace_slot_row(workspace);
  acc_t* partial = workspace_partials<acc_t>(workspace, num_edges);
  GP_RETURN_IF_ERROR(find_slot_rows(rowptr, num_rows, num_edges, kVectorChunk, slot_row, stream));
  const SpmmShape s{rowptr, num_rows, num_edges, dim, group_for_dim(dim, V), kVectorChunk,
                    num_slots_for(num_edges, kVectorChunk), slot_row, err};
  const SpmmEdge<scalar_t, index_t, acc_t> op{col, weight, perm, num_cols, num_edges, err};
  const StoreRow<V, scalar_t, acc_t> epi{y, dim};
  return launch_spmm_rows<V>(s, x, partial, op, epi, stream);
}

}  // namespace

size_t spmm_workspace_bytes(int64_t num_edges, int64_t dim, bool double_acc) {
  return spmm_rows_workspace_bytes(num_edges, dim, double_acc ? sizeof(double) : sizeof(float));
}

template <typename scalar_t, typename index_t>
cudaError_t spmm_launch(const int64_t* rowptr, const index_t* col, const scalar_t* weight,
                        const int64_t* perm, const scalar_t* x, scalar_t* y, int64_t num_rows,
                        int64_t num_cols, int64_t num_edges, int64_t dim, void* workspace, int* err,
                        cudaStream_t stream) {
  constexpr int kVec = vec16<scalar_t>();
  // 16-byte gathers need whole vectors per row and 16-byte aligned bases.
  const bool vec = dim % kVec == 0 && aligned16(x) && aligned16(y);
  if (vec) {
    return run<kVec>(rowptr, col, weight, perm, x, y, num_rows, num_cols, num_edges, dim,
                     workspace, err, stream);
  }
  return run<1>(rowptr, col, weight, perm, x, y, num_rows, num_cols, num_edges, dim, workspace,
                err, stream);
}

#define GP_INSTANTIATE(S, I)                                                                  \
  template cudaError_t spmm_launch<S, I>(const int64_t*, const I*, const S*, const int64_t*, \
                                         const S*, S*, int64_t, int64_t, int64_t, int64_t,   \
                                         void*, int*, cudaStream_t);
#define GP_INSTANTIATE_INDEX(S) GP_INSTANTIATE(S, int32_t) GP_INSTANTIATE(S, int64_t)
GP_FOR_EACH_FLOAT(GP_INSTANTIATE_INDEX)
#undef GP_INSTANTIATE_INDEX
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
