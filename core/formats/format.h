// A weight format: how one 2-D weight [rows = out features, cols = in
// features] is encoded into stored tensors. Each format is one file pair in
// core/formats/ whose scalar reference *defines* it; CPU and CUDA paths in
// kernels/ must produce the same bytes.
#ifndef QUANTD_CORE_FORMATS_FORMAT_H_
#define QUANTD_CORE_FORMATS_FORMAT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor/tensor.h"

namespace quantd {

// Parameters of a format, resolved from a job spec with defaults filled in.
struct FormatParams {
  int bits = 0;
  // Elements per group along a row; 0 means one group per row (per channel).
  int64_t group_size = 0;
  bool symmetric = true;
  // The dtype scales are stored in (compressed-tensors: the weight's dtype).
  DType scale_dtype = DType::kBF16;
  // Format-specific settings (documented by each format).
  std::map<std::string, std::string> extra;
};

// One stored tensor of an encoded weight, e.g. suffix "weight_packed" is
// written as "<module>.weight_packed".
struct EncodedPart {
  std::string suffix;
  Tensor tensor;
};

struct EncodedWeight {
  std::vector<EncodedPart> parts;

  // The part with this suffix, or nullptr.
  Tensor* Find(std::string_view suffix);
  const Tensor* Find(std::string_view suffix) const;
  size_t nbytes() const;
};

class WeightFormat {
 public:
  virtual ~WeightFormat() = default;

  // Registry name, e.g. "rtn_int".
  virtual std::string_view name() const = 0;

  // OK when a [rows, cols] weight can be encoded with `p`; INVALID_ARGUMENT
  // naming the offending value otherwise.
  virtual absl::Status Check(const FormatParams& p, int64_t rows, int64_t cols) const = 0;

  // Rows that must be encoded by the same call (a chunk of rows handed to
  // EncodeRowsRef starts at a multiple of this), e.g. 8 when eight rows share
  // a packed word.
  virtual int64_t RowGranularity(const FormatParams& p) const { return 1; }

  // The parts of an encoded [rows, cols] weight read from `source` dtype, with
  // their final shapes and dtypes and uninitialised bytes. Requires Check().
  virtual EncodedWeight Allocate(const FormatParams& p, int64_t rows, int64_t cols,
                                 DType source) const = 0;

  // The scalar reference. Encodes rows [r0, r1) of `w` (F32, F16 or BF16,
  // shape [rows, cols]) into `out` from Allocate(). Writes only the bytes
  // that belong to those rows. INVALID_ARGUMENT on NaN or Inf input, naming
  // the row and column.
  virtual absl::Status EncodeRowsRef(const FormatParams& p, const TensorView& w, int64_t r0,
                                     int64_t r1, EncodedWeight* out) const = 0;

  // Decodes a whole weight to float32 [rows, cols].
  virtual absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p,
                                                       const EncodedWeight& e, int64_t rows,
                                                       int64_t cols) const = 0;
};

// Encodes all rows with the scalar reference on this thread.
absl::StatusOr<EncodedWeight> EncodeRef(const WeightFormat& f, const FormatParams& p,
                                        const TensorView& w);

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_FORMAT_H_
