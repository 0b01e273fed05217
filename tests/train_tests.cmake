# End-to-end training tests: the zsseg binary under mpirun on a tiny synthetic
# dataset (label "train"). Included from tests/CMakeLists.txt.

add_executable(h5_compare ${CMAKE_CURRENT_SOURCE_DIR}/h5_compare.c)
target_link_libraries(h5_compare PRIVATE zsseg_core)

# World-size independence: 1, 2 and 3 ranks, same global batch.
add_test(NAME train_world_size_equivalence
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_equiv.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/train_equiv)
set_tests_properties(train_world_size_equivalence PROPERTIES LABELS "train;mpi" TIMEOUT 600
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# Coordinator: every rank follows the same forced step-kind sequence.
add_test(NAME train_coordinator_trace
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_trace.sh $<TARGET_FILE:zsseg>
                 ${CMAKE_CURRENT_BINARY_DIR}/train_trace)
set_tests_properties(train_coordinator_trace PROPERTIES LABELS "train;mpi" TIMEOUT 300
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# Exact resume after SIGTERM / SIGKILL, on the same and another world size,
# past damaged checkpoints; config changes refused (issue 6).
add_test(NAME train_resume_exact
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_resume.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/train_resume)
set_tests_properties(train_resume_exact PROPERTIES LABELS "train;mpi" TIMEOUT 600
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# Non-finite values stop every rank without saving the bad state; a resume
# re-exports the model files; one run per directory (issue 13).
add_test(NAME train_faults
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_faults.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/train_faults)
set_tests_properties(train_faults PROPERTIES LABELS "train;mpi" TIMEOUT 300
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# run.device = cuda in a build without the CUDA backend: refused before
# training (the CUDA build's tests/gpu cover the GPU cases).
if(NOT ZSSEG_USE_CUDA)
  add_test(NAME train_device_cuda_without_backend
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_device.sh nobackend $<TARGET_FILE:zsseg>
                   ${CMAKE_CURRENT_BINARY_DIR}/train_device)
  set_tests_properties(train_device_cuda_without_backend PROPERTIES LABELS "train;cli" TIMEOUT 120
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endif()

# Self-training rounds: files equal across rank counts per mode, exact resume
# when stopped while labelling and inside a round, a damaged round file.
add_test(NAME train_selftrain
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_selftrain.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/train_selftrain)
set_tests_properties(train_selftrain PROPERTIES LABELS "train;mpi" TIMEOUT 600
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# SIGKILL of rank 0 before and after each rename/fsync/unlink of a tiny run
# (tests/fault/kill_shim.c preloaded), then --resume auto: exit 0, DONE,
# model.h5 and model_<stage>.h5 bitwise, ckpt verify (issue 13).
add_test(NAME train_killpoints
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_killpoints.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> $<TARGET_FILE:kill_shim>
                 ${CMAKE_CURRENT_BINARY_DIR}/train_killpoints)
set_tests_properties(train_killpoints PROPERTIES LABELS "train;mpi" TIMEOUT 600
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# Disk full (ulimit -f, and a small tmpfs where mounting is allowed) at the
# config, metrics log, checkpoint and model.h5 writes: exit 1 naming the file,
# earlier checkpoints intact, --resume auto finishes (issue 13).
add_test(NAME train_diskfull
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_diskfull.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/train_diskfull)
set_tests_properties(train_diskfull PROPERTIES LABELS "train" TIMEOUT 300
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")

# Stopping by a signal (issue 13): SIGINT, SIGTERM, SIGUSR1 to the launcher
# (slurm/zsseg-mpirun) and SIGTERM to one rank end in a checkpoint of the
# current iteration and exit 0; exact resume; two SIGINTs exit 130. ~30 s.
add_test(NAME train_signals
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/train_signals.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/train_signals)
set_tests_properties(train_signals PROPERTIES LABELS "train;mpi" TIMEOUT 180
                     ENVIRONMENT "${ZSSEG_TEST_ENV}")
