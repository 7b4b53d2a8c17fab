// rmkv train: pretraining and finetuning driven by a JSON config and flags, on the
// public ABI (trainer, data pipeline, checkpoints). rmkv state-tune: the same loop
// training only the initial memories of a model (rmkv_state_tuner_new); its result,
// written to --out as state.rmkvs (every checkpoint_every steps and at the end), is a
// state file that sessions of the model load as their starting point. Writes into --out:
//   checkpoint-latest.ckpt      every --checkpoint-every steps and at the end (atomic)
//   checkpoint-<step>.ckpt      when --keep-checkpoints is set
//   model.safetensors           the final model
//   metrics.jsonl               one line per logged step and per evaluation
// A run killed at any moment resumes with --resume from checkpoint-latest.ckpt:
// same weights, optimiser moments, schedule and data position.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "rmkv.h"

using json = nlohmann::json;

namespace {

const char *g_prog = "rmkv train";

int report(const std::string &what) {
    std::fprintf(stderr, "%s: %s: %s\n", g_prog, what.c_str(), rmkv_last_error());
    return 1;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

bool file_exists(const std::string &p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
}

std::string format_eta(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    char buf[32];
    int h = static_cast<int>(s / 3600), m = static_cast<int>(s / 60) % 60, sec = static_cast<int>(s) % 60;
    if (h) std::snprintf(buf, sizeof buf, "%dh%02dm", h, m);
    else std::snprintf(buf, sizeof buf, "%dm%02ds", m, sec);
    return buf;
}

const char *kUsage =
    "usage: rmkv train --config train.json [options]\n"
    "  config keys (flags override):\n"
    "    model          object of SPEC section 2 keys (a new model), or\n"
    "    init_from      a model or checkpoint file to start from (finetuning)\n"
    "    tokenizer      tokenizer.json for a new model (else the model's own)\n"
    "    data           the data pipeline config (see rmkv.h, rmkv_data_new); n_tokens\n"
    "                   defaults to segments x segment_len\n"
    "    segments       K, segments per training sequence (default 2)\n"
    "    segment_len_min  random segment lengths in [this, segment_len] each step\n"
    "                   (default 0: every segment segment_len long)\n"
    "    preset         \"pretrain\" (default) or \"finetune\": learning rate, batch and clipping\n"
    "    optim          learning_rate, min_learning_rate, warmup_steps, total_steps,\n"
    "                   weight_decay, beta1, beta2, grad_clip, grad_accum_steps, dropout,\n"
    "                   precision, recompute (true: recompute activations in the backward,\n"
    "                   for less memory), parallel_sequences, stacked_sequences\n"
    "                   (0: the device's choice), n_threads (0: OpenMP's setting)\n"
    "    max_steps, max_epochs, max_time (seconds), exit_loss   stop conditions\n"
    "    checkpoint_every, eval_every, eval_batches, log_every, seed, out\n"
    "  options: --out DIR  --resume  --reset-epochs  --max-steps N  --max-time S\n"
    "           --max-epochs N  --lr X  --precision auto|fp32|bf16  --preset NAME\n"
    "           --init-from FILE  --quiet      (--max-time 0: no time limit)\n";

const char *kStateUsage =
    "usage: rmkv state-tune --model MODEL --config tune.json [options]\n"
    "  trains only the initial memories of MODEL (which is not changed) on the data of\n"
    "  the config; writes OUT/state.rmkvs, a state file any session of MODEL loads as\n"
    "  its starting point (rmkv generate --state, rmkv_session_state_load_file).\n"
    "  config keys: data (JSONL sources with formatters, walks, max_prompt_tokens,\n"
    "  max_completion_tokens, batch_size; prompts masked by default), segments,\n"
    "  optim (learning_rate 1e-2, min_learning_rate 1e-3, warmup_steps 10, ...),\n"
    "  max_steps, max_epochs, max_time, exit_loss, checkpoint_every (state saves),\n"
    "  eval_every, eval_batches, log_every, seed, out\n"
    "  options: --model FILE  --out DIR  --max-steps N  --max-time S  --max-epochs N\n"
    "           --lr X  --precision auto|fp32|bf16  --quiet\n";

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }


int run(int argc, char **argv, bool state_tune) {
    g_prog = state_tune ? "rmkv state-tune" : "rmkv train";
    const char *usage = state_tune ? kStateUsage : kUsage;
    json cfg = json::object();
    json over = json::object();
    bool resume = false, reset_epochs = false, quiet = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s: %s needs a value\n", g_prog, a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--config") {
            std::ifstream f(next());
            if (!f) {
                std::fprintf(stderr, "%s: cannot read %s\n", g_prog, argv[i]);
                return 1;
            }
            std::stringstream ss;
            ss << f.rdbuf();
            cfg = json::parse(ss.str(), nullptr, false);
            if (cfg.is_discarded() || !cfg.is_object()) {
                std::fprintf(stderr, "%s: %s is not a JSON object\n", g_prog, argv[i]);
                return 1;
            }
        } else if (a == "--out") over["out"] = next();
        else if (a == "--resume") resume = true;
        else if (a == "--reset-epochs") reset_epochs = true;
        else if (a == "--quiet") quiet = true;
        else if (a == "--max-steps") over["max_steps"] = std::stoll(next());
        else if (a == "--max-time") over["max_time"] = std::stod(next());
        else if (a == "--max-epochs") over["max_epochs"] = std::stod(next());
        else if (a == "--lr") over["optim"]["learning_rate"] = std::stod(next());
        else if (a == "--precision") over["optim"]["precision"] = next();
        else if (a == "--preset") over["preset"] = next();
        else if (a == "--init-from" || (state_tune && a == "--model")) over["init_from"] = next();
        else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "%s: unknown option %s\n%s", g_prog, a.c_str(), usage);
            return 2;
        }
    }
    if (state_tune && (resume || !cfg.contains("init_from") && !over.contains("init_from"))) {
        std::fprintf(stderr, "%s: %s\n%s", g_prog, resume ? "--resume: state tuning is short; start it again"
                                                          : "--model (or \"init_from\") is required", usage);
        return 2;
    }
    cfg.merge_patch(over);
    const std::string out = cfg.value("out", std::string("run"));
    ::mkdir(out.c_str(), 0755);
    const std::string latest = out + "/checkpoint-latest.ckpt";
    const std::string preset = cfg.value("preset", std::string(state_tune ? "finetune" : "pretrain"));
    if (preset != "pretrain" && preset != "finetune") {
        std::fprintf(stderr, "%s: preset '%s' is not pretrain or finetune\n", g_prog, preset.c_str());
        return 2;
    }
    const bool finetune = preset == "finetune";

    // The model: resumed, started from a file, or new.
    rmkv_model *model = nullptr;
    if (resume) {
        if (!file_exists(latest)) {
            std::fprintf(stderr, "rmkv train: --resume: no %s\n", latest.c_str());
            return 1;
        }
        if (rmkv_model_load(latest.c_str(), nullptr, &model) != RMKV_OK) return report(latest);
    } else if (cfg.contains("init_from")) {
        std::string from = cfg["init_from"];
        if (rmkv_model_load(from.c_str(), nullptr, &model) != RMKV_OK) return report(from);
    } else {
        rmkv_tokenizer *tok = nullptr;
        if (cfg.contains("tokenizer")) {
            std::string tp = cfg["tokenizer"];
            if (rmkv_tokenizer_load(tp.c_str(), &tok) != RMKV_OK) return report(tp);
        }
        std::string mc = cfg.value("model", json::object()).dump();
        rmkv_status st = rmkv_model_create(mc.c_str(), tok, cfg.value("seed", 1ull), nullptr, &model);
        rmkv_tokenizer_free(tok);
        if (st != RMKV_OK) return report("model");
    }
    const rmkv_tokenizer *tok = rmkv_model_tokenizer(model);
    if (!tok) {
        std::fprintf(stderr, "%s: the model has no tokenizer (give \"tokenizer\" when creating it)\n", g_prog);
        return 1;
    }
    size_t need = 0;
    rmkv_model_config_json(model, nullptr, 0, &need);
    std::string mcfg(need, '\0');
    rmkv_model_config_json(model, mcfg.data(), need, &need);
    const int64_t S = json::parse(mcfg.c_str())["segment_len"];
    const int64_t K = cfg.value("segments", 2);

    // Data.
    json data = cfg.value("data", json::object());
    if (!data.contains("n_tokens")) data["n_tokens"] = K * S;
    if (!data.contains("batch_size")) data["batch_size"] = finetune ? 4 : 8;
    if (!data.contains("seed")) data["seed"] = cfg.value("seed", 1ull);
    if (finetune && data.contains("sources"))
        for (auto &src : data["sources"])
            if (!src.contains("mask_prompt")) src["mask_prompt"] = true;
    rmkv_data *pipe = nullptr;
    if (rmkv_data_new(data.dump().c_str(), tok, &pipe) != RMKV_OK) return report("data");
    size_t B = 0, N = 0;
    rmkv_data_batch_shape(pipe, &B, &N);

    // Trainer: preset, then the config's optim keys.
    rmkv_train_params tp = rmkv_train_default_params();
    tp.learning_rate = state_tune ? 1e-2f : finetune ? 1e-4f : 3e-4f;
    tp.min_learning_rate = state_tune ? 1e-3f : finetune ? 1e-5f : 3e-5f;
    tp.warmup_steps = state_tune ? 10 : finetune ? 50 : 100;
    tp.grad_clip = finetune ? 0.5f : 1.0f;
    const int64_t max_steps = cfg.value("max_steps", static_cast<int64_t>(0));
    tp.total_steps = max_steps;
    json optim = cfg.value("optim", json::object());
    tp.learning_rate = optim.value("learning_rate", tp.learning_rate);
    tp.min_learning_rate = optim.value("min_learning_rate", tp.min_learning_rate);
    tp.warmup_steps = optim.value("warmup_steps", tp.warmup_steps);
    tp.total_steps = optim.value("total_steps", tp.total_steps);
    tp.weight_decay = optim.value("weight_decay", tp.weight_decay);
    tp.beta1 = optim.value("beta1", tp.beta1);
    tp.beta2 = optim.value("beta2", tp.beta2);
    tp.grad_clip = optim.value("grad_clip", tp.grad_clip);
    tp.grad_accum_steps = optim.value("grad_accum_steps", tp.grad_accum_steps);
    tp.dropout = optim.value("dropout", tp.dropout);
    tp.recompute = optim.value("recompute", false) ? 1 : 0;
    tp.parallel_sequences = optim.value("parallel_sequences", tp.parallel_sequences);
    tp.stacked_sequences = optim.value("stacked_sequences", tp.stacked_sequences);
    tp.n_threads = optim.value("n_threads", tp.n_threads);
    tp.seed = cfg.value("seed", static_cast<uint64_t>(1));
    const std::string prec = optim.value("precision", std::string("auto"));
    rmkv_precision precision;
    if (!parse_precision(prec, &precision)) {
        std::fprintf(stderr, "%s: precision '%s' is not auto, fp32 or bf16\n", g_prog, prec.c_str());
        return 2;
    }
    tp.precision = precision;
    rmkv_trainer *trainer = nullptr;
    if (state_tune ? rmkv_state_tuner_new(model, &tp, &trainer) != RMKV_OK
                   : rmkv_trainer_new(model, &tp, &trainer) != RMKV_OK)
        return report("trainer");
    const std::string state_out = out + "/state.rmkvs";

    double elapsed_before = 0;
    if (resume) {
        if (rmkv_trainer_load_checkpoint(trainer, latest.c_str()) != RMKV_OK) return report(latest);
        rmkv_checkpoint_user_json(latest.c_str(), nullptr, 0, &need);
        std::string uj(need, '\0');
        rmkv_checkpoint_user_json(latest.c_str(), uj.data(), need, &need);
        json user = json::parse(uj.c_str());
        elapsed_before = user.value("elapsed", 0.0);
        if (!reset_epochs && user.contains("data")) {
            std::string ds = user["data"];
            if (rmkv_data_state_load(pipe, ds.data(), ds.size()) != RMKV_OK) return report("data position in " + latest);
        }
        if (!quiet)
            std::fprintf(stderr, "rmkv train: resumed at step %lld from %s%s\n",
                         static_cast<long long>(rmkv_trainer_step_count(trainer)), latest.c_str(),
                         reset_epochs ? " (data from the start: --reset-epochs)" : "");
    }

    const double max_time = cfg.value("max_time", 0.0);
    const double max_epochs = cfg.value("max_epochs", 0.0);
    const double exit_loss = cfg.value("exit_loss", 0.0);
    const int64_t ckpt_every = cfg.value("checkpoint_every", static_cast<int64_t>(100));
    const int64_t eval_every = cfg.value("eval_every", static_cast<int64_t>(100));
    const int64_t eval_batches = cfg.value("eval_batches", static_cast<int64_t>(8));
    const int64_t log_every = cfg.value("log_every", static_cast<int64_t>(10));
    const bool keep = cfg.value("keep_checkpoints", false);
    std::ofstream metrics(out + "/metrics.jsonl", std::ios::app);

    std::vector<int32_t> tokens(B * N), targets(B * N);
    rmkv_batch batch{};
    batch.struct_size = sizeof batch;
    batch.batch_size = B;
    batch.n_tokens = N;
    batch.tokens = tokens.data();
    batch.targets = targets.data();
    // Random segment lengths (as the original design trained): each optimiser step
    // cuts the rows into segments of lengths drawn uniformly from
    // [segment_len_min, segment_len], the last one taking the rest. Drawn from
    // (seed, step), so a resumed run draws the same ones.
    const int64_t seg_min = cfg.value("segment_len_min", static_cast<int64_t>(0));
    if (seg_min < 0 || seg_min > S) {
        std::fprintf(stderr, "%s: segment_len_min = %lld must be in [1, segment_len = %lld] (0 = fixed lengths)\n", g_prog,
                     static_cast<long long>(seg_min), static_cast<long long>(S));
        return 2;
    }
    std::vector<int32_t> seg_lens;
    const uint64_t seg_seed = cfg.value("seed", static_cast<uint64_t>(1)) * 0x9e3779b97f4a7c15ull + 0x5eed;
    auto draw_segments = [&](int64_t at_step) {
        if (seg_min == 0) return;
        uint64_t z = seg_seed ^ (static_cast<uint64_t>(at_step) * 0xbf58476d1ce4e5b9ull);
        auto next = [&]() {  // splitmix64
            z += 0x9e3779b97f4a7c15ull;
            uint64_t x = z;
            x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
            x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
            return x ^ (x >> 31);
        };
        seg_lens.clear();
        int64_t left = static_cast<int64_t>(N);
        while (left > 0) {
            int64_t len = seg_min + static_cast<int64_t>(next() % static_cast<uint64_t>(S - seg_min + 1));
            len = std::min(len, left);
            seg_lens.push_back(static_cast<int32_t>(len));
            left -= len;
        }
        batch.n_segments = seg_lens.size();
        batch.segment_lens = seg_lens.data();
    };

    auto save_checkpoint = [&](double elapsed) -> bool {
        if (state_tune) {  // the tuned memories as a state file (atomic)
            rmkv_session *s = nullptr;
            if (rmkv_session_new(model, nullptr, &s) != RMKV_OK) return report("session") == 0;
            bool ok = rmkv_trainer_apply_state(trainer, s) == RMKV_OK &&
                      rmkv_session_state_save_file(s, state_out.c_str()) == RMKV_OK;
            rmkv_session_free(s);
            return ok || report(state_out) == 0;
        }
        size_t ds_size = 0;
        rmkv_data_state_save(pipe, nullptr, 0, &ds_size);
        std::string ds(ds_size, '\0');
        if (rmkv_data_state_save(pipe, ds.data(), ds.size(), &ds_size) != RMKV_OK) return report("data position") == 0;
        json user = {{"data", ds}, {"elapsed", elapsed}};
        std::string u = user.dump();
        if (rmkv_trainer_save_checkpoint(trainer, latest.c_str(), u.c_str()) != RMKV_OK) return report(latest) == 0;
        if (keep) {
            std::string p = out + "/checkpoint-" + std::to_string(rmkv_trainer_step_count(trainer)) + ".ckpt";
            rmkv_trainer_save_checkpoint(trainer, p.c_str(), u.c_str());
        }
        return true;
    };

    // Baseline: the entropy of the validation targets' own token frequencies, the
    // loss of the best unigram model of that text (a lower bound for any unigram model).
    std::vector<int64_t> unigram(rmkv_model_vocab_size(model), 0);
    double unigram_entropy = -1;
    int64_t last_eval = -1;
    auto evaluate = [&](int64_t step) {
        if (step == last_eval) return;
        last_eval = step;
        if (rmkv_data_validation_rewind(pipe) != RMKV_OK) return;
        double loss_sum = 0, later = 0, later_reset = 0;
        int64_t n = 0, n_later = 0;
        const bool count = unigram_entropy < 0;
        for (int64_t i = 0; i < eval_batches; ++i) {
            rmkv_data_info info{};
            info.struct_size = sizeof info;
            if (rmkv_data_next_validation(pipe, tokens.data(), targets.data(), tokens.size(), &info) != RMKV_OK) return;
            if (info.n_sequences == 0) break;
            if (count)
                for (int32_t t : targets)
                    if (t >= 0) unigram[static_cast<size_t>(t)]++;
            rmkv_eval_stats ev{};
            ev.struct_size = sizeof ev;
            rmkv_batch fixed = batch;  // validation: segments of segment_len
            fixed.n_segments = 0;
            fixed.segment_lens = nullptr;
            if (rmkv_trainer_evaluate(trainer, &fixed, &ev) != RMKV_OK) return;
            loss_sum += ev.loss * ev.n_targets, n += ev.n_targets;
            later += ev.loss_later * ev.n_targets_later, later_reset += ev.loss_later_reset * ev.n_targets_later;
            n_later += ev.n_targets_later;
        }
        if (n == 0) return;
        if (count) {
            double total = 0, h = 0;
            for (int64_t c : unigram) total += static_cast<double>(c);
            for (int64_t c : unigram)
                if (c) h -= c / total * std::log(c / total);
            unigram_entropy = h;
        }
        json m = {{"step", step}, {"val_loss", loss_sum / n}, {"val_ppl", std::exp(loss_sum / n)},
                  {"val_unigram_entropy", unigram_entropy}};
        if (n_later) {
            m["val_loss_later"] = later / n_later;
            m["val_loss_later_memory_reset"] = later_reset / n_later;
            m["memory_effect"] = (later_reset - later) / n_later;
        }
        metrics << m.dump() << "\n";
        metrics.flush();
        if (!quiet)
            std::fprintf(stderr, "\n%s: step %lld  validation loss %.4f (unigram baseline %.4f)  ppl %.2f  memory effect %.4f\n",
                         g_prog, static_cast<long long>(step), loss_sum / n, unigram_entropy, std::exp(loss_sum / n),
                         n_later ? (later_reset - later) / n_later : 0.0);
    };

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const double t0 = now_s();
    double last_log = t0, tokens_since = 0, ema_loss = NAN;
    int64_t step = rmkv_trainer_step_count(trainer);
    double epoch0 = -1;  // epoch progress at the first batch of this run
    const char *why = "max_steps";
    while (true) {
        if (max_steps > 0 && step >= max_steps) break;
        const double elapsed = elapsed_before + now_s() - t0;
        if (max_time > 0 && elapsed >= max_time) { why = "max_time"; break; }
        if (g_stop) { why = "interrupted"; break; }
        rmkv_data_info info{};
        info.struct_size = sizeof info;
        if (rmkv_data_next(pipe, tokens.data(), targets.data(), tokens.size(), &info) != RMKV_OK) return report("data");
        if (max_epochs > 0 && info.epoch_progress >= max_epochs) { why = "max_epochs"; break; }
        if (epoch0 < 0) epoch0 = info.epoch_progress;
        rmkv_train_stats st{};
        st.struct_size = sizeof st;
        draw_segments(rmkv_trainer_step_count(trainer));
        if (rmkv_train_step(trainer, &batch, &st) != RMKV_OK) return report("step");
        tokens_since += static_cast<double>(B * N);
        if (st.step == step) continue;  // accumulating
        step = st.step;
        ema_loss = std::isnan(ema_loss) ? st.loss : 0.9 * ema_loss + 0.1 * st.loss;
        if (step % log_every == 0 || step == 1) {
            double t = now_s(), tps = tokens_since / std::max(1e-9, t - last_log);
            last_log = t, tokens_since = 0;
            json m = {{"step", step}, {"loss", st.loss}, {"grad_norm", st.grad_norm}, {"lr", st.learning_rate},
                      {"tokens_per_s", tps}, {"epoch", info.epoch_progress}, {"elapsed", elapsed_before + t - t0}};
            metrics << m.dump() << "\n";
            metrics.flush();
            if (!quiet) {
                double eta = max_steps > 0 ? (max_steps - step) * static_cast<double>(B * N) / tps : NAN;
                if (max_epochs > 0 && info.epoch_progress > epoch0) {  // from the pace through the data
                    const double run_s = now_s() - t0;
                    const double by_epochs = (max_epochs - info.epoch_progress) * run_s / (info.epoch_progress - epoch0);
                    eta = std::isnan(eta) ? by_epochs : std::min(eta, by_epochs);
                }
                if (max_time > 0) eta = std::min(std::isnan(eta) ? 1e30 : eta, max_time - (elapsed_before + t - t0));
                std::fprintf(stderr, "\rstep %lld%s | loss %.4f | %.0f tok/s | lr %.2e | epoch %.2f | ETA %s   ",
                             static_cast<long long>(step),
                             max_steps > 0 ? ("/" + std::to_string(max_steps)).c_str() : "", ema_loss, tps,
                             st.learning_rate, info.epoch_progress, format_eta(eta).c_str());
            }
        }
        if (eval_every > 0 && step % eval_every == 0) evaluate(step);
        if (ckpt_every > 0 && step % ckpt_every == 0 && !save_checkpoint(elapsed_before + now_s() - t0)) return 1;
        if (exit_loss > 0 && ema_loss <= exit_loss) { why = "exit_loss"; break; }
    }
    if (!quiet) std::fprintf(stderr, "\n%s: stopped (%s) at step %lld\n", g_prog, why, static_cast<long long>(step));
    evaluate(step);
    if (!save_checkpoint(elapsed_before + now_s() - t0)) return 1;
    if (state_tune) {
        if (!quiet) std::fprintf(stderr, "%s: wrote %s\n", g_prog, state_out.c_str());
        rmkv_trainer_free(trainer);
        rmkv_data_free(pipe);
        rmkv_model_free(model);
        return 0;
    }
    const std::string final_model = out + "/model.safetensors";
    if (rmkv_model_save(model, final_model.c_str()) != RMKV_OK) return report(final_model);
    if (!quiet) std::fprintf(stderr, "rmkv train: wrote %s and %s\n", latest.c_str(), final_model.c_str());
    rmkv_trainer_free(trainer);
    rmkv_data_free(pipe);
    rmkv_model_free(model);
    return 0;
}

}  // namespace

int cmd_train(int argc, char **argv) { return run(argc, argv, false); }
int cmd_state_tune(int argc, char **argv) { return run(argc, argv, true); }
