// Launcher of the graph check run before the temporal ops' CUDA backward (torch-free;
// check_symmetric.cu).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graphpro::cuda {

// Reports through err (cuda_common.cuh's protocol) an edge (r, c) without a matching (c, r) with
// the same time (edge_time null: structure only), an unsorted row, or a bad rowptr/column.
template <typename index_t, typename time_t>
cudaError_t check_symmetric_launch(const int64_t* rowptr, const index_t* col,
                                   const time_t* edge_time, int64_t num_rows, int64_t num_edges,
                                   int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
