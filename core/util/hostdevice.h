// QUANTD_HD marks functions that compile for host and device: headers shared
// by core/ (plain C++) and kernels/cuda/ (nvcc) use it.
#ifndef QUANTD_CORE_UTIL_HOSTDEVICE_H_
#define QUANTD_CORE_UTIL_HOSTDEVICE_H_

#if defined(__CUDACC__)
#define QUANTD_HD __host__ __device__ __forceinline__
#else
#define QUANTD_HD inline
#endif

#endif  // QUANTD_CORE_UTIL_HOSTDEVICE_H_
