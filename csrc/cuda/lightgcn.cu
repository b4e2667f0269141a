// CUDA kernels of graphpro::lightgcn and lightgcn_backward: L fused GraphPro layers whose running
// sum is accumulated inside each layer's row kernel (no separate add pass, no stored layer
// activations); layers ping-pong between two acc_t buffers and never write x.
#include <type_traits>

#include "cuda/lightgcn.cuh"
#include "cuda/spmm_rows.cuh"
#include "cuda/temporal_edge.cuh"

namespace graphpro::cuda {
namespace {

// Epilogue of one layer: next[r] = y_r (skipped on the last layer) and
// sum_out[r] = sum_in[r] + y_r. sum_in and sum_out alias on middle layers (same element, same
// lane: read before write), so neither is __restrict__.
template <int V, typename acc_t, typename out_t>
struct LayerSum {
  acc_t* next;
  const acc_t* sum_in;
  out_t* sum_out;
  int64_t dim;
  __device__ __forceinline__ void operator()(int64_t r, int64_t f0, const LaneGroup& g,
                                             const acc_t (&acc)[kFeatChunks][V]) const {
#pragma unroll
    for (int q = 0; q < kFeatChunks; ++q) {
      const int64_t f = f0 + static_cast<int64_t>(q * g.width + g.lane) * V;
      if (f < dim) {
        const int64_t off = r * dim + f;
        if (next != nullptr) {
          Pack<acc_t, V> y;
#pragma unroll
          for (int i = 0; i < V; ++i) y.v[i] = acc[q][i];
          store_pack<V>(next + off, y);
        }
        const Pack<acc_t, V> si = load_pack<V>(sum_in + off);
        Pack<out_t, V> o;
#pragma unroll
        for (int i = 0; i < V; ++i) o.v[i] = from_acc<out_t>(si.v[i] + acc[q][i]);
        store_pack<V>(sum_out + off, o);
      }
    }
  }
};

template <int V, typename scalar_t, typename index_t>
cudaError_t run(const int64_t* rowptr, const index_t* col, const void* edge_time,
                const void* node_norm, const void* row_lse, const void* x_acc_, void* buf0_,
                void* buf1_, void* out_acc_, scalar_t* out, int64_t num_rows, int64_t num_edges,
                int64_t dim, int64_t num_layers, double time_weight, double keep_prob,
                int64_t seed, bool transpose, void* workspace, int* err, cudaStream_t stream) {
  using acc_t = acc_type_t<scalar_t>;
  const acc_t* x_acc = static_cast<const acc_t*>(x_acc_);
  acc_t* bufs[2] = {static_cast<acc_t*>(buf0_), static_cast<acc_t*>(buf1_)};
  acc_t* out_acc = static_cast<acc_t*>(out_acc_);
  int64_t* slot_row = workspace_slot_row(workspace);
  acc_t* partial = workspace_partials<acc_t>(workspace, num_edges);
  // The graph's heavy-row split is the same for every layer: computed once.
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
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    const bool last = layer == num_layers - 1;
    const acc_t* xin = layer == 0 ? x_acc : bufs[(layer - 1) & 1];
    acc_t* next = last ? nullptr : bufs[layer & 1];
    const acc_t* sum_in = layer == 0 ? x_acc : out_acc;
    if constexpr (!std::is_same_v<scalar_t, acc_t>) {
      if (last) {
        // Last layer: the sum leaves in the output dtype directly (no extra conversion pass).
        const LayerSum<V, acc_t, scalar_t> epi{nullptr, sum_in, out, dim};
        GP_RETURN_IF_ERROR(launch_spmm_rows<V>(s, xin, partial, op, epi, stream));
        continue;
      }
    }
    const LayerSum<V, acc_t, acc_t> epi{next, sum_in, out_acc, dim};
    GP_RETURN_IF_ERROR(launch_spmm_rows<V>(s, xin, partial, op, epi, stream));
  }
  return cudaSuccess;
}

}  // namespace

size_t lightgcn_workspace_bytes(int64_t num_edges, int64_t dim, bool double_acc) {
  return spmm_rows_workspace_bytes(num_edges, dim, double_acc ? sizeof(double) : sizeof(float));
}

template <typename scalar_t, typename index_t>
cudaError_t lightgcn_launch(const int64_t* rowptr, const index_t* col, const void* edge_time,
                            const void* node_norm, const void* row_lse, const void* x_acc,
                            void* buf0, void* buf1, void* out_acc, scalar_t* out, int64_t num_rows,
                            int64_t num_edges, int64_t dim, int64_t num_layers, double time_weight,
                            double keep_prob, int64_t seed, bool transpose, void* workspace,
                            int* err, cudaStream_t stream) {
  using acc_t = acc_type_t<scalar_t>;
  if (num_layers <= 0 || num_rows == 0) {
    return check_rowptr_ends_async(rowptr, num_rows, num_edges, err, stream);
  }
  constexpr int kVec = vec16<acc_t>();
  const bool vec = dim % kVec == 0 && aligned16(x_acc) && aligned16(out_acc) && aligned16(out) &&
                   (buf0 == nullptr || aligned16(buf0)) && (buf1 == nullptr || aligned16(buf1));
  if (vec) {
    return run<kVec>(rowptr, col, edge_time, node_norm, row_lse, x_acc, buf0, buf1, out_acc, out,
                     num_rows, num_edges, dim, num_layers, time_weight, keep_prob, seed, transpose,
                     workspace, err, stream);
  }
  return run<1>(rowptr, col, edge_time, node_norm, row_lse, x_acc, buf0, buf1, out_acc, out,
                num_rows, num_edges, dim, num_layers, time_weight, keep_prob, seed, transpose,
                workspace, err, stream);
}

#define GP_INSTANTIATE(S, I)                                                                    \
  template cudaError_t lightgcn_launch<S, I>(                                                   \
      const int64_t*, const I*, const void*, const void*, const void*, const void*, void*, void*, \
      void*, S*, int64_t, int64_t, int64_t, int64_t, double, double, int64_t, bool, void*, int*, \
      cudaStream_t);
#define GP_INSTANTIATE_INDEX(S) GP_INSTANTIATE(S, int32_t) GP_INSTANTIATE(S, int64_t)
GP_FOR_EACH_FLOAT(GP_INSTANTIATE_INDEX)
#undef GP_INSTANTIATE_INDEX
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
