// CUDA kernel of the check that a CSR is structurally symmetric with sorted rows and symmetric
// edge times, which the temporal ops' backward needs (it walks the rows of A as A^T's). One thread
// per edge: its row by binary search over rowptr, then the shared per-edge test of
// common/device_math.h (a binary search for the reverse edge). Every edge looks up its reverse,
// so matching multiplicities need no count (the CPU halves the lookups and counts instead).
#include "cuda/check_symmetric.cuh"
#include "cuda/cuda_common.cuh"

namespace graphpro::cuda {
namespace {

template <typename index_t, typename time_t>
__global__ void __launch_bounds__(kBlockThreads)
    check_symmetric_kernel(const int64_t* __restrict__ rp, const index_t* __restrict__ col,
                           const time_t* __restrict__ t, int64_t n, int64_t num_edges, int* err) {
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(rp, n, num_edges, err);
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= num_edges) return;
  // The row holding edge j: the last r with rowptr[r] <= j (empty rows before it are skipped).
  const int64_t r = lower_bound_idx(rp, n + 1, j + 1) - 1;
  int64_t b, e;
  if (r < 0 || r >= n || !load_row(rp, r, num_edges, b, e) || j < b || j >= e) {
    report_error(err, kRowptrNotMonotone);
    return;
  }
  const int code = reverse_edge_error(rp, col, t, n, num_edges, b, r, j);
  if (code != kOk) report_error(err, code);
}

}  // namespace

template <typename index_t, typename time_t>
cudaError_t check_symmetric_launch(const int64_t* rowptr, const index_t* col,
                                   const time_t* edge_time, int64_t num_rows, int64_t num_edges,
                                   int* err, cudaStream_t stream) {
  check_symmetric_kernel<<<grid_for(num_edges, kBlockThreads), kBlockThreads, 0, stream>>>(
      rowptr, col, edge_time, num_rows, num_edges, err);
  return cudaGetLastError();
}

#define GP_INSTANTIATE(IT, TT)                                                                \
  template cudaError_t check_symmetric_launch<IT, TT>(const int64_t*, const IT*, const TT*,   \
                                                      int64_t, int64_t, int*, cudaStream_t);
GP_INSTANTIATE(int32_t, float)
GP_INSTANTIATE(int32_t, double)
GP_INSTANTIATE(int64_t, float)
GP_INSTANTIATE(int64_t, double)
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
