#include "data/sequence_stream.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace rmkv::data {

using json = nlohmann::json;

namespace {
// 64-bit words as hex strings: exact in any JSON reader.
std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}
uint64_t parse_hex64(const json &j) {
    if (!j.is_string() || j.get<std::string>().size() != 16) fail(RMKV_ERR_FORMAT, "data state: bad RNG word ", j.dump());
    std::string s = j.get<std::string>();
    uint64_t v = 0;
    for (char c : s) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) fail(RMKV_ERR_FORMAT, "data state: bad RNG word ", j.dump());
        v = v << 4 | static_cast<uint64_t>(d);
    }
    return v;
}
}  // namespace

json walk_state_to_json(const WalkState &s) {
    return {{"epoch", s.epoch}, {"pos", s.pos}, {"rng", {hex64(s.rng[0]), hex64(s.rng[1]), hex64(s.rng[2]), hex64(s.rng[3])}}};
}

WalkState walk_state_from_json(const json &j) {
    WalkState s;
    if (!j.is_object() || !j.contains("epoch") || !j.contains("pos") || !j.contains("rng") || !j["epoch"].is_number_integer() ||
        !is_count(j["pos"]) || !j["rng"].is_array() || j["rng"].size() != 4)
        fail(RMKV_ERR_FORMAT, "data state: bad walk position ", j.dump());
    s.epoch = j["epoch"].get<int64_t>();
    s.pos = j["pos"].get<uint64_t>();
    for (int i = 0; i < 4; ++i) s.rng[i] = parse_hex64(j["rng"][i]);
    return s;
}

}  // namespace rmkv::data
