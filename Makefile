# Front door. `make demo` and `make test` install missing Debian packages,
# configure and build under build/, then run. Everything real lives in CMake.
PKGS := build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev \
        hdf5-tools libconfig-dev libopenblas-dev libturbojpeg0-dev libpng-dev python3 \
        slurm-wlm munge
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
	cd build/cuda && ctest --output-on-failure -L gpu
endif

# Synthetic data (generated once), 2-rank training through step1 and mixed
# with evaluations at each stage's end, then predictions for three test
# images. The run directory runs/demo is the demo's own and is replaced.
DEMO_CFG := configs/synthetic_cagnet.cfg
DEMO_RUN := runs/demo
demo: build-cpu
	@test -f data/synthetic/SYNTH_DONE || ./build/cpu/zsseg synth -c $(DEMO_CFG)
	rm -rf $(DEMO_RUN)
	slurm/zsseg-mpirun -np 2 ./build/cpu/zsseg train -c $(DEMO_CFG) --run-dir $(DEMO_RUN)
	./build/cpu/zsseg predict -c $(DEMO_CFG) --set run.out_dir='"$(DEMO_RUN)"' \
	  $$(ls data/synthetic/images/val2017/*.jpg | head -3)
	@echo; echo "zsseg demo: run directory $(DEMO_RUN): config.cfg, model.h5, metrics.jsonl, tb/,"; \
	echo "  eval/ (per-class tables), predictions/ (segmentation, overlay and legend per image)"; \
	for f in $(DEMO_RUN)/eval/eval_*.txt; do \
	  it=$$(basename $$f .txt | sed 's/eval_0*//'); echo "after iteration $$it: $$(tail -1 $$f)"; \
	done

clean:
	rm -rf build
