// Error type and checks for native code. Native code never exits or aborts: it throws dd2::Error,
// which the binding turns into a JavaScript exception carrying the message.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dd2 {

struct Error : std::runtime_error {
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// RangeError in JS: an argument (shape, id, size) is out of range.
struct RangeError : Error {
    explicit RangeError(const std::string& msg) : Error(msg) {}
};

template <typename... Ts>
std::string cat(const Ts&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    return os.str();
}

}  // namespace dd2

#define DD2_CHECK(cond, ...)                                                        \
    do {                                                                            \
        if (!(cond)) throw ::dd2::Error(::dd2::cat("dd2: ", __VA_ARGS__));          \
    } while (0)

#define DD2_CHECK_RANGE(cond, ...)                                                  \
    do {                                                                            \
        if (!(cond)) throw ::dd2::RangeError(::dd2::cat("dd2: ", __VA_ARGS__));     \
    } while (0)
