# cmake -DNM=... -DOBJDUMP=... -DBINARY=... -DNO_LIBCUDA="bin1;bin2" -P check_symbols.cmake
# Proves the CUDA half really calls cuDNN, cuBLAS, NCCL and the runtime: each
# symbol must appear in BINARY's symbol table as undefined (a dynamic import)
# or defined (linked statically). BINARY is test_cuda_ops, which calls every
# CUDA op; the zsseg executable would not do, since the linker keeps only the
# archive members its main() reaches.
# Also checks that no binary in NO_LIBCUDA needs libcuda.so (the driver
# library): with it, the program would not even start on a machine without a
# driver.
cmake_minimum_required(VERSION 3.25)  # IN_LIST in script mode

set(required
    cudnnConvolutionForward cudnnConvolutionBackwardData cudnnConvolutionBackwardFilter
    cudnnConvolutionBackwardBias cudnnGetConvolutionForwardAlgorithm_v7
    cublasSgemm_v2 cublasGemmEx
    ncclCommInitRank ncclAllReduce
    cudaMalloc cudaMemcpy cudaStreamCreate)

execute_process(COMMAND ${NM} ${BINARY} OUTPUT_VARIABLE syms RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} ${BINARY} failed (${rc}): ${err}\nBuild the test executables first.")
endif()
# one "[addr] TYPE name[@version]" line per symbol
string(REPLACE "\n" ";" lines "${syms}")
set(found "")
foreach(line IN LISTS lines)
  if(line MATCHES "[ \t]([UTtWw])[ \t]+([A-Za-z_][A-Za-z0-9_]*)(@.*)?$")
    list(APPEND found ${CMAKE_MATCH_2})
  endif()
endforeach()
set(missing "")
foreach(sym IN LISTS required)
  if(NOT sym IN_LIST found)
    list(APPEND missing ${sym})
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "${BINARY} does not reference: ${missing}")
endif()
list(LENGTH required n)
message(STATUS "${BINARY}: all ${n} CUDA library symbols referenced")

foreach(bin IN LISTS NO_LIBCUDA)
  execute_process(COMMAND ${OBJDUMP} -p ${bin} OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${OBJDUMP} -p ${bin} failed (${rc})")
  endif()
  if(dyn MATCHES "NEEDED[ \t]+libcuda\\.so")
    message(FATAL_ERROR "${bin} links libcuda.so (the driver library): it would not start on "
                        "machines without an NVIDIA driver. Link CUDA::cudart only.")
  endif()
  message(STATUS "${bin}: no libcuda.so")
endforeach()
