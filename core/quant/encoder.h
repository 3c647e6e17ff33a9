// Where a weight is encoded: the scalar reference, the multi-threaded CPU
// path or a GPU (kernels/ implements the last two). A worker owns one.
#ifndef QUANTD_CORE_QUANT_ENCODER_H_
#define QUANTD_CORE_QUANT_ENCODER_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/formats/format.h"
#include "core/util/cancel.h"

namespace quantd {

// Time an encoder spent per stage since the last TakeTimings(), in seconds
// (stages it does not have stay 0).
struct EncoderTimings {
  double host_to_device = 0;
  double kernel = 0;
  double device_to_host = 0;
  double host = 0;  // host-side work: CPU encoding, staging copies, finalize
};

class WeightEncoder {
 public:
  virtual ~WeightEncoder() = default;

  // "reference", "cpu", "cuda:0", ...
  virtual std::string device() const = 0;

  // Encodes a whole 2-D weight; the bytes equal EncodeRef()'s. Errors: those
  // of WeightFormat::Check/EncodeRowsRef/FinalizeRef, CANCELLED,
  // RESOURCE_EXHAUSTED when device memory runs out, INTERNAL for a device
  // failure.
  virtual absl::StatusOr<EncodedWeight> Encode(const WeightFormat& f, const FormatParams& p,
                                               const TensorView& w, const CancelToken& cancel) = 0;

  // max |x| of a weight (AbsMaxRef's value); encoders may parallelise it.
  virtual float AbsMax(const TensorView& w) { return AbsMaxRef(w); }

  // Returns and resets the stage timings.
  virtual EncoderTimings TakeTimings() { return EncoderTimings{}; }
};

// The scalar reference on the calling thread.
class ReferenceEncoder : public WeightEncoder {
 public:
  std::string device() const override { return "reference"; }
  absl::StatusOr<EncodedWeight> Encode(const WeightFormat& f, const FormatParams& p,
                                       const TensorView& w, const CancelToken& cancel) override {
    if (absl::Status s = cancel.Check(); !s.ok()) return s;
    return EncodeRef(f, p, w);
  }
};

}  // namespace quantd

#endif  // QUANTD_CORE_QUANT_ENCODER_H_
