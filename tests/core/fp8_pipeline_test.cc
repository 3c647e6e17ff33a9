// The fp8 and nvfp4 methods through the whole quantize job (plan, encode
// with the reference encoder, write, commit) on a generated tiny Llama:
// tensors a runtime fuses (q/k/v, gate/up) share one tensor-wide scale, and
// a non-finite weight fails the job with an error naming the tensor.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "core/formats/fp8.h"
#include "core/formats/nvfp4.h"
#include "core/io/safetensors.h"
#include "core/jobs/quantize_job.h"
#include "core/quant/encoder.h"
#include "core/tensor/float_bits.h"
#include "gtest/gtest.h"
#include "tests/fixtures/tiny_model.h"

namespace quantd {
namespace {

namespace fs = std::filesystem;

class NullProgress : public ProgressSink {
 public:
  void Report(const v1::Progress&) override {}
};

class Fp8PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("quantd_fp8_pipeline_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "models");
    fs::create_directories(root_ / "out");
    TinyLlamaOptions o;
    o.hidden = 64;
    o.intermediate = 160;
    o.layers = 2;
    ASSERT_TRUE(WriteTinyLlama(root_ / "models" / "tiny", o).ok());
    env_.model_root = root_ / "models";
    env_.output_root = root_ / "out";
  }
  void TearDown() override { fs::remove_all(root_); }

  // Runs a quantize job; returns its status (the output is under out/<output>).
  absl::Status Quantize(const std::string& method, const std::string& output,
                        const std::map<std::string, std::string>& options = {}) {
    v1::JobSpec spec;
    v1::QuantizeSpec* q = spec.mutable_quantize();
    q->set_model("tiny");
    q->set_output(output);
    q->set_method(method);
    for (const auto& [k, v] : options) (*q->mutable_options())[k] = v;
    absl::StatusOr<JobPlan> plan = QuantizeJobHandler().Plan(spec, env_);
    if (!plan.ok()) return plan.status();
    ReferenceEncoder encoder;
    NullProgress progress;
    CancelToken cancel;
    RunContext ctx;
    ctx.env = &env_;
    ctx.job_id = "test";
    ctx.encoder = &encoder;
    ctx.progress = &progress;
    ctx.cancel = &cancel;
    return QuantizeJobHandler().Run(spec, ctx).status();
  }

  // The raw bytes of tensor `name` in out/<output>/model.safetensors.
  std::string Bytes(const std::string& output, const std::string& name) {
    auto f = SafetensorsFile::Open(root_ / "out" / output / "model.safetensors");
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) return "";
    absl::StatusOr<TensorView> v = (*f)->Get(name);
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return "";
    return std::string(reinterpret_cast<const char*>(v->data), v->nbytes);
  }

  // Overwrites element `index` of BF16 tensor `name` in the source model.
  void Poison(const std::string& name, int64_t index, uint16_t bits) {
    const fs::path path = root_ / "models" / "tiny" / "model.safetensors";
    uint64_t offset = 0;
    {
      auto f = SafetensorsFile::Open(path);
      ASSERT_TRUE(f.ok()) << f.status();
      const SafetensorsEntry* e = (*f)->Find(name);
      ASSERT_NE(e, nullptr) << name;
      ASSERT_EQ(e->dtype, DType::kBF16);
      offset = (*f)->data_offset() + e->begin + 2 * static_cast<uint64_t>(index);
    }
    const int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &bits, 2, static_cast<off_t>(offset)), 2);
    close(fd);
  }

  fs::path root_;
  JobEnv env_;
};

TEST_F(Fp8PipelineTest, FusedProjectionsShareTheTensorScale) {
  ASSERT_TRUE(Quantize("fp8", "fp8-tensor", {{"strategy", "tensor"}}).ok());
  ASSERT_TRUE(Quantize("nvfp4", "nvfp4").ok());
  ASSERT_TRUE(Quantize("nvfp4:modelopt", "nvfp4-modelopt").ok());
  struct Case {
    const char* output;
    const char* suffix;
  };
  for (const Case& c : {Case{"fp8-tensor", "weight_scale"}, Case{"nvfp4", "weight_global_scale"},
                        Case{"nvfp4-modelopt", "weight_scale_2"}}) {
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const std::string q = Bytes(c.output, p + "self_attn.q_proj." + c.suffix);
      ASSERT_FALSE(q.empty()) << c.output;
      EXPECT_EQ(q, Bytes(c.output, p + "self_attn.k_proj." + c.suffix)) << c.output << l;
      EXPECT_EQ(q, Bytes(c.output, p + "self_attn.v_proj." + c.suffix)) << c.output << l;
      const std::string gate = Bytes(c.output, p + "mlp.gate_proj." + c.suffix);
      EXPECT_EQ(gate, Bytes(c.output, p + "mlp.up_proj." + c.suffix)) << c.output << l;
      // o_proj and down_proj are not fused with anything: their own scale.
      EXPECT_NE(q, Bytes(c.output, p + "self_attn.o_proj." + c.suffix)) << c.output << l;
      EXPECT_NE(gate, Bytes(c.output, p + "mlp.down_proj." + c.suffix)) << c.output << l;
    }
  }
}

// The tiny model's [160, 64] weights would end in partial 128 x 128 blocks,
// which compressed-tensors cannot load: the job is refused at submission.
TEST_F(Fp8PipelineTest, BlockStrategyRefusesPartialBlocks) {
  const absl::Status s = Quantize("fp8", "block", {{"strategy", "block"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("not a multiple of 128 x 128"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(root_ / "out" / "block"));
}

TEST_F(Fp8PipelineTest, NonFiniteWeightFailsNamingTheTensor) {
  // Row 3, column 5 of layer 1's up_proj [160, 64].
  Poison("model.layers.1.mlp.up_proj.weight", 3 * 64 + 5, 0x7fc0);  // NaN
  const std::string expected =
      "model.layers.1.mlp.up_proj.weight: non-finite value at row 3, column 5";
  struct Case {
    const char* method;
    std::map<std::string, std::string> options;
  };
  for (const Case& c : {Case{"fp8", {}}, Case{"fp8", {{"strategy", "tensor"}}}, Case{"nvfp4", {}},
                        Case{"nvfp4:modelopt", {}}}) {
    const absl::Status s = Quantize(c.method, "poisoned", c.options);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.method << " " << s;
    EXPECT_NE(s.message().find(expected), std::string::npos) << c.method << ": " << s;
    EXPECT_FALSE(fs::exists(root_ / "out" / "poisoned")) << c.method;
  }
}

TEST_F(Fp8PipelineTest, InfiniteWeightFailsNamingTheTensorOrItsFusedGroup) {
  // An Inf makes the fused group's amax (gate_proj with up_proj) infinite.
  // gate_proj is encoded first: an Inf in it is named exactly; an Inf in
  // up_proj makes gate_proj fail first, naming up_proj as the tensor fused
  // with it that holds one.
  Poison("model.layers.1.mlp.gate_proj.weight", 7 * 64 + 63, 0xff80);  // -Inf
  const std::string in_gate =
      "model.layers.1.mlp.gate_proj.weight: non-finite value at row 7, column 63";
  for (const char* method : {"fp8", "nvfp4", "nvfp4:modelopt"}) {
    std::map<std::string, std::string> options;
    if (std::string(method) == "fp8") options["strategy"] = "tensor";
    const absl::Status s = Quantize(method, "poisoned", options);
    EXPECT_NE(s.message().find(in_gate), std::string::npos) << method << ": " << s;
  }
  Poison("model.layers.1.mlp.gate_proj.weight", 7 * 64 + 63, 0);
  Poison("model.layers.1.mlp.up_proj.weight", 0, 0x7f80);  // +Inf
  const std::string fused =
      "model.layers.1.mlp.gate_proj.weight: tensor_amax inf is not finite: a tensor sharing "
      "this one's scale (fused q/k/v or gate/up) holds a non-finite value (non-finite value in "
      "model.layers.1.mlp.up_proj.weight)";
  for (const char* method : {"fp8", "nvfp4"}) {
    std::map<std::string, std::string> options;
    if (std::string(method) == "fp8") options["strategy"] = "tensor";
    const absl::Status s = Quantize(method, "poisoned", options);
    EXPECT_NE(s.message().find(fused), std::string::npos) << method << ": " << s;
  }
  // Per-channel fp8 has no shared scale: up_proj itself is named.
  const absl::Status s = Quantize("fp8", "poisoned");
  EXPECT_NE(s.message().find("model.layers.1.mlp.up_proj.weight: non-finite value at row 0, "
                             "column 0"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace quantd
