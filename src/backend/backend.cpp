#include "backend/backend.h"

#include <dlfcn.h>

#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace rmkv {

namespace {

[[noreturn]] void plugin_fail(int status, const char *message) {
    throw Error(static_cast<rmkv_status>(status), message ? message : "CUDA backend error");
}

// The folder of the object holding this code (librmkv), with a trailing slash.
std::string own_folder() {
    Dl_info info;
    if (!dladdr(reinterpret_cast<void *>(&plugin_fail), &info) || !info.dli_fname) return {};
    std::string path = info.dli_fname;
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// Loads librmkv_cuda.so once per process; the handle stays open for good.
CudaBackendNewFn load_cuda_plugin() {
    static CudaBackendNewFn entry = nullptr;
    if (entry) return entry;
    std::string tried;
    void *handle = nullptr;
    auto attempt = [&](const std::string &path) {
        if (handle || path.empty()) return;
        handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *why = dlerror();
            tried += "\n  " + path + ": " + (why ? why : "cannot load");
        }
    };
    const char *env = std::getenv("RMKV_CUDA_PLUGIN");
    if (env && *env) {
        attempt(env);
        if (!handle)
            fail(RMKV_ERR_BACKEND, "device 'cuda': cannot load the CUDA backend plugin named by RMKV_CUDA_PLUGIN:", tried);
    }
    std::string folder = own_folder();
    if (!folder.empty()) attempt(folder + "librmkv_cuda.so");
    attempt("librmkv_cuda.so");
    if (!handle)
        fail(RMKV_ERR_BACKEND,
             "device 'cuda': the CUDA backend plugin librmkv_cuda.so is not installed or cannot be loaded (build with "
             "-DRMKV_CUDA=ON on a machine with the CUDA toolkit and install it next to librmkv, or set RMKV_CUDA_PLUGIN); tried:",
             tried);
    void *sym = dlsym(handle, "rmkv_cuda_backend_new");
    if (!sym) fail(RMKV_ERR_BACKEND, "device 'cuda': librmkv_cuda.so has no entry point rmkv_cuda_backend_new");
    entry = reinterpret_cast<CudaBackendNewFn>(sym);
    return entry;
}

}  // namespace

std::shared_ptr<Backend> get_backend(const std::string &device) {
    static std::mutex mutex;
    static std::shared_ptr<Backend> cpu;
    static std::map<int, std::shared_ptr<Backend>> cuda;
    std::lock_guard<std::mutex> lock(mutex);
    if (device.empty() || device == "cpu") {
        if (!cpu) cpu = make_cpu_backend();
        return cpu;
    }
    if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
        int index = 0;
        if (device.size() > 4) {
            const std::string digits = device.substr(5);
            bool ok = !digits.empty() && digits.size() <= 4;
            for (char ch : digits) ok = ok && std::isdigit(static_cast<unsigned char>(ch));
            if (!ok) fail(RMKV_ERR_INVALID_ARGUMENT, "device '", device, "': the index after \"cuda:\" must be a number (\"cuda:0\")");
            index = std::stoi(digits);
        }
        auto it = cuda.find(index);
        if (it != cuda.end()) return it->second;
        CudaBackendNewFn entry = load_cuda_plugin();
        std::shared_ptr<Backend> be(entry(kCudaPluginAbi, index, &plugin_fail));
        cuda.emplace(index, be);
        return be;
    }
    fail(RMKV_ERR_INVALID_ARGUMENT, "device '", device, "' is not one of \"cpu\", \"cuda\", \"cuda:N\"");
}

}  // namespace rmkv
