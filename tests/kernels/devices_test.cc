#include "kernels/devices.h"

#include "gtest/gtest.h"
#include "kernels/encoders.h"

namespace quantd {
namespace {

TEST(DevicesTest, ListingNeverFails) {
  const std::vector<GpuInfo> gpus = ListCudaDevices();
  for (const GpuInfo& g : gpus) {
    EXPECT_FALSE(g.name.empty());
    EXPECT_GT(g.total_memory, 0);
    EXPECT_GE(g.cc_major, 7);
  }
  if (gpus.empty()) {
    EXPECT_EQ(CudaFreeMemory(0).status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(MakeCudaEncoder(0).status().code(), absl::StatusCode::kUnavailable);
  } else {
    EXPECT_TRUE(CudaFreeMemory(0).ok());
  }
  EXPECT_EQ(CudaFreeMemory(-1).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(MakeCudaEncoder(static_cast<int>(gpus.size())).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace quantd
