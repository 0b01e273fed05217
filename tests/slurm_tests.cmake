# slurm/*.sbatch on a real one-node SLURM started by the test itself (label
# "slurm"): SLURM's time-limit signal (--time=1 --signal) and scancel's,
# checkpoint, requeue and exact resume under srun and mpirun. Needs root,
# slurm-wlm and munge (Makefile PKGS); skipped (77), saying why, without root
# or slurm-wlm or when the daemons do not start. Included from
# tests/CMakeLists.txt. RUN_SERIAL: it owns SLURM's ports and the CPUs, and
# its timing matters. ~90 s on 2 cores.
add_test(NAME slurm_train_requeue
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/slurm_test.sh $<TARGET_FILE:zsseg>
                 $<TARGET_FILE:h5_compare> ${CMAKE_CURRENT_BINARY_DIR}/slurm_train_requeue)
set_tests_properties(slurm_train_requeue PROPERTIES LABELS slurm TIMEOUT 300 RUN_SERIAL TRUE
                     SKIP_RETURN_CODE 77 ENVIRONMENT "${ZSSEG_TEST_ENV}")
