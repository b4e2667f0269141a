// Every graphpro operator schema, in one place. Kernels register per backend in csrc/cpu and
// csrc/cuda; autograd and fake (meta) kernels are registered from graphpro_ext/ops.py.
#include <torch/library.h>

TORCH_LIBRARY(graphpro, m) {
  // Per-row softmax of edge scores (DGL-style edge_softmax over a CSR's rows).
  m.def("edge_softmax(Tensor rowptr, Tensor scores) -> Tensor");
  m.def("edge_softmax_backward(Tensor rowptr, Tensor out, Tensor grad_out) -> Tensor");

  // y[r] = sum_e weight[perm[e] or e] * x[col[e]]; weight None means 1. perm lets the transposed
  // product reuse the forward's weights without gathering them into a new tensor.
  m.def("spmm_kernel(Tensor rowptr, Tensor col, Tensor? weight, Tensor x, Tensor? weight_perm=None) -> Tensor");
  // Differentiable public op (composite over spmm_kernel); the optional transpose (colptr, row,
  // perm) of the CSR is only read by the backward, which builds it when it is not given.
  m.def("spmm(Tensor rowptr, Tensor col, Tensor? weight, Tensor x, Tensor? t_colptr=None, "
        "Tensor? t_row=None, Tensor? t_perm=None) -> Tensor");
  // out[e] = <a[row(e)], b[col[e]]>: the weight gradient of spmm.
  m.def("sddmm(Tensor rowptr, Tensor col, Tensor a, Tensor b) -> Tensor");

  // Per-row log-sum-exp of the (kept) edge times: the O(N) statistics of the temporal softmax.
  m.def("temporal_row_stats(Tensor rowptr, Tensor col, Tensor? edge_time, float keep_prob, int seed) -> Tensor");
  // One fused GraphPro layer (eqs. 5-6): weights rebuilt on the fly from edge_time, row_lse and
  // node_norm. transpose=True applies A^T of a structurally symmetric graph (the x-gradient).
  m.def("temporal_spmm(Tensor rowptr, Tensor col, Tensor? edge_time, Tensor node_norm, Tensor row_lse, "
        "Tensor x, float time_weight, float keep_prob, int seed, bool transpose) -> Tensor");
  m.def("temporal_propagate(Tensor rowptr, Tensor col, Tensor? edge_time, Tensor node_norm, Tensor x, "
        "float time_weight, float keep_prob, int seed) -> (Tensor, Tensor)");
  // sum_{l=0..L} A^l x (forward) or sum_l (A^T)^l g (transpose=True), no layer activations saved.
  m.def("lightgcn(Tensor rowptr, Tensor col, Tensor? edge_time, Tensor node_norm, Tensor x, int num_layers, "
        "float time_weight, float keep_prob, int seed) -> (Tensor, Tensor)");
  m.def("lightgcn_backward(Tensor rowptr, Tensor col, Tensor? edge_time, Tensor node_norm, Tensor row_lse, "
        "Tensor grad, int num_layers, float time_weight, float keep_prob, int seed) -> Tensor");

  // The subgraph induced on every node within num_hops of the seeds: nodes (sorted global ids),
  // its CSR over local ids, and each kept edge's position in col (to gather per-edge values).
  // On a symmetric graph, L-layer propagation over it equals full-graph propagation at the seeds.
  m.def("khop_subgraph(Tensor rowptr, Tensor col, Tensor seeds, int num_hops) "
        "-> (Tensor nodes, Tensor sub_rowptr, Tensor sub_col, Tensor edge_pos)");

  // k uniform items per user from the complement of the user's sorted history row.
  m.def("sample_negatives(Tensor hist_rowptr, Tensor hist_items, Tensor users, int num_items, int k, "
        "int seed) -> Tensor");
  // scores[b, i - item_begin] = -inf for every history item i of user b inside the chunk.
  m.def("mask_history_(Tensor(a!) scores, Tensor hist_rowptr, Tensor hist_items, Tensor? users, "
        "int item_begin) -> ()");
  // SimGCL's perturbation (Yu et al., SIGIR 2022): x + sign(x) * eps * u / |u| per row, u uniform
  // in [0, 1)^d keyed by (seed, row, column); the gradient with respect to x is the identity.
  m.def("simgcl_perturb(Tensor x, float eps, int seed) -> Tensor");

  // Chunked full-ranking top-k with history excluded; memory bounded by chunk_items.
  m.def("topk_masked(Tensor user_emb, Tensor item_emb, Tensor hist_rowptr, Tensor hist_items, "
        "Tensor? users, int k, int chunk_items) -> (Tensor, Tensor)");
}
