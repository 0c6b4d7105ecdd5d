// The layers of lib/, bottom first: a file may import its own layer and the layers below it,
// never one above, and no import cycle is allowed anywhere. docs/architecture.md explains them.
const LAYERS = [
  'core',
  'threads',
  'text',
  'nn',
  'models',
  'checkpoint',
  'train',
  'decode',
  'onnx',
  'api',
  'serve',
  'cli',
];

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `lib/${layer}/ may import only ${LAYERS.slice(0, i + 1).join(', ')}`,
  severity: 'error',
  from: { path: `^lib/${layer}/` },
  to: { path: `^lib/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      comment: 'an import cycle works only while every use stays inside function bodies',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'index-is-the-top',
      comment: 'lib/index.ts assembles the public API; nothing in lib/ imports it',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^lib/index\\.ts$' },
    },
    {
      name: 'known-layer',
      comment: `every file of lib/ belongs to a layer (${LAYERS.join(', ')}) or is lib/index.ts`,
      severity: 'error',
      from: { path: '^lib/', pathNot: `^lib/((${LAYERS.join('|')})/|index\\.ts$)` },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
