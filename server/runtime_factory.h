// The model runtime the server gives evaluate jobs (JobEnv::runtime): the
// CPU backend (kernels/cpu/llama_cpu.h) for "cpu" and the CUDA backend
// (kernels/cuda/llama_cuda.h) for "cuda:N".
#ifndef QUANTD_SERVER_RUNTIME_FACTORY_H_
#define QUANTD_SERVER_RUNTIME_FACTORY_H_

#include <memory>

#include "core/eval/runtime_factory.h"

namespace quantd {

// `cpu_threads` as --cpu-threads (0: all cores).
std::unique_ptr<CausalLMFactory> MakeKernelsRuntimeFactory(int cpu_threads);

}  // namespace quantd

#endif  // QUANTD_SERVER_RUNTIME_FACTORY_H_
