#include "core/formats/registry.h"

#include "absl/strings/str_cat.h"
#include "core/formats/rtn_int.h"

namespace quantd {

const std::vector<const WeightFormat*>& AllFormats() {
  static const auto* formats = new std::vector<const WeightFormat*>{
      &RtnIntFormat(),
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
