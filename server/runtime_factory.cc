#include "server/runtime_factory.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/llama_cpu.h"
#include "kernels/cuda/llama_cuda.h"

namespace quantd {
namespace {

class KernelsRuntimeFactory : public CausalLMFactory {
 public:
  explicit KernelsRuntimeFactory(int cpu_threads) : cpu_threads_(cpu_threads) {}

  absl::StatusOr<std::unique_ptr<CausalLM>> Make(const LoadedModel* model,
                                                 const std::string& device) const override {
    if (device == "cpu" || device == "reference") return MakeCpuLlama(model, cpu_threads_);
    int index = -1;
    if (!absl::StartsWith(device, "cuda:") || !absl::SimpleAtoi(device.substr(5), &index)) {
      return absl::UnavailableError(absl::StrCat("no model runtime for device \"", device, "\""));
    }
    return MakeCudaLlama(model, index, CudaLlamaOptions{});
  }

  int64_t EstimateBytes(const LlamaConfig& config, bool gpu, int batch,
                        int seq_len) const override {
    return gpu ? EstimateCudaMemory(config, batch, seq_len)
               : CpuLlamaScratchBytes(config, batch, seq_len);
  }

  absl::Status ForwardLogProbs(CausalLM* lm, const std::vector<std::vector<int32_t>>& batch,
                               int from_pos, const std::vector<std::vector<int32_t>>& targets,
                               std::vector<float>* logprob, std::vector<int32_t>* argmax,
                               const CancelToken& cancel) const override {
    auto* cuda = dynamic_cast<CudaLlama*>(lm);
    if (cuda == nullptr)
      return CausalLMFactory::ForwardLogProbs(lm, batch, from_pos, targets, logprob, argmax,
                                              cancel);
    return cuda->ForwardLogProbs(batch, from_pos, targets, logprob, argmax, cancel);
  }

 private:
  const int cpu_threads_;
};

}  // namespace

std::unique_ptr<CausalLMFactory> MakeKernelsRuntimeFactory(int cpu_threads) {
  return std::make_unique<KernelsRuntimeFactory>(cpu_threads);
}

}  // namespace quantd
