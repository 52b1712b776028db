// Mask names and the validation of the block kernel params (done once, at the API boundary;
// kernels and the dispatch trust what passed here).
#include "attention/block_params.hpp"

#include <cmath>

#include "attention/cpu_block_attention.hpp"
#include "core/enum_names.hpp"

namespace seqpar {

constexpr auto kMaskNames = enum_names<MaskKind>("full", "causal");

const char* mask_name(MaskKind mask) { return kMaskNames.name(mask); }

StatusOr<MaskKind> parse_mask(std::string_view name) { return kMaskNames.parse(name, "mask"); }

namespace {

Status validate_common(const BlockShape& s, DType dtype, MaskKind mask, float softmax_scale) {
  SEQPAR_REQUIRE(s.batch > 0 && s.heads_q > 0 && s.heads_kv > 0 && s.head_dim > 0,
                 StatusCode::kInvalidArgument, "block shape needs batch, heads_q, heads_kv and ",
                 "head_dim > 0 (got B=", s.batch, " Hq=", s.heads_q, " Hkv=", s.heads_kv,
                 " D=", s.head_dim, ")");
  SEQPAR_REQUIRE(s.seq_q >= 0 && s.seq_k >= 0, StatusCode::kInvalidArgument,
                 "block sequence lengths must be >= 0 (got Sq=", s.seq_q, " Sk=", s.seq_k, ")");
  SEQPAR_REQUIRE(s.heads_q % s.heads_kv == 0, StatusCode::kInvalidArgument,
                 "query heads must be a multiple of kv heads (Hq=", s.heads_q, " Hkv=", s.heads_kv,
                 ")");
  SEQPAR_REQUIRE(is_storage_dtype(dtype), StatusCode::kInvalidArgument,
                 "block q/k/v dtype must be fp32, bf16 or fp16 (got ", dtype_name(dtype), ")");
  SEQPAR_REQUIRE(mask == MaskKind::kFull || mask == MaskKind::kCausal, StatusCode::kInvalidArgument,
                 "unknown mask kind ", static_cast<int>(mask));
  SEQPAR_REQUIRE(std::isfinite(softmax_scale), StatusCode::kInvalidArgument,
                 "softmax_scale must be finite (got ", softmax_scale, ")");
  return Status::ok();
}

}  // namespace

Status validate_block_params(const BlockForwardParams& p) {
  SEQPAR_RETURN_IF_ERROR(validate_common(p.shape, p.dtype, p.mask, p.softmax_scale));
  const bool has_q = p.shape.seq_q > 0;
  const bool has_k = p.shape.seq_k > 0;
  SEQPAR_REQUIRE(!has_q || (p.q != nullptr && p.out != nullptr && p.lse != nullptr),
                 StatusCode::kInvalidArgument, "block forward needs q, out and lse pointers");
  SEQPAR_REQUIRE(!has_q || !has_k || (p.k != nullptr && p.v != nullptr),
                 StatusCode::kInvalidArgument, "block forward needs k and v pointers");
  return Status::ok();
}

Status validate_block_params(const BlockBackwardParams& p) {
  SEQPAR_RETURN_IF_ERROR(validate_common(p.shape, p.dtype, p.mask, p.softmax_scale));
  SEQPAR_REQUIRE((p.dk == nullptr) == (p.dv == nullptr), StatusCode::kInvalidArgument,
                 "block backward takes dk and dv together (both or neither)");
  if (p.shape.seq_q == 0 || p.shape.seq_k == 0) return Status::ok();
  SEQPAR_REQUIRE(p.q != nullptr && p.k != nullptr && p.v != nullptr && p.dout != nullptr,
                 StatusCode::kInvalidArgument, "block backward needs q, k, v and dout pointers");
  SEQPAR_REQUIRE(p.lse != nullptr && p.delta != nullptr, StatusCode::kInvalidArgument,
                 "block backward needs the final lse and delta");
  return Status::ok();
}

}  // namespace seqpar
