// What a loaded Tokenizer is made of. Internal to core/tokenizer.
#ifndef QUANTD_CORE_TOKENIZER_PIPELINE_H_
#define QUANTD_CORE_TOKENIZER_PIPELINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/added_vocabulary.h"
#include "core/tokenizer/components.h"

namespace quantd {
namespace tokenizer_internal {

// One element of a post-processor template for a single sequence: the
// sequence itself, or special token ids.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};
using Template = std::vector<TemplateItem>;

struct Pipeline {
  std::unique_ptr<Normalizer> normalizer;       // May be null.
  std::unique_ptr<PreTokenizer> pre_tokenizer;  // May be null.
  std::unique_ptr<Model> model;
  std::unique_ptr<Decoder> decoder;  // Null: tokens are joined with spaces.
  AddedVocabulary added;
  // Applied in order when special tokens are requested.
  std::vector<Template> post_processor;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  std::vector<int32_t> eos_ids;
  std::string kind;
};

}  // namespace tokenizer_internal
}  // namespace quantd

#endif  // QUANTD_CORE_TOKENIZER_PIPELINE_H_
