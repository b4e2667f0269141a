// CUDA kernels of graphpro::temporal_spmm: one fused GraphPro layer (or its transpose) with the
// edge weights rebuilt on the fly, on the lane-group SpMM engine of spmm_rows.cuh.
#include "cuda/spmm_rows.cuh"
#include "cuda/temporal_edge.cuh"
#include "cuda/temporal_spmm.cuh"

namespace graphpro::cuda {
namespace {

template <int V, typename scalar_t, typename index_t>
cudaError_t run(const int64_t* rowptr, const index_t* col, const void* edge_time,
                const void* node_norm, const void* row_lse, const scalar_t* x, scalar_t* y,
                int64_t num_rows, int64_t num_edges, int64_t dim, double time_weight,
                double keep_prob, int64_t seed, bool transpose, void* workspace, int* err,
                cudaStream_t stream) {
  using acc_t = acc_type_t<scalar_t>;
  int64_t* slot_row = workspace_slot_row(workspace);
  acc_t* partial = workspace_partials<acc_t>(workspace, num_edges);
  GP_RETURN_IF_ERROR(find_slot_rows(rowptr, num_rows, num_edges, kVectorChunk, slot_row, stream));
  const SpmmShape s{rowptr, num_rows, num_edges, dim, group_for_dim(dim, V), kVectorChunk,
                    num_slots_for(num_edges, kVectorChunk), slot_row, err};
  const bool use_time = time_weight != 0.0;
  const TemporalEdge<acc_t, index_t> op{col,
                                        use_time ? static_cast<const acc_t*>(edge_time) : nullptr,
                                        static_cast<const acc_t*>(node_norm),
                                        use_time ? static_cast<const acc_t*>(row_lse) : nullptr,
                                        num_rows,
                                        static_cast<acc_t>(time_weight),
                                        seed_key(seed),
                                        keep_threshold(keep_prob),
                                        use_time,
                                        keep_prob < 1.0,
                                        transpose,
                                        err};
  const StoreRow<V, scalar_t, acc_t> epi{y, dim};
  return launch_spmm_rows<V>(s, x, partial, op, epi, stream);
}

}  // namespace

size_t temporal_spmm_workspace_bytes(int64_t num_edges, int64_t dim, bool double_acc) {
  return spmm_rows_workspace_bytes(num_edges, dim, double_acc ? sizeof(double) : sizeof(float));
}

template <typename scalar_t, typename index_t>
cudaError_t temporal_spmm_launch(const int64_t* rowptr, const index_t* col, const void* edge_time,
                                 const void* node_norm, const void* row_lse, const scalar_t* x,
                                 scalar_t* y, int64_t num_rows, int64_t num_edges, int64_t dim,
                                 double time_weight, double keep_prob, int64_t seed,
                                 bool transpose, void* workspace, int* err, cudaStream_t stream) {
  constexpr int kVec = vec16<scalar_t>();
  const bool vec = dim % kVec == 0 && aligned16(x) && aligned16(y);
  if (vec) {
    return run<kVec>(rowptr, col, edge_time, node_norm, row_lse, x, y, num_rows, num_edges, dim,
                     time_weight, keep_prob, seed, transpose, workspace, err, stream);
  }
  return run<1>(rowptr, col, edge_time, node_norm, row_lse, x, y, num_rows, num_edges, dim,
                time_weight, keep_prob, seed, transpose, workspace, err, stream);
}

#define GP_INSTANTIATE(S, I)                                                                \
  template cudaError_t temporal_spmm_launch<S, I>(                                          \
      const int64_t*, const I*, const void*, const void*, const void*, const S*, S*, int64_t, \
      int64_t, int64_t, double, double, int64_t, bool, void*, int*, cudaStream_t);
#define GP_INSTANTIATE_INDEX(S) GP_INSTANTIATE(S, int32_t) GP_INSTANTIATE(S, int64_t)
GP_FOR_EACH_FLOAT(GP_INSTANTIATE_INDEX)
#undef GP_INSTANTIATE_INDEX
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
