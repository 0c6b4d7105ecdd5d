{
  "variables": {
    "rnnkit_sources": ["<!@(node -p \"const s = require('./native/sources.json'); s.core.concat(s.addon).join(' ')\")"]
  },
  "target_defaults": {
    "sources": ["<@(rnnkit_sources)"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/core"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math"],
    "libraries": ["-ldl", "-lpthread"]
  },
  "conditions": [
    [
      "target_arch=='x64'",
      {
        "targets": [
          {
            "target_name": "rnnkit-baseline",
            "defines": ["RNNKIT_ISA_NAME=\"baseline\""],
            "cflags_cc": ["-march=x86-64-v2", "-mtune=generic"]
          },
          {
            "target_name": "rnnkit-avx2",
            "defines": ["RNNKIT_ISA_NAME=\"avx2\""],
            "cflags_cc": ["-march=x86-64-v3", "-mtune=generic"]
          },
          {
            "target_name": "rnnkit-avx512",
            "defines": ["RNNKIT_ISA_NAME=\"avx512\""],
            "cflags_cc": ["-march=x86-64-v4", "-mtune=generic"]
          }
        ]
      },
      {
        "targets": [{ "target_name": "rnnkit-baseline", "defines": ["RNNKIT_ISA_NAME=\"baseline\""] }]
      }
    ]
  ]
}
