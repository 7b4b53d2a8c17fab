#include "backend/backend.h"

#include <mutex>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace rmkv {

#ifdef RMKV_WITH_CUDA
std::shared_ptr<Backend> make_cuda_backend(int device_index);  // backend/cuda/
#endif

std::shared_ptr<Backend> get_backend(const std::string &device) {
    static std::mutex mutex;
    static std::shared_ptr<Backend> cpu;
    std::lock_guard<std::mutex> lock(mutex);
    if (device.empty() || device == "cpu") {
        if (!cpu) cpu = make_cpu_backend();
        return cpu;
    }
    if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
#ifdef RMKV_WITH_CUDA
        int index = 0;
        if (device.size() > 5) {
            try { index = std::stoi(device.substr(5)); } catch (...) { fail(RMKV_ERR_INVALID_ARGUMENT, "device '", device, "': bad device index"); }
        }
        return make_cuda_backend(index);
#else
        fail(RMKV_ERR_BACKEND, "device '", device, "': this librmkv was built without the CUDA backend (configure with -DRMKV_CUDA=ON)");
#endif
    }
    fail(RMKV_ERR_INVALID_ARGUMENT, "device '", device, "' is not one of \"cpu\", \"cuda\", \"cuda:N\"");
}

}  // namespace rmkv
