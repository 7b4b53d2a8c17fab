/* rmkv-chat: talk to an RMKV model from a terminal.

   Modes: chat (the memory and the conversation go on from turn to turn),
   instruct (every prompt starts again from the starting memory: the model's,
   or the state given with --state), single (one prompt from the command line,
   the answer, exit). Answers stream as they are sampled; Ctrl-C stops the answer,
   not the program. Commands: /save FILE, /load FILE, /reset, /size, /help, /quit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <editline/readline.h>

#include <rmkv.h>

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static const char *usage =
    "usage: rmkv-chat [--checkpoint] MODEL.safetensors [--mode chat|instruct|single] [--prompt TEXT]\n"
    "                 [--tokenizer tokenizer.json] [--state FILE] [--save-on-exit FILE] [--transcript FILE]\n"
    "                 [--temperature T] [--top_p P] [--top_k K] [--min_p P] [--max_length N]\n"
    "                 [--repetition_penalty R] [--penalty_window N] [--presence_penalty X]\n"
    "                 [--frequency_penalty X] [--seed S] [--ban TOKEN]... [--stop TEXT]...\n"
    "  --state FILE          start from a saved session (or a tuned starting state)\n"
    "  --save-on-exit FILE   save the session there when the program ends\n"
    "  --transcript FILE     append every prompt and answer to FILE\n"
    "commands: /save FILE  /load FILE  /reset  /size  /help  /quit\n";

typedef struct {
    FILE *transcript;
} chat_io;

static int print_piece(const char *text, size_t size, void *user) {
    chat_io *io = user;
    fwrite(text, 1, size, stdout);
    fflush(stdout);
    if (io->transcript) fwrite(text, 1, size, io->transcript);
    return interrupted ? 1 : 0;
}

static int complain(const char *what) {
    fprintf(stderr, "rmkv-chat: %s: %s\n", what, rmkv_last_error());
    return 1;
}

/* One answer: a chat turn on s. Returns 0, or 1 on an error (reported). */
static int answer(rmkv_session *s, const rmkv_tokenizer *tok, const char *text, const rmkv_generate_params *gp,
                  chat_io *io) {
    rmkv_generate_result r;
    if (io->transcript) fprintf(io->transcript, "[user] %s\n[rmkv] ", text);
    fputs("rmkv> ", stdout);
    fflush(stdout);
    interrupted = 0;
    rmkv_status st = rmkv_session_chat_turn(s, tok, text, strlen(text), gp, &r);
    fputc('\n', stdout);
    if (io->transcript) {
        fputc('\n', io->transcript);
        fflush(io->transcript);
    }
    if (st != RMKV_OK) return complain("answer");
    if (r.stop_reason == RMKV_STOP_CANCELLED) fputs("[stopped]\n", stdout);
    if (r.stop_reason == RMKV_STOP_LIMIT) fputs("[max_length reached]\n", stdout);
    interrupted = 0;
    return 0;
}

static void show_size(const rmkv_session *s) {
    size_t size = 0, fill = 0;
    uint64_t pos = 0;
    if (rmkv_session_state_size(s, &size) != RMKV_OK || rmkv_session_position(s, &pos, &fill) != RMKV_OK) {
        complain("size");
        return;
    }
    printf("state: %zu bytes, %llu tokens read, %zu in the current segment\n", size, (unsigned long long)pos, fill);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *state_path = NULL, *save_path = NULL, *transcript = NULL;
    const char *mode = "chat", *prompt = NULL;
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    rmkv_generate_params gp = rmkv_generate_default_params();
    const char *bans[64], *stops[64];
    size_t n_bans = 0, n_stops = 0;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            model_path = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "rmkv-chat: %s needs a value\n%s", a, usage);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--checkpoint") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--state")) state_path = v;
        else if (!strcmp(a, "--save-on-exit")) save_path = v;
        else if (!strcmp(a, "--transcript")) transcript = v;
        else if (!strcmp(a, "--temperature")) sp.temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top_p")) sp.top_p = strtof(v, NULL);
        else if (!strcmp(a, "--top_k")) sp.top_k = atoi(v);
        else if (!strcmp(a, "--min_p")) sp.min_p = strtof(v, NULL);
        else if (!strcmp(a, "--max_length")) gp.max_tokens = atoi(v);
        else if (!strcmp(a, "--repetition_penalty")) sp.repetition_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--penalty_window")) sp.penalty_window = atoi(v);
        else if (!strcmp(a, "--presence_penalty")) sp.presence_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--frequency_penalty")) sp.frequency_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) sp.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--ban") && n_bans < 64) bans[n_bans++] = v;
        else if (!strcmp(a, "--stop") && n_stops < 64) stops[n_stops++] = v;
        else {
            fprintf(stderr, "rmkv-chat: unknown option %s\n%s", a, usage);
            return 2;
        }
    }
    if (!model_path) {
        fputs(usage, stderr);
        return 2;
    }
    int single = !strcmp(mode, "single"), instruct = !strcmp(mode, "instruct");
    if (!single && !instruct && strcmp(mode, "chat") != 0) {
        fprintf(stderr, "rmkv-chat: --mode %s: use chat, instruct or single\n", mode);
        return 2;
    }
    if (single && !prompt) {
        fprintf(stderr, "rmkv-chat: --mode single needs --prompt TEXT\n");
        return 2;
    }

    rmkv_model *model = NULL;
    rmkv_tokenizer *own_tok = NULL;
    if (rmkv_model_load(model_path, NULL, &model) != RMKV_OK) return complain(model_path);
    const rmkv_tokenizer *tok = rmkv_model_tokenizer(model);
    if (tok_path) {
        if (rmkv_tokenizer_load(tok_path, &own_tok) != RMKV_OK) return complain(tok_path);
        tok = own_tok;
    }
    if (!tok) {
        fprintf(stderr, "rmkv-chat: %s has no tokenizer: give one with --tokenizer\n", model_path);
        return 1;
    }
    int32_t ban_ids[64];
    for (size_t i = 0; i < n_bans; ++i) {
        ban_ids[i] = rmkv_tokenizer_token_id(tok, bans[i]);
        if (ban_ids[i] < 0) {
            fprintf(stderr, "rmkv-chat: --ban %s: no such token\n", bans[i]);
            return 2;
        }
    }
    sp.banned_tokens = ban_ids;
    sp.n_banned = n_bans;
    gp.sampler = &sp;
    gp.stop_strings = stops;
    gp.n_stop_strings = n_stops;
    chat_io io = {NULL};
    if (transcript && !(io.transcript = fopen(transcript, "a"))) {
        fprintf(stderr, "rmkv-chat: cannot open %s: %s\n", transcript, strerror(errno));
        return 1;
    }
    gp.on_piece = print_piece;
    gp.user_data = &io;

    rmkv_session *s = NULL, *base = NULL;
    if (rmkv_session_new(model, NULL, &s) != RMKV_OK) return complain("session");
    if (state_path && rmkv_session_state_load_file(s, state_path) != RMKV_OK) return complain(state_path);
    if (rmkv_session_clone(s, &base) != RMKV_OK) return complain("session");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    int rc = 0;
    if (single) {
        rc = answer(s, tok, prompt, &gp, &io);
    } else {
        printf("rmkv-chat, %s mode. /help lists the commands.\n", mode);
        char *line;
        while ((line = readline("you> ")) != NULL) {
            if (!line[0]) {
                free(line);
                continue;
            }
            add_history(line);
            if (line[0] == '/') {
                char *arg = strchr(line, ' ');
                if (arg) *arg++ = 0;
                if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) {
                    free(line);
                    break;
                } else if (!strcmp(line, "/save") && arg) {
                    if (rmkv_session_state_save_file(s, arg) == RMKV_OK) printf("saved to %s\n", arg);
                    else complain(arg);
                } else if (!strcmp(line, "/load") && arg) {
                    if (rmkv_session_state_load_file(s, arg) == RMKV_OK) {
                        rmkv_session *b = NULL;
                        if (rmkv_session_clone(s, &b) == RMKV_OK) {
                            rmkv_session_free(base);
                            base = b;
                        }
                        printf("loaded %s\n", arg);
                    } else complain(arg);
                } else if (!strcmp(line, "/reset")) {
                    if (rmkv_session_reset(s) == RMKV_OK) puts("the session is back to the model's starting memory");
                    else complain("reset");
                } else if (!strcmp(line, "/size")) {
                    show_size(s);
                } else {
                    fputs("commands: /save FILE  /load FILE  /reset  /size  /help  /quit\n", stdout);
                }
                free(line);
                continue;
            }
            if (instruct) {
                /* Each prompt stands alone: start again from the starting memory. */
                rmkv_session *fresh = NULL;
                if (rmkv_session_clone(base, &fresh) != RMKV_OK) {
                    complain("session");
                } else {
                    rmkv_session_free(s);
                    s = fresh;
                }
            }
            answer(s, tok, line, &gp, &io);
            free(line);
        }
    }
    if (save_path && rmkv_session_state_save_file(s, save_path) != RMKV_OK) rc = complain(save_path);
    if (io.transcript) fclose(io.transcript);
    rmkv_session_free(base);
    rmkv_session_free(s);
    rmkv_tokenizer_free(own_tok);
    rmkv_model_free(model);
    return rc;
}
