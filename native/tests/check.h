// A minimal test harness for the kernel tests: TEST registration, closeness checks, random fills
// and central finite differences. Each test binary prints one line per test and exits non-zero
// when any check failed, which is what ctest reads.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "random.h"

namespace check {

struct Case {
  const char* name;
  void (*fn)();
};
inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
inline int& failures() {
  static int n = 0;
  return n;
}
struct Register {
  Register(const char* name, void (*fn)()) { registry().push_back({name, fn}); }
};

inline void fail(const std::string& msg) {
  ++failures();
  std::fprintf(stderr, "    FAIL: %s\n", msg.c_str());
}

// |a - b| <= atol + rtol * max(|a|, |b|) elementwise; reports the worst element.
template <typename A, typename B>
bool close(const A* a, const B* b, size_t n, double rtol, double atol, const std::string& what) {
  size_t worst = 0;
  double worst_excess = 0;
  bool ok = true;
  for (size_t i = 0; i < n; ++i) {
    double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    double err = std::fabs(x - y);
    double tol = atol + rtol * std::fmax(std::fabs(x), std::fabs(y));
    if (!(err <= tol)) {
      double excess = std::isfinite(err) ? err - tol : INFINITY;
      if (ok || excess > worst_excess) worst = i, worst_excess = excess;
      ok = false;
    }
  }
  if (!ok) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: element %zu of %zu: %.9g vs %.9g (rtol %g, atol %g)",
                  what.c_str(), worst, n, static_cast<double>(a[worst]),
                  static_cast<double>(b[worst]), rtol, atol);
    fail(buf);
  }
  return ok;
}

template <typename T>
void fill_uniform(std::vector<T>& v, uint64_t seed, double lo = -1, double hi = 1) {
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<T>(lo + (hi - lo) * rnnkit::uniform01(seed, i));
}

// d loss / d x[i] by central differences, perturbing x in place (restored afterwards).
template <typename T>
std::vector<double> numeric_gradient(const std::function<double()>& loss, T* x, size_t n,
                                     double eps) {
  std::vector<double> g(n);
  for (size_t i = 0; i < n; ++i) {
    T saved = x[i];
    x[i] = static_cast<T>(saved + eps);
    double up = loss();
    x[i] = static_cast<T>(saved - eps);
    double down = loss();
    x[i] = saved;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

inline int run_all() {
  for (const Case& c : registry()) {
    int before = failures();
    c.fn();
    std::printf("%s %s\n", failures() == before ? "ok  " : "FAIL", c.name);
  }
  std::printf("%zu cases, %d failed checks\n", registry().size(), failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace check

#define TEST(name)                                        \
  static void name();                                     \
  static check::Register name##_registered(#name, &name); \
  static void name()

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) check::fail(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond); \
  } while (0)

#define TEST_MAIN() \
  int main() { return check::run_all(); }
