#!/usr/bin/env python3
"""HF transformers generation on the same GPU and the same random Llama-3.1-8B-shape BF16 weights as Tessera's
benchmark (tools/gpu/benchmark.sh makes them), as the side-by-side baseline. Greedy, exactly OSL new tokens
(EOS suppressed with min_new_tokens), random prompt ids. Prints one JSON line per configuration.

    python3 tools/gpu/hf_baseline.py --model /tmp/llama-3.1-8b-random --runs 1x128x128 16x128x128 64x128x128 1x2048x1
"""
import argparse, json, time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--runs", nargs="+", default=["1x128x128"], help="BATCHxISLxOSL")
    ap.add_argument("--cache", default="dynamic", choices=["dynamic", "static"])
    ap.add_argument("--compile", action="store_true", help="torch.compile the forward")
    ap.add_argument("--compile-mode", default="reduce-overhead",
                    help="torch.compile mode: reduce-overhead (CUDA graphs), default or max-autotune-no-cudagraphs")
    args = ap.parse_args()
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, device_map="cuda")
    model.eval()
    if args.compile:
        model.forward = torch.compile(model.forward, mode=args.compile_mode, fullgraph=False)
    load_s = time.time() - t0
    vocab = model.config.vocab_size
    gen = torch.Generator(device="cpu").manual_seed(0)
    for spec in args.runs:
        batch, isl, osl = map(int, spec.split("x"))
        ids = torch.randint(0, vocab, (batch, isl), generator=gen).cuda()
        kwargs = dict(max_new_tokens=osl, min_new_tokens=osl, do_sample=False, pad_token_id=0,
                      cache_implementation=args.cache)
        with torch.no_grad():
            # Warm-up with the measured shapes (compilation and graph capture happen here, not in the timing).
            model.generate(ids, **dict(kwargs, max_new_tokens=min(osl, 8), min_new_tokens=min(osl, 8)))
            torch.cuda.synchronize()
            start = time.time()
            out = model.generate(ids, **kwargs)
            torch.cuda.synchronize()
            seconds = time.time() - start
        new_tokens = (out.shape[1] - isl) * batch
        print(json.dumps({"name": f"hf_{args.cache}{'_compiled_' + args.compile_mode if args.compile else ''}_b{batch}_{isl}_{osl}", "batch": batch, "input_len": isl,
                          "output_len": osl, "seconds": seconds, "output_tokens_per_s": new_tokens / seconds,
                          "ms_per_step": 1e3 * seconds / osl, "load_s": load_s,
                          "torch": torch.__version__, "transformers": __import__("transformers").__version__}),
              flush=True)


if __name__ == "__main__":
    main()
