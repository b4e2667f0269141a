// Helpers shared by the CPU kernels: edge-balanced row partitioning and fused CSR validation.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/checks.h"
#include "common/device_math.h"
#include "common/dispatch.h"

namespace graphpro::cpu {

// The per-edge helpers below are forced inline: as the row kernels grew, GCC's heuristics left
// prefetch_row out of line in the portable build and the gathered-row prefetch vanished from the
// hot loop (temporal_spmm went from 24 to 52 ms on amazon_like).
#define GP_INLINE __attribute__((always_inline)) inline

// Runs fn(row_begin, row_end) over chunks holding about equal numbers of edges (not rows), so a
// power-law row distribution does not leave one thread with most of the work.
template <typename F>
void parallel_rows(const int64_t* rowptr, int64_t num_rows, F&& fn) {
  if (num_rows <= 0) return;
  const int64_t num_edges = std::max<int64_t>(rowptr[num_rows] - rowptr[0], 0);
  const int64_t chunks =
      std::min<int64_t>(num_rows, std::max<int64_t>(1, at::get_num_threads() * 8));
  if (chunks == 1 || num_edges + num_rows < 4096) {
    fn(int64_t{0}, num_rows);
    return;
  }
  std::vector<int64_t> bounds(chunks + 1);
  bounds[0] = 0;
  bounds[chunks] = num_rows;
  const double per = static_cast<double>(num_edges + num_rows) / chunks;
  for (int64_t k = 1; k < chunks; ++k) {
    // Cost of rows [0, r) is rowptr[r] + r: edges plus a per-row overhead.
    const double target = per * k;
    int64_t lo = bounds[k - 1], hi = num_rows;
    while (lo < hi) {
      const int64_t mid = (lo + hi) >> 1;
      if (static_cast<double>(rowptr[mid] - rowptr[0] + mid) < target) lo = mid + 1; else hi = mid;
    }
    bounds[k] = lo;
  }
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      if (bounds[c] < bounds[c + 1]) fn(bounds[c], bounds[c + 1]);
    }
  });
}

// The ends of rowptr are read directly; per-row monotonicity and column range are checked inside
// the kernels' own loops (fused: no extra pass over the edges).
inline void check_rowptr_ends(const at::Tensor& rowptr, int64_t num_edges, const char* op) {
  const int64_t* rp = rowptr.data_ptr<int64_t>();
  const int64_t n = rowptr.numel() - 1;
  if (rp[0] != 0 || rp[n] != num_edges) raise_on_error(kRowptrBadEnds, op);
}

// Row bounds guarded so a non-monotone rowptr can never send a kernel out of bounds.
GP_INLINE bool row_bounds_ok(const int64_t* rp, int64_t r, int64_t num_edges, std::atomic<int>& err) {
  const int64_t b = rp[r], e = rp[r + 1];
  if (b < 0 || e < b || e > num_edges) {
    err.store(kRowptrNotMonotone, std::memory_order_relaxed);
    return false;
  }
  return true;
}

template <typename index_t>
GP_INLINE bool col_ok(index_t c, int64_t num_cols, std::atomic<int>& err) {
  if (static_cast<uint64_t>(static_cast<int64_t>(c)) >= static_cast<uint64_t>(num_cols)) {
    err.store(kColumnOutOfRange, std::memory_order_relaxed);
    return false;
  }
  return true;
}

// acc[0..d) += w * x[0..d): the hot loop of every SpMM; written plainly so the compiler
// vectorises it.
template <typename acc_t, typename scalar_t>
GP_INLINE void axpy(acc_t* __restrict__ acc, const scalar_t* __restrict__ x, acc_t w, int64_t d) {
#pragma omp simd
  for (int64_t k = 0; k < d; ++k) acc[k] += w * static_cast<acc_t>(x[k]);
}

// exp on the per-edge path of the temporal kernels. glibc's expf is an out-of-line call that costs
// about a third of a fused layer; this inline Cephes-style expf (range reduction by ln 2, degree-5
// polynomial) is within ~2 ulp on [-87, 88], plenty for softmax weights accumulated in fp32.
// float64 keeps std::exp (the gradcheck path).
GP_INLINE float edge_exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float fx = x * 1.44269504088896341f;
  const int32_t n = static_cast<int32_t>(fx + (fx >= 0.0f ? 0.5f : -0.5f));
  const float nf = static_cast<float>(n);
  const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}
GP_INLINE double edge_exp(double x) { return std::exp(x); }

// Prefetch the feature row an upcoming edge will gather: rows are scattered over a table far
// larger than the caches, so overlapping their misses is what sets the speed of a CPU SpMM.
constexpr int64_t kPrefetchDistance = 16;
template <typename scalar_t>
GP_INLINE void prefetch_row(const scalar_t* row, int64_t d) {
  const char* p = reinterpret_cast<const char*>(row);
  const int64_t bytes = d * static_cast<int64_t>(sizeof(scalar_t));
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 1);
}

}  // namespace graphpro::cpu
