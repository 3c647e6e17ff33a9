// A minimal llama-quantize for tests/interop/llama_cpp_check.py, built
// against llama.cpp's libllama only (the real tool also needs llama-common):
//
//   llama_quantize_min IN.gguf OUT.gguf FTYPE_ID NTHREADS [IMATRIX.dat]
//
// It calls llama_model_quantize() with llama-quantize's default parameters,
// the function llama-quantize's main() ends in, so the tensor types and bytes
// are llama-quantize's. The optional importance matrix is a legacy .dat file,
// loaded as llama-quantize's load_imatrix() does (values / ncall).
// Not part of quantd; compiled by the check script.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "llama.h"

namespace {

struct Entry {
  std::string name;
  std::vector<float> values;
};

bool LoadLegacyImatrix(const char* path, std::vector<Entry>* out) {
  std::ifstream in(path, std::ios::binary);
  int32_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), 4) || n <= 0) return false;
  for (int32_t i = 0; i < n; ++i) {
    int32_t len = 0, ncall = 0, nval = 0;
    if (!in.read(reinterpret_cast<char*>(&len), 4) || len <= 0) return false;
    Entry e;
    e.name.resize(static_cast<size_t>(len));
    in.read(e.name.data(), len);
    in.read(reinterpret_cast<char*>(&ncall), 4);
    in.read(reinterpret_cast<char*>(&nval), 4);
    if (!in || nval <= 0) return false;
    e.values.resize(static_cast<size_t>(nval));
    in.read(reinterpret_cast<char*>(e.values.data()), 4 * static_cast<std::streamsize>(nval));
    if (!in) return false;
    if (ncall > 0) {
      for (float& v : e.values) v = v / static_cast<int64_t>(ncall);
    }
    out->push_back(std::move(e));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s IN OUT FTYPE_ID NTHREADS [IMATRIX.dat]\n", argv[0]);
    return 2;
  }
  llama_backend_init();
  llama_model_quantize_params p = llama_model_quantize_default_params();
  p.ftype = static_cast<llama_ftype>(std::atoi(argv[3]));
  p.nthread = std::atoi(argv[4]);
  std::vector<Entry> entries;
  std::vector<llama_model_imatrix_data> table;
  if (argc > 5) {
    if (!LoadLegacyImatrix(argv[5], &entries)) {
      std::fprintf(stderr, "cannot read imatrix %s\n", argv[5]);
      return 1;
    }
    for (const Entry& e : entries)
      table.push_back({e.name.c_str(), e.values.data(), e.values.size()});
    table.push_back({nullptr, nullptr, 0});
    p.imatrix = table.data();
  }
  const uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
  llama_backend_free();
  if (rc != 0) {
    std::fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
    return 1;
  }
  return 0;
}
