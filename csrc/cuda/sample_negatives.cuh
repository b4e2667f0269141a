// Launcher of graphpro::sample_negatives on CUDA (torch-free; sample_negatives.cu).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graphpro::cuda {

// out[b, j] = the r-th item missing from user users[b]'s sorted history, r drawn uniformly from
// graphpro::sample_bits(seed, b, j): bit-identical to the CPU kernel. A user whose row is invalid
// (user out of range, bad rowptr, unsorted / out-of-range history, or a full history with k > 0)
// gets -1 in all k entries and the matching ErrorCode is reported.
template <typename item_t, typename user_t>
cudaError_t sample_negatives_launch(const int64_t* hist_rowptr, const item_t* hist_items,
                                    const user_t* users, int64_t* out, int64_t num_users,
                                    int64_t nnz, int64_t batch, int64_t num_items, int64_t k,
                                    int64_t seed, int* err, cudaStream_t stream);

}  // namespace graphpro::cuda
