/* same_output_dump: the C side of the bindings' agreement test (same_output.py).

   same_output_dump MODEL PROMPT N_GEN LOGITS_OUT
   Loads MODEL, encodes PROMPT with the model's tokenizer, steps it in one call,
   then draws N_GEN greedy tokens (rmkv_session_sample, temperature 0), stepping
   each. Writes the N_GEN + 1 logit rows (float32, after the prompt and after each
   drawn token) to LOGITS_OUT, and prints the drawn ids' text to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmkv.h"

static int die(const char *what) {
    fprintf(stderr, "same_output_dump: %s: %s\n", what, rmkv_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: same_output_dump MODEL PROMPT N_GEN LOGITS_OUT\n");
        return 2;
    }
    rmkv_model *m = NULL;
    rmkv_session *s = NULL;
    if (rmkv_model_load(argv[1], NULL, &m) != RMKV_OK) return die("load");
    const rmkv_tokenizer *tok = rmkv_model_tokenizer(m);
    if (!tok) { fprintf(stderr, "same_output_dump: the model has no tokenizer\n"); return 1; }
    const char *prompt = argv[2];
    size_t n_prompt = 0, V = rmkv_model_vocab_size(m);
    int n_gen = atoi(argv[3]);
    int32_t *ids = malloc(sizeof(int32_t) * (strlen(prompt) + 16 + (size_t)n_gen));
    if (rmkv_tokenizer_encode(tok, prompt, strlen(prompt), ids, strlen(prompt) + 16, &n_prompt) != RMKV_OK)
        return die("encode");
    float *logits = malloc(sizeof(float) * V * (size_t)(n_gen + 1));
    if (rmkv_session_new(m, NULL, &s) != RMKV_OK) return die("session");
    if (rmkv_session_step(s, ids, n_prompt, logits) != RMKV_OK) return die("step");
    rmkv_sampler_params greedy = rmkv_sampler_default_params();
    greedy.temperature = 0.0f;
    int32_t *gen = ids + n_prompt;
    for (int i = 0; i < n_gen; ++i) {
        if (rmkv_session_sample(s, &greedy, &gen[i]) != RMKV_OK) return die("sample");
        if (rmkv_session_step(s, &gen[i], 1, logits + (size_t)(i + 1) * V) != RMKV_OK) return die("step");
    }
    FILE *f = fopen(argv[4], "wb");
    if (!f || fwrite(logits, sizeof(float) * V, (size_t)n_gen + 1, f) != (size_t)n_gen + 1 || fclose(f)) {
        perror(argv[4]);
        return 1;
    }
    size_t n_text = 0;
    if (rmkv_tokenizer_decode(tok, gen, (size_t)n_gen, NULL, 0, &n_text) != RMKV_OK &&
        n_text == 0 && n_gen > 0)
        return die("decode size");
    char *text = malloc(n_text + 1);
    if (rmkv_tokenizer_decode(tok, gen, (size_t)n_gen, text, n_text, &n_text) != RMKV_OK) return die("decode");
    fwrite(text, 1, n_text, stdout);
    free(text);
    free(logits);
    free(ids);
    rmkv_session_free(s);
    rmkv_model_free(m);
    return 0;
}
