// Typed access to the fields of tokenizer JSON files: every wrong type or
// missing field becomes INVALID_ARGUMENT naming the field, never an
// exception.
#ifndef QUANTD_CORE_TOKENIZER_JSON_FIELDS_H_
#define QUANTD_CORE_TOKENIZER_JSON_FIELDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace quantd {
namespace tokenizer_internal {

using Json = nlohmann::json;

inline absl::Status FieldError(std::string_view where, std::string_view key,
                               std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(where), ": field '", std::string(key), "' ", std::string(problem)));
}

// obj[key], which must exist and not be null.
inline absl::StatusOr<const Json*> RequiredField(const Json& obj, std::string_view key,
                                                 std::string_view where) {
  if (!obj.is_object())
    return absl::InvalidArgumentError(absl::StrCat(std::string(where), ": not an object"));
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return FieldError(where, key, "is missing");
  return &*it;
}

// obj[key] or nullptr when absent or null.
inline const Json* OptionalField(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(std::string(key));
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

inline absl::StatusOr<std::string> RequiredString(const Json& obj, std::string_view key,
                                                  std::string_view where) {
  auto field = RequiredField(obj, key, where);
  if (!field.ok()) return field.status();
  if (!(*field)->is_string()) return FieldError(where, key, "is not a string");
  return (*field)->get<std::string>();
}

inline absl::StatusOr<bool> BoolOr(const Json& obj, std::string_view key, bool fallback,
                                   std::string_view where) {
  const Json* field = OptionalField(obj, key);
  if (field == nullptr) return fallback;
  if (!field->is_boolean()) return FieldError(where, key, "is not a boolean");
  return field->get<bool>();
}

inline absl::StatusOr<int64_t> IntOr(const Json& obj, std::string_view key, int64_t fallback,
                                     std::string_view where) {
  const Json* field = OptionalField(obj, key);
  if (field == nullptr) return fallback;
  if (!field->is_number_integer()) return FieldError(where, key, "is not an integer");
  return field->get<int64_t>();
}

// The "type" of a component object.
inline absl::StatusOr<std::string> ComponentType(const Json& obj, std::string_view where) {
  return RequiredString(obj, "type", where);
}

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_JSON_FIELDS_H_
