# Multi-rank tests run under mpirun; label "mpi". Included from
# tests/CMakeLists.txt after ZSSEG_TEST_ENV is set.

# Loader sharding: for R = 1, 2, 3 ranks the gathered slices of each global
# batch (6 samples) equal the batch rank 0 loads alone, bytes included.
add_executable(mpi_loader_shard ${CMAKE_CURRENT_SOURCE_DIR}/mpi_loader_shard.c)
target_include_directories(mpi_loader_shard PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mpi_loader_shard PRIVATE zsseg_core)
foreach(np 1 2 3)
  add_test(NAME mpi_loader_shard_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_loader_shard> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_loader_shard_np${np} PROPERTIES LABELS mpi TIMEOUT 120
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endforeach()

# Confusion matrix: for R = 1, 2, 3 ranks the allreduced sum of the ranks'
# shares equals the brute-force count of the whole label map on every rank.
add_executable(mpi_metrics ${CMAKE_CURRENT_SOURCE_DIR}/mpi_metrics.c)
target_include_directories(mpi_metrics PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mpi_metrics PRIVATE zsseg_core)
foreach(np 1 2 3)
  add_test(NAME mpi_metrics_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_metrics> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_metrics_np${np} PROPERTIES LABELS mpi TIMEOUT 60
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endforeach()

# Distributed primitives: for R = 1, 2, 3 ranks, bucketed gradient sums equal
# the hand sums bitwise on every rank for any bucket size, ranges stay inside
# their ranges, broadcasts and the control record arrive intact.
add_executable(mpi_dist ${CMAKE_CURRENT_SOURCE_DIR}/mpi_dist.c)
target_include_directories(mpi_dist PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mpi_dist PRIVATE zsseg_core)
foreach(np 1 2 3)
  add_test(NAME mpi_dist_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_dist> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_dist_np${np} PROPERTIES LABELS mpi TIMEOUT 60
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endforeach()
# CaGNet's steps: for R = 1, 2, 3 ranks, losses and rank-summed gradients of
# step1, step2 and mixed step1 equal the single-process global batch, and the
# parameters stay equal over the updates (three content/MSC variants).
add_executable(mpi_cagnet ${CMAKE_CURRENT_SOURCE_DIR}/mpi_cagnet.c)
target_include_directories(mpi_cagnet PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mpi_cagnet PRIVATE zsseg_core)
foreach(np 1 2 3)
  add_test(NAME mpi_cagnet_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_cagnet> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_cagnet_np${np} PROPERTIES LABELS mpi TIMEOUT 300
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endforeach()

# Divergence: rank 1 moves one parameter by one ulp; the job must abort with
# the documented message (its exit status is non-zero, so match the text).
foreach(np 2 3)
  add_test(NAME mpi_dist_diverge_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_dist> ${MPIEXEC_POSTFLAGS} --diverge)
  set_tests_properties(mpi_dist_diverge_np${np} PROPERTIES LABELS mpi TIMEOUT 60
    ENVIRONMENT "${ZSSEG_TEST_ENV}"
    PASS_REGULAR_EXPRESSION
      "parameters diverged at iteration 17: rank 1 checksum [0-9a-f]+ differs from rank 0's [0-9a-f]+ \\(1 of ${np} ranks differ\\)"
    FAIL_REGULAR_EXPRESSION "checks passed")
endforeach()

# Features store: for R = 1, 2, 3 ranks the collectively written HDF5 file
# equals the one-rank file bit for bit, whose rows equal a serial
# recomputation; --max-per-class keeps min(N_c, cap) rows by the seeded rule.
add_executable(mpi_extract ${CMAKE_CURRENT_SOURCE_DIR}/mpi_extract.c)
target_include_directories(mpi_extract PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(mpi_extract PRIVATE zsseg_core)
foreach(np 1 2 3)
  add_test(NAME mpi_extract_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                   ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_extract> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_extract_np${np} PROPERTIES LABELS mpi TIMEOUT 120
                       ENVIRONMENT "${ZSSEG_TEST_ENV}")
endforeach()
