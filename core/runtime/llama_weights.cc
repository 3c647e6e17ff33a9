#include "core/runtime/llama_weights.h"

namespace quantd {
namespace {

int64_t VectorBytes(const std::vector<float>& v) {
  return static_cast<int64_t>(v.size() * sizeof(float));
}

// Calls fn(matrix) and fv(vector) for every weight (lm_head once).
template <typename FM, typename FV>
void ForEachWeight(const LlamaWeights& w, FM fm, FV fv) {
  fm(w.embed);
  for (const LlamaLayerWeights& l : w.layers) {
    for (const WeightMatrix* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) fm(*m);
    for (const std::vector<float>* v : {&l.attn_norm, &l.ffn_norm, &l.q_bias, &l.k_bias, &l.v_bias,
                                        &l.o_bias, &l.gate_bias, &l.up_bias, &l.down_bias}) {
      fv(*v);
    }
  }
  fv(w.final_norm);
  if (!w.lm_head_tied()) fm(w.lm_head_untied);
}

}  // namespace

int64_t LoadedModel::bytes_resident() const {
  int64_t total = 0;
  ForEachWeight(
      weights, [&](const WeightMatrix& m) { total += m.bytes_resident(); },
      [&](const std::vector<float>& v) { total += VectorBytes(v); });
  return total;
}

int64_t LoadedModel::bytes_owned() const {
  int64_t total = 0;
  ForEachWeight(
      weights, [&](const WeightMatrix& m) { total += m.mapped() ? 0 : m.bytes_resident(); },
      [&](const std::vector<float>& v) { total += VectorBytes(v); });
  return total;
}

}  // namespace quantd
