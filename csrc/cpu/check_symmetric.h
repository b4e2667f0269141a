// The graph check the CPU backward of temporal_propagate / lightgcn runs before rebuilding A^T
// from the rows of A (csrc/cpu/check_symmetric.cpp).
#pragma once
#include <ATen/ATen.h>

namespace graphpro::cpu {

// Raises a one-line error naming op unless the CSR is structurally symmetric with sorted rows and,
// when edge_time is defined, symmetric edge times (t[r->c] == t[c->r]). rowptr/col/edge_time must
// be contiguous, rowptr's ends already checked. O(E) reads (one cursor per node), parallel.
void check_symmetric_cpu(const at::Tensor& rowptr, const at::Tensor& col,
                         const at::Tensor& edge_time, const char* op);

}  // namespace graphpro::cpu
