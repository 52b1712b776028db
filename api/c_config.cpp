// The C ABI's enums and versioned config structs -> the internal configs. Every C enum value is
// checked (an int from C may hold anything), and the scheme and decoder go by name, so the C
// values stay fixed while the internal enums follow runtime/schemes.def's order.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

#include "api/c_api_support.hpp"

namespace seqpar::c_api {
namespace {

// Indexed by the seqpar_scheme / seqpar_decoder values.
constexpr const char* kSchemeNames[] = {"ring",    "striped", "zigzag", "lightseq",
                                        "ulysses", "hybrid",  "tree"};
constexpr const char* kDecoderNames[] = {"tree", "ring"};

Status unknown(const char* function, const char* field, int32_t value, const char* expected) {
  return Status(StatusCode::kInvalidArgument, str_cat(function, ": unknown ", field, " value ",
                                                      value, " (expected ", expected, ")"));
}

// The first published struct ends after its last field: a caller's struct_size below that is
// a struct from before the ABI's first release (or garbage), and is refused.
constexpr size_t kPlanConfigMinSize = offsetof(seqpar_plan_config, backward) + sizeof(int32_t);
constexpr size_t kDecodeConfigMinSize = offsetof(seqpar_decode_config, reserved0) + sizeof(int32_t);
// A struct_size above this is not a struct (an uninitialised field): refused before any byte
// past the library's struct is read.
constexpr size_t kMaxStructSize = 4096;

// The published layouts (0.1): no implicit padding, so appended fields never land in padding
// an older caller left uninitialised.
static_assert(sizeof(seqpar_plan_config) == 96 && kPlanConfigMinSize == 96);
static_assert(offsetof(seqpar_plan_config, stream) == 72);
static_assert(sizeof(seqpar_decode_config) == 96 && kDecodeConfigMinSize == 96);
static_assert(offsetof(seqpar_decode_config, stream) == 80);

// `defaults` overlaid with the caller's first struct_size bytes. Bytes past the fields this
// library knows (a caller built against a newer header) must be zero, i.e. left at their
// defaults, or the caller asked for something this library cannot do.
template <class CStruct>
StatusOr<CStruct> read_versioned(const CStruct* given, CStruct defaults, size_t min_size,
                                 const char* function, const char* type_name) {
  SEQPAR_RETURN_IF_ERROR(require_non_null(given, function, "config"));
  const size_t size = given->struct_size;
  if (size > kMaxStructSize) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": ", type_name, ".struct_size = ", size,
                          " is not a struct size (uninitialised? use ", type_name, "_init)"));
  }
  if (size < min_size) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": ", type_name, ".struct_size = ", size,
                          " is older than this library accepts (at least ", min_size,
                          "; set it to sizeof(", type_name, "), e.g. with ", type_name, "_init)"));
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(given);
  for (size_t at = sizeof(CStruct); at < size; ++at) {
    if (bytes[at] != 0) {
      return Status(StatusCode::kUnsupported,
                    str_cat(function, ": ", type_name, " sets fields past byte ", sizeof(CStruct),
                            " that this library (", SEQPAR_PROJECT_VERSION,
                            ") does not know; use a newer libseqpar"));
    }
  }
  std::memcpy(&defaults, given, std::min(size, sizeof(CStruct)));
  defaults.struct_size = sizeof(CStruct);
  return defaults;
}

// Writes `defaults` into the caller's struct of `size` bytes (zero past the library's fields),
// never past it, and records the caller's size.
template <class CStruct>
Status init_versioned(CStruct* config, size_t size, CStruct defaults, size_t min_size,
                      const char* function, const char* type_name) {
  SEQPAR_RETURN_IF_ERROR(require_non_null(config, function, "config"));
  if (size < min_size || size > kMaxStructSize) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": struct_size ", size, " is not a ", type_name,
                          " this library can fill (", min_size, " to ", kMaxStructSize, ")"));
  }
  auto* bytes = reinterpret_cast<unsigned char*>(config);
  std::memset(bytes, 0, size);
  defaults.struct_size = size;
  std::memcpy(bytes, &defaults, std::min(size, sizeof(CStruct)));
  return Status::ok();
}

}  // namespace

StatusOr<DType> dtype_from_c(int32_t value, const char* function) {
  switch (value) {
    case SEQPAR_DTYPE_F32:
      return DType::kF32;
    case SEQPAR_DTYPE_BF16:
      return DType::kBF16;
    case SEQPAR_DTYPE_F16:
      return DType::kF16;
    default:
      return unknown(function, "dtype", value,
                     "SEQPAR_DTYPE_F32, SEQPAR_DTYPE_BF16 or SEQPAR_DTYPE_F16");
  }
}

StatusOr<MaskKind> mask_from_c(int32_t value, const char* function) {
  switch (value) {
    case SEQPAR_MASK_FULL:
      return MaskKind::kFull;
    case SEQPAR_MASK_CAUSAL:
      return MaskKind::kCausal;
    default:
      return unknown(function, "mask", value, "SEQPAR_MASK_FULL or SEQPAR_MASK_CAUSAL");
  }
}

StatusOr<Device> device_from_c(int32_t value, const char* function) {
  switch (value) {
    case SEQPAR_DEVICE_HOST:
      return Device::kHost;
    case SEQPAR_DEVICE_CUDA:
      return Device::kCuda;
    default:
      return unknown(function, "device", value, "SEQPAR_DEVICE_HOST or SEQPAR_DEVICE_CUDA");
  }
}

StatusOr<SchemeKind> scheme_from_c(int32_t value, const char* function) {
  if (value < 0 || value >= static_cast<int32_t>(std::size(kSchemeNames))) {
    return unknown(function, "scheme", value, "a seqpar_scheme, SEQPAR_SCHEME_RING..TREE");
  }
  return parse_scheme(kSchemeNames[value]);
}

int32_t scheme_to_c(SchemeKind scheme) {
  const std::string_view name = scheme_name(scheme);
  for (size_t at = 0; at < std::size(kSchemeNames); ++at) {
    if (name == kSchemeNames[at]) return static_cast<int32_t>(at);
  }
  return -1;
}

StatusOr<DecoderKind> decoder_from_c(int32_t value, const char* function) {
  if (value < 0 || value >= static_cast<int32_t>(std::size(kDecoderNames))) {
    return unknown(function, "decoder", value, "SEQPAR_DECODER_TREE or SEQPAR_DECODER_RING");
  }
  return parse_decoder(kDecoderNames[value]);
}

seqpar_layout_kind layout_kind_to_c(LayoutKind kind) {
  switch (kind) {
    case LayoutKind::kContiguous:
      return SEQPAR_LAYOUT_CONTIGUOUS;
    case LayoutKind::kStriped:
      return SEQPAR_LAYOUT_STRIPED;
    case LayoutKind::kZigzag:
      return SEQPAR_LAYOUT_ZIGZAG;
    case LayoutKind::kHybridZigzag:
      return SEQPAR_LAYOUT_HYBRID_ZIGZAG;
  }
  return SEQPAR_LAYOUT_CONTIGUOUS;
}

StatusOr<PlanConfig> plan_config_from_c(const seqpar_plan_config* given, const char* function) {
  seqpar_plan_config defaults;
  (void)seqpar_plan_config_init(&defaults);
  SEQPAR_ASSIGN_OR_RETURN(
      const seqpar_plan_config c,
      read_versioned(given, defaults, kPlanConfigMinSize, function, "seqpar_plan_config"));
  PlanConfig config;
  config.problem.batch = c.batch;
  config.problem.seq = c.seq;
  config.problem.heads_q = c.heads_q;
  config.problem.heads_kv = c.heads_kv;
  config.problem.head_dim = c.head_dim;
  SEQPAR_ASSIGN_OR_RETURN(config.problem.mask, mask_from_c(c.mask, function));
  SEQPAR_ASSIGN_OR_RETURN(config.problem.dtype, dtype_from_c(c.dtype, function));
  config.problem.softmax_scale = c.softmax_scale;
  SEQPAR_ASSIGN_OR_RETURN(config.scheme, scheme_from_c(c.scheme, function));
  SEQPAR_ASSIGN_OR_RETURN(config.device, device_from_c(c.device, function));
  config.stream = c.stream;
  config.ranks_per_node = c.ranks_per_node;
  config.ulysses_degree = c.ulysses_degree;
  config.check_finite = c.check_finite != 0;
  config.backward = c.backward != 0;
  return config;
}

StatusOr<DecodeConfig> decode_config_from_c(const seqpar_decode_config* given,
                                            const char* function) {
  seqpar_decode_config defaults;
  (void)seqpar_decode_config_init(&defaults);
  SEQPAR_ASSIGN_OR_RETURN(
      const seqpar_decode_config c,
      read_versioned(given, defaults, kDecodeConfigMinSize, function, "seqpar_decode_config"));
  DecodeConfig config;
  config.problem.batch = c.batch;
  config.problem.seq = c.prompt;
  config.problem.heads_q = c.heads_q;
  config.problem.heads_kv = c.heads_kv;
  config.problem.head_dim = c.head_dim;
  config.problem.mask = MaskKind::kCausal;
  SEQPAR_ASSIGN_OR_RETURN(config.problem.dtype, dtype_from_c(c.dtype, function));
  config.problem.softmax_scale = c.softmax_scale;
  config.q_len = c.q_len;
  config.capacity = c.capacity;
  SEQPAR_ASSIGN_OR_RETURN(config.decoder, decoder_from_c(c.decoder, function));
  SEQPAR_ASSIGN_OR_RETURN(config.device, device_from_c(c.device, function));
  config.stream = c.stream;
  config.ranks_per_node = c.ranks_per_node;
  return config;
}

}  // namespace seqpar::c_api

extern "C" {

seqpar_status seqpar_plan_config_init_sized(seqpar_plan_config* config, size_t struct_size) {
  return seqpar::c_api::c_call("seqpar_plan_config_init", [&]() -> seqpar::Status {
    const seqpar::PlanConfig internal;  // the internal defaults, so the two cannot drift
    seqpar_plan_config defaults{};
    defaults.batch = internal.problem.batch;
    defaults.mask = SEQPAR_MASK_CAUSAL;
    defaults.dtype = SEQPAR_DTYPE_BF16;
    defaults.scheme = SEQPAR_SCHEME_ZIGZAG;
    defaults.device = SEQPAR_DEVICE_HOST;
    defaults.ranks_per_node = internal.ranks_per_node;
    defaults.ulysses_degree = internal.ulysses_degree;
    defaults.check_finite = internal.check_finite ? 1 : 0;
    defaults.backward = internal.backward ? 1 : 0;
    return seqpar::c_api::init_versioned(config, struct_size, defaults,
                                         seqpar::c_api::kPlanConfigMinSize,
                                         "seqpar_plan_config_init", "seqpar_plan_config");
  });
}

seqpar_status seqpar_decode_config_init_sized(seqpar_decode_config* config, size_t struct_size) {
  return seqpar::c_api::c_call("seqpar_decode_config_init", [&]() -> seqpar::Status {
    const seqpar::DecodeConfig internal;
    seqpar_decode_config defaults{};
    defaults.batch = internal.problem.batch;
    defaults.dtype = SEQPAR_DTYPE_BF16;
    defaults.q_len = internal.q_len;
    defaults.capacity = internal.capacity;
    defaults.decoder = SEQPAR_DECODER_TREE;
    defaults.device = SEQPAR_DEVICE_HOST;
    defaults.ranks_per_node = internal.ranks_per_node;
    return seqpar::c_api::init_versioned(config, struct_size, defaults,
                                         seqpar::c_api::kDecodeConfigMinSize,
                                         "seqpar_decode_config_init", "seqpar_decode_config");
  });
}

size_t seqpar_dtype_size(int32_t dtype) {
  // No Status here (its message could allocate, and this function has no status to return).
  switch (dtype) {
    case SEQPAR_DTYPE_F32:
      return 4;
    case SEQPAR_DTYPE_BF16:
    case SEQPAR_DTYPE_F16:
      return 2;
    default:
      return 0;
  }
}

seqpar_status seqpar_scheme_from_name(const char* name, int32_t* scheme) {
  return seqpar::c_api::c_call("seqpar_scheme_from_name", [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(name, "seqpar_scheme_from_name", "name"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(scheme, "seqpar_scheme_from_name", "scheme"));
    for (size_t at = 0; at < std::size(seqpar::c_api::kSchemeNames); ++at) {
      if (std::string_view(name) == seqpar::c_api::kSchemeNames[at]) {
        *scheme = static_cast<int32_t>(at);
        return seqpar::Status::ok();
      }
    }
    return seqpar::Status(seqpar::StatusCode::kInvalidArgument,
                          seqpar::str_cat("seqpar_scheme_from_name: unknown scheme '", name,
                                          "' (expected ring, striped, zigzag, lightseq, "
                                          "ulysses, hybrid or tree)"));
  });
}

}  // extern "C"
