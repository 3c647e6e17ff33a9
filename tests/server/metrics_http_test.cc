// MetricsHttpServer: serves the Prometheus text format, answers bad requests
// with the right HTTP codes, and fails cleanly on bad or taken addresses.
#include "server/metrics_http.h"

#include <unistd.h>

#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "tests/fixtures/server_process.h"

namespace quantd {
namespace {

std::shared_ptr<prometheus::Registry> Registry() {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("quantd_test_total")
      .Help("A test counter.")
      .Register(*registry)
      .Add({{"kind", "x"}})
      .Increment(3);
  return registry;
}

// Sends `raw` and returns everything the server answers.
std::string RawRequest(int port, const std::string& raw) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  (void)!write(fd, raw.data(), raw.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(MetricsHttpTest, ServesTheTextFormatOnAnEphemeralPort) {
  auto server = MetricsHttpServer::Start("127.0.0.1:0", {Registry()});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  auto body = HttpGet((*server)->port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_NE(body->find("# TYPE quantd_test_total counter"), std::string::npos) << *body;
  EXPECT_NE(body->find("quantd_test_total{kind=\"x\"} 3"), std::string::npos) << *body;
  const std::string head = RawRequest((*server)->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_EQ(head.find("quantd_test_total{"), std::string::npos) << "HEAD carries no body";
}

TEST(MetricsHttpTest, BadRequestsGetHttpErrors) {
  auto server = MetricsHttpServer::Start("127.0.0.1:0", {Registry()});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  EXPECT_EQ(RawRequest(port, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(RawRequest(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(RawRequest(port, "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(RawRequest(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a'))
                .rfind("HTTP/1.1 431", 0),
            0u);
  // A client that connects and says nothing holds the next scrape back by at
  // most the I/O timeout.
  const int silent = ConnectLoopback(port);
  ASSERT_GE(silent, 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(HttpGet(port, "/metrics?x=1").ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(8));
  close(silent);
}

TEST(MetricsHttpTest, BadOrTakenAddressesFailCleanly) {
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1:70000", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("[::1:5", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = MetricsHttpServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(first.ok());
  auto second = MetricsHttpServer::Start("127.0.0.1:" + std::to_string((*first)->port()), {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_NE(second.status().message().find("cannot listen"), std::string::npos);
}

TEST(MetricsHttpTest, SplitsHostAndPort) {
  EXPECT_EQ(*SplitHostPort("0.0.0.0:7471"), std::make_pair(std::string("0.0.0.0"), 7471));
  EXPECT_EQ(*SplitHostPort(":9"), std::make_pair(std::string(), 9));
  EXPECT_EQ(*SplitHostPort("[::1]:0"), std::make_pair(std::string("::1"), 0));
  EXPECT_FALSE(SplitHostPort("host:").ok());
  EXPECT_FALSE(SplitHostPort("host:-1").ok());
}

}  // namespace
}  // namespace quantd
