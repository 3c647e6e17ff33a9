// EstimateCudaMemory for every build, and MakeCudaLlama for builds without
// CUDA (kernels/CMakeLists.txt compiles every top-level *.cc; the CUDA
// build defines MakeCudaLlama in kernels/cuda/llama_cuda.cc).
#include "kernels/cuda/llama_cuda.h"
#include "kernels/cuda/llama_cuda_plan.h"

namespace quantd {

int64_t EstimateCudaMemory(const LlamaConfig& config, int batch, int seq_len,
                           const CudaLlamaOptions& options) {
  const int64_t rows = llama_cuda::PassRows(batch, seq_len, options);
  return llama_cuda::WeightBytes(config) + llama_cuda::ActivationBytes(config, rows) +
         llama_cuda::LogitRows(config, rows, options) * llama_cuda::Dims(config).ld_vocab * 4 +
         llama_cuda::RopeTableBytes(config, seq_len) + llama_cuda::kCublasWorkspaceBytes +
         llama_cuda::kContextAllowanceBytes;
}

#if !QUANTD_HAVE_CUDA
absl::StatusOr<std::unique_ptr<CausalLM>> MakeCudaLlama(const LoadedModel* model, int device,
                                                        const CudaLlamaOptions& options) {
  return absl::UnavailableError("quantd was built without CUDA");
}
#endif

}  // namespace quantd
