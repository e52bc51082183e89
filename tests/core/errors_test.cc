// A user exception cancels the job and names the operator; invalid plans are rejected before any
// data moves, with a message that says what to change; failed jobs leave no output file.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>

#include "gyre/core.h"
#include "gyre/core/runtime.h"

namespace {

bool file_exists(const std::string& p) {
  std::FILE* f = std::fopen(p.c_str(), "r");
  if (f != nullptr) std::fclose(f);
  return f != nullptr;
}

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

TEST(Errors, UserExceptionCancelsJobAndNamesOperator) {
  for (const int p : {1, 2, 4}) {
    gyre::JobConfig c;
    c.parallelism = p;
    gyre::Environment env(c);
    std::atomic<std::uint64_t> sunk{0};
    env.generate(1'000'000, [](std::uint64_t i) { return i; })
        .map([](std::uint64_t i) {
          if (i == 1234) throw UserError("bad record 1234");
          return i;
        })
        .name("parse")
        .key_by([](std::uint64_t i) { return i % 10; })
        .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
        .for_each([&](std::uint64_t) { ++sunk; });
    try {
      env.run();
      FAIL() << "run() should throw";
    } catch (const gyre::JobError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("operator 'parse'"), std::string::npos) << msg;
      // The user's message leads (a parse error's file and line come first), the place follows.
      EXPECT_EQ(msg.rfind("bad record 1234 (in operator 'parse'", 0), 0U) << msg;
      EXPECT_NE(msg.find("rank 0"), std::string::npos) << msg;
      EXPECT_EQ(e.operator_name(), "parse");
      EXPECT_THROW(std::rethrow_exception(e.cause()), UserError);
    }
    EXPECT_EQ(sunk.load(), 0U) << "the reduce must not emit results of a failed job";
  }
}

TEST(Errors, ExceptionInUnboundedSourceEndsTheJob) {
  gyre::Environment env(gyre::JobConfig{});
  env.generate_unbounded<int>([](gyre::SourceContext& ctx) -> std::optional<int> {
       if (ctx.emitted == 500) throw std::runtime_error("sensor unplugged");
       return 1;
     })
      .name("sensor")
      .for_each([](int) {});
  try {
    env.run();
    FAIL() << "run() should throw";
  } catch (const gyre::JobError& e) {
    EXPECT_NE(std::string(e.what()).find("operator 'sensor'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sensor unplugged"), std::string::npos) << e.what();
  }
}

TEST(Errors, ExceptionInSinkAndJoinFunctionsNamed) {
  {
    gyre::Environment env(gyre::JobConfig{});
    env.generate(100, [](std::uint64_t i) { return i; }).for_each([](std::uint64_t i) {
      if (i == 50) throw std::runtime_error("disk full");
    });
    try {
      env.run();
      FAIL();
    } catch (const gyre::JobError& e) {
      EXPECT_NE(std::string(e.what()).find("'sink: for_each'"), std::string::npos) << e.what();
    }
  }
  {
    gyre::Environment env(gyre::JobConfig{});
    auto a = env.generate(100, [](std::uint64_t i) { return i; });
    auto b = env.generate(100, [](std::uint64_t i) { return i; });
    a.join(b, [](std::uint64_t x) { return x; }, [](std::uint64_t y) { return y; },
           [](std::uint64_t x, std::uint64_t) -> std::uint64_t {
             if (x == 7) throw std::runtime_error("no sevens");
             return x;
           })
        .name("match")
        .collect();
    try {
      env.run();
      FAIL();
    } catch (const gyre::JobError& e) {
      EXPECT_EQ(e.operator_name(), "match") << e.what();
    }
  }
}

TEST(Errors, FailedJobLeavesNoOutputFile) {
  const std::string out = ::testing::TempDir() + "/gyre_failed.txt";
  std::remove(out.c_str());
  gyre::JobConfig c;
  c.parallelism = 2;
  gyre::Environment env(c);
  auto src = env.generate(100000, [](std::uint64_t i) { return i; });
  src.write_text(out, [](std::uint64_t i) { return std::to_string(i); });
  // Another branch of the same job fails after the text sink may already have written a lot.
  src.filter([](std::uint64_t i) {
       if (i == 99999) throw std::runtime_error("late failure");
       return true;
     })
      .for_each([](std::uint64_t) {});
  EXPECT_THROW(env.run(), gyre::JobError);
  EXPECT_FALSE(file_exists(out));
}

TEST(PlanErrors, RejectedBeforeAnyDataMoves) {
  auto expect_plan_error = [](auto build, const std::string& needle) {
    gyre::JobConfig c;
    c.parallelism = 2;
    gyre::Environment env(c);
    std::atomic<int> touched{0};
    build(env, touched);
    try {
      env.run();
      ADD_FAILURE() << "expected PlanError containing '" << needle << "'";
    } catch (const gyre::PlanError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_EQ(touched.load(), 0) << "data moved before the plan was rejected";
  };
  auto counting = [](std::atomic<int>& t) {
    return [&t](std::uint64_t i) {
      ++t;
      return i;
    };
  };

  expect_plan_error([&](gyre::Environment& env, std::atomic<int>& t) { env.generate(10, counting(t)); },
                    "no consumer");
  expect_plan_error(
      [&](gyre::Environment& env, std::atomic<int>& t) {
        env.generate(10, counting(t)).map([](std::uint64_t i) { return i; }).name("orphan");
      },
      "map 'orphan' (node 1) has no consumer");
  expect_plan_error(
      [&](gyre::Environment& env, std::atomic<int>&) {
        env.read_text_file("/nonexistent/input.txt").collect();
      },
      "cannot read input file '/nonexistent/input.txt'");
  expect_plan_error(
      [&](gyre::Environment& env, std::atomic<int>& t) {
        auto a = env.generate(10, counting(t));
        a.parallelism(4);
        a.forward().map([](std::uint64_t i) { return i; }).parallelism(2).collect();
      },
      "forward edge");
  expect_plan_error(
      [&](gyre::Environment& env, std::atomic<int>& t) {
        auto u = env.generate_unbounded<std::uint64_t>([&t](gyre::SourceContext&) -> std::optional<std::uint64_t> {
          ++t;
          return 1;
        });
        auto b = env.generate(10, counting(t));
        u.join(b, [](std::uint64_t x) { return x; }, [](std::uint64_t x) { return x; },
               [](std::uint64_t x, std::uint64_t) { return x; })
            .collect();
      },
      "needs bounded inputs");
  expect_plan_error(
      [&](gyre::Environment& env, std::atomic<int>& t) {
        env.generate(10, counting(t))
            .rebalance()
            .key_by([](std::uint64_t x) { return x; })
            .reduce([](std::uint64_t a, std::uint64_t b) { return a + b; })
            .collect();
      },
      "hash-partitioned on the key");
  expect_plan_error(
      [&](gyre::Environment& env, std::atomic<int>& t) {
        env.generate(10, counting(t)).parallelism(0).collect();
      },
      "parallelism 0");
  expect_plan_error([&](gyre::Environment&, std::atomic<int>&) {}, "the plan is empty");
}

TEST(PlanErrors, EnvironmentRunsOnce) {
  gyre::Environment env(gyre::JobConfig{});
  env.generate(10, [](std::uint64_t i) { return i; }).collect();
  env.run();
  EXPECT_THROW(env.run(), gyre::PlanError);
}

}  // namespace

// A library user without a cluster gets a message, not a segmentation fault.
TEST(Cluster, MissingTransportIsAMessage) {
  try {
    gyre::Cluster c{std::shared_ptr<gyre::detail::Transport>()};
    FAIL() << "a null transport was accepted";
  } catch (const gyre::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gyre::Cluster::local()"), std::string::npos) << e.what();
  }
  const gyre::Cluster local;
  EXPECT_EQ(local.ranks(), 1);
  EXPECT_EQ(local.rank(), 0);
  gyre::Environment env(gyre::JobConfig{}, local);
  EXPECT_EQ(env.num_ranks(), 1);
}
