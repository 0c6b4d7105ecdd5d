// Finds and loads the native addon. The addon is built once per instruction set (baseline,
// avx2, avx512 on x86-64; baseline on arm64): prebuilt in prebuilds/<platform>-<arch>/ inside the
// package, or built from source into build/Release/. The baseline build runs on every CPU of its
// architecture; it is loaded first and asked (CPUID, XGETBV) which variants this CPU and OS run,
// and the best of those is loaded. Environment:
//   RNNKIT_ADDON=FILE   load this addon file and nothing else
//   RNNKIT_ISA=NAME     load this variant (baseline, avx2, avx512, native); refused where the CPU
//                       lacks it, rather than executing instructions it cannot run
//   RNNKIT_BLAS=off     never open OpenBLAS (the built-in GEMM runs everything)
//   RNNKIT_BLAS_LIB=F   the OpenBLAS library file to open (default: libopenblas.so.0 and kin)
//   RNNKIT_PRODUCTS=openblas|builtin   the GEMM for products of 16+ rows, instead of measuring
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ISAS = ['baseline', 'avx2', 'avx512', 'native'] as const;
export type Isa = (typeof ISAS)[number];

/** What the loader chose: the file, the variant, where it came from. */
export interface AddonChoice {
  file: string;
  isa: string;
  source: 'RNNKIT_ADDON' | 'source build' | 'prebuilt';
  /** The CPU's name as it reports it ("" where it does not). */
  cpu: string;
}

interface CpuProbe {
  cpu(): { isa: string; cpu: string; supported: string[] };
}

const root = path.resolve(__dirname, '..', '..');
const FIX =
  'reinstall rnnkit, or build the addon from source: `npm rebuild rnnkit --build-from-source` ' +
  '(needs CMake and a C++17 compiler; see "Install" in README.md)';

function libc(): string {
  if (process.platform !== 'linux') return '';
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } };
  return report?.header?.glibcVersionRuntime ? '' : 'musl';
}

/** The folders that may hold addon builds, in the order they are tried. */
function folders(): { dir: string; source: AddonChoice['source'] }[] {
  const platform = [process.platform, process.arch, libc()].filter(Boolean).join('-');
  return [
    { dir: path.join(root, 'build', 'Release'), source: 'source build' },
    { dir: path.join(root, 'prebuilds', platform), source: 'prebuilt' },
  ];
}

const ELF_MACHINES: Record<number, string> = {
  3: 'x86 (32-bit)',
  62: 'x64',
  40: 'arm',
  183: 'arm64',
};

/**
 * Why an addon file cannot be a loadable shared library for this process, or '' where it may be.
 * Read before dlopen, which does not survive every broken file: a truncated one is mapped as it
 * claims to be and the process dies of SIGBUS on touching the missing pages.
 */
export function elfProblem(bytes: Buffer, arch: string = process.arch): string {
  if (bytes.length < 64 || bytes.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF shared library';
  if (bytes[4] !== 2 || bytes[5] !== 1) return 'not a 64-bit little-endian ELF file';
  if (bytes.readUInt16LE(16) !== 3) return 'not an ELF shared library';
  const machine = bytes.readUInt16LE(18);
  const machineName = ELF_MACHINES[machine] ?? `ELF machine ${machine}`;
  if (machineName !== arch) return `built for ${machineName}, this is ${arch}`;
  const size = BigInt(bytes.length);
  const phoff = bytes.readBigUInt64LE(32);
  const shoff = bytes.readBigUInt64LE(40);
  const phsize = BigInt(bytes.readUInt16LE(54)) * BigInt(bytes.readUInt16LE(56));
  const shsize = BigInt(bytes.readUInt16LE(58)) * BigInt(bytes.readUInt16LE(60));
  const truncated = `truncated: ${bytes.length} bytes`;
  if (phoff + phsize > size || (shsize > 0n && shoff + shsize > size)) return truncated;
  for (let i = 0; i < bytes.readUInt16LE(56); i++) {
    const at = Number(phoff) + i * bytes.readUInt16LE(54);
    const end = bytes.readBigUInt64LE(at + 8) + bytes.readBigUInt64LE(at + 32); // p_offset + p_filesz
    if (end > size) return truncated;
  }
  return '';
}

function requireAddon(file: string): unknown {
  const problem = process.platform === 'linux' ? elfProblem(fs.readFileSync(file)) : '';
  if (problem) throw new Error(`rnnkit: cannot load the native addon ${file} (${problem}); ${FIX}`);
  try {
    return require(file);
  } catch (e) {
    const reason = ((e as Error).message.split('\n')[0] ?? '').replace(file + ': ', '');
    throw new Error(`rnnkit: cannot load the native addon ${file} (${reason}); ${FIX}`);
  }
}

// The native side reads RNNKIT_BLAS and RNNKIT_PRODUCTS; a value it would ignore is refused here.
const ENVIRONMENT: Record<string, readonly string[]> = {
  RNNKIT_BLAS: ['auto', 'off'],
  RNNKIT_PRODUCTS: ['openblas', 'builtin'],
};

function checkEnvironment(): void {
  for (const [name, allowed] of Object.entries(ENVIRONMENT)) {
    const value = process.env[name];
    if (value !== undefined && value !== '' && !allowed.includes(value))
      throw new Error(`rnnkit: ${name} must be one of ${allowed.join(', ')}, got '${value}'`);
  }
}

function forcedIsa(): Isa | undefined {
  const forced = process.env.RNNKIT_ISA;
  if (forced === undefined || forced === '') return undefined;
  if (!(ISAS as readonly string[]).includes(forced))
    throw new Error(`rnnkit: RNNKIT_ISA must be one of ${ISAS.join(', ')}, got '${forced}'`);
  return forced as Isa;
}

function probe(addon: unknown, file: string) {
  if (typeof (addon as CpuProbe).cpu !== 'function')
    throw new Error(`rnnkit: ${file} is not an rnnkit addon of this version; ${FIX}`);
  return (addon as CpuProbe).cpu();
}

/** Loads the addon from one folder, or returns undefined where it holds none. */
function loadFrom(
  dir: string,
  source: AddonChoice['source'],
  forced: Isa | undefined,
): { addon: unknown; choice: AddonChoice } | undefined {
  const file = (isa: string) => path.join(dir, `rnnkit-${isa}.node`);
  const nativeBuild = file('native');
  if (fs.existsSync(nativeBuild) && (forced === undefined || forced === 'native')) {
    const addon = requireAddon(nativeBuild);
    const { cpu } = probe(addon, nativeBuild);
    return { addon, choice: { file: nativeBuild, isa: 'native', source, cpu } };
  }
  const baselineFile = file('baseline');
  if (!fs.existsSync(baselineFile)) return undefined;
  const baseline = requireAddon(baselineFile);
  const { cpu, supported } = probe(baseline, baselineFile);
  const built = supported.filter((isa) => fs.existsSync(file(isa)));
  let isa = built[0] ?? 'baseline';
  if (forced !== undefined) {
    if (!supported.includes(forced))
      throw new Error(
        `rnnkit: RNNKIT_ISA=${forced}, but this CPU (${cpu || 'unnamed'}) or its operating ` +
          `system does not support it; it runs: ${supported.join(', ')}`,
      );
    if (!fs.existsSync(file(forced)))
      throw new Error(`rnnkit: RNNKIT_ISA=${forced}, but ${file(forced)} is not there`);
    isa = forced;
  }
  const chosen = file(isa);
  return {
    addon: isa === 'baseline' ? baseline : requireAddon(chosen),
    choice: { file: chosen, isa, source, cpu },
  };
}

/** Loads the addon as described above; throws one line naming what was tried and the fix. */
export function loadAddon(): { addon: unknown; choice: AddonChoice } {
  checkEnvironment();
  const forced = forcedIsa();
  const explicit = process.env.RNNKIT_ADDON;
  if (explicit) {
    const file = path.resolve(explicit);
    if (!fs.existsSync(file))
      throw new Error(`rnnkit: RNNKIT_ADDON names ${file}, which is not there`);
    const addon = requireAddon(file);
    const { isa, cpu } = probe(addon, file);
    return { addon, choice: { file, isa, source: 'RNNKIT_ADDON', cpu } };
  }
  const tried = folders();
  for (const { dir, source } of tried) {
    const loaded = loadFrom(dir, source, forced);
    if (loaded) return loaded;
  }
  throw new Error(
    `rnnkit: no native addon fits this machine (${process.platform}-${process.arch}` +
      `${libc() ? ', ' + libc() : ''}); looked in ${tried.map((t) => t.dir).join(' and ')}; ${FIX}`,
  );
}
