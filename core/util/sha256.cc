#include "core/util/sha256.h"

#include <openssl/evp.h>

namespace quantd {

void Sha256::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() { Reset(); }

void Sha256::Reset() {
  failed_ = false;
  if (ctx_ == nullptr) ctx_.reset(EVP_MD_CTX_new());
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    failed_ = true;
  }
}

void Sha256::Update(const void* data, size_t n) {
  if (failed_ || ctx_ == nullptr || n == 0) return;
  if (EVP_DigestUpdate(ctx_.get(), data, n) != 1) failed_ = true;
}

std::string Sha256::HexDigest() {
  std::string hex;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!failed_ && ctx_ != nullptr && EVP_DigestFinal_ex(ctx_.get(), digest, &len) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex.reserve(size_t{2} * len);
    for (unsigned int i = 0; i < len; ++i) {
      hex.push_back(kHex[digest[i] >> 4]);
      hex.push_back(kHex[digest[i] & 0xf]);
    }
  }
  Reset();
  return hex;
}

std::string Sha256Hex(std::string_view data) {
  Sha256 sha;
  sha.Update(data.data(), data.size());
  return sha.HexDigest();
}

}  // namespace quantd
