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
  // max |x| over the whole tensor, or over the group of tensors a runtime
  // fuses (q/k/v, gate/up), for formats whose NeedsTensorAmax() is true; the
  // pipeline sets it before encoding. Negative means unset.
  float tensor_amax = -1.0f;
  // Importance of each input column (a llama.cpp importance matrix row for
  // this tensor, length cols), for formats that weight their error by it;
  // null when none was given. Not owned.
  const float* importance = nullptr;
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
  // The stored tensors, in the order they are written.
  std::vector<EncodedPart> parts;
  // Working tensors that Allocate() may add for state that EncodeRowsRef
  // computes per row range but FinalizeRef needs over the whole weight (e.g.
  // bitsandbytes' float32 block absmax before double quantization). Encoding
  // paths treat them like parts (a device kernel may write them); FinalizeRef
  // consumes them and every path clears them after it, so the pipeline never
  // sees or stores them.
  std::vector<EncodedPart> scratch;

  // The part with this suffix, or nullptr.
  Tensor* Find(std::string_view suffix);
  const Tensor* Find(std::string_view suffix) const;
  // The scratch tensor with this suffix, or nullptr.
  Tensor* FindScratch(std::string_view suffix);
  // Bytes of the parts (scratch excluded).
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

  // True when encoding needs FormatParams::tensor_amax (a scale shared by
  // the whole tensor or by fused tensors).
  virtual bool NeedsTensorAmax(const FormatParams& p) const { return false; }

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

  // Runs on the host once every row is encoded (by any path), for work
  // over the whole encoding such as bitsandbytes' double quantization of
  // the block scales; may replace or remove parts, and reads the scratch
  // tensors (the caller clears them afterwards). The default does nothing.
  // Part of the reference: every path calls it.
  virtual absl::Status FinalizeRef(const FormatParams& p, int64_t rows, int64_t cols,
                                   EncodedWeight* out) const {
    return absl::OkStatus();
  }

  // Decodes a whole weight to float32 [rows, cols].
  virtual absl::StatusOr<std::vector<float>> DecodeRef(const FormatParams& p,
                                                       const EncodedWeight& e, int64_t rows,
                                                       int64_t cols) const = 0;
};

// max |x| over a F32, F16 or BF16 view, ignoring NaN (reported by encoding
// itself); on this thread.
float AbsMaxRef(const TensorView& w);

// Encodes all rows with the scalar reference on this thread (then
// FinalizeRef; the result has no scratch).
absl::StatusOr<EncodedWeight> EncodeRef(const WeightFormat& f, const FormatParams& p,
                                        const TensorView& w);

}  // namespace quantd

#endif  // QUANTD_CORE_FORMATS_FORMAT_H_
