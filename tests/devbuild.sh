#!/usr/bin/env bash
# Quick standalone build of one test while developing (no CMake, no other
# modules): tests/devbuild.sh tests/test_conv.c src/conv.c [more sources...]
# Builds /tmp/zsseg-dev/<test name> and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
test_src=$1; shift
name=$(basename "$test_src" .c)
mkdir -p /tmp/zsseg-dev
mpicc -std=gnu11 -O2 -g -Wall -Wextra -Werror -fopenmp -Isrc -Itests -DZSSEG_SOURCE_DIR="\"$PWD\"" \
  $(pkg-config --cflags hdf5-openmpi openblas libconfig libturbojpeg libpng) \
  "$test_src" "$@" src/common.c \
  $(pkg-config --libs hdf5-openmpi openblas libconfig libturbojpeg libpng) -lm -o /tmp/zsseg-dev/$name
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 /tmp/zsseg-dev/$name
