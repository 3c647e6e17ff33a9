// Incremental SHA-256 (OpenSSL EVP), used to fingerprint every file quantd
// reads or writes.
#ifndef QUANTD_CORE_UTIL_SHA256_H_
#define QUANTD_CORE_UTIL_SHA256_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header.

namespace quantd {

class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;

  // Adds `n` bytes at `data` to the digest. `data` may be null when n == 0.
  void Update(const void* data, size_t n);

  // Returns the 64-character lower-case hex digest of everything passed to
  // Update() since construction or the previous HexDigest(), and resets the
  // state to empty. Returns "" only if OpenSSL fails (out of memory); the
  // failure is then sticky until the next HexDigest(). A moved-from object
  // ignores Update() and returns "" from its next HexDigest(), after which it
  // is usable again.
  std::string HexDigest();

 private:
  void Reset();

  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
  bool failed_ = false;
};

// Returns the lower-case hex SHA-256 of `data` ("" if OpenSSL fails).
std::string Sha256Hex(std::string_view data);

}  // namespace quantd

#endif  // QUANTD_CORE_UTIL_SHA256_H_
