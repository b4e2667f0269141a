// Launcher of graphpro::lightgcn / lightgcn_backward on CUDA (torch-free; lightgcn.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace graphpro::cuda {

// Device workspace (bytes) lightgcn_launch needs (the slot split; ping-pong buffers are separate).
size_t lightgcn_workspace_bytes(int64_t num_edges, int64_t dim, bool double_acc);

// out = sum_{l=0..L} M^l x with M = A (transpose=false) or A^T (transpose=true: the backward),
// acc_t = float (double for double x). x_acc: x in acc_t (never written). bufs: two acc_t [n, d]
// ping-pong buffers (buf0 needed when L >= 2, buf1 when L >= 3). out_acc: acc_t [n, d] running
// sum; out: scalar_t [n, d] result, which must be out_acc itself when scalar_t == acc_t.
// The running sum is fused into each layer's row kernel; the last layer writes out directly.
// With num_layers == 0 only the rowptr ends are checked (the glue returns a copy of x).
template <typename scalar_t, typename index_t>
cudaError_t lightgcn_launch(const int64_t* rowptr, const index_t* col, const void* edge_time,
                            const void* node_norm, const void* row_lse, const void* x_acc,
                            void* buf0, void* buf1, void* out_acc, scalar_t* out, int64_t num_rows,
                            int64_t num_edges, int64_t dim, int64_t num_layers, double time_weight,
                            double keep_prob, int64_t seed, bool transpose, void* workspace,
                            int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
