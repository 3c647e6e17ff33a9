#include "core/gguf/spm_model.h"

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// Protobuf wire format, just enough for sentencepiece's ModelProto.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view b) : b_(b) {}
  bool done() const { return pos_ >= b_.size(); }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) return false;
      const uint8_t c = static_cast<uint8_t>(b_[pos_++]);
      *v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) return true;
    }
    return false;
  }
  bool Bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > b_.size() - pos_) return false;
    *out = b_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Fixed32(uint32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    std::memcpy(v, b_.data() + pos_, 4);  // little-endian hosts only
    pos_ += 4;
    return true;
  }
  // Skips a field of wire type `wt`.
  bool Skip(uint32_t wt) {
    uint64_t v = 0;
    uint32_t f = 0;
    std::string_view s;
    switch (wt) {
      case 0:
        return Varint(&v);
      case 1:
        if (b_.size() - pos_ < 8) return false;
        pos_ += 8;
        return true;
      case 2:
        return Bytes(&s);
      case 5:
        return Fixed32(&f);
      default:
        return false;
    }
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

absl::StatusOr<SpmPiece> ParsePiece(std::string_view bytes) {
  ProtoReader r(bytes);
  SpmPiece p;
  while (!r.done()) {
    uint64_t key = 0;
    if (!r.Varint(&key)) return absl::InvalidArgumentError("truncated piece");
    const uint32_t field = static_cast<uint32_t>(key >> 3), wt = key & 7;
    std::string_view s;
    uint32_t bits = 0;
    uint64_t v = 0;
    if (field == 1 && wt == 2) {
      if (!r.Bytes(&s)) return absl::InvalidArgumentError("truncated piece text");
      p.piece = std::string(s);
    } else if (field == 2 && wt == 5) {
      if (!r.Fixed32(&bits)) return absl::InvalidArgumentError("truncated piece score");
      std::memcpy(&p.score, &bits, 4);
    } else if (field == 3 && wt == 0) {
      if (!r.Varint(&v)) return absl::InvalidArgumentError("truncated piece type");
      if (v < 1 || v > 6) return absl::InvalidArgumentError(absl::StrCat("piece type ", v));
      p.type = static_cast<int32_t>(v);
    } else if (!r.Skip(wt)) {
      return absl::InvalidArgumentError("malformed piece");
    }
  }
  return p;
}

}  // namespace

absl::StatusOr<SpmModel> ParseSentencePieceModel(std::string_view bytes) {
  ProtoReader r(bytes);
  SpmModel m;
  while (!r.done()) {
    uint64_t key = 0;
    if (!r.Varint(&key)) return absl::InvalidArgumentError("truncated model");
    const uint32_t field = static_cast<uint32_t>(key >> 3), wt = key & 7;
    std::string_view s;
    if (field == 1 && wt == 2) {
      if (!r.Bytes(&s)) return absl::InvalidArgumentError("truncated piece");
      absl::StatusOr<SpmPiece> p = ParsePiece(s);
      if (!p.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("piece ", m.pieces.size(), ": ", p.status().message()));
      }
      m.pieces.push_back(*std::move(p));
    } else if (field == 3 && wt == 2) {  // NormalizerSpec
      if (!r.Bytes(&s)) return absl::InvalidArgumentError("truncated normalizer_spec");
      ProtoReader n(s);
      while (!n.done()) {
        uint64_t k = 0, v = 0;
        if (!n.Varint(&k)) return absl::InvalidArgumentError("malformed normalizer_spec");
        const uint32_t f = static_cast<uint32_t>(k >> 3), w = k & 7;
        if ((f == 3 || f == 4) && w == 0) {
          if (!n.Varint(&v)) return absl::InvalidArgumentError("malformed normalizer_spec");
          (f == 3 ? m.add_dummy_prefix : m.remove_extra_whitespaces) = v != 0;
        } else if (!n.Skip(w)) {
          return absl::InvalidArgumentError("malformed normalizer_spec");
        }
      }
    } else if (!r.Skip(wt)) {
      return absl::InvalidArgumentError("malformed model (not a sentencepiece ModelProto?)");
    }
  }
  if (m.pieces.empty()) return absl::InvalidArgumentError("the model has no pieces");
  return m;
}

}  // namespace quantd
