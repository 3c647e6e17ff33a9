#include "core/quant/method_registry.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/quant/rtn_int_method.h"

namespace quantd {

const std::vector<const QuantMethod*>& AllMethods() {
  static const auto* methods = new std::vector<const QuantMethod*>{
      &Int8Method(),
      &Int4Method(),
  };
  return *methods;
}

absl::StatusOr<const QuantMethod*> FindMethod(std::string_view name) {
  std::vector<std::string> names;
  for (const QuantMethod* m : AllMethods()) {
    if (m->name() == name) return m;
    names.emplace_back(m->name());
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown method \"", std::string(name), "\"; known methods: ", absl::StrJoin(names, ", ")));
}

}  // namespace quantd
