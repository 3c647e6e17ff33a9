#include "core/formats/registry.h"

#include "absl/strings/str_cat.h"
#include "core/formats/bnb4.h"
#include "core/formats/bnb_int8.h"
#include "core/formats/fp8.h"
#include "core/formats/nvfp4.h"
#include "core/formats/rtn_int.h"
#include "core/gguf/ggml_format.h"

namespace quantd {

const std::vector<const WeightFormat*>& AllFormats() {
  static const auto* formats = new std::vector<const WeightFormat*>{
      &RtnIntFormat(), &GgmlFormat(), &Fp8Format(), &Nvfp4Format(), &Bnb4Format(), &BnbInt8Format(),
  };
  return *formats;
}

absl::StatusOr<const WeightFormat*> FindFormat(std::string_view name) {
  for (const WeightFormat* f : AllFormats()) {
    if (f->name() == name) return f;
  }
  return absl::NotFoundError(absl::StrCat("no weight format named \"", std::string(name), "\""));
}

}  // namespace quantd
