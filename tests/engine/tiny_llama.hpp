#pragma once
// Test helpers of the engine tests: a tiny random Llama built in memory, and a naive dense (unpaged) forward pass
// in double precision written straight from the Llama definition.
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "core/model/llama_weights.hpp"
#include "kernels/rope.hpp"

namespace tessera::test {

inline LlamaConfig tiny_config() {
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 61;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 128;
  return c;
}

inline HostTensor random_tensor(std::vector<int64_t> shape, std::mt19937& rng, float lo, float hi) {
  HostTensor t;
  t.shape = std::move(shape);
  auto storage = std::make_shared<std::vector<float>>(static_cast<size_t>(t.numel()));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& x : *storage) x = dist(rng);
  t.data = storage->data();
  t.owner = storage;
  return t;
}

// Weights scaled like a trained model's (~1/sqrt(fan_in)) so activations stay O(1) through the layers.
inline std::shared_ptr<LlamaWeights> random_weights(const LlamaConfig& c, uint32_t seed = 42) {
  std::mt19937 rng(seed);
  auto w = std::make_shared<LlamaWeights>();
  w->config = c;
  const int64_t h = c.hidden_size, q = int64_t{c.num_heads} * c.head_dim, kv = int64_t{c.num_kv_heads} * c.head_dim,
                inter = c.intermediate_size;
  auto linear = [&](int64_t out, int64_t in) {
    const float a = std::sqrt(3.0f / static_cast<float>(in));
    return random_tensor({out, in}, rng, -a, a);
  };
  w->embed_tokens = random_tensor({c.vocab_size, h}, rng, -1.0f, 1.0f);
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayerWeights layer;
    layer.input_norm = random_tensor({h}, rng, 0.7f, 1.3f);
    layer.q_proj = linear(q, h);
    layer.k_proj = linear(kv, h);
    layer.v_proj = linear(kv, h);
    layer.o_proj = linear(h, q);
    layer.post_attn_norm = random_tensor({h}, rng, 0.7f, 1.3f);
    layer.gate_proj = linear(inter, h);
    layer.up_proj = linear(inter, h);
    layer.down_proj = linear(h, inter);
    w->layers.push_back(std::move(layer));
  }
  w->final_norm = random_tensor({h}, rng, 0.7f, 1.3f);
  w->lm_head = c.tie_word_embeddings ? w->embed_tokens : linear(c.vocab_size, h);
  return w;
}

// Naive dense forward pass of one sequence in double: returns the logits of every position, [tokens][vocab].
// Only the rope inverse frequencies come from the kernels (rope_inv_freq has its own formula tests).
inline std::vector<std::vector<double>> dense_forward(const LlamaWeights& w, const std::vector<int32_t>& tokens) {
  const LlamaConfig& c = w.config;
  const int n = static_cast<int>(tokens.size()), h = c.hidden_size, d = c.head_dim, nh = c.num_heads,
            nkv = c.num_kv_heads, inter = c.intermediate_size;
  using Matrix = std::vector<std::vector<double>>;
  auto matvec = [](const HostTensor& m, const std::vector<double>& v) {
    const int64_t out = m.shape[0], in = m.shape[1];
    std::vector<double> r(out);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) r[o] += m.data[o * in + i] * v[i];
    return r;
  };
  auto rms_norm = [&](const std::vector<double>& v, const HostTensor& weight) {
    double ss = 0;
    for (double x : v) ss += x * x;
    const double s = 1.0 / std::sqrt(ss / v.size() + c.rms_norm_eps);
    std::vector<double> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = v[i] * s * weight.data[i];
    return r;
  };
  const auto inv_freq = kernels::rope_inv_freq(c);
  auto rope = [&](std::vector<double>& v, int heads, int pos) {
    for (int hd = 0; hd < heads; ++hd)
      for (int i = 0; i < d / 2; ++i) {
        const double a = double(pos) * inv_freq[i];
        const double x1 = v[hd * d + i], x2 = v[hd * d + i + d / 2];
        v[hd * d + i] = x1 * std::cos(a) - x2 * std::sin(a);
        v[hd * d + i + d / 2] = x2 * std::cos(a) + x1 * std::sin(a);
      }
  };
  Matrix x(n, std::vector<double>(h));
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < h; ++i) x[t][i] = w.embed_tokens.data[int64_t{tokens[t]} * h + i];
  for (const LlamaLayerWeights& layer : w.layers) {
    Matrix q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const auto normed = rms_norm(x[t], layer.input_norm);
      q[t] = matvec(layer.q_proj, normed);
      k[t] = matvec(layer.k_proj, normed);
      v[t] = matvec(layer.v_proj, normed);
      rope(q[t], nh, t);
      rope(k[t], nkv, t);
    }
    for (int t = 0; t < n; ++t) {
      std::vector<double> attn(nh * d);
      for (int hd = 0; hd < nh; ++hd) {
        const int kvh = hd / (nh / nkv);
        std::vector<double> p(t + 1, -INFINITY);
        double mx = -INFINITY;
        for (int s = 0; s <= t; ++s) {
          if (c.sliding_window && t - s >= *c.sliding_window) continue;
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += q[t][hd * d + i] * k[s][kvh * d + i];
          p[s] = dot / std::sqrt(double(d));
          mx = std::max(mx, p[s]);
        }
        double total = 0;
        for (double& e : p) total += (e = std::exp(e - mx));
        for (int s = 0; s <= t; ++s)
          for (int i = 0; i < d; ++i) attn[hd * d + i] += p[s] / total * v[s][kvh * d + i];
      }
      const auto o = matvec(layer.o_proj, attn);
      for (int i = 0; i < h; ++i) x[t][i] += o[i];
      const auto normed = rms_norm(x[t], layer.post_attn_norm);
      const auto gate = matvec(layer.gate_proj, normed), up = matvec(layer.up_proj, normed);
      std::vector<double> act(inter);
      for (int i = 0; i < inter; ++i) act[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const auto down = matvec(layer.down_proj, act);
      for (int i = 0; i < h; ++i) x[t][i] += down[i];
    }
  }
  Matrix logits(n);
  for (int t = 0; t < n; ++t) logits[t] = matvec(w.lm_head, rms_norm(x[t], w.final_norm));
  return logits;
}

}  // namespace tessera::test
