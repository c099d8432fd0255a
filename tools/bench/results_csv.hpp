#pragma once
// CSV files of a benchmark (RFC 4180 quoting): one row per request, one row per run.
#include <ostream>
#include <string>

#include "tools/bench/bench_run.hpp"

namespace tessera::bench {

// A field quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& text);

// run,label,id,pattern,input_len,output_len,prompt_tokens,output_tokens,scheduled_s,send_s,ttft_ms,tpot_ms,e2e_ms,
// itl_mean_ms,itl_max_ms,finish_reason,error,slo_met (empty cells for values that do not apply)
void write_requests_csv(std::ostream& out, const BenchResult& result, const Slo& slo);
// run,label,concurrency,request_rate,requests,completed,failed,duration_s,requests_per_s,output_tokens_per_s,
// total_tokens_per_s,goodput_requests_per_s, then mean,p50,p90,p95,p99 of ttft_ms, itl_ms, tpot_ms and e2e_ms
void write_summary_csv(std::ostream& out, const BenchResult& result);

}  // namespace tessera::bench
