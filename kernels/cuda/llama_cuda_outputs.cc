// The CUDA Llama runtime's three ways out of the last layer (see
// llama_cuda.h): logits streamed to a LogitsSink, log-probabilities and
// argmax computed on the device, and greedy decoding with a KV cache.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/llama_cuda_impl.h"
#include "kernels/cuda/llama_cuda_internal.h"
#include "kernels/cuda/llama_cuda_ops.h"
#include "kernels/cuda/llama_cuda_plan.h"

namespace quantd {
namespace llama_cuda {

absl::Status CudaLlamaImpl::ForwardImpl(const std::vector<std::vector<int32_t>>& batch,
                                        int from_pos, LogitsSink* sink, const CancelToken& cancel) {
  if (batch.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int T, Validate(batch, from_pos));
  if (sink == nullptr && from_pos < T) return absl::InvalidArgumentError("Forward: no sink");
  const int64_t pass_rows = llama_cuda::PassRows(batch.size(), T, options_);
  const int per_pass = static_cast<int>(pass_rows / T);
  const int64_t per = T - from_pos;
  RETURN_IF_ERROR(EnsureWorkspace(pass_rows));
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(options_.stream_chunk_rows, per_pass * per));
  RETURN_IF_ERROR(EnsureLogits(chunk));
  RETURN_IF_ERROR(EnsurePinned(chunk));
  const size_t row_bytes = static_cast<size_t>(dims_.vocab) * 4;
  for (size_t s0 = 0; s0 < batch.size(); s0 += per_pass) {
    const int n = static_cast<int>(std::min<size_t>(per_pass, batch.size() - s0));
    RETURN_IF_ERROR(UploadInts(batch, s0, n, tokens_));
    RETURN_IF_ERROR(RunLayers(Pass{n, T, 0, false}, cancel));
    const int64_t rows = n * per;
    if (rows == 0) continue;
    RETURN_IF_ERROR(FinalNorm(n, T, from_pos));
    const int64_t chunks = (rows + chunk - 1) / chunk;
    // Hands chunk c (in pinned_[c % 2]) to the sink.
    auto consume = [&](int64_t c) -> absl::Status {
      RETURN_IF_CUDA(cudaEventSynchronize(copied_[c % 2]), "computing logits");
      const int64_t r0 = c * chunk, r1 = std::min(rows, r0 + chunk);
      for (int64_t r = r0; r < r1; ++r) {
        RETURN_IF_ERROR(sink->Consume(static_cast<int>(s0 + r / per),
                                      static_cast<int>(from_pos + r % per),
                                      pinned_[c % 2] + (r - r0) * dims_.vocab));
      }
      return absl::OkStatus();
    };
    for (int64_t c = 0; c < chunks; ++c) {
      RETURN_IF_ERROR(cancel.Check());
      const int64_t r0 = c * chunk, nr = std::min(chunk, rows - r0);
      RETURN_IF_ERROR(LmHead(r0, nr));
      RETURN_IF_CUDA(cudaMemcpy2DAsync(pinned_[c % 2], row_bytes, logits_.as<float>(),
                                       static_cast<size_t>(dims_.ld_vocab) * 4, row_bytes,
                                       static_cast<size_t>(nr), cudaMemcpyDeviceToHost, stream_),
                     "cudaMemcpy2DAsync (logits)");
      RETURN_IF_CUDA(cudaEventRecord(copied_[c % 2], stream_), "cudaEventRecord");
      if (c > 0) RETURN_IF_ERROR(consume(c - 1));
    }
    RETURN_IF_ERROR(consume(chunks - 1));
  }
  return absl::OkStatus();
}

absl::Status CudaLlamaImpl::LogProbsImpl(const std::vector<std::vector<int32_t>>& batch,
                                         int from_pos,
                                         const std::vector<std::vector<int32_t>>& targets,
                                         std::vector<float>* target_logprob,
                                         std::vector<int32_t>* argmax, const CancelToken& cancel) {
  if (target_logprob != nullptr) target_logprob->clear();
  if (argmax != nullptr) argmax->clear();
  if (batch.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int T, Validate(batch, from_pos));
  const int64_t per = T - from_pos;
  if (targets.size() != batch.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(targets.size(), " target rows for ", batch.size(), " sequences"));
  }
  for (const auto& t : targets) {
    if (static_cast<int64_t>(t.size()) != per) {
      return absl::InvalidArgumentError(
          absl::StrCat(t.size(), " targets for ", per, " positions (T - from_pos)"));
    }
    for (int32_t id : t) {
      if (id >= dims_.vocab) {
        return absl::InvalidArgumentError(absl::StrCat("target id ", id, " >= vocab"));
      }
    }
  }
  const int64_t total = static_cast<int64_t>(batch.size()) * per;
  if (target_logprob != nullptr) target_logprob->assign(total, 0.0f);
  if (argmax != nullptr) argmax->assign(total, 0);
  const int64_t pass_rows = llama_cuda::PassRows(batch.size(), T, options_);
  const int per_pass = static_cast<int>(pass_rows / T);
  RETURN_IF_ERROR(EnsureWorkspace(pass_rows));
  const int64_t chunk = llama_cuda::LogitRows(config_, per_pass * per, options_);
  RETURN_IF_ERROR(EnsureLogits(chunk));
  for (size_t s0 = 0; s0 < batch.size(); s0 += per_pass) {
    const int n = static_cast<int>(std::min<size_t>(per_pass, batch.size() - s0));
    const int64_t rows = n * per;
    RETURN_IF_ERROR(UploadInts(targets, s0, n, targets_));
    RETURN_IF_ERROR(UploadInts(batch, s0, n, tokens_));
    RETURN_IF_ERROR(RunLayers(Pass{n, T, 0, false}, cancel));
    if (rows == 0) continue;
    RETURN_IF_ERROR(FinalNorm(n, T, from_pos));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, rows - r0);
      RETURN_IF_ERROR(LmHead(r0, nr));
      RETURN_IF_CUDA(llama_cuda::LogSoftmaxStats(
                         logits_.as<float>(), nr, static_cast<int>(dims_.vocab), dims_.ld_vocab,
                         targets_.as<int32_t>() + r0, logprob_.as<float>() + r0,
                         argmax_.as<int32_t>() + r0, stream_),
                     "log-softmax kernel");
    }
    const int64_t out0 = static_cast<int64_t>(s0) * per;
    if (target_logprob != nullptr) {
      RETURN_IF_CUDA(cudaMemcpyAsync(target_logprob->data() + out0, logprob_.as<void>(), rows * 4,
                                     cudaMemcpyDeviceToHost, stream_),
                     "cudaMemcpyAsync (log-probs)");
    }
    if (argmax != nullptr) {
      RETURN_IF_CUDA(cudaMemcpyAsync(argmax->data() + out0, argmax_.as<void>(), rows * 4,
                                     cudaMemcpyDeviceToHost, stream_),
                     "cudaMemcpyAsync (argmax)");
    }
    RETURN_IF_CUDA(cudaStreamSynchronize(stream_), "forward pass");
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> CudaLlamaImpl::NextToken(int seq_len) {
  RETURN_IF_ERROR(FinalNorm(1, seq_len, seq_len - 1));
  RETURN_IF_ERROR(LmHead(0, 1));
  RETURN_IF_CUDA(
      llama_cuda::LogSoftmaxStats(logits_.as<float>(), 1, static_cast<int>(dims_.vocab),
                                  dims_.ld_vocab, nullptr, nullptr, argmax_.as<int32_t>(), stream_),
      "argmax kernel");
  int32_t next = 0;
  RETURN_IF_CUDA(cudaMemcpyAsync(&next, argmax_.as<void>(), 4, cudaMemcpyDeviceToHost, stream_),
                 "cudaMemcpyAsync (token)");
  RETURN_IF_CUDA(cudaStreamSynchronize(stream_), "decoding");
  return next;
}

absl::Status CudaLlamaImpl::GenerateImpl(const std::vector<int32_t>& prompt, int max_new,
                                         const std::vector<int32_t>& stop_ids,
                                         const CancelToken& cancel, std::vector<int32_t>* out) {
  RETURN_IF_CUDA(cudaSetDevice(device_), "cudaSetDevice");
  if (prompt.empty()) return absl::InvalidArgumentError("Generate: empty prompt");
  RETURN_IF_ERROR(CheckTokens(prompt));
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  if (prompt_len > max_context_) {
    return absl::InvalidArgumentError(absl::StrCat("Generate: prompt length ", prompt_len,
                                                   " exceeds the context of ", max_context_));
  }
  // As the CPU backend: the sequence ends at the context length.
  max_new = static_cast<int>(std::min<int64_t>(max_new, max_context_ - prompt_len));
  if (max_new <= 0) return absl::OkStatus();
  const int P = static_cast<int>(prompt_len);
  RETURN_IF_ERROR(EnsureCache(P + max_new));
  RETURN_IF_ERROR(EnsureWorkspace(P));
  RETURN_IF_ERROR(EnsureRope(P + max_new));
  RETURN_IF_ERROR(EnsureLogits(1));
  RETURN_IF_ERROR(UploadInts({prompt}, 0, 1, tokens_));
  RETURN_IF_ERROR(RunLayers(Pass{1, P, 0, true}, cancel));
  ASSIGN_OR_RETURN(int32_t next, NextToken(P));
  for (int i = 0;; ++i) {
    out->push_back(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    if (static_cast<int>(out->size()) == max_new) break;
    RETURN_IF_ERROR(UploadInts({{next}}, 0, 1, tokens_));
    RETURN_IF_ERROR(RunLayers(Pass{1, 1, P + i, true}, cancel));
    ASSIGN_OR_RETURN(next, NextToken(1));
  }
  return absl::OkStatus();
}

}  // namespace llama_cuda
}  // namespace quantd
