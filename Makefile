# Front door. `make demo` and `make test` install missing Debian packages,
# configure and build under build/, then run. Everything real lives in CMake.
PKGS := build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev \
        hdf5-tools libconfig-dev libopenblas-dev libturbojpeg0-dev libpng-dev
JOBS ?= $(shell nproc)
NVCC := $(shell command -v nvcc 2>/dev/null)
CMAKE_FLAGS ?=
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# libgomp's spinning workers starve OpenBLAS's own threads (README, Benchmark)
export OMP_WAIT_POLICY=PASSIVE

.PHONY: all deps build build-cpu build-cuda build-asan test demo clean

all: build

# Idempotent: apt-get runs only when dpkg reports a package missing.
deps:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "zsseg: installing missing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "zsseg: all Debian packages present"; fi

build-cpu: deps
	cmake -S . -B build/cpu -DZSSEG_CUDA=OFF -DZSSEG_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build/cpu -j $(JOBS)

build-asan: deps
	cmake -S . -B build/asan -DZSSEG_CUDA=OFF -DZSSEG_SANITIZE=ON -DZSSEG_WERROR=ON \
	  -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build build/asan -j $(JOBS)

build-cuda: deps
ifneq ($(NVCC),)
	cmake -S . -B build/cuda -DZSSEG_CUDA=ON -DZSSEG_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build/cuda -j $(JOBS)
else
	@echo "zsseg: nvcc not found, skipping the CUDA build"
endif

build: build-cpu

# Full suite on the CPU build; unit tests again under ASan+UBSan; the CUDA
# build's own tests (link check always; GPU-vs-CPU only where a GPU exists).
test: build-cpu build-cuda build-asan
	cd build/cpu && ctest --output-on-failure -j $(JOBS)
	cd build/asan && ctest --output-on-failure -j $(JOBS) -L unit
ifneq ($(NVCC),)
	cd build/cuda && ctest --output-on-failure -L cuda
endif

demo: build-cpu
	./build/cpu/zsseg config -c configs/synthetic_cagnet.cfg
	./build/cpu/zsseg train -c configs/synthetic_cagnet.cfg

clean:
	rm -rf build
