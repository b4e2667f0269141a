// Device helpers shared by every graphpro CUDA kernel: lane groups (sub-warps) and their
// reductions, 16-byte vector loads, scalar conversions, the error-flag protocol, and the
// heavy-row "slot" split. Torch-free on purpose: only the CUDA runtime and common/device_math.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/device_math.h"

// Returns the first CUDA error from a launch (or any runtime call) to the caller (the glue, which
// turns it into a c10::Error); kernels themselves never abort.
#define GP_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    const cudaError_t gp_err_ = (expr);          \
    if (gp_err_ != cudaSuccess) return gp_err_;  \
  } while (0)
#define GP_LAUNCH_CHECK() GP_RETURN_IF_ERROR(cudaGetLastError())

// M(T) for every floating type the kernels are built for (explicit instantiations).
#define GP_FOR_EACH_FLOAT(M) M(float) M(double) M(__half) M(__nv_bfloat16)

namespace graphpro::cuda {

constexpr int kBlockThreads = 256;
constexpr int kWarpSize = 32;
// Rows with more edges than this are split at multiples of it ("slots" of the edge array) so a
// power-law hub never keeps one lane group busy for its whole degree. Vector kernels (SpMM-like,
// each edge moves a d-vector) use a smaller chunk than scalar per-edge kernels.
constexpr int64_t kVectorChunk = 256;
constexpr int64_t kScalarChunk = 1024;
// Feature chunks (of group * V elements) a lane keeps in registers per pass over a row's edges.
constexpr int kFeatChunks = 2;

// ---------------------------------------------------------------------------------------------
// Small integer helpers (int64_t is `long`: avoid ambiguous min/max overloads).
__host__ __device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a < b ? b : a; }
__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid size for `items` work items of `per_block` each; at least one block so the fused
// rowptr-ends check (block 0, thread 0) always runs, even on an empty graph.
inline unsigned grid_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned>(imax(1, ceil_div(items, per_block)));
}

// Smallest lane group (8, 16 or 32 lanes) whose lanes cover d features with V-wide vectors:
// d = 64 fp32 with float4 -> half-warp per row; d >= 128 fp32 -> full warp looping over d.
inline int group_for_dim(int64_t d, int vec) {
  int g = 8;
  while (g < kWarpSize && static_cast<int64_t>(g) * vec < d) g *= 2;
  return g;
}

// Lane group for scalar per-edge kernels: about one lane per edge of an average row.
inline int group_for_degree(int64_t num_edges, int64_t num_rows) {
  const int64_t avg = num_rows > 0 ? num_edges / num_rows : 0;
  int g = 8;
  while (g < kWarpSize && g < avg) g *= 2;
  return g;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Bytes of a workspace region rounded up so the next region stays 256-byte aligned.
inline size_t align256(size_t bytes) { return (bytes + 255) & ~size_t{255}; }

// ---------------------------------------------------------------------------------------------
// Scalar types: half/bf16 accumulate in float, float in float, double in double.
template <typename T>
struct AccType {
  using type = T;
};
template <>
struct AccType<__half> {
  using type = float;
};
template <>
struct AccType<__nv_bfloat16> {
  using type = float;
};
template <typename T>
using acc_type_t = typename AccType<T>::type;

template <typename A, typename T>
__device__ __forceinline__ A to_acc(T v) {
  if constexpr (std::is_same_v<T, __half>) {
    return static_cast<A>(__half2float(v));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return static_cast<A>(__bfloat162float(v));
  } else {
    return static_cast<A>(v);
  }
}

// Round-to-nearest-even, like c10::Half / c10::BFloat16 on the CPU.
template <typename T, typename A>
__device__ __forceinline__ T from_acc(A v) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <typename T>
__device__ __forceinline__ T neg_inf() {
  return -static_cast<T>(INFINITY);
}

__device__ __forceinline__ float gp_exp(float v) { return expf(v); }
__device__ __forceinline__ double gp_exp(double v) { return exp(v); }
__device__ __forceinline__ float gp_log(float v) { return logf(v); }
__device__ __forceinline__ double gp_log(double v) { return log(v); }
// fmax ignores a NaN operand, which is what std::max(m, NaN) does for the CPU's running max.
__device__ __forceinline__ float gp_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double gp_max(double a, double b) { return fmax(a, b); }
// A max that keeps NaN (edge_softmax: a row holding a NaN is all NaN, as torch.softmax gives).
__device__ __forceinline__ float gp_max_nan(float a, float b) {
  return (isnan(a) || a > b) ? a : b;
}
__device__ __forceinline__ double gp_max_nan(double a, double b) {
  return (isnan(a) || a > b) ? a : b;
}

// ---------------------------------------------------------------------------------------------
// Vector loads: V consecutive elements moved as one 16-byte (or narrower) transaction.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

template <int V, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& v) {
  *reinterpret_cast<Pack<T, V>*>(p) = v;
}

// Vector width of a 16-byte load for T (float4, double2, 8 x half).
template <typename T>
constexpr int vec16() {
  return static_cast<int>(16 / sizeof(T));
}

// ---------------------------------------------------------------------------------------------
// A lane group: `width` (8, 16 or 32) consecutive lanes of a warp working on one row/slot.
struct LaneGroup {
  int width;      // lanes in the group (power of two <= 32)
  int lane;       // this thread's lane within the group
  int base;       // first warp lane of the group
  unsigned mask;  // the group's lanes within the warp, for the *_sync intrinsics

  __device__ __forceinline__ explicit LaneGroup(int w) : width(w) {
    const int wl = static_cast<int>(threadIdx.x) & (kWarpSize - 1);
    lane = wl & (w - 1);
    base = wl & ~(w - 1);
    mask = w == kWarpSize ? 0xffffffffu : (((1u << w) - 1u) << base);
  }
  // Index of this thread's group over the whole grid.
  __device__ __forceinline__ int64_t global_index() const {
    return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / width;
  }
};

template <typename T>
__device__ __forceinline__ T group_shfl(const LaneGroup& g, T v, int src) {
  return __shfl_sync(g.mask, v, src, g.width);
}

template <typename T>
__device__ __forceinline__ T group_sum(const LaneGroup& g, T v) {
  for (int o = g.width >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(g.mask, v, o, g.width);
  return v;
}

template <typename T>
__device__ __forceinline__ T group_max(const LaneGroup& g, T v) {
  for (int o = g.width >> 1; o > 0; o >>= 1) v = gp_max(v, __shfl_xor_sync(g.mask, v, o, g.width));
  return v;
}

template <typename T>
__device__ __forceinline__ T group_max_nan(const LaneGroup& g, T v) {
  for (int o = g.width >> 1; o > 0; o >>= 1)
    v = gp_max_nan(v, __shfl_xor_sync(g.mask, v, o, g.width));
  return v;
}

__device__ __forceinline__ long long group_min_ll(const LaneGroup& g, long long v) {
  for (int o = g.width >> 1; o > 0; o >>= 1) {
    const long long u = __shfl_xor_sync(g.mask, v, o, g.width);
    v = u < v ? u : v;
  }
  return v;
}

// Bits of the group's lanes from a warp ballot, shifted down to bit 0.
__device__ __forceinline__ unsigned group_ballot(const LaneGroup& g, bool pred) {
  const unsigned b = __ballot_sync(g.mask, pred) & g.mask;
  return b >> g.base;
}

// First index in a[0, len) with a[idx] > v (len if none), found by the group cooperatively:
// every step probes `width` positions at once, so log_{width+1}(len) dependent loads instead of
// log2(len). For non-monotone data the answer is meaningless but every read stays in [0, len).
__device__ __forceinline__ int64_t group_upper_bound(const LaneGroup& g, const int64_t* a,
                                                     int64_t len, int64_t v) {
  int64_t lo = 0, hi = len;
  const unsigned full = g.width == kWarpSize ? 0xffffffffu : ((1u << g.width) - 1u);
  while (lo < hi) {
    const int64_t span = hi - lo;
    if (span <= g.width) {
      const bool le = g.lane < span && a[lo + g.lane] <= v;
      const unsigned miss = ~group_ballot(g, le) & full;
      const int t = miss ? __ffs(miss) - 1 : g.width;
      lo = hi = lo + imin(t, span);
    } else {
      // Strictly increasing probes inside [lo, hi) because span >= width + 1.
      const int64_t p = lo + (span * (g.lane + 1)) / (g.width + 1);
      const bool le = a[p] <= v;
      const unsigned miss = ~group_ballot(g, le) & full;
      const int t = miss ? __ffs(miss) - 1 : g.width;  // leading probes with a[p] <= v
      const int64_t plo = t > 0 ? lo + (span * t) / (g.width + 1) : lo - 1;
      const int64_t phi = t < g.width ? lo + (span * (t + 1)) / (g.width + 1) : hi;
      lo = plo + 1;
      hi = phi;
    }
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// Error-flag protocol. err points at two ints in device memory, zeroed by the glue:
//   err[0] = kRowptrBadEnds when rowptr[0] != 0 or rowptr[R] != E (the CPU checks this before
//            running its kernel, so the glue raises it first);
//   err[1] = the first data error any thread hit (atomicCAS from kOk: first error wins).
// The glue copies both back once after the launches (one D2H copy + stream sync) and calls
// graphpro::raise_on_error, so messages match the CPU backend.
__device__ __forceinline__ void report_error(int* err, int code) {
  if (*reinterpret_cast<volatile int*>(err + 1) == kOk) atomicCAS(err + 1, static_cast<int>(kOk), code);
}

__device__ __forceinline__ void check_rowptr_ends(const int64_t* rp, int64_t num_rows,
                                                  int64_t num_edges, int* err) {
  if (rp[0] != 0 || rp[num_rows] != num_edges) err[0] = kRowptrBadEnds;
}

// Standalone ends check for launches that walk no rows (e.g. lightgcn with zero layers).
template <typename Unused = void>
__global__ void rowptr_ends_kernel(const int64_t* rp, int64_t num_rows, int64_t num_edges, int* err) {
  check_rowptr_ends(rp, num_rows, num_edges, err);
}

inline cudaError_t check_rowptr_ends_async(const int64_t* rp, int64_t num_rows, int64_t num_edges,
                                           int* err, cudaStream_t stream) {
  rowptr_ends_kernel<<<1, 1, 0, stream>>>(rp, num_rows, num_edges, err);
  return cudaGetLastError();
}

// Mirrors cpu::row_bounds_ok: a row is only walked when 0 <= b <= e <= E, so a corrupt rowptr
// can never send a kernel out of bounds.
__device__ __forceinline__ bool load_row(const int64_t* rp, int64_t r, int64_t num_edges,
                                         int64_t& b, int64_t& e) {
  b = rp[r];
  e = rp[r + 1];
  return b >= 0 && e >= b && e <= num_edges;
}

template <typename index_t>
__device__ __forceinline__ bool index_in_range(index_t c, int64_t n) {
  return static_cast<uint64_t>(static_cast<int64_t>(c)) < static_cast<uint64_t>(n);
}

// ---------------------------------------------------------------------------------------------
// Heavy-row split. A row r = [b, e) with e - b > C is "heavy": the row's own lane group handles
// its head [b, ceil(b/C)*C) and every slot s in [ceil(b/C), (e-1)/C] handles [s*C, min(e, s*C+C)).
// A slot's first edge s*C then always lies in r, so each slot serves at most one heavy row and
// one partial per slot suffices. slot_row[s] = that row, or -1. Partials are combined by the
// row's own group in a second kernel, in slot order: no atomics, deterministic results.
__host__ __device__ __forceinline__ int64_t num_slots_for(int64_t num_edges, int64_t chunk) {
  return num_edges > 0 ? ceil_div(num_edges, chunk) : 0;
}

// First slot after a heavy row's head; slots first..(e-1)/C belong to the row.
__device__ __forceinline__ int64_t first_slot(int64_t b, int64_t chunk) { return ceil_div(b, chunk); }

// One warp per slot: which heavy row (if any) owns the slot's first edge.
template <typename Unused = void>
__global__ void __launch_bounds__(kBlockThreads)
    slot_rows_kernel(const int64_t* __restrict__ rp, int64_t num_rows, int64_t num_edges,
                     int64_t chunk, int64_t num_slots, int64_t* __restrict__ slot_row) {
  const LaneGroup g(kWarpSize);
  const int64_t s = g.global_index();
  if (s >= num_slots) return;
  const int64_t e0 = s * chunk;
  const int64_t r = group_upper_bound(g, rp, num_rows + 1, e0) - 1;
  int64_t owner = -1;
  if (r >= 0 && r < num_rows) {
    const int64_t b = rp[r], e = rp[r + 1];
    if (b >= 0 && b <= e0 && e0 < e && e <= num_edges && e - b > chunk) owner = r;
  }
  if (g.lane == 0) slot_row[s] = owner;
}

// Fills slot_row for a graph (once per op call; lightgcn reuses it for every layer).
inline cudaError_t find_slot_rows(const int64_t* rp, int64_t num_rows, int64_t num_edges,
                                  int64_t chunk, int64_t* slot_row, cudaStream_t stream) {
  const int64_t slots = num_slots_for(num_edges, chunk);
  if (slots == 0) return cudaSuccess;
  slot_rows_kernel<<<grid_for(slots, kBlockThreads / kWarpSize), kBlockThreads, 0, stream>>>(
      rp, num_rows, num_edges, chunk, slots, slot_row);
  return cudaGetLastError();
}

}  // namespace graphpro::cuda
