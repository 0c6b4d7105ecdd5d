#!/usr/bin/env node
// Builds the prebuilt Node-API binaries that `npm pack` ships, into prebuilds/<platform>-<arch>/:
// linux-x64 (rnnkit-baseline/-avx2/-avx512.node, chosen at load by CPU) and linux-arm64
// (rnnkit-baseline.node, cross-compiled with Debian's crossbuild-essential-arm64). Release builds
// from a clean build folder, stripped, with the C++ runtime linked in and source paths mapped, so
// the same sources and compilers give the same files. Needs node_modules (Node-API headers).
//   --arch x64|arm64   build one architecture only (default: both)
//   --check            build nothing; fail unless every architecture's binaries are present
//                      (npm pack runs this, so no tarball ships without them)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const targets = {
  x64: { variants: ['baseline', 'avx2', 'avx512'], cmake: [] },
  arm64: {
    variants: ['baseline'],
    cmake: [`-DCMAKE_TOOLCHAIN_FILE=${path.join(root, 'cmake', 'aarch64-linux-gnu.cmake')}`],
  },
};
const args = process.argv.slice(2);
const only = args.includes('--arch') ? args[args.indexOf('--arch') + 1] : undefined;
if (only !== undefined && !(only in targets)) {
  console.error(`rnnkit: --arch must be one of ${Object.keys(targets).join(', ')}, got '${only}'`);
  process.exit(1);
}
const arches = only ? [only] : Object.keys(targets);
const outDir = (arch) => path.join(root, 'prebuilds', `linux-${arch}`);

if (args.includes('--check')) {
  const missing = arches.flatMap((arch) =>
    targets[arch].variants
      .map((isa) => path.join(outDir(arch), `rnnkit-${isa}.node`))
      .filter((f) => !fs.existsSync(f)),
  );
  if (missing.length) {
    console.error(
      `rnnkit: the package would ship without ${missing.map((f) => path.relative(root, f)).join(', ')}; ` +
        'run `npm run prebuilds` first',
    );
    process.exit(1);
  }
  process.exit(0);
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    console.error(
      `rnnkit: '${cmd} ${argv.join(' ')}' failed${r.error ? ': ' + r.error.message : ''}`,
    );
    process.exit(1);
  }
}

for (const arch of arches) {
  const build = path.join(root, 'build', `prebuild-${arch}`);
  fs.rmSync(build, { recursive: true, force: true });
  run('cmake', [
    '-S',
    root,
    '-B',
    build,
    '-DCMAKE_BUILD_TYPE=Release',
    '-DRNNKIT_ADDON=ON',
    '-DRNNKIT_CUDA=off',
    `-DCMAKE_CXX_FLAGS=-ffile-prefix-map=${root}=.`,
    ...targets[arch].cmake,
  ]);
  run('cmake', ['--build', build, '-j', '2']);
  fs.mkdirSync(outDir(arch), { recursive: true });
  for (const isa of targets[arch].variants) {
    const file = `rnnkit-${isa}.node`;
    fs.copyFileSync(path.join(build, file), path.join(outDir(arch), file));
    console.log(`rnnkit: prebuilds/linux-${arch}/${file}`);
  }
}
