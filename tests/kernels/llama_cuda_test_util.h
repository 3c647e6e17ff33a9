// Helpers shared by the CUDA Llama runtime's tests (llama_cuda_ops_test.cc,
// llama_cuda_test.cc): device vectors, random BF16 data, the normalised
// error and the fixture that skips without a GPU. CUDA builds only.
//
// Tolerances (normalised L2 error ||got - ref|| / ||ref||):
//   kBf16Out   5e-3  kernels whose only rounding is the BF16 output
//   kAttention 1e-2  attention: P rounded to BF16 before P.V, BF16 output
//   kModel     2e-2  logits vs the float32 CPU backend: activations are
//                    rounded to BF16 before every GEMM
//   kBatch     5e-3  logits of a sequence in a batch vs alone (cuBLAS may
//                    pick another algorithm for another M)
#ifndef QUANTD_TESTS_KERNELS_LLAMA_CUDA_TEST_UTIL_H_
#define QUANTD_TESTS_KERNELS_LLAMA_CUDA_TEST_UTIL_H_

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/devices.h"

namespace quantd {
namespace llama_cuda_test {

constexpr double kBf16Out = 5e-3;
constexpr double kAttention = 1e-2;
constexpr double kModel = 2e-2;
constexpr double kBatch = 5e-3;

inline double NormErr(const std::vector<double>& ref, const std::vector<double>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);  // NaN in got -> NaN -> every EXPECT_LT fails
}

inline std::vector<uint16_t> RandomBf16(size_t n, std::mt19937_64& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = FloatToBf16(d(rng));
  return v;
}

inline std::vector<double> Widen(const std::vector<uint16_t>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = Bf16ToFloat(v[i]);
  return out;
}

// A device copy of a host vector; poisoned (0xff bytes: NaN) when empty.
template <typename T>
class DevVec {
 public:
  explicit DevVec(const std::vector<T>& v) : n_(v.size()) {
    EXPECT_EQ(cudaMalloc(&p_, n_ * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p_, v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  explicit DevVec(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(&p_, n_ * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemset(p_, 0xff, n_ * sizeof(T)), cudaSuccess);
  }
  ~DevVec() { cudaFree(p_); }
  T* get() const { return static_cast<T*>(p_); }
  std::vector<T> Get() const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<T> v(n_);
    EXPECT_EQ(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }

 private:
  void* p_ = nullptr;
  size_t n_;
};

class LlamaCudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ListCudaDevices().empty()) GTEST_SKIP() << "no CUDA device";
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  }
  std::mt19937_64 rng_{42};
};

}  // namespace llama_cuda_test
}  // namespace quantd

#endif  // QUANTD_TESTS_KERNELS_LLAMA_CUDA_TEST_UTIL_H_
