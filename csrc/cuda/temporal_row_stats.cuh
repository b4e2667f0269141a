// Launcher of graphpro::temporal_row_stats on CUDA (torch-free; temporal_row_stats.cu).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graphpro::cuda {

// Device workspace (bytes) temporal_row_stats_launch needs.
size_t temporal_row_stats_workspace_bytes(int64_t num_edges);

// lse[r] = log sum_{kept j in row r} exp(edge_time[j]) (0 for rows without kept edges), with the
// CPU's fused checks: column range, non-finite times. scalar_t in {float, double}.
template <typename scalar_t, typename index_t>
cudaError_t temporal_row_stats_launch(const int64_t* rowptr, const index_t* col,
                                      const scalar_t* edge_time, scalar_t* lse, int64_t num_rows,
                                      int64_t num_edges, double keep_prob, int64_t seed,
                                      void* workspace, int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
