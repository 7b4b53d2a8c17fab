// train_dump: gradients and optimiser steps of the library, for the PyTorch
// oracle (test_train.py). Uses only the public C ABI.
//   train_dump grads MODEL BATCH_JSON OUT.safetensors
//   train_dump adamw MODEL BATCH_JSON TRAIN_PARAMS_JSON N_STEPS OUT.json
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rmkv.h"

using json = nlohmann::json;

namespace {

int die(const char *what) {
    std::fprintf(stderr, "train_dump: %s: %s\n", what, rmkv_last_error());
    return 1;
}

json read_json(const char *path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return json::parse(ss.str());
}

struct Batch {
    std::vector<int32_t> tokens, targets, lens;
    rmkv_batch b{};
    float dropout = 0.0f;  // with the trainer seed below (grads mode)
    uint64_t seed = 0;
};

void load_batch(Batch &B, const char *path) {
    json j = read_json(path);
    B.tokens = j["tokens"].get<std::vector<int32_t>>();
    B.targets = j["targets"].get<std::vector<int32_t>>();
    B.lens = j["segment_lens"].get<std::vector<int32_t>>();
    B.b.struct_size = sizeof B.b;
    B.b.batch_size = j["batch_size"].get<size_t>();
    B.b.n_tokens = j["n_tokens"].get<size_t>();
    B.b.tokens = B.tokens.data();
    B.b.targets = B.targets.data();
    B.b.n_segments = B.lens.size();
    B.b.segment_lens = B.lens.empty() ? nullptr : B.lens.data();
    B.dropout = j.value("dropout", 0.0f);
    B.seed = j.value("seed", static_cast<uint64_t>(0));
}

// Writes F32 tensors as a safetensors file (names and shapes from the model file's header).
void write_grads(const char *out, const std::vector<std::pair<std::string, std::vector<int64_t>>> &shapes,
                 const std::vector<std::vector<float>> &data, float loss) {
    json h = json::object();
    size_t off = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
        size_t bytes = data[i].size() * 4;
        h[shapes[i].first] = {{"dtype", "F32"}, {"shape", shapes[i].second}, {"data_offsets", {off, off + bytes}}};
        off += bytes;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", loss);
    h["__metadata__"] = {{"loss", buf}};
    std::string hs = h.dump();
    while ((8 + hs.size()) % 8) hs.push_back(' ');
    std::ofstream f(out, std::ios::binary);
    uint64_t n = hs.size();
    f.write(reinterpret_cast<const char *>(&n), 8);
    f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
    for (const auto &d : data) f.write(reinterpret_cast<const char *>(d.data()), static_cast<std::streamsize>(d.size() * 4));
}

std::vector<std::pair<std::string, std::vector<int64_t>>> tensor_shapes(const char *model_path) {
    std::ifstream f(model_path, std::ios::binary);
    uint64_t n = 0;
    f.read(reinterpret_cast<char *>(&n), 8);
    std::string hs(n, '\0');
    f.read(hs.data(), static_cast<std::streamsize>(n));
    json h = json::parse(hs);
    std::vector<std::pair<std::string, std::vector<int64_t>>> out;
    for (auto it = h.begin(); it != h.end(); ++it)
        if (it.key() != "__metadata__") out.push_back({it.key(), it.value()["shape"].get<std::vector<int64_t>>()});
    return out;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: train_dump grads MODEL BATCH_JSON OUT.safetensors\n"
                             "       train_dump adamw MODEL BATCH_JSON TRAIN_PARAMS_JSON N_STEPS OUT.json\n");
        return 2;
    }
    std::string mode = argv[1];
    rmkv_model *m = nullptr;
    if (rmkv_model_load(argv[2], nullptr, &m) != RMKV_OK) return die("load");
    Batch B;
    load_batch(B, argv[3]);
    rmkv_train_params tp = rmkv_train_default_params();
    tp.precision = RMKV_PRECISION_FP32;  // the oracle compares exact fp32 arithmetic
    tp.dropout = B.dropout;
    tp.seed = B.seed;
    if (mode == "adamw") {
        if (argc < 7) return 2;
        json j = read_json(argv[4]);
        tp.learning_rate = j["learning_rate"];
        tp.min_learning_rate = j["min_learning_rate"];
        tp.warmup_steps = j["warmup_steps"];
        tp.total_steps = j["total_steps"];
        tp.weight_decay = j["weight_decay"];
        tp.beta1 = j["beta1"];
        tp.beta2 = j["beta2"];
        tp.epsilon = j["epsilon"];
        tp.grad_clip = j["grad_clip"];
    }
    rmkv_trainer *t = nullptr;
    if (rmkv_trainer_new(m, &tp, &t) != RMKV_OK) return die("trainer");
    if (mode == "grads") {
        float loss = 0;
        if (rmkv_trainer_compute_gradients(t, &B.b, &loss) != RMKV_OK) return die("gradients");
        auto shapes = tensor_shapes(argv[2]);
        std::vector<std::vector<float>> data;
        for (auto &s : shapes) {
            size_t n = 0;
            rmkv_trainer_gradient(t, s.first.c_str(), nullptr, 0, &n);
            data.emplace_back(n);
            if (rmkv_trainer_gradient(t, s.first.c_str(), data.back().data(), n, &n) != RMKV_OK) return die(s.first.c_str());
        }
        write_grads(argv[4], shapes, data, loss);
    } else if (mode == "adamw") {
        int steps = std::atoi(argv[5]);
        json out = {{"losses", json::array()}, {"grad_norms", json::array()}};
        for (int i = 0; i < steps; ++i) {
            rmkv_train_stats st{};
            st.struct_size = sizeof st;
            if (rmkv_train_step(t, &B.b, &st) != RMKV_OK) return die("step");
            out["losses"].push_back(st.loss);
            out["grad_norms"].push_back(st.grad_norm);
        }
        std::ofstream(argv[6]) << out.dump();
    } else {
        return 2;
    }
    rmkv_trainer_free(t);
    rmkv_model_free(m);
    return 0;
}
