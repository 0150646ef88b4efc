/* The one place that includes the OpenCL headers, at the API level dfrcl targets. */
#ifndef DFRCL_CL_CLINC_H
#define DFRCL_CL_CLINC_H
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif
#endif
