#include "common/openblas-lib.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace dd2 {

const OpenBlasLib& openblas_lib() {
    static OpenBlasLib lib;
    static std::once_flag once;
    std::call_once(once, [] {
        if (const char* off = std::getenv("DD2_NO_BLAS"); off && *off && std::string(off) != "0") {
            lib.why = "disabled by DD2_NO_BLAS";
            return;
        }
        const char* names[] = {std::getenv("DD2_OPENBLAS_LIB"), "libopenblas.so.0", "libopenblas.so"};
        for (const char* n : names) {
            if (!n || !*n) continue;
            if (void* h = dlopen(n, RTLD_NOW | RTLD_LOCAL)) {
                lib.handle = h;
                lib.name = n;
                return;
            }
            lib.why += std::string(dlerror()) + "; ";
        }
    });
    return lib;
}

}  // namespace dd2
