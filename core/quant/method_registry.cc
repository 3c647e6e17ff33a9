#include "core/quant/method_registry.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/quant/bnb_method.h"
#include "core/quant/fp8_method.h"
#include "core/quant/gguf_method.h"
#include "core/quant/nvfp4_method.h"
#include "core/quant/rtn_int_method.h"

namespace quantd {

const std::vector<const QuantMethod*>& AllMethods() {
  static const auto* methods = new std::vector<const QuantMethod*>{
      &Int8Method(),          &Int4Method(), &GgufMethod(), &Fp8Method(),     &Nvfp4Method(),
      &Nvfp4ModelOptMethod(), &Nf4Method(),  &Fp4Method(),  &BnbInt8Method(),
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

namespace quantd {

absl::StatusOr<const QuantMethod*> FindMethodForSpec(const v1::QuantizeSpec& spec) {
  auto it = spec.options().find("layout");
  if (it == spec.options().end()) return FindMethod(spec.method());
  const std::string variant = absl::StrCat(spec.method(), ":", it->second);
  for (const QuantMethod* m : AllMethods()) {
    if (m->name() == variant) return m;
  }
  // The default layout may be named explicitly.
  absl::StatusOr<const QuantMethod*> plain = FindMethod(spec.method());
  if (plain.ok() && (*plain)->output_format().find(it->second) == 0) return plain;
  std::vector<std::string> layouts;
  for (const QuantMethod* m : AllMethods()) {
    const std::string name(m->name());
    if (name.rfind(spec.method() + ":", 0) == 0)
      layouts.push_back(name.substr(spec.method().size() + 1));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "options.layout \"", it->second, "\" is not a layout of method \"", spec.method(), "\"",
      layouts.empty() ? std::string(" (it has one layout only)")
                      : absl::StrCat("; layouts: ", absl::StrJoin(layouts, ", "))));
}

v1::QuantizeSpec WithoutLayout(const v1::QuantizeSpec& spec) {
  v1::QuantizeSpec copy = spec;
  copy.mutable_options()->erase("layout");
  return copy;
}

}  // namespace quantd
