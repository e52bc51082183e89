// explain(): the word-count plan shows the chained tasks in text and DOT.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "gyre/core.h"

namespace {

std::string word_count_plan(gyre::ExplainFormat f, int parallelism) {
  gyre::JobConfig c;
  c.parallelism = parallelism;
  c.slots = 2;
  gyre::Environment env(c);
  using Count = std::pair<std::string, long>;
  env.from_collection(std::vector<std::string>{"a b", "b c"})
      .name("lines")
      .flat_map<std::string>([](const std::string& l, gyre::Emit<std::string>& emit) {
        for (char ch : l)
          if (ch != ' ') emit(std::string(1, ch));
      })
      .name("tokenize")
      .map([](const std::string& w) { return Count{w, 1}; })
      .name("pair")
      .key_by([](const Count& x) { return x.first; })
      .reduce([](const Count& a, const Count& b) { return Count{a.first, a.second + b.second}; })
      .name("count")
      .write_text("/dev/null", [](const Count& x) { return x.first; });
  return env.explain(f);
}

TEST(Explain, WordCountShowsChainedTasks) {
  const std::string text = word_count_plan(gyre::ExplainFormat::kText, 4);
  // The source, tokenizer and pair-maker are one task; count is a second task after the hash
  // exchange; the parallelism-1 file sink is a third, reached by gather.
  EXPECT_NE(text.find("task 0  parallelism=4: source: collection 'lines' -> flat_map 'tokenize' -> map 'pair'"),
            std::string::npos) << text;
  EXPECT_NE(text.find("=> task 1 via hash"), std::string::npos) << text;
  EXPECT_NE(text.find("task 1  parallelism=4: reduce 'count'"), std::string::npos) << text;
  EXPECT_NE(text.find("=> task 2 via gather"), std::string::npos) << text;
  EXPECT_NE(text.find("== StreamGraph"), std::string::npos);
  EXPECT_NE(text.find("== ExecutionGraph: 9 subtasks on 1 rank(s) x 2 slot(s)"), std::string::npos) << text;
}

TEST(Explain, DotIsAGraphvizDigraphWithThreeClusters) {
  const std::string dot = word_count_plan(gyre::ExplainFormat::kDot, 2);
  EXPECT_EQ(dot.rfind("digraph gyre {", 0), 0U) << dot;
  EXPECT_NE(dot.find("cluster_stream"), std::string::npos);
  EXPECT_NE(dot.find("cluster_job"), std::string::npos);
  EXPECT_NE(dot.find("cluster_exec"), std::string::npos);
  EXPECT_NE(dot.find("task 0: source: collection 'lines' -> flat_map 'tokenize' -> map 'pair'"),
            std::string::npos) << dot;
  EXPECT_EQ(dot.back(), '\n');
}

TEST(Explain, PlanHashDiffersWhenPlansDiffer) {
  auto hash = [](int p) {
    gyre::JobConfig c;
    c.parallelism = p;
    gyre::Environment env(c);
    env.generate(10, [](std::uint64_t i) { return i; }).collect();
    return env.plan_hash();
  };
  EXPECT_EQ(hash(2), hash(2));
  EXPECT_NE(hash(2), hash(3));
}

}  // namespace
