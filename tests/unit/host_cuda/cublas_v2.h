// cuBLAS's calls of the CUDA backend on the host (see cuda_runtime.h here): the
// column-major products as cuBLAS documents them, C = alpha op(A) op(B) + beta C
// (C not read when beta is 0), queued on the handle's stream, with cuBLAS's
// checks of the sizes and leading dimensions (CUBLAS_STATUS_INVALID_VALUE), so
// that the backend's mapping of its row-major operations onto them is put to the
// test. Sums in double, rounded to float once. A and B of CUDA_R_16BF are bf16
// bit patterns.
#pragma once

#include <cstdint>

#include "cuda_runtime.h"

using cublasHandle_t = struct cublasContext *;
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };

struct cublasContext {
    cudaStream_t stream = nullptr;
};

inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
inline const char *cublasGetStatusName(cublasStatus_t s) {
    return s == CUBLAS_STATUS_INVALID_VALUE ? "CUBLAS_STATUS_INVALID_VALUE" : "CUBLAS_STATUS_(emulated)";
}
inline const char *cublasGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_INVALID_VALUE ? "an invalid size or leading dimension" : "emulated status";
}

namespace host_cuda {

inline float element(const void *p, cudaDataType_t type, int64_t i) {
    if (type == CUDA_R_32F) return static_cast<const float *>(p)[i];
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t *>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Column-major D[m, n] = alpha op(A) op(B) + beta C (+ bias[i] on row i), the
// checks of cuBLAS first: op(A) is m x k stored with lda >= its stored rows, and
// so on. C and D may be the same. Queued on `stream` (run now, or kept by its
// capture).
inline cublasStatus_t product(cudaStream_t stream, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const void *A,
                              cudaDataType_t at, int64_t lda, const void *B, cudaDataType_t bt, int64_t ldb, float beta,
                              const float *C, int64_t ldc, float *D, int64_t ldd, const float *bias) {
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
    if (lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1) ||
        ldd < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if ((at != CUDA_R_32F && at != CUDA_R_16BF) || bt != at) return CUBLAS_STATUS_NOT_SUPPORTED;
    tally(at == CUDA_R_16BF ? "product (bf16)" : "product (fp32)");
    queue(stream, [=] {
        for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < m; ++i) {
                double sum = 0;
                for (int64_t p = 0; p < k; ++p)
                    sum += static_cast<double>(element(A, at, ta ? p + i * lda : i + p * lda)) *
                           element(B, bt, tb ? j + p * ldb : p + j * ldb);
                double v = static_cast<double>(alpha) * sum;
                if (beta != 0.0f) v += static_cast<double>(beta) * C[i + j * ldc];
                if (bias) v += bias[i];
                D[i + j * ldd] = static_cast<float>(v);
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace host_cuda

inline cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                                   cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                                   cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    float *c = static_cast<float *>(C);
    return host_cuda::product(h->stream, ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, *static_cast<const float *>(alpha),
                              A, at, lda, B, bt, ldb, *static_cast<const float *>(beta), c, ldc, c, ldc, nullptr);
}

inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const float *alpha, const float *A, int lda,
                                                long long sa, const float *B, int ldb, long long sb, const float *beta,
                                                float *C, int ldc, long long sc, int batch) {
    for (int b = 0; b < batch; ++b) {
        const cublasStatus_t s = host_cuda::product(h->stream, ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, *alpha, A + b * sa,
                                                    CUDA_R_32F, lda, B + b * sb, CUDA_R_32F, ldb, *beta, C + b * sc,
                                                    ldc, C + b * sc, ldc, nullptr);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}
