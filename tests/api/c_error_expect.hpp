#pragma once
// For the tests of the C ABI (c_errors_test, callback_comm_test): EXPECT_C_ERROR, a call's status
// and the last-error message it leaves, and a valid plan config. Includes only the C header.
#include <gtest/gtest.h>

#include <string>

#include "seqpar/seqpar.h"

// The status, and the message naming `must_contain`.
#define EXPECT_C_ERROR(call, code, must_contain)                                      \
  do {                                                                                \
    seqpar_set_last_error("");                                                        \
    EXPECT_EQ((call), (code)) << #call;                                               \
    EXPECT_NE(std::string(seqpar_last_error()).find(must_contain), std::string::npos) \
        << #call << ": " << seqpar_last_error();                                      \
  } while (0)

// A valid config: causal fp32, S = 16, Hq = 4, Hkv = 2, D = 16, the default scheme.
inline seqpar_plan_config valid_config() {
  seqpar_plan_config config;
  EXPECT_EQ(seqpar_plan_config_init(&config), SEQPAR_OK);
  config.seq = 16;
  config.heads_q = 4;
  config.heads_kv = 2;
  config.head_dim = 16;
  config.dtype = SEQPAR_DTYPE_F32;
  return config;
}
