// Math shared by the CPU and CUDA kernels: torch-free so that .cu files can include it.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define GP_HD __host__ __device__ __forceinline__
#else
#define GP_HD inline
#endif

namespace graphpro {

// SplitMix64 finaliser: a bijective avalanche mix, cheap on both CPU and GPU.
GP_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Edge dropout without a mask tensor: an interaction {a, b} is kept iff a counter-based hash of
// (seed, min, max) falls under the threshold, so both directions of an interaction share one
// decision and the backward pass can rebuild it. graphpro_ext.reference.edge_keep_mask mirrors it.
GP_HD bool edge_kept(uint64_t seed_key, int64_t r, int64_t c, uint64_t threshold) {
  const uint64_t lo = static_cast<uint64_t>(r < c ? r : c);
  const uint64_t hi = static_cast<uint64_t>(r < c ? c : r);
  const uint64_t h = mix64(seed_key ^ mix64(lo * 0x9e3779b97f4a7c15ULL + hi));
  return (h >> 32) < threshold;
}

// keep_prob in [0, 1] -> threshold on the top 32 bits of the hash.
GP_HD uint64_t keep_threshold(double keep_prob) {
  return keep_prob >= 1.0 ? (1ULL << 32) : static_cast<uint64_t>(keep_prob * 4294967296.0);
}

GP_HD uint64_t seed_key(int64_t seed) { return mix64(static_cast<uint64_t>(seed) + 0x632be59bd9b4e019ULL); }

// SimGCL's noise: uniforms u[r, c] in [0, 1) with 24 bits (a float's mantissa), two per SplitMix64
// output: pair p = c / 2 of row r is output number r * pairs + p + 1 of the SplitMix64 stream
// seeded with the key, so every element is a pure function of (seed, r, c, d) on any device and
// thread count. graphpro_ext.reference.simgcl_perturb mirrors it.
GP_HD uint64_t noise_pair_bits(uint64_t key, int64_t r, int64_t pairs, int64_t p) {
  return mix64(key + static_cast<uint64_t>(r * pairs + p + 1) * 0x9e3779b97f4a7c15ULL);
}
// (24-bit values converted through int32: an unsigned 64-bit conversion is a branchy sequence on
// x86-64 without AVX-512)
GP_HD float noise_hi(uint64_t bits) {
  return static_cast<float>(static_cast<int32_t>(bits >> 40)) * 0x1.0p-24f;
}
GP_HD float noise_lo(uint64_t bits) {
  return static_cast<float>(static_cast<int32_t>((bits >> 8) & 0xffffffULL)) * 0x1.0p-24f;
}

// Philox4x32-10 (Salmon et al., SC'11): counter-based, so every (seed, user position, j) draws the
// same numbers on any device and thread count.
struct Philox4 {
  uint32_t v[4];
};

GP_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

GP_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                            uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform integer in [0, n) from 64 random bits (multiply-high; bias <= n / 2^64).
GP_HD uint64_t bounded64(uint64_t x, uint64_t n) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(x, n);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * n) >> 64);
#endif
}

// Random draw j of user position b: one 64-bit value from a Philox block keyed by the seed.
GP_HD uint64_t sample_bits(int64_t seed, int64_t b, int64_t j) {
  const uint64_t s = static_cast<uint64_t>(seed);
  const Philox4 o = philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32),
                                  static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32),
                                  static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32));
  return (static_cast<uint64_t>(o.v[0]) << 32) | o.v[1];
}

// The r-th item (0-based) not in the strictly increasing history h[0..n): because h[j] - j is
// non-decreasing, the answer is r + #{j : h[j] - j <= r}, found by binary search. This samples the
// complement exactly with one draw, so near-full histories cost the same as empty ones.
template <typename index_t>
GP_HD int64_t nth_missing(const index_t* h, int64_t n, int64_t r) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (static_cast<int64_t>(h[mid]) - mid <= r) lo = mid + 1; else hi = mid;
  }
  return r + lo;
}

// First position in sorted h[0..n) whose value is >= v.
template <typename index_t>
GP_HD int64_t lower_bound_idx(const index_t* h, int64_t n, int64_t v) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (static_cast<int64_t>(h[mid]) < v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// Error codes kernels report through one int (CPU: atomic; CUDA: device flag read by the glue).
enum ErrorCode : int {
  kOk = 0,
  kColumnOutOfRange = 1,
  kRowptrNotMonotone = 2,
  kRowptrBadEnds = 3,
  kHistoryUnsorted = 4,
  kHistoryOutOfRange = 5,
  kComplementTooSmall = 6,
  kUserOutOfRange = 7,
  kNonFiniteTime = 8,
  kNodeOutOfRange = 9,
  kGraphNotSymmetric = 10,
  kTimesNotSymmetric = 11,
  kColumnsUnsorted = 12,
};

// The structure the temporal ops' backward relies on (it rebuilds A^T from the rows of A):
// edge j = (r, c), the k-th copy of column c in row r, must have a k-th copy of r in row c with
// the same edge time (edge_time null: structure only). Rows must be sorted, so the reverse edge
// is one binary search away: O(log deg) per edge. row_begin = rowptr[r], already validated.
// Returns an ErrorCode; every read stays in bounds whatever the input.
template <typename index_t, typename time_t>
GP_HD int reverse_edge_error(const int64_t* rowptr, const index_t* col, const time_t* edge_time,
                             int64_t num_rows, int64_t num_edges, int64_t row_begin, int64_t r,
                             int64_t j) {
  const int64_t c = static_cast<int64_t>(col[j]);
  if (static_cast<uint64_t>(c) >= static_cast<uint64_t>(num_rows)) return kColumnOutOfRange;
  int64_t k = 0;  // which copy of c in row r (duplicates must pair up one to one)
  if (j > row_begin) {
    const int64_t prev = static_cast<int64_t>(col[j - 1]);
    if (prev > c) return kColumnsUnsorted;
    if (prev == c) k = j - row_begin - lower_bound_idx(col + row_begin, j - row_begin, c);
  }
  const int64_t cb = rowptr[c], ce = rowptr[c + 1];
  if (cb < 0 || ce < cb || ce > num_edges) return kRowptrNotMonotone;
  const int64_t p = cb + lower_bound_idx(col + cb, ce - cb, r) + k;
  if (p >= ce || static_cast<int64_t>(col[p]) != r) return kGraphNotSymmetric;
  if (edge_time != nullptr && !(edge_time[p] == edge_time[j])) return kTimesNotSymmetric;
  return kOk;
}

}  // namespace graphpro
