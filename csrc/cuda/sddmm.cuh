// Launcher of graphpro::sddmm on CUDA (torch-free; implemented in sddmm.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graphpro::cuda {

// Device workspace (bytes) sddmm_launch needs.
size_t sddmm_workspace_bytes(int64_t num_edges);

// out[j] = <a[row(j)], b[col[j]]> for every edge j (0 for an out-of-range column, which is
// reported). a: [num_rows, dim], b: [num_cols, dim].
template <typename scalar_t, typename index_t>
cudaError_t sddmm_launch(const int64_t* rowptr, const index_t* col, const scalar_t* a,
                         const scalar_t* b, scalar_t* out, int64_t num_rows, int64_t num_cols,
                         int64_t num_edges, int64_t dim, void* workspace, int* err,
                         cudaStream_t stream);

}  // namespace graphpro::cuda
