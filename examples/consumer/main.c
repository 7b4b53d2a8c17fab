/* The README's minimal example: create a model, run a session, save its state,
   restore it into another session and check both continue identically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rmkv.h>

#define CHECK(call)                                                                   \
    do {                                                                              \
        if ((call) != RMKV_OK) {                                                      \
            fprintf(stderr, "%s failed: %s\n", #call, rmkv_last_error());            \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

int main(void) {
    rmkv_model *model = NULL;
    rmkv_session *a = NULL, *b = NULL;
    int32_t prompt[5] = {1, 2, 3, 4, 5}, next = 6;
    float la[64], lb[64];
    CHECK(rmkv_model_create("{\"vocab_size\":64,\"d_model\":32,\"n_layers\":2,\"n_heads\":2,"
                            "\"memory_slots\":4,\"segment_len\":16}", NULL, 42, NULL, &model));
    CHECK(rmkv_model_save(model, "consumer-model.safetensors"));
    rmkv_model_free(model);
    CHECK(rmkv_model_load("consumer-model.safetensors", NULL, &model));

    CHECK(rmkv_session_new(model, NULL, &a));
    CHECK(rmkv_session_step(a, prompt, 5, NULL));
    CHECK(rmkv_session_state_save_file(a, "consumer-state.safetensors"));

    CHECK(rmkv_session_new(model, NULL, &b));
    CHECK(rmkv_session_state_load_file(b, "consumer-state.safetensors"));
    CHECK(rmkv_session_step(a, &next, 1, la));
    CHECK(rmkv_session_step(b, &next, 1, lb));
    int same = memcmp(la, lb, sizeof la) == 0;
    printf("rmkv %s: restored session continues %s\n", rmkv_version(), same ? "identically" : "DIFFERENTLY");
    rmkv_session_free(a);
    rmkv_session_free(b);
    rmkv_model_free(model);
    remove("consumer-model.safetensors");
    remove("consumer-state.safetensors");
    return same ? 0 : 1;
}
