// Launcher of graphpro::mask_history_ on CUDA (torch-free; mask_history.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graphpro::cuda {

// scores[b, i - item_begin] = -inf for every history item i of user users[b] (or b when users is
// null) with item_begin <= i < item_begin + width. scores: contiguous [batch, width].
template <typename scalar_t, typename item_t, typename user_t>
cudaError_t mask_history_launch(scalar_t* scores, int64_t batch, int64_t width,
                                const int64_t* hist_rowptr, const item_t* hist_items,
                                const user_t* users, int64_t num_users, int64_t nnz,
                                int64_t item_begin, int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
