// Runtime flags and index dtypes turned into template parameters (flash-attention's BOOL_SWITCH
// habit), shared by the CPU kernels and the CUDA glue.
#pragma once
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#define GP_INDEX_SWITCH(TYPE, NAME, ...)                                          \
  [&] {                                                                           \
    if ((TYPE) == at::kInt) {                                                     \
      using NAME = int32_t;                                                       \
      return __VA_ARGS__();                                                       \
    } else {                                                                      \
      using NAME = int64_t;                                                       \
      return __VA_ARGS__();                                                       \
    }                                                                             \
  }()

#define GP_BOOL_SWITCH(COND, NAME, ...) \
  [&] {                                 \
    if (COND) {                         \
      constexpr bool NAME = true;       \
      return __VA_ARGS__();             \
    } else {                            \
      constexpr bool NAME = false;      \
      return __VA_ARGS__();             \
    }                                   \
  }()

