// A minimal HTTP/1.x endpoint that serves Prometheus metrics in the text
// exposition format (GET /metrics). It replaces prometheus-cpp's civetweb
// Exposer: civetweb starts its threads with a fixed 100 KiB stack, and once
// cuBLAS is linked in, the static TLS of the loaded libraries no longer fits
// in such a stack, so pthread_create fails with EINVAL and quantd could not
// start (see docs/ARCHITECTURE.md, "Metrics").
//
// One serving thread accepts connections and answers them one at a time
// (Connection: close; 5 s read/write timeout per connection, requests over
// 16 KiB refused), which is what a Prometheus scraper needs.
#ifndef QUANTD_SERVER_METRICS_HTTP_H_
#define QUANTD_SERVER_METRICS_HTTP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"

namespace quantd {

class MetricsHttpServer {
 public:
  // Binds `listen` ("host:port", "[v6]:port" or ":port"; port 0 picks a free
  // one) and starts serving `collectables`. Fails with InvalidArgument for a
  // malformed address and Unavailable when it cannot bind or listen.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);

  // Stops the thread and closes the socket.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port (the chosen one when asked for port 0).
  int port() const { return port_; }

  // The response body for a scrape: every family of every collectable.
  std::string Scrape() const;

 private:
  MetricsHttpServer() = default;
  void Serve();
  void Answer(int fd) const;

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

// Splits "host:port" / "[v6]:port" / ":port" into host ("" for any) and port.
// Fails with InvalidArgument when there is no port or it is not 0..65535.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& listen);

}  // namespace quantd

#endif  // QUANTD_SERVER_METRICS_HTTP_H_
