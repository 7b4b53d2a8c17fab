// cuBLASLt's calls of the CUDA backend (bias_gemm.h) on the host (see
// cuda_runtime.h here): D = alpha op(A) op(B) + beta C, + the bias vector on
// every column with CUBLASLT_EPILOGUE_BIAS, as cuBLASLt documents it. The
// matrix layouts are checked against the operation (op(A) m x k, op(B) k x n,
// C and D m x n, leading dimensions), so a layout that does not describe the
// product fails with CUBLAS_STATUS_INVALID_VALUE.
#pragma once

#include <cstdint>
#include <cstring>

#include "cublas_v2.h"

enum cublasLtMatmulDescAttributes_t {
    CUBLASLT_MATMUL_DESC_TRANSA,
    CUBLASLT_MATMUL_DESC_TRANSB,
    CUBLASLT_MATMUL_DESC_EPILOGUE,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER,
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
};
enum cublasLtMatmulPreferenceAttributes_t {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
};
enum cublasLtEpilogue_t { CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_BIAS = 4 };

struct cublasLtContext {};
struct cublasLtMatmulDescOpaque {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const float *bias = nullptr;
    cudaDataType_t bias_type = CUDA_R_32F;
};
struct cublasLtMatrixLayoutOpaque {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque {};
using cublasLtHandle_t = cublasLtContext *;
using cublasLtMatmulDesc_t = cublasLtMatmulDescOpaque *;
using cublasLtMatrixLayout_t = cublasLtMatrixLayoutOpaque *;
using cublasLtMatmulPreference_t = cublasLtMatmulPreferenceOpaque *;
struct cublasLtMatmulAlgo_t {
    uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
};

inline cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new cublasLtContext;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                               cudaDataType_t scale) {
    *d = new cublasLtMatmulDescOpaque{compute, scale};
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                                                     const void *buf, size_t size) {
    auto take = [&](auto &field) {
        if (size != sizeof field) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(&field, buf, size);
        return CUBLAS_STATUS_SUCCESS;
    };
    switch (a) {
        case CUBLASLT_MATMUL_DESC_TRANSA: return take(d->ta);
        case CUBLASLT_MATMUL_DESC_TRANSB: return take(d->tb);
        case CUBLASLT_MATMUL_DESC_EPILOGUE: return take(d->epilogue);
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return take(d->bias);
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return take(d->bias_type);
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}
inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows,
                                                 uint64_t cols, int64_t ld) {
    if (ld < static_cast<int64_t>(rows > 1 ? rows : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    *l = new cublasLtMatrixLayoutOpaque{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new cublasLtMatmulPreferenceOpaque;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                           const void *, size_t) {
    return CUBLAS_STATUS_SUCCESS;
}

namespace host_cuda {
// The m, n, k of a product whose layouts agree with its operation, or false.
inline bool product_shape(const cublasLtMatmulDescOpaque &d, const cublasLtMatrixLayoutOpaque &a,
                          const cublasLtMatrixLayoutOpaque &b, const cublasLtMatrixLayoutOpaque &c,
                          const cublasLtMatrixLayoutOpaque &dd, int64_t &m, int64_t &n, int64_t &k) {
    m = static_cast<int64_t>(d.ta == CUBLAS_OP_N ? a.rows : a.cols);
    k = static_cast<int64_t>(d.ta == CUBLAS_OP_N ? a.cols : a.rows);
    const int64_t kb = static_cast<int64_t>(d.tb == CUBLAS_OP_N ? b.rows : b.cols);
    n = static_cast<int64_t>(d.tb == CUBLAS_OP_N ? b.cols : b.rows);
    return kb == k && static_cast<int64_t>(c.rows) == m && static_cast<int64_t>(c.cols) == n &&
           static_cast<int64_t>(dd.rows) == m && static_cast<int64_t>(dd.cols) == n && c.type == CUDA_R_32F &&
           dd.type == CUDA_R_32F && a.type == b.type;
}
}  // namespace host_cuda

inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                                     cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                                     cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t, int requested,
                                                     cublasLtMatmulHeuristicResult_t *results, int *returned) {
    int64_t m, n, k;
    *returned = 0;
    if (requested < 1 || !host_cuda::product_shape(*d, *a, *b, *c, *dd, m, n, k)) return CUBLAS_STATUS_INVALID_VALUE;
    results[0] = cublasLtMatmulHeuristicResult_t{};
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                                     cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                                     const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t dd,
                                     const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t stream) {
    int64_t m, n, k;
    if (!host_cuda::product_shape(*d, *a, *b, *c, *dd, m, n, k)) return CUBLAS_STATUS_INVALID_VALUE;
    const bool bias = d->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (bias && (!d->bias || d->bias_type != CUDA_R_32F)) return CUBLAS_STATUS_INVALID_VALUE;
    return host_cuda::product(stream, d->ta == CUBLAS_OP_T, d->tb == CUBLAS_OP_T, m, n, k, *static_cast<const float *>(alpha),
                              A, a->type, a->ld, B, b->type, b->ld, *static_cast<const float *>(beta),
                              static_cast<const float *>(C), c->ld, static_cast<float *>(D), dd->ld,
                              bias ? d->bias : nullptr);
}
