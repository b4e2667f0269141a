// Launcher of graphpro::spmm_kernel on CUDA (torch-free; implemented in spmm.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graphpro::cuda {

// Device workspace (bytes) spmm_launch needs for a graph with num_edges edges and dim features.
size_t spmm_workspace_bytes(int64_t num_edges, int64_t dim, bool double_acc);

// y[r] = sum_{j in row r} weight[perm[j] or j] * x[col[j]]; weight == nullptr means 1 and
// perm == nullptr means identity. err: two zeroed device ints (see cuda_common.cuh).
// scalar_t in {float, double, __half, __nv_bfloat16}; index_t in {int32_t, int64_t}.
template <typename scalar_t, typename index_t>
cudaError_t spmm_launch(const int64_t* rowptr, const index_t* col, const scalar_t* weight,
                        const int64_t* perm, const scalar_t* x, scalar_t* y, int64_t num_rows,
                        int64_t num_cols, int64_t num_edges, int64_t dim, void* workspace, int* err,
                        cudaStream_t stream);

}  // namespace graphpro::cuda
