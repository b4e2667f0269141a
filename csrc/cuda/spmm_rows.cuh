// The lane-group SpMM engine shared by spmm_kernel, temporal_spmm and lightgcn: one lane group
// (8/16/32 lanes, chosen from d and the vector width) per output row, V-wide vector gathers of
// the neighbour rows, and the heavy-row slot split of cuda_common.cuh. An op supplies an EdgeOp
// (column + weight of edge j of row r, with its fused validation) and an epilogue (what to do
// with the finished row). Torch-free.
#pragma once
#include "cuda/cuda_common.cuh"

namespace graphpro::cuda {

// Graph shape and split parameters every SpMM-like launch shares.
struct SpmmShape {
  const int64_t* rowptr;
  int64_t num_rows, num_edges, dim;
  int group;                 // lanes per row
  int64_t chunk, num_slots;  // heavy-row split (kVectorChunk)
  const int64_t* slot_row;   // from find_slot_rows
  int* err;
};

// Workspace of an SpMM-like op: slot_row (int64 per slot) then one acc_t partial row per slot.
inline size_t spmm_rows_workspace_bytes(int64_t num_edges, int64_t dim, size_t acc_size) {
  const int64_t slots = num_slots_for(num_edges, kVectorChunk);
  return align256(static_cast<size_t>(slots) * sizeof(int64_t)) +
         align256(static_cast<size_t>(slots) * static_cast<size_t>(dim) * acc_size) + 256;
}

inline int64_t* workspace_slot_row(void* ws) { return static_cast<int64_t*>(ws); }
template <typename acc_t>
inline acc_t* workspace_partials(void* ws, int64_t num_edges) {
  const int64_t slots = num_slots_for(num_edges, kVectorChunk);
  return reinterpret_cast<acc_t*>(static_cast<char*>(ws) +
                                  align256(static_cast<size_t>(slots) * sizeof(int64_t)));
}

// acc += sum over edges [jb, je) of row r of w_j * x[c_j, f0 + lane's features]. Each lane
// computes one edge's (column, weight) -- the per-edge scalar work (hash, exp) is spread over
// the group -- and the group then walks those edges, broadcasting (c, w) by shuffle.
template <int V, typename acc_t, typename xin_t, typename EdgeOp>
__device__ __forceinline__ void gather_edges(const EdgeOp& op, const LaneGroup& g, int64_t r,
                                             int64_t jb, int64_t je, const xin_t* __restrict__ x,
                                             int64_t d, int64_t f0,
                                             acc_t (&acc)[kFeatChunks][V]) {
  for (int64_t j0 = jb; j0 < je; j0 += g.width) {
    const int64_t j = j0 + g.lane;
    long long c = -1;
    acc_t w = acc_t(0);
    if (j < je) {
      int64_t cc;
      if (op.edge(r, j, cc, w)) c = cc;
    }
    const int cnt = static_cast<int>(imin(g.width, je - j0));
#pragma unroll 4
    for (int k = 0; k < cnt; ++k) {
      const long long ck = group_shfl(g, c, k);
      const acc_t wk = group_shfl(g, w, k);
      if (ck < 0) continue;  // dropped or invalid edge: uniform over the group
      const xin_t* xr = x + static_cast<int64_t>(ck) * d;
#pragma unroll
      for (int q = 0; q < kFeatChunks; ++q) {
        const int64_t f = f0 + static_cast<int64_t>(q * g.width + g.lane) * V;
        if (f < d) {
          const Pack<xin_t, V> v = load_pack<V>(xr + f);
#pragma unroll
          for (int i = 0; i < V; ++i) acc[q][i] += wk * to_acc<acc_t>(v.v[i]);
        }
      }
    }
  }
}

// Slot pass: partial[s] = the slot's share of its heavy row (nothing for light rows' slots).
template <int V, typename acc_t, typename xin_t, typename EdgeOp>
__global__ void __launch_bounds__(kBlockThreads)
    spmm_slots_kernel(SpmmShape s, const xin_t* __restrict__ x, acc_t* __restrict__ partial,
                      EdgeOp op) {
  const LaneGroup g(s.group);
  const int64_t sl = g.global_index();
  if (sl >= s.num_slots) return;
  const int64_t r = s.slot_row[sl];
  if (r < 0) return;
  const int64_t jb = sl * s.chunk;
  const int64_t je = imin(s.rowptr[r + 1], jb + s.chunk);
  const int64_t pass = static_cast<int64_t>(s.group) * V * kFeatChunks;
  // At least one pass even when dim == 0, so every edge is still validated as on the CPU.
  int64_t f0 = 0;
  do {
    acc_t acc[kFeatChunks][V] = {};
    gather_edges<V>(op, g, r, jb, je, x, s.dim, f0, acc);
#pragma unroll
    for (int q = 0; q < kFeatChunks; ++q) {
      const int64_t f = f0 + static_cast<int64_t>(q * g.width + g.lane) * V;
      if (f < s.dim) {
        Pack<acc_t, V> p;
#pragma unroll
        for (int i = 0; i < V; ++i) p.v[i] = acc[q][i];
        store_pack<V>(partial + sl * s.dim + f, p);
      }
    }
    f0 += pass;
  } while (f0 < s.dim);
}

// Row pass: one group per row; light rows are gathered whole, heavy rows gather their head and
// add their slots' partials in slot order. Also performs the fused rowptr checks.
template <int V, typename acc_t, typename xin_t, typename EdgeOp, typename Epilogue>
__global__ void __launch_bounds__(kBlockThreads)
    spmm_rows_kernel(SpmmShape s, const xin_t* __restrict__ x, const acc_t* __restrict__ partial,
                     EdgeOp op, Epilogue epi) {
  if (blockIdx.x == 0 && threadIdx.x == 0) check_rowptr_ends(s.rowptr, s.num_rows, s.num_edges, s.err);
  const LaneGroup g(s.group);
  const int64_t r = g.global_index();
  if (r >= s.num_rows) return;
  int64_t b, e;
  const bool ok = load_row(s.rowptr, r, s.num_edges, b, e);
  if (!ok) {
    if (g.lane == 0) report_error(s.err, kRowptrNotMonotone);
    b = e = 0;  // the CPU writes a zero row for a row it cannot walk
  }
  const bool heavy = e - b > s.chunk;
  const int64_t head_end = heavy ? imin(e, first_slot(b, s.chunk) * s.chunk) : e;
  const int64_t s_first = heavy ? first_slot(b, s.chunk) : 0;
  const int64_t s_last = heavy ? (e - 1) / s.chunk : -1;
  const int64_t pass = static_cast<int64_t>(s.group) * V * kFeatChunks;
  int64_t f0 = 0;
  do {  // at least one pass even when dim == 0 (fused validation)
    acc_t acc[kFeatChunks][V] = {};
    gather_edges<V>(op, g, r, b, head_end, x, s.dim, f0, acc);
    for (int64_t sl = s_first; sl <= s_last; ++sl) {
      const acc_t* pr = partial + sl * s.dim;
#pragma unroll
      for (int q = 0; q < kFeatChunks; ++q) {
        const int64_t f = f0 + static_cast<int64_t>(q * g.width + g.lane) * V;
        if (f < s.dim) {
          const Pack<acc_t, V> v = load_pack<V>(pr + f);
#pragma unroll
          for (int i = 0; i < V; ++i) acc[q][i] += v.v[i];
        }
      }
    }
    epi(r, f0, g, acc);
    f0 += pass;
  } while (f0 < s.dim);
}

// Epilogue: y[r] = acc, converted to the output dtype.
template <int V, typename out_t, typename acc_t>
struct StoreRow {
  out_t* y;
  int64_t dim;
  __device__ __forceinline__ void operator()(int64_t r, int64_t f0, const LaneGroup& g,
                                             const acc_t (&acc)[kFeatChunks][V]) const {
#pragma unroll
    for (int q = 0; q < kFeatChunks; ++q) {
      const int64_t f = f0 + static_cast<int64_t>(q * g.width + g.lane) * V;
      if (f < dim) {
        Pack<out_t, V> p;
#pragma unroll
        for (int i = 0; i < V; ++i) p.v[i] = from_acc<out_t>(acc[q][i]);
        store_pack<V>(y + r * dim + f, p);
      }
    }
  }
};

// Runs the slot pass (when the graph has edges) and the row pass. slot_row must already hold
// find_slot_rows' answer for s.
template <int V, typename acc_t, typename xin_t, typename EdgeOp, typename Epilogue>
cudaError_t launch_spmm_rows(const SpmmShape& s, const xin_t* x, acc_t* partial, const EdgeOp& op,
                             const Epilogue& epi, cudaStream_t stream) {
  const int64_t groups_per_block = kBlockThreads / s.group;
  if (s.num_slots > 0) {
    spmm_slots_kernel<V, acc_t, xin_t, EdgeOp>
        <<<grid_for(s.num_slots, groups_per_block), kBlockThreads, 0, stream>>>(s, x, partial, op);
    GP_LAUNCH_CHECK();
  }
  spmm_rows_kernel<V, acc_t, xin_t, EdgeOp, Epilogue>
      <<<grid_for(s.num_rows, groups_per_block), kBlockThreads, 0, stream>>>(s, x, partial, op, epi);
  GP_LAUNCH_CHECK();
  return cudaSuccess;
}

}  // namespace graphpro::cuda
