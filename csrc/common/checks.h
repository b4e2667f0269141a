// Input validation shared by the CPU and CUDA glue, so both backends reject the same inputs with
// the same messages. Only shapes/dtypes/devices are checked here (no data reads); data-dependent
// checks (column range, monotone rowptr) run fused inside the kernels and report an ErrorCode.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "common/device_math.h"

namespace graphpro {

inline void check_same_device(const at::Tensor& ref, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), "graphpro: ", name, " is on ", t.device(),
              " but the other inputs are on ", ref.device());
}

inline void check_index(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 1, "graphpro: ", name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, "graphpro: ", name,
              " must be int32 or int64, got ", t.scalar_type());
}

// CSR structure: rowptr int64 [R+1], col int32/int64 [E].
inline void check_csr(const at::Tensor& rowptr, const at::Tensor& col) {
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.numel() >= 1,
              "graphpro: rowptr must be a 1-D tensor with at least one entry (R+1), got shape ",
              rowptr.sizes());
  TORCH_CHECK(rowptr.scalar_type() == at::kLong, "graphpro: rowptr must be int64, got ",
              rowptr.scalar_type());
  check_index(col, "col");
  check_same_device(rowptr, col, "col");
}

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "graphpro: ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
}

// Dense node features [n, d].
inline void check_features(const at::Tensor& x, const at::Tensor& rowptr, const char* name) {
  TORCH_CHECK(x.dim() == 2, "graphpro: ", name, " must be 2-D [num_nodes, dim], got shape ",
              x.sizes());
  check_float(x, name);
  check_same_device(rowptr, x, name);
}

// Per-edge or per-node values in the kernels' accumulation type.
inline void check_values(const at::Tensor& t, int64_t n, at::ScalarType dtype, const at::Tensor& ref,
                         const char* name, const char* what) {
  TORCH_CHECK(t.dim() == 1 && t.numel() == n, "graphpro: ", name, " must be 1-D with ", n, " ",
              what, " entries, got shape ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "graphpro: ", name, " must be ", dtype, ", got ",
              t.scalar_type());
  check_same_device(ref, t, name);
}

inline at::ScalarType opmath_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// lightgcn's depth: each layer is a full pass over the graph and the kernels cannot be
// interrupted, so an accidental huge value would hang the process; 64 is far past any useful depth.
constexpr int64_t kMaxLayers = 64;
inline void check_num_layers(int64_t num_layers, const char* op) {
  TORCH_CHECK(num_layers >= 0 && num_layers <= kMaxLayers, "graphpro.", op,
              ": num_layers must be in [0, ", kMaxLayers, "], got ", num_layers);
}

inline void check_prob(double keep_prob) {
  TORCH_CHECK(keep_prob > 0.0 && keep_prob <= 1.0, "graphpro: keep_prob must be in (0, 1], got ",
              keep_prob);
}

// Turns a kernel's ErrorCode into a clear exception.
inline void raise_on_error(int code, const char* op) {
  switch (code) {
    case kOk: return;
    case kColumnOutOfRange:
      TORCH_CHECK(false, "graphpro.", op, ": col holds an index outside [0, num_nodes)");
    case kRowptrNotMonotone:
      TORCH_CHECK(false, "graphpro.", op, ": rowptr is not non-decreasing");
    case kRowptrBadEnds:
      TORCH_CHECK(false, "graphpro.", op, ": rowptr must start at 0 and end at the number of edges");
    case kHistoryUnsorted:
      TORCH_CHECK(false, "graphpro.", op,
                  ": a user's history row is not strictly increasing (sort it and drop duplicates)");
    case kHistoryOutOfRange:
      TORCH_CHECK(false, "graphpro.", op, ": a history item is outside [0, num_items)");
    case kComplementTooSmall:
      TORCH_CHECK(false, "graphpro.", op,
                  ": a user's history holds every item, so no negative item can be sampled");
    case kUserOutOfRange:
      TORCH_CHECK(false, "graphpro.", op, ": a user index is outside the history's rows");
    case kNonFiniteTime:
      TORCH_CHECK(false, "graphpro.", op, ": edge_time holds a NaN or infinite value");
    case kNodeOutOfRange:
      TORCH_CHECK(false, "graphpro.", op, ": seeds holds a node index outside [0, num_nodes)");
    case kGraphNotSymmetric:
      TORCH_CHECK(false, "graphpro.", op,
                  ": the gradient needs a structurally symmetric graph (every edge (r, c) with a "
                  "matching (c, r), as TemporalGraph builds), got an edge without its reverse; "
                  "use ops.spmm for a general CSR");
    case kTimesNotSymmetric:
      TORCH_CHECK(false, "graphpro.", op,
                  ": the gradient needs symmetric edge times (t[r->c] == t[c->r], as TemporalGraph "
                  "builds), got an edge whose reverse has another time");
    case kColumnsUnsorted:
      TORCH_CHECK(false, "graphpro.", op,
                  ": the gradient needs columns sorted within each row (as TemporalGraph builds)");
    default:
      TORCH_CHECK(false, "graphpro.", op, ": kernel reported error ", code);
  }
}

// Inputs of the fused temporal ops (temporal_spmm, lightgcn and their backward), both backends.
// edge_time / node_norm / row_lse must already be in x's accumulation dtype (ops.py converts).
inline void check_temporal_inputs(const at::Tensor& rowptr, const at::Tensor& col,
                                  const std::optional<at::Tensor>& edge_time,
                                  const at::Tensor& node_norm, const at::Tensor* row_lse,
                                  const at::Tensor& x, double time_weight, double keep_prob,
                                  const char* op) {
  check_csr(rowptr, col);
  const int64_t n = rowptr.numel() - 1;
  check_features(x, rowptr, "x");
  TORCH_CHECK(x.size(0) == n, "graphpro.", op, ": the graph is square over ", n,
              " nodes but x has ", x.size(0), " rows");
  TORCH_CHECK(time_weight >= 0.0 && time_weight <= 1.0, "graphpro.", op,
              ": time_weight must be in [0, 1], got ", time_weight);
  check_prob(keep_prob);
  const auto acc = opmath_dtype(x.scalar_type());
  check_values(node_norm, n, acc, rowptr, "node_norm", "node");
  if (time_weight != 0.0) {
    TORCH_CHECK(edge_time.has_value(), "graphpro.", op, ": edge_time is required when time_weight > 0");
    check_values(*edge_time, col.numel(), acc, rowptr, "edge_time", "edge");
    if (row_lse != nullptr) check_values(*row_lse, n, acc, rowptr, "row_lse", "node");
  }
}

// Per-edge values of edge_softmax and its backward: rowptr int64 [R+1], values [E].
inline void check_edge_values(const at::Tensor& rowptr, const at::Tensor& v, const char* name) {
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.numel() >= 1 && rowptr.scalar_type() == at::kLong,
              "graphpro.edge_softmax: rowptr must be a 1-D int64 tensor with R+1 entries");
  TORCH_CHECK(v.dim() == 1, "graphpro.edge_softmax: ", name, " must be 1-D [E], got shape ", v.sizes());
  check_float(v, name);
  check_same_device(rowptr, v, name);
}

// spmm_kernel: CSR, features, optional per-edge weight (x's dtype) and weight permutation.
inline void check_spmm_inputs(const at::Tensor& rowptr, const at::Tensor& col,
                              const std::optional<at::Tensor>& weight, const at::Tensor& x,
                              const std::optional<at::Tensor>& perm) {
  check_csr(rowptr, col);
  check_features(x, rowptr, "x");
  const int64_t num_edges = col.numel();
  if (weight.has_value()) {
    TORCH_CHECK(weight->scalar_type() == x.scalar_type(), "graphpro.spmm: weight (",
                weight->scalar_type(), ") and x (", x.scalar_type(), ") must have the same dtype");
    check_values(*weight, num_edges, x.scalar_type(), rowptr, "weight", "edge");
  }
  if (perm.has_value()) {
    TORCH_CHECK(perm->scalar_type() == at::kLong && perm->numel() == num_edges,
                "graphpro.spmm: weight_perm must be int64 with one entry per edge");
    check_same_device(rowptr, *perm, "weight_perm");
  }
}

// sddmm: a has one row per CSR row, b one row per column; same dim and dtype.
inline void check_sddmm_inputs(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& a,
                               const at::Tensor& b) {
  check_csr(rowptr, col);
  check_features(a, rowptr, "a");
  check_features(b, rowptr, "b");
  const int64_t n = rowptr.numel() - 1;
  TORCH_CHECK(a.size(0) == n, "graphpro.sddmm: a must have one row per CSR row (", n, "), got ",
              a.size(0));
  TORCH_CHECK(a.size(1) == b.size(1) && a.scalar_type() == b.scalar_type(),
              "graphpro.sddmm: a and b must share dim and dtype");
}

// temporal_row_stats: CSR plus float32/float64 edge times.
inline void check_row_stats_inputs(const at::Tensor& rowptr, const at::Tensor& col,
                                   const std::optional<at::Tensor>& edge_time, double keep_prob) {
  check_csr(rowptr, col);
  check_prob(keep_prob);
  TORCH_CHECK(edge_time.has_value(), "graphpro.temporal_row_stats: edge_time is required");
  check_float(*edge_time, "edge_time");
  TORCH_CHECK(edge_time->scalar_type() == at::kFloat || edge_time->scalar_type() == at::kDouble,
              "graphpro.temporal_row_stats: edge_time must be float32 or float64");
  check_values(*edge_time, col.numel(), edge_time->scalar_type(), rowptr, "edge_time", "edge");
}

// History CSR (one sorted row of item ids per user) plus the user rows a batch refers to.
inline void check_history_inputs(const at::Tensor& hist_rowptr, const at::Tensor& hist_items,
                                 const at::Tensor* users, const char* op) {
  TORCH_CHECK(hist_rowptr.dim() == 1 && hist_rowptr.numel() >= 1 &&
                  hist_rowptr.scalar_type() == at::kLong,
              "graphpro.", op, ": hist_rowptr must be a 1-D int64 tensor with num_users+1 entries");
  check_index(hist_items, "hist_items");
  check_same_device(hist_rowptr, hist_items, "hist_items");
  if (users != nullptr) {
    check_index(*users, "users");
    check_same_device(hist_rowptr, *users, "users");
  }
}

// mask_history_: a contiguous float score block [B, chunk] on the history's device, plus the
// history rows of its B users (users[b], or row b without users).
inline void check_mask_history_inputs(const at::Tensor& scores, const at::Tensor& hist_rowptr,
                                      const at::Tensor& hist_items,
                                      const std::optional<at::Tensor>& users) {
  check_history_inputs(hist_rowptr, hist_items, users.has_value() ? &*users : nullptr,
                       "mask_history_");
  TORCH_CHECK(scores.dim() == 2, "graphpro.mask_history_: scores must be 2-D [B, chunk]");
  check_float(scores, "scores");
  TORCH_CHECK(scores.is_contiguous(), "graphpro.mask_history_: scores must be contiguous");
  check_same_device(hist_rowptr, scores, "scores");
  const int64_t batch = scores.size(0), num_users = hist_rowptr.numel() - 1;
  if (users.has_value()) {
    TORCH_CHECK(users->numel() == batch,
                "graphpro.mask_history_: users must have one entry per score row");
  } else {
    TORCH_CHECK(num_users >= batch, "graphpro.mask_history_: fewer history rows than score rows");
  }
}

// simgcl_perturb: a 2-D floating-point [n, d] table and a finite, non-negative noise radius.
inline void check_simgcl_perturb_inputs(const at::Tensor& x, double eps) {
  TORCH_CHECK(x.dim() == 2, "graphpro.simgcl_perturb: x must be 2-D [num_rows, dim], got shape ",
              x.sizes());
  check_float(x, "x");
  TORCH_CHECK(std::isfinite(eps) && eps >= 0.0,
              "graphpro.simgcl_perturb: eps must be finite and >= 0, got ", eps);
}

}  // namespace graphpro
