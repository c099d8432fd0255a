// Length distributions, query patterns and mixtures, prompt ids, and open-loop arrival processes: parsing and the
// statistical properties of seeded samples.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "core/common/error.hpp"
#include "tools/bench/arrivals.hpp"
#include "tools/bench/length_distribution.hpp"
#include "tools/bench/workload.hpp"

namespace tessera::bench {
namespace {

struct Moments {
  double mean = 0, stddev = 0, median = 0, min = 0, max = 0;
};
Moments moments(std::vector<double> v) {
  Moments m;
  m.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
  std::sort(v.begin(), v.end());
  m.median = v[v.size() / 2];
  m.min = v.front();
  m.max = v.back();
  return m;
}

Moments sample(const std::string& spec, int n = 20000, uint64_t seed = 5) {
  const LengthDistribution d = LengthDistribution::parse(spec, "--input-len");
  std::mt19937_64 rng(seed);
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(d.sample(rng));
  return moments(v);
}

std::string parse_error(const std::string& spec) {
  try {
    LengthDistribution::parse(spec, "--input-len");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(BenchLengths, ParsesEveryForm) {
  EXPECT_EQ(LengthDistribution::parse("16", "x").describe(), "16");
  EXPECT_EQ(LengthDistribution::parse("fixed:16", "x").describe(), "16");
  EXPECT_EQ(LengthDistribution::parse("uniform:8:64", "x").describe(), "uniform:8:64");
  EXPECT_EQ(LengthDistribution::parse("normal:100:12.5", "x").describe(), "normal:100:12.5");
  EXPECT_EQ(LengthDistribution::parse("lognormal:100:50", "x").describe(), "lognormal:100:50");
  EXPECT_EQ(LengthDistribution::parse("uniform:8:64", "x").max_length(), 64);
}

TEST(BenchLengths, RejectsBadSpecsNamingTheOption) {
  for (const std::string spec : {"0", "-3", "abc", "", "1.5", "uniform:64:8", "uniform:1.5:3", "normal:100:-1",
                                 "normal:100", "gauss:1:2", "fixed:", "uniform:1:2:3", "lognormal:0:5", "16 "}) {
    const std::string message = parse_error(spec);
    EXPECT_EQ(message.rfind("--input-len: ", 0), 0u) << spec << " -> " << message;
  }
}

TEST(BenchLengths, FixedIsExact) {
  const Moments m = sample("37", 100);
  EXPECT_EQ(m.min, 37);
  EXPECT_EQ(m.max, 37);
}

TEST(BenchLengths, UniformCoversItsRangeEvenly) {
  const Moments m = sample("uniform:8:64");
  EXPECT_EQ(m.min, 8);
  EXPECT_EQ(m.max, 64);
  EXPECT_NEAR(m.mean, 36, 0.5);                                   // (8 + 64) / 2
  EXPECT_NEAR(m.stddev, std::sqrt((57.0 * 57.0 - 1) / 12), 0.3);  // discrete uniform over 57 values: 16.45
}

TEST(BenchLengths, NormalHasItsMeanAndSpread) {
  const Moments m = sample("normal:100:10");
  EXPECT_NEAR(m.mean, 100, 0.5);
  EXPECT_NEAR(m.stddev, 10, 0.4);  // rounding adds 1/12 to the variance: sqrt(100.08)
  EXPECT_GE(sample("normal:2:10").min, 1);  // clipped at 1
}

TEST(BenchLengths, LognormalHasItsMeanSpreadAndRightSkew) {
  const Moments m = sample("lognormal:100:50");
  EXPECT_NEAR(m.mean, 100, 2);
  EXPECT_NEAR(m.stddev, 50, 3);
  // sigma^2 = ln(1 + 0.25), median = exp(mu) = 100 / sqrt(1.25) = 89.4: below the mean
  EXPECT_NEAR(m.median, 100 / std::sqrt(1.25), 2);
  EXPECT_GE(m.min, 1);
}

TEST(BenchLengths, SameSeedSameLengths) {
  const LengthDistribution d = LengthDistribution::parse("lognormal:50:30", "x");
  std::mt19937_64 a(9), b(9), c(10);
  std::vector<int32_t> va, vb, vc;
  for (int i = 0; i < 50; ++i) {
    va.push_back(d.sample(a));
    vb.push_back(d.sample(b));
    vc.push_back(d.sample(c));
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
}

TEST(BenchWorkload, CustomLengthsAndReproducibility) {
  WorkloadSpec spec;
  spec.input = LengthDistribution::fixed(16);
  spec.output = LengthDistribution::parse("uniform:1:9", "x");
  const std::vector<RequestPlan> plans = make_requests(spec, 40, 3);
  ASSERT_EQ(plans.size(), 40u);
  for (size_t i = 0; i < plans.size(); ++i) {
    EXPECT_EQ(plans[i].index, static_cast<int64_t>(i));
    EXPECT_EQ(plans[i].pattern, "custom");
    EXPECT_EQ(plans[i].input_len, 16);
    EXPECT_GE(plans[i].output_len, 1);
    EXPECT_LE(plans[i].output_len, 9);
    EXPECT_FALSE(plans[i].arrival_s);
  }
  const std::vector<RequestPlan> again = make_requests(spec, 40, 3);
  for (size_t i = 0; i < plans.size(); ++i) EXPECT_EQ(plans[i].output_len, again[i].output_len);
  EXPECT_EQ(spec.max_total_length(), 25);
}

TEST(BenchWorkload, MixturePicksPatternsByWeightWithTheirLengths) {
  WorkloadSpec spec;
  spec.mix = WorkloadSpec::parse_mix("siso=3, lilo=1", "--pattern");
  spec.patterns.short_input = LengthDistribution::fixed(10);
  spec.patterns.long_input = LengthDistribution::fixed(1000);
  spec.patterns.short_output = LengthDistribution::fixed(20);
  spec.patterns.long_output = LengthDistribution::fixed(500);
  std::map<std::string, int> count;
  for (const RequestPlan& p : make_requests(spec, 8000, 1)) {
    ++count[p.pattern];
    if (p.pattern == "siso") {
      EXPECT_TRUE(p.input_len == 10 && p.output_len == 20);
    } else {
      EXPECT_TRUE(p.input_len == 1000 && p.output_len == 500);
    }
  }
  EXPECT_EQ(count.size(), 2u);
  EXPECT_NEAR(count["siso"] / 8000.0, 0.75, 0.02);
  EXPECT_EQ(spec.max_total_length(), 1500);

  spec.mix = WorkloadSpec::parse_mix("liso", "--pattern");
  for (const RequestPlan& p : make_requests(spec, 20, 1)) EXPECT_TRUE(p.pattern == "liso" && p.input_len == 1000 && p.output_len == 20);
  spec.mix = WorkloadSpec::parse_mix("silo", "--pattern");
  for (const RequestPlan& p : make_requests(spec, 20, 1)) EXPECT_TRUE(p.pattern == "silo" && p.input_len == 10 && p.output_len == 500);
}

TEST(BenchWorkload, MixtureErrors) {
  for (const std::string text : {"sisi", "siso=0", "siso=-1", "siso=x", "siso,siso", "siso=1,,lilo=1", ""}) {
    try {
      WorkloadSpec::parse_mix(text, "--pattern");
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--pattern: ", 0), 0u) << e.what();
    }
  }
}

TEST(BenchWorkload, PromptIdsAreExactSeededAndFromTheVocabulary) {
  const std::vector<int32_t> vocabulary = {3, 5, 7, 11};
  const std::vector<int32_t> a = make_prompt_ids(300, vocabulary, 1, 4);
  EXPECT_EQ(a.size(), 300u);
  EXPECT_EQ(std::set<int32_t>(a.begin(), a.end()), std::set<int32_t>(vocabulary.begin(), vocabulary.end()));
  EXPECT_EQ(a, make_prompt_ids(300, vocabulary, 1, 4));
  EXPECT_NE(a, make_prompt_ids(300, vocabulary, 1, 5));
  EXPECT_NE(a, make_prompt_ids(300, vocabulary, 2, 4));
  EXPECT_THROW(make_prompt_ids(3, {}, 1, 0), Error);
}

std::vector<double> gaps(const std::vector<double>& times) {
  std::vector<double> g;
  for (size_t i = 1; i < times.size(); ++i) g.push_back(times[i] - times[i - 1]);
  return g;
}

TEST(BenchArrivals, PoissonHasTheMeanRateAndUnitVariation) {
  const std::vector<double> t = arrival_times({10.0, 1.0}, 20001, 7);
  ASSERT_EQ(t.size(), 20001u);
  EXPECT_EQ(t[0], 0);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  const Moments m = moments(gaps(t));
  EXPECT_NEAR(m.mean, 0.1, 0.003);                // 1 / rate
  EXPECT_NEAR(m.stddev / m.mean, 1.0, 0.05);     // exponential gaps: CV 1
  EXPECT_NEAR(m.median, 0.1 * std::log(2), 0.004);
}

TEST(BenchArrivals, BurstinessSetsTheGammaVariation) {
  for (const double shape : {0.25, 4.0}) {
    const Moments m = moments(gaps(arrival_times({50.0, shape}, 20001, 3)));
    EXPECT_NEAR(m.mean, 0.02, 0.02 * 0.04) << shape;                   // the rate does not change
    EXPECT_NEAR(m.stddev / m.mean, 1 / std::sqrt(shape), 0.1) << shape;  // CV = 1 / sqrt(k): 2 and 0.5
  }
}

TEST(BenchArrivals, SeededAndChecked) {
  EXPECT_EQ(arrival_times({5, 1}, 100, 1), arrival_times({5, 1}, 100, 1));
  EXPECT_NE(arrival_times({5, 1}, 100, 1), arrival_times({5, 1}, 100, 2));
  EXPECT_THROW(arrival_times({0, 1}, 10, 1), Error);
  EXPECT_THROW(arrival_times({-1, 1}, 10, 1), Error);
  EXPECT_THROW(arrival_times({std::nan(""), 1}, 10, 1), Error);
  EXPECT_THROW(arrival_times({1, 0}, 10, 1), Error);
  std::vector<RequestPlan> plans(3);
  schedule(plans, {0, 0.5, 1});
  EXPECT_EQ(*plans[2].arrival_s, 1);
  EXPECT_THROW(schedule(plans, {0}), Error);
}

}  // namespace
}  // namespace tessera::bench
