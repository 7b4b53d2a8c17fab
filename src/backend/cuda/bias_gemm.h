// Matrix products with their bias added by cuBLASLt's epilogue
// (CUBLASLT_EPILOGUE_BIAS), where the product and the bias were two passes over
// the output (cublasGemmEx, then an add_bias kernel): the q, k, v and o
// projections and the recurrent cells' products. One per CudaStream (a stream's
// products come from one thread at a time), with its own cuBLASLt handle.
//
// Each shape (transposes, sizes, leading dimensions, input type, and the
// alignment of every pointer, which cuBLASLt's choice of kernel depends on) is
// planned once: descriptors, layouts and the heuristic's first algorithm, kept
// for the stream's life. A shape cuBLASLt cannot run (no algorithm, or a failing
// call) is remembered as such, and run() returns false without queueing
// anything: the caller runs the product and the bias the other way. Same
// arithmetic as cublasGemmEx with CUBLAS_COMPUTE_32F (fp32 accumulation; no TF32
// for fp32 inputs), then + bias in fp32.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "backend/cuda/replay.h"

namespace rmkv::cuda {

class BiasGemm {
public:
    BiasGemm() = default;
    BiasGemm(const BiasGemm &) = delete;
    BiasGemm &operator=(const BiasGemm &) = delete;
    ~BiasGemm() {
        for (auto &kv : plans_) release(kv.second);
        if (lt_) cublasLtDestroy(lt_);
    }

    // The cuBLASLt handle, made when the stream is (not while a stream is being
    // captured, which the calls of its making may not be), and the stream's
    // workspace: ws bytes of device memory, used in stream order. Without a
    // handle, run() always returns false.
    void create(void *workspace, size_t ws) {
        if (!lt_ && cublasLtCreate(&lt_) != CUBLAS_STATUS_SUCCESS) lt_ = nullptr;
        workspace_ = workspace, ws_ = ws;
    }

    // Column-major C[m, n] (+)= op(A) op(B) + bias[m] broadcast over the columns;
    // A and B bf16 (bf16) or fp32, C and bias fp32.
    bool run(cudaStream_t stream, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
             const void *A, int64_t lda, const void *B, int64_t ldb, float *C, int64_t ldc, const float *bias,
             bool accumulate, bool bf16) {
        if (!lt_) return false;
        const Key key{ta, tb, m, n, k, lda, ldb, ldc, bf16, alignment(A), alignment(B), alignment(C), alignment(bias)};
        auto it = plans_.find(key);
        if (it == plans_.end()) it = plans_.emplace(key, plan(key, bias)).first;
        Plan &p = it->second;
        if (!p.ok) return false;
        const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        if (!queues(this, &p, stream, A, B, C, bias, accumulate)) return true;  // a check (replay.h): as recorded
        if (cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmul(lt_, p.op, &alpha, A, p.a, B, p.b, &beta, C, p.c, C, p.c, &p.algo, workspace_, ws_, stream) !=
                CUBLAS_STATUS_SUCCESS) {
            release(p);  // never again for this shape
            return false;
        }
        return true;
    }

private:
    // ta, tb, m, n, k, lda, ldb, ldc, bf16, the alignments of A, B, C and the bias.
    using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, uint32_t, uint32_t,
                           uint32_t, uint32_t>;
    struct Plan {
        bool ok = false;
        cublasLtMatmulDesc_t op = nullptr;
        cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
        cublasLtMatmulAlgo_t algo{};
    };
    // The largest power of two up to 256 that divides the address.
    static uint32_t alignment(const void *p) {
        const uintptr_t u = reinterpret_cast<uintptr_t>(p);
        uint32_t a = 1;
        while (a < 256 && u % (2 * a) == 0) a *= 2;
        return a;
    }
    static void release(Plan &p) {
        if (p.a) cublasLtMatrixLayoutDestroy(p.a);
        if (p.b) cublasLtMatrixLayoutDestroy(p.b);
        if (p.c) cublasLtMatrixLayoutDestroy(p.c);
        if (p.op) cublasLtMatmulDescDestroy(p.op);
        p = Plan{};
    }
    Plan plan(const Key &key, const float *bias) {
        const auto [ta_, tb_, m, n, k, lda, ldb, ldc, bf16, align_a, align_b, align_c, align_bias] = key;
        const cublasOperation_t ta = static_cast<cublasOperation_t>(ta_), tb = static_cast<cublasOperation_t>(tb_);
        const cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
        Plan p;
        const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        const cudaDataType_t bias_type = CUDA_R_32F;
        cublasLtMatmulPreference_t pref = nullptr;
        cublasLtMatmulHeuristicResult_t result{};
        int found = 0;
        const uint32_t align_d = align_c;
        const uint64_t ws_bytes = ws_;
        bool ok =
            cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) ==
                CUBLAS_STATUS_SUCCESS &&
            // Stored shapes: op(A) is m x k, op(B) k x n.
            cublasLtMatrixLayoutCreate(&p.a, in, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&p.b, in, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, m, n, ldc) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                 sizeof ws_bytes) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                 sizeof align_a) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                 sizeof align_b) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                 sizeof align_c) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                                 sizeof align_d) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoGetHeuristic(lt_, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found) ==
                CUBLAS_STATUS_SUCCESS &&
            found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
        (void)align_bias;  // in the key only: the heuristic reads the bias pointer's alignment from the descriptor
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (!ok) {
            release(p);
            return p;
        }
        p.algo = result.algo;
        p.ok = true;
        return p;
    }

    cublasLtHandle_t lt_ = nullptr;
    void *workspace_ = nullptr;
    size_t ws_ = 0;
    std::map<Key, Plan> plans_;
};

}  // namespace rmkv::cuda
