// Launcher of graphpro::temporal_spmm on CUDA (torch-free; implemented in temporal_spmm.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graphpro::cuda {

// Device workspace (bytes) temporal_spmm_launch needs.
size_t temporal_spmm_workspace_bytes(int64_t num_edges, int64_t dim, bool double_acc);

// One fused GraphPro layer y = A x (or A^T x with transpose) over the square CSR graph, weights
// rebuilt per edge from edge_time / row_lse / node_norm (all in acc_t = float, or double for
// double x). edge_time and row_lse may be null when time_weight == 0. keep_prob < 1 drops edges
// with graphpro::edge_kept(seed_key(seed), r, c, keep_threshold(keep_prob)).
template <typename scalar_t, typename index_t>
cudaError_t temporal_spmm_launch(const int64_t* rowptr, const index_t* col, const void* edge_time,
                                 const void* node_norm, const void* row_lse, const scalar_t* x,
                                 scalar_t* y, int64_t num_rows, int64_t num_edges, int64_t dim,
                                 double time_weight, double keep_prob, int64_t seed,
                                 bool transpose, void* workspace, int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
