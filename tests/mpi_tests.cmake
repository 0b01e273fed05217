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
