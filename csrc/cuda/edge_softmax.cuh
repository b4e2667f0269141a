// Launchers of graphpro::edge_softmax and edge_softmax_backward on CUDA (torch-free;
// implemented in edge_softmax.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graphpro::cuda {

// Device workspace (bytes) both launchers need for a CSR with num_edges edges.
size_t edge_softmax_workspace_bytes(int64_t num_edges);

// out[j] = softmax over row r of scores, for every edge j of row r (rows of all -inf -> zeros).
template <typename scalar_t>
cudaError_t edge_softmax_launch(const int64_t* rowptr, const scalar_t* scores, scalar_t* out,
                                int64_t num_rows, int64_t num_edges, void* workspace, int* err,
                                cudaStream_t stream);

// grad_in[j] = out[j] * (grad_out[j] - sum_{row} out * grad_out).
template <typename scalar_t>
cudaError_t edge_softmax_backward_launch(const int64_t* rowptr, const scalar_t* out,
                                         const scalar_t* grad_out, scalar_t* grad_in,
                                         int64_t num_rows, int64_t num_edges, void* workspace,
                                         int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
