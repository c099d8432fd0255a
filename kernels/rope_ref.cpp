#include "kernels/rope.hpp"

#include <cmath>
#include <numbers>
#include <string>

#include "core/common/error.hpp"

namespace tessera::kernels {

std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling) {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    throw Error("rope: head_dim must be a positive even number, got " + std::to_string(head_dim));
  }
  if (!(theta > 0.0)) throw Error("rope: rope_theta must be positive, got " + std::to_string(theta));
  if (scaling.type != RopeScaling::Type::None && !(scaling.factor > 0.0f)) {
    throw Error("rope: rope_scaling.factor must be positive, got " + std::to_string(scaling.factor));
  }
  const int half = head_dim / 2;
  std::vector<double> base(half);
  for (int i = 0; i < half; ++i) base[i] = 1.0 / std::pow(theta, (2.0 * i) / head_dim);

  const double factor = scaling.factor;
  if (scaling.type == RopeScaling::Type::Linear) {
    for (double& f : base) f /= factor;
  } else if (scaling.type == RopeScaling::Type::Llama3) {
    const double low = scaling.low_freq_factor;
    const double high = scaling.high_freq_factor;
    const double old_context = scaling.original_max_position_embeddings;
    if (!(high > low) || !(low > 0.0) || !(old_context > 0.0)) {
      throw Error("rope: llama3 rope_scaling needs high_freq_factor > low_freq_factor > 0 and "
                  "original_max_position_embeddings > 0");
    }
    const double low_freq_wavelen = old_context / low;
    const double high_freq_wavelen = old_context / high;
    for (double& f : base) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / factor;  // long wavelengths: plain interpolation
      } else if (wavelen >= high_freq_wavelen) {
        // medium: blend between interpolated and original frequency
        const double smooth = (old_context / wavelen - low) / (high - low);
        f = (1.0 - smooth) * f / factor + smooth * f;
      }  // short wavelengths: unchanged
    }
  }
  std::vector<float> out(half);
  for (int i = 0; i < half; ++i) out[i] = static_cast<float>(base[i]);
  return out;
}

std::vector<float> rope_inv_freq(const LlamaConfig& config) {
  return rope_inv_freq(config.head_dim, config.rope_theta, config.rope_scaling);
}

namespace {

void rotate_heads(float* x, int num_heads, int head_dim, int i, float c, float s) {
  const int half = head_dim / 2;
  for (int h = 0; h < num_heads; ++h) {
    float* head = x + static_cast<int64_t>(h) * head_dim;
    const float x1 = head[i];
    const float x2 = head[i + half];
    head[i] = x1 * c - x2 * s;
    head[i + half] = x2 * c + x1 * s;
  }
}

}  // namespace

void rope_ref(float* q, float* k, int64_t num_tokens, int num_q_heads, int num_kv_heads, int head_dim,
              const int32_t* positions, const float* inv_freq) {
  const int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (num_tokens > 4)
  for (int64_t t = 0; t < num_tokens; ++t) {
    float* q_row = q + t * num_q_heads * head_dim;
    float* k_row = k ? k + t * num_kv_heads * head_dim : nullptr;
    const float position = static_cast<float>(positions[t]);
    for (int i = 0; i < half; ++i) {
      const float angle = position * inv_freq[i];
      const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
      const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
      rotate_heads(q_row, num_q_heads, head_dim, i, c, s);
      if (k_row) rotate_heads(k_row, num_kv_heads, head_dim, i, c, s);
    }
  }
}

}  // namespace tessera::kernels
