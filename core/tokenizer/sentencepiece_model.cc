#include "core/tokenizer/sentencepiece_model.h"

#include <algorithm>
#include <cstring>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/unicode.h"
#include "core/util/status_macros.h"

namespace quantd {
namespace tokenizer_internal {
namespace {

// A protobuf wire-format reader over one message's bytes.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  bool done() const { return pos_ >= data_.size(); }

  absl::Status ReadVarint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Error("truncated varint");
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      *value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return absl::OkStatus();
    }
    return Error("varint longer than 10 bytes");
  }

  // Reads a field key into its number and wire type.
  absl::Status ReadKey(uint32_t* field, uint32_t* wire_type) {
    uint64_t key;
    RETURN_IF_ERROR(ReadVarint(&key));
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<uint32_t>(key & 7);
    if (*field == 0) return Error("field number 0");
    return absl::OkStatus();
  }

  absl::Status ReadBytes(std::string_view* bytes) {
    uint64_t len;
    RETURN_IF_ERROR(ReadVarint(&len));
    if (len > data_.size() - pos_) return Error("length past the end");
    *bytes = data_.substr(pos_, len);
    pos_ += len;
    return absl::OkStatus();
  }

  absl::Status ReadFixed32(uint32_t* value) {
    if (data_.size() - pos_ < 4) return Error("truncated fixed32");
    *value = 0;
    for (int i = 0; i < 4; ++i)
      *value |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return absl::OkStatus();
  }

  absl::Status Skip(uint32_t wire_type) {
    uint64_t ignored;
    std::string_view bytes;
    switch (wire_type) {
      case 0:
        return ReadVarint(&ignored);
      case 1:
        if (data_.size() - pos_ < 8) return Error("truncated fixed64");
        pos_ += 8;
        return absl::OkStatus();
      case 2:
        return ReadBytes(&bytes);
      case 5:
        if (data_.size() - pos_ < 4) return Error("truncated fixed32");
        pos_ += 4;
        return absl::OkStatus();
      default:
        return Error(absl::StrCat("unsupported wire type ", wire_type));
    }
  }

  static absl::Status Error(std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.model: malformed protobuf (", std::string(what), ")"));
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

absl::Status ExpectWireType(uint32_t field, uint32_t actual, uint32_t expected) {
  if (actual == expected) return absl::OkStatus();
  return WireReader::Error(
      absl::StrCat("field ", field, " has wire type ", actual, ", expected ", expected));
}

// Reads a varint field into an int32 (negative values are sign-extended to
// 64 bits on the wire) or a bool.
absl::Status ReadInt32(WireReader* r, uint32_t field, uint32_t wire_type, int32_t* value) {
  RETURN_IF_ERROR(ExpectWireType(field, wire_type, 0));
  uint64_t v;
  RETURN_IF_ERROR(r->ReadVarint(&v));
  *value = static_cast<int32_t>(static_cast<int64_t>(v));
  return absl::OkStatus();
}

absl::Status ReadBool(WireReader* r, uint32_t field, uint32_t wire_type, bool* value) {
  int32_t v;
  RETURN_IF_ERROR(ReadInt32(r, field, wire_type, &v));
  *value = v != 0;
  return absl::OkStatus();
}

absl::Status ParsePiece(std::string_view bytes, SentencePieceProto::Piece* piece) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field, wire_type;
    RETURN_IF_ERROR(r.ReadKey(&field, &wire_type));
    if (field == 1) {
      RETURN_IF_ERROR(ExpectWireType(field, wire_type, 2));
      std::string_view text;
      RETURN_IF_ERROR(r.ReadBytes(&text));
      piece->piece = std::string(text);
    } else if (field == 2) {
      RETURN_IF_ERROR(ExpectWireType(field, wire_type, 5));
      uint32_t bits;
      RETURN_IF_ERROR(r.ReadFixed32(&bits));
      std::memcpy(&piece->score, &bits, sizeof(bits));
    } else if (field == 3) {
      RETURN_IF_ERROR(ReadInt32(&r, field, wire_type, &piece->type));
    } else {
      RETURN_IF_ERROR(r.Skip(wire_type));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseTrainerSpec(std::string_view bytes, SentencePieceProto* proto) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field, wire_type;
    RETURN_IF_ERROR(r.ReadKey(&field, &wire_type));
    switch (field) {
      case 3:
        RETURN_IF_ERROR(ReadInt32(&r, field, wire_type, &proto->model_type));
        break;
      case 24:
        RETURN_IF_ERROR(ReadBool(&r, field, wire_type, &proto->treat_whitespace_as_suffix));
        break;
      case 35:
        RETURN_IF_ERROR(ReadBool(&r, field, wire_type, &proto->byte_fallback));
        break;
      case 40:
        RETURN_IF_ERROR(ReadInt32(&r, field, wire_type, &proto->unk_id));
        break;
      case 41:
        RETURN_IF_ERROR(ReadInt32(&r, field, wire_type, &proto->bos_id));
        break;
      case 42:
        RETURN_IF_ERROR(ReadInt32(&r, field, wire_type, &proto->eos_id));
        break;
      case 43:
        RETURN_IF_ERROR(ReadInt32(&r, field, wire_type, &proto->pad_id));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(wire_type));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizerSpec(std::string_view bytes, SentencePieceProto* proto) {
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field, wire_type;
    RETURN_IF_ERROR(r.ReadKey(&field, &wire_type));
    std::string_view text;
    switch (field) {
      case 1:
        RETURN_IF_ERROR(ExpectWireType(field, wire_type, 2));
        RETURN_IF_ERROR(r.ReadBytes(&text));
        proto->normalizer_name = std::string(text);
        break;
      case 2:
        RETURN_IF_ERROR(ExpectWireType(field, wire_type, 2));
        RETURN_IF_ERROR(r.ReadBytes(&text));
        proto->precompiled_charsmap_size = text.size();
        break;
      case 3:
        RETURN_IF_ERROR(ReadBool(&r, field, wire_type, &proto->add_dummy_prefix));
        break;
      case 4:
        RETURN_IF_ERROR(ReadBool(&r, field, wire_type, &proto->remove_extra_whitespaces));
        break;
      case 5:
        RETURN_IF_ERROR(ReadBool(&r, field, wire_type, &proto->escape_whitespaces));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(wire_type));
    }
  }
  return absl::OkStatus();
}

// "<0xNN>" (upper-case hex, as sentencepiece writes them) -> NN, else -1.
int ParseBytePiece(const std::string& piece) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  const int hi = hex(piece[3]), lo = hex(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

absl::StatusOr<SentencePieceProto> ParseSentencePieceModel(std::string_view bytes) {
  SentencePieceProto proto;
  WireReader r(bytes);
  while (!r.done()) {
    uint32_t field, wire_type;
    RETURN_IF_ERROR(r.ReadKey(&field, &wire_type));
    if (field < 1 || field > 3) {
      RETURN_IF_ERROR(r.Skip(wire_type));
      continue;
    }
    RETURN_IF_ERROR(ExpectWireType(field, wire_type, 2));
    std::string_view message;
    RETURN_IF_ERROR(r.ReadBytes(&message));
    if (field == 1) {
      proto.pieces.emplace_back();
      RETURN_IF_ERROR(ParsePiece(message, &proto.pieces.back()));
    } else if (field == 2) {
      RETURN_IF_ERROR(ParseTrainerSpec(message, &proto));
    } else {
      RETURN_IF_ERROR(ParseNormalizerSpec(message, &proto));
    }
  }
  if (proto.pieces.empty()) return absl::InvalidArgumentError("tokenizer.model: no pieces");
  return proto;
}

absl::StatusOr<std::unique_ptr<SentencePieceBpeModel>> SentencePieceBpeModel::Create(
    const SentencePieceProto& proto) {
  if (proto.model_type != SentencePieceProto::kBpe) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.model: model type ",
                                                   proto.model_type == SentencePieceProto::kUnigram
                                                       ? std::string("Unigram")
                                                       : absl::StrCat(proto.model_type),
                                                   " is not supported (only BPE)"));
  }
  std::unique_ptr<SentencePieceBpeModel> model(new SentencePieceBpeModel());
  model->pieces_ = proto.pieces;
  model->byte_fallback_ = proto.byte_fallback;
  std::fill(std::begin(model->byte_ids_), std::end(model->byte_ids_), -1);
  for (size_t i = 0; i < proto.pieces.size(); ++i) {
    const SentencePieceProto::Piece& p = proto.pieces[i];
    const int32_t id = static_cast<int32_t>(i);
    if (p.piece.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.model: piece ", i, " is empty"));
    }
    if (p.type < SentencePieceProto::kNormal || p.type > SentencePieceProto::kByte) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.model: piece ", i, " has unknown type ", p.type));
    }
    const bool normal = p.type == SentencePieceProto::kNormal ||
                        p.type == SentencePieceProto::kUserDefined ||
                        p.type == SentencePieceProto::kUnused;
    auto& map = normal ? model->normal_ : model->reserved_;
    if (!map.emplace(p.piece, id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.model: piece '", p.piece, "' is defined twice"));
    }
    if (p.type == SentencePieceProto::kUserDefined) model->user_defined_.push_back(p.piece);
    if (p.type == SentencePieceProto::kUnknown) {
      if (model->unk_id_ >= 0) {
        return absl::InvalidArgumentError("tokenizer.model: more than one unknown piece");
      }
      model->unk_id_ = id;
    }
    if (p.type == SentencePieceProto::kByte) {
      const int value = ParseBytePiece(p.piece);
      if (value < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.model: byte piece '", p.piece, "' is invalid"));
      }
      model->byte_ids_[value] = id;
    }
  }
  if (model->unk_id_ < 0) return absl::InvalidArgumentError("tokenizer.model: no unknown piece");
  if (model->byte_fallback_ && std::find(std::begin(model->byte_ids_), std::end(model->byte_ids_),
                                         -1) != std::end(model->byte_ids_)) {
    return absl::InvalidArgumentError(
        "tokenizer.model: byte_fallback is set but not all 256 byte pieces exist");
  }
  // Longest first, for MatchUserDefined.
  std::sort(model->user_defined_.begin(), model->user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return model;
}

const std::string* SentencePieceBpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return nullptr;
  return &pieces_[id].piece;
}

int32_t SentencePieceBpeModel::TokenToId(std::string_view token) const {
  if (auto it = reserved_.find(AbslView(token)); it != reserved_.end()) return it->second;
  if (auto it = normal_.find(AbslView(token)); it != normal_.end()) return it->second;
  return -1;
}

int32_t SentencePieceBpeModel::PieceToId(std::string_view piece) const {
  const int32_t id = TokenToId(piece);
  return id >= 0 ? id : unk_id_;
}

size_t SentencePieceBpeModel::MatchUserDefined(std::string_view text) const {
  for (const std::string& piece : user_defined_) {
    if (text.compare(0, piece.size(), piece) == 0) return piece.size();
  }
  return 0;
}

void SentencePieceBpeModel::Resegment(
    std::string_view piece,
    const absl::flat_hash_map<std::string, std::pair<std::string, std::string>>& rev,
    std::vector<int32_t>* ids) const {
  const int32_t id = PieceToId(piece);
  if (pieces_[id].type == SentencePieceProto::kUnused) {
    if (auto it = rev.find(AbslView(piece)); it != rev.end()) {
      Resegment(it->second.first, rev, ids);
      Resegment(it->second.second, rev, ids);
      return;
    }
  }
  if (id == unk_id_ && byte_fallback_) {
    for (char c : piece) ids->push_back(byte_ids_[static_cast<unsigned char>(c)]);
    return;
  }
  ids->push_back(id);
}

void SentencePieceBpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  struct Symbol {
    int32_t prev;
    int32_t next;
    bool freeze;
    size_t begin;
    size_t len;  // 0 once merged into its left neighbour.
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t pos = 0; pos < word.size();) {
    size_t len = user_defined_.empty() ? 0 : MatchUserDefined(word.substr(pos));
    const bool freeze = len > 0;
    if (len == 0)
      len = std::min(Utf8Length(static_cast<unsigned char>(word[pos])), word.size() - pos);
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, pos + len < word.size() ? index + 1 : -1, freeze, pos, len});
    pos += len;
  }
  if (symbols.empty()) return;

  struct Pair {
    float score;
    int32_t left;
    int32_t right;
    size_t size;
    // Highest score first, then the leftmost (sentencepiece's comparator).
    bool operator<(const Pair& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };
  std::priority_queue<Pair> agenda;
  absl::flat_hash_map<std::string, std::pair<std::string, std::string>> rev_merge;
  auto maybe_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0 || symbols[left].freeze || symbols[right].freeze) return;
    const std::string_view piece =
        word.substr(symbols[left].begin, symbols[left].len + symbols[right].len);
    auto it = normal_.find(AbslView(piece));
    if (it == normal_.end()) return;
    agenda.push({pieces_[it->second].score, left, right, piece.size()});
    if (pieces_[it->second].type == SentencePieceProto::kUnused) {
      rev_merge[std::string(piece)] = {
          std::string(word.substr(symbols[left].begin, symbols[left].len)),
          std::string(word.substr(symbols[right].begin, symbols[right].len))};
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i) maybe_add(static_cast<int32_t>(i) - 1, i);

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != top.size) continue;
    left.len += right.len;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.len = 0;
    maybe_add(left.prev, top.left);
    maybe_add(top.left, left.next);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) {
    Resegment(word.substr(symbols[i].begin, symbols[i].len), rev_merge, ids);
  }
}

}  // namespace tokenizer_internal
}  // namespace quantd
