// CPU kernel of graphpro::khop_subgraph: the subgraph induced on every node within num_hops of
// the seeds. A mini-batch needs L-layer outputs at a few thousand seeds only; on a symmetric graph
// their exact values depend on the L-hop neighbourhood alone, so propagating over this subgraph
// replaces a full-graph pass (the trainer's batches touch ~20% of Amazon's nodes).
//
// Nodes are numbered in increasing global id (a scan of the visited mask), so columns keep the
// input's within-row order. Rows on the outer shell keep only their edges into the subgraph; their
// own layer outputs are not exact, but no seed output or seed gradient depends on them.
#include <torch/library.h>

#include <memory>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

namespace {

inline void check_khop_inputs(const at::Tensor& rowptr, const at::Tensor& col,
                              const at::Tensor& seeds, int64_t num_hops) {
  check_csr(rowptr, col);
  check_index(seeds, "seeds");
  check_same_device(rowptr, seeds, "seeds");
  TORCH_CHECK(num_hops >= 0, "graphpro.khop_subgraph: num_hops must be >= 0, got ", num_hops);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> khop_subgraph_cpu(
    const at::Tensor& rowptr_, const at::Tensor& col_, const at::Tensor& seeds_,
    int64_t num_hops) {
  check_khop_inputs(rowptr_, col_, seeds_, num_hops);
  const at::Tensor rowptr = rowptr_.contiguous(), col = col_.contiguous();
  const at::Tensor seeds = seeds_.contiguous().to(at::kLong);
  const int64_t n = rowptr.numel() - 1, num_edges = col.numel();
  check_rowptr_ends(rowptr, num_edges, "khop_subgraph");
  const int64_t* rp = rowptr.data_ptr<int64_t>();
  const int64_t* sp = seeds.data_ptr<int64_t>();
  std::atomic<int> err{kOk};

  return GP_INDEX_SWITCH(col.scalar_type(), index_t, [&] {
    const index_t* cp = col.data_ptr<index_t>();
    // Breadth-first over hops. Sequential on purpose: the visited frontier is a few thousand
    // rows, and a shared mask would need atomics for the few microseconds this takes.
    std::vector<uint8_t> mark(static_cast<size_t>(n), 0);
    std::vector<int64_t> frontier, next;
    for (int64_t i = 0; i < seeds.numel(); ++i) {
      const int64_t s = sp[i];
      if (s < 0 || s >= n) raise_on_error(kNodeOutOfRange, "khop_subgraph");
      if (!mark[s]) {
        mark[s] = 1;
        frontier.push_back(s);
      }
    }
    for (int64_t hop = 0; hop < num_hops && !frontier.empty(); ++hop) {
      next.clear();
      for (const int64_t r : frontier) {
        if (!row_bounds_ok(rp, r, num_edges, err)) break;
        for (int64_t e = rp[r]; e < rp[r + 1]; ++e) {
          const index_t c = cp[e];
          if (!col_ok(c, n, err)) break;
          if (!mark[c]) {
            mark[c] = 1;
            next.push_back(static_cast<int64_t>(c));
          }
        }
      }
      raise_on_error(err.load(), "khop_subgraph");
      frontier.swap(next);
    }

    // Local ids in global order. `local` is only read where `mark` is set, so it needs no fill.
    std::unique_ptr<int64_t[]> local(new int64_t[static_cast<size_t>(std::max<int64_t>(n, 1))]);
    int64_t m = 0;
    for (int64_t v = 0; v < n; ++v) {
      if (mark[v]) local[v] = m++;
    }
    at::Tensor nodes = at::empty({m}, rowptr.options());
    at::Tensor sub_rowptr = at::empty({m + 1}, rowptr.options());
    int64_t* np_ = nodes.data_ptr<int64_t>();
    for (int64_t v = 0, k = 0; v < n; ++v) {
      if (mark[v]) np_[k++] = v;
    }

    // Two passes over the kept rows: count the induced edges, then write them.
    int64_t* srp = sub_rowptr.data_ptr<int64_t>();
    srp[0] = 0;
    at::parallel_for(0, m, 256, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = np_[i];
        int64_t cnt = 0;
        if (row_bounds_ok(rp, r, num_edges, err)) {
          for (int64_t e = rp[r]; e < rp[r + 1]; ++e) {
            const index_t c = cp[e];
            if (!col_ok(c, n, err)) break;
            cnt += mark[c];
          }
        }
        srp[i + 1] = cnt;
      }
    });
    raise_on_error(err.load(), "khop_subgraph");
    for (int64_t i = 0; i < m; ++i) srp[i + 1] += srp[i];

    at::Tensor sub_col = at::empty({srp[m]}, col.options());
    at::Tensor edge_pos = at::empty({srp[m]}, rowptr.options());
    index_t* scp = sub_col.data_ptr<index_t>();
    int64_t* ep = edge_pos.data_ptr<int64_t>();
    at::parallel_for(0, m, 256, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = np_[i];
        int64_t o = srp[i];
        for (int64_t e = rp[r]; e < rp[r + 1]; ++e) {
          const index_t c = cp[e];
          if (mark[c]) {
            scp[o] = static_cast<index_t>(local[c]);
            ep[o++] = e;
          }
        }
      }
    });
    return std::make_tuple(nodes, sub_rowptr, sub_col, edge_pos);
  });
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("khop_subgraph", &graphpro::cpu::khop_subgraph_cpu); }
