{
  "targets": [
    {
      "target_name": "dd2",
      "sources": [
        "native/binding/addon.cpp",
        "native/binding/ops-attention.cpp",
        "native/binding/ops-cond-score.cpp",
        "native/binding/ops-conv.cpp",
        "native/binding/ops-elementwise.cpp",
        "native/binding/ops-gemm.cpp",
        "native/binding/ops-index.cpp",
        "native/binding/ops-info.cpp",
        "native/binding/ops-linalg.cpp",
        "native/binding/ops-norm.cpp",
        "native/binding/ops-optim.cpp",
        "native/binding/ops-pool.cpp",
        "native/binding/ops-random.cpp",
        "native/binding/ops-softmax.cpp",
        "native/binding/ops-storage.cpp",
        "native/binding/registry.cpp",
        "native/binding/storage.cpp",
        "native/common/openblas-lib.cpp",
        "native/common/threadpool.cpp",
        "native/cpu/attention.cpp",
        "native/cpu/cond-score.cpp",
        "native/cpu/conv.cpp",
        "native/cpu/elementwise.cpp",
        "native/cpu/gemm-builtin.cpp",
        "native/cpu/gemm.cpp",
        "native/cpu/index.cpp",
        "native/cpu/linalg.cpp",
        "native/cpu/norm.cpp",
        "native/cpu/optim.cpp",
        "native/cpu/pool.cpp",
        "native/cpu/random.cpp",
        "native/cpu/softmax.cpp"
      ],
      "include_dirs": ["native/include", "native"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "DD2_CXX_COMPILER=\"gyp\""],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
