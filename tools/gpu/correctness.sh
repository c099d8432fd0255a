#!/usr/bin/env bash
# On the GPU machine (device tool), from the repository root, with the bundle in .gpu/ (see tools/gpu/README.md):
# regenerates the HF golden fixtures, then runs every GPU test and the CPU golden tests against the new fixtures.
# Logs and the fixtures go to $OUT.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
# The test binaries carry this checkout's absolute paths (/work/main/...): make them valid here.
if [[ $PWD != /work/main ]]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
PYTHONUNBUFFERED=1 python3 tests/fixtures/make_fixtures.py --out tests/fixtures >"$OUT/fixtures.log" 2>&1 || { tail "$OUT/fixtures.log"; exit 1; }
rm -f tests/fixtures/models/*/generation_config.json
tar -czf "$OUT/fixtures.tgz" -C tests/fixtures .
status=0
for t in tessera_kernels_cuda_tests tessera_cuda_executor_tests tessera_generation_tests; do
  echo "=== $t"
  timeout 300 .gpu/bin/$t >"$OUT/$t.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|Failure" "$OUT/$t.log" | head -40
done
exit $status
