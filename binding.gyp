{
  "variables": {
    "rnnkit_openblas": "<!(node scripts/find-openblas.js --gyp)",
    "rnnkit_openblas_include": "<!(node scripts/find-openblas.js --include)"
  },
  "targets": [
    {
      "target_name": "rnnkit",
      "sources": [
        "<!@(node -p \"const s = require('./native/sources.json'); s.core.concat(s.addon).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/core"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-march=native"],
      "conditions": [
        [
          "rnnkit_openblas==1",
          {
            "defines": ["RNNKIT_HAVE_OPENBLAS=1"],
            "include_dirs": ["<(rnnkit_openblas_include)"],
            "libraries": ["-lopenblas", "-lpthread"]
          }
        ]
      ]
    }
  ]
}
