# slurm/*.sbatch on a real one-node SLURM started by the test itself (label
# "slurm"): signal, checkpoint, requeue and exact resume under srun and mpirun.
# Needs root and slurm-wlm (Makefile PKGS); skipped (77) otherwise. Included
# from tests/CMakeLists.txt. RUN_SERIAL: it owns SLURM's ports and the CPUs.
add_test(NAME slurm_train_requeue
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/slurm_train_requeue)
set_tests_properties(slurm_train_requeue PROPERTIES LABELS slurm TIMEOUT 400 RUN_SERIAL TRUE
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${ZSSEG_TEST_ENV}")
