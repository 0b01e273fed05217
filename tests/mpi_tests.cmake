# Multi-rank tests run under mpirun; label "mpi". Included from
# tests/CMakeLists.txt after ZSSEG_TEST_ENV is set.

# Run the executable target NAME under mpirun with each rank count given
# after the timeout (tests NAME_npR, label mpi).
function(zsseg_mpi_runs name timeout)
  foreach(np ${ARGN})
    add_test(NAME ${name}_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe
                     ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${name}> ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${name}_np${np} PROPERTIES LABELS mpi TIMEOUT ${timeout}
                         ENVIRONMENT "${ZSSEG_TEST_ENV}")
  endforeach()
endfunction()

# tests/NAME.c as one executable, run with 1, 2 and 3 ranks.
function(zsseg_mpi_test name timeout)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE zsseg_core)
  zsseg_mpi_runs(${name} ${timeout} 1 2 3)
endfunction()

# Loader sharding: for R = 1, 2, 3 ranks the gathered slices of each global
# batch (6 samples) equal the batch rank 0 loads alone, bytes included.
zsseg_mpi_test(mpi_loader_shard 120)

# Confusion matrix: for R = 1, 2, 3 ranks the allreduced sum of the ranks'
# shares equals the brute-force count of the whole label map on every rank.
zsseg_mpi_test(mpi_metrics 60)

# Distributed primitives: for R = 1, 2, 3 ranks, bucketed gradient sums equal
# the hand sums bitwise on every rank for any bucket size, ranges stay inside
# their ranges, broadcasts and the control record arrive intact.
zsseg_mpi_test(mpi_dist 60)
# CaGNet's steps: for R = 1, 2, 3 ranks, losses and rank-summed gradients of
# step1, step2 and mixed step1 equal the single-process global batch, and the
# parameters stay equal over the updates (three content/MSC variants).
zsseg_mpi_test(mpi_cagnet 300)

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
zsseg_mpi_test(mpi_extract 120)

# zs3 thresholds: for R = 1, 2, 3 ranks (one rank may hold no candidates) the
# two-pass histogram selection equals the one-process result and a brute-force
# sort bit for bit, with ties and values sharing their top 16 bits.
zsseg_mpi_test(mpi_selftrain 60)

# Self-training round file: for R = 1, 2, 3 ranks writing uneven slices
# collectively (one rank may write none), every rank reads back the round bit
# for bit, equal to the file one rank writes alone; no .tmp is left.
zsseg_mpi_test(mpi_st_store 60)
