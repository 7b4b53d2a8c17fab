/* A village with three characters who remember you.

   One model, one session per character. Each character's memory lives in its own
   state file in the save directory: the program restores them on start, lets you
   talk to everyone, shows a branch of the story with rmkv_session_clone (what
   the witch would say to two different questions, without either changing her
   real memory), and saves every character on exit.

   usage: game SAVE_DIR [--model MODEL.safetensors] [--say TEXT]

   Without --model the game uses SAVE_DIR/model.safetensors, creating a small
   untrained one (with a tokenizer trained on the game's own texts) the first
   time: its words are noise, but its memory works as a trained model's does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rmkv.h>

typedef struct {
    const char *name;
    const char *persona;
    rmkv_session *session;
    char path[1024];
} character;

static character cast[] = {
    {"innkeeper", "You are Mara, the innkeeper of the Grey Goose. You are warm and you gossip.", NULL, {0}},
    {"guard", "You are Tomas, the gate guard. You are suspicious of strangers.", NULL, {0}},
    {"witch", "You are Old Hild, the witch of the marsh. You speak in riddles.", NULL, {0}},
};
enum { N_CAST = sizeof cast / sizeof cast[0] };

static int check(rmkv_status st, const char *what) {
    if (st != RMKV_OK) {
        fprintf(stderr, "game: %s: %s\n", what, rmkv_last_error());
        exit(1);
    }
    return 0;
}

static int print_piece(const char *text, size_t size, void *user) {
    (void)user;
    /* The untrained model's words may hold control bytes: show them as dots. */
    for (size_t i = 0; i < size; ++i) putchar((unsigned char)text[i] < 0x20 ? '.' : text[i]);
    return 0;
}

static uint64_t tokens_read(const rmkv_session *s) {
    uint64_t pos = 0;
    size_t fill = 0;
    check(rmkv_session_position(s, &pos, &fill), "position");
    return pos;
}

static void say(rmkv_session *s, const rmkv_tokenizer *tok, const char *who, const char *line,
                const rmkv_generate_params *gp) {
    printf("  you to the %s: %s\n  %s: ", who, line, who);
    check(rmkv_session_chat_turn(s, tok, line, strlen(line), gp, NULL), "chat turn");
    printf("\n");
}

static rmkv_model *open_model(const char *dir, const char *given) {
    rmkv_model *model = NULL;
    char path[1024];
    if (given) {
        check(rmkv_model_load(given, NULL, &model), given);
        return model;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat st;
    if (stat(path, &st) == 0) {
        check(rmkv_model_load(path, NULL, &model), path);
        return model;
    }
    const char *texts[N_CAST + 1];
    for (int i = 0; i < N_CAST; ++i) texts[i] = cast[i].persona;
    texts[N_CAST] = "Good evening, traveller. The road from the north is long and the marsh is cold.";
    rmkv_tokenizer_train_params tp = rmkv_tokenizer_train_default_params();
    tp.vocab_size = 400;
    rmkv_tokenizer *tok = NULL;
    check(rmkv_tokenizer_train_from_texts(texts, NULL, N_CAST + 1, &tp, &tok), "tokenizer");
    check(rmkv_model_create("{\"d_model\":64,\"n_layers\":2,\"n_heads\":4,\"memory_slots\":8,\"segment_len\":32}", tok,
                            2024, NULL, &model),
          "model");
    rmkv_tokenizer_free(tok);
    check(rmkv_model_save(model, path), path);
    printf("created an untrained model: %s\n", path);
    return model;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *model_path = NULL, *line = "Good evening! Do you remember me?";
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--say") && i + 1 < argc) line = argv[++i];
        else if (argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "usage: game SAVE_DIR [--model MODEL.safetensors] [--say TEXT]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: game SAVE_DIR [--model MODEL.safetensors] [--say TEXT]\n");
        return 2;
    }
    mkdir(dir, 0755);
    rmkv_model *model = open_model(dir, model_path);
    const rmkv_tokenizer *tok = rmkv_model_tokenizer(model);
    if (!tok) {
        fprintf(stderr, "game: the model has no tokenizer\n");
        return 1;
    }

    /* Greedy answers of at most 16 tokens. */
    rmkv_sampler_params sp = rmkv_sampler_default_params();
    sp.temperature = 0;
    rmkv_generate_params gp = rmkv_generate_default_params();
    gp.sampler = &sp;
    gp.max_tokens = 16;
    gp.on_piece = print_piece;

    /* Restore every character, or meet them for the first time. */
    for (int i = 0; i < N_CAST; ++i) {
        character *c = &cast[i];
        snprintf(c->path, sizeof c->path, "%s/%s.state", dir, c->name);
        check(rmkv_session_new(model, NULL, &c->session), "session");
        struct stat st;
        if (stat(c->path, &st) == 0) {
            check(rmkv_session_state_load_file(c->session, c->path), c->path);
            printf("restored %s: %llu tokens remembered\n", c->name, (unsigned long long)tokens_read(c->session));
        } else {
            int32_t ids[256];
            size_t n = 0;
            check(rmkv_tokenizer_encode(tok, c->persona, strlen(c->persona), ids, 256, &n), "encode");
            check(rmkv_session_step(c->session, ids, n, NULL), "persona");
            check(rmkv_session_flush(c->session), "flush");
            printf("new %s: knows only its persona (%llu tokens)\n", c->name, (unsigned long long)tokens_read(c->session));
        }
    }

    printf("\nThe village:\n");
    for (int i = 0; i < N_CAST; ++i) say(cast[i].session, tok, cast[i].name, line, &gp);

    /* A branch: what would the witch say to either question? Neither changes her memory. */
    rmkv_session *witch = cast[2].session;
    uint64_t before = tokens_read(witch);
    rmkv_session *left = NULL, *right = NULL;
    check(rmkv_session_clone(witch, &left), "clone");
    check(rmkv_session_clone(witch, &right), "clone");
    printf("\nTwo futures (rmkv_session_clone):\n");
    say(left, tok, "witch", "Will you sell me a potion?", &gp);
    say(right, tok, "witch", "Tell me about the marsh.", &gp);
    printf("  the witch's own memory: %llu tokens before the branches, %llu after\n", (unsigned long long)before,
           (unsigned long long)tokens_read(witch));
    rmkv_session_free(left);
    rmkv_session_free(right);

    /* Save everyone (atomic writes: a crash keeps the previous save). */
    printf("\n");
    for (int i = 0; i < N_CAST; ++i) {
        size_t size = 0;
        check(rmkv_session_state_save_file(cast[i].session, cast[i].path), cast[i].path);
        check(rmkv_session_state_size(cast[i].session, &size), "size");
        printf("saved %s: %llu tokens remembered, %zu bytes\n", cast[i].name,
               (unsigned long long)tokens_read(cast[i].session), size);
        rmkv_session_free(cast[i].session);
    }
    rmkv_model_free(model);
    return 0;
}
