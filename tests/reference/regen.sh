#!/usr/bin/env bash
# Regenerate tests/fixtures/*.h5 from the PyTorch reference: self-tests first
# (Philox vs the C functions, finite differences), then the fixtures.
# Needs python3 with torch, h5py, numpy, and gcc (the RNG self-test compiles
# src/hd_math.h). Extra arguments go to make_fixtures.py (--only, --no-check64).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tests/reference/reference.py --selftest
python3 tests/reference/make_fixtures.py "$@"
ls -l tests/fixtures
