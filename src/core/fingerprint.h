// A fast 256-bit fingerprint (four independent 64-bit lanes), printed as 64 hex
// digits: model_id of SPEC section 7 and the checksum of state files. Not a
// cryptographic hash: it detects corruption and accidental mix-ups.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace rmkv {

class Fingerprint {
public:
    Fingerprint();
    void update(const void *data, size_t size);
    std::string hex() const;

private:
    uint64_t lanes_[4];
    uint64_t total_ = 0;
};

}  // namespace rmkv
