/**
 * What the native video transcoder needs from the machine, and the exact
 * remedy when something is missing: which shared libraries, which Debian
 * packages provide them, and how to build the shim. Pure: the caller supplies
 * the facts (`probeTranscodeHost` in host.ts gathers the real ones).
 *
 * @module
 */

import { SHIM_FILE_NAME } from "./native.ts";

/** A shared library the shim links against, with the Debian package that ships it. */
export interface RuntimeLibrary {
  /** The soname the loader looks for, e.g. `libavcodec.so.59`. */
  soname: string;
  /** The Debian package providing it, e.g. `libavcodec59`. */
  aptPackage: string;
}

/** The shim's run-time libraries per Debian release (FFmpeg and openh264 change sonames). */
export const RUNTIME_LIBRARIES: Readonly<Record<"bookworm" | "trixie", readonly RuntimeLibrary[]>> =
  {
    bookworm: [
      { soname: "libavcodec.so.59", aptPackage: "libavcodec59" },
      { soname: "libavutil.so.57", aptPackage: "libavutil57" },
      { soname: "libswscale.so.6", aptPackage: "libswscale6" },
      { soname: "libopenh264.so.7", aptPackage: "libopenh264-7" },
    ],
    trixie: [
      { soname: "libavcodec.so.61", aptPackage: "libavcodec61" },
      { soname: "libavutil.so.59", aptPackage: "libavutil59" },
      { soname: "libswscale.so.8", aptPackage: "libswscale8" },
      { soname: "libopenh264.so.8", aptPackage: "libopenh264-8" },
    ],
  };

/** Debian packages `native/build.sh` needs to compile the shim. */
export const BUILD_PACKAGES: readonly string[] = [
  "gcc",
  "libc6-dev",
  "libavcodec-dev",
  "libavutil-dev",
  "libswscale-dev",
  "libopenh264-dev",
];

/** The facts {@linkcode detectTranscodeSupport} decides on. */
export interface TranscodeHostFacts {
  /** `Deno.build.os`. */
  os: string;
  /** Whether the `ffi` permission is granted. */
  ffiGranted: boolean;
  /** Which Debian release's sonames to expect (from /etc/os-release; bookworm when unknown). */
  release: "bookworm" | "trixie";
  /** Sonames found in the loader's directories. */
  librariesFound: ReadonlySet<string>;
  /** Where the shim was looked for, best first. */
  shimCandidates: readonly string[];
  /** The first candidate that exists, if any. */
  shimFound?: string;
  /** Why loading the shim failed, when it was tried. */
  loadError?: string;
}

/** Whether the native transcoder can run here, and if not, why and what to do. */
export type TranscodeSupport =
  | { ok: true; shimPath: string }
  | {
    ok: false;
    /** One line for the log: what is missing and the command that fixes it. */
    reason: string;
    /** Sonames not found. */
    missingLibraries: string[];
    /** Debian packages to install (run-time libraries, plus build packages when the shim is missing). */
    aptPackages: string[];
    /** True when the shim must still be built (`native/build.sh`). */
    needsBuild: boolean;
  };

/**
 * Decides whether the native transcoder can run from the facts given.
 *
 * @returns `ok` with the shim's path, or the reason with the apt packages to install.
 */
export function detectTranscodeSupport(facts: TranscodeHostFacts): TranscodeSupport {
  const none = { missingLibraries: [], aptPackages: [], needsBuild: false };
  if (facts.os !== "linux") {
    return {
      ok: false,
      reason:
        `native video transcoding needs Linux with Debian's FFmpeg and openh264, not ${facts.os}`,
      ...none,
    };
  }
  if (!facts.ffiGranted) {
    return {
      ok: false,
      reason: "native video transcoding needs the --allow-ffi permission",
      ...none,
    };
  }
  const missing = RUNTIME_LIBRARIES[facts.release].filter((lib) =>
    !facts.librariesFound.has(lib.soname)
  );
  const needsBuild = facts.shimFound === undefined;
  const aptPackages = [
    ...missing.map((lib) => lib.aptPackage),
    ...(needsBuild ? BUILD_PACKAGES : []),
  ];
  const parts: string[] = [];
  if (missing.length > 0) {
    parts.push(`missing ${missing.map((lib) => lib.soname).join(", ")}`);
  }
  if (needsBuild) {
    parts.push(
      `missing ${SHIM_FILE_NAME} (looked in ${
        facts.shimCandidates.join(", ") || "no place"
      }; build it with native/build.sh)`,
    );
  }
  if (parts.length > 0) {
    return {
      ok: false,
      reason: `${parts.join("; ")}: apt-get install ${aptPackages.join(" ")}`,
      missingLibraries: missing.map((lib) => lib.soname),
      aptPackages,
      needsBuild,
    };
  }
  if (facts.loadError !== undefined) {
    return {
      ok: false,
      reason:
        `cannot load ${facts.shimFound}: ${facts.loadError} (rebuild it with native/build.sh --force)`,
      ...none,
      needsBuild: true,
    };
  }
  return { ok: true, shimPath: facts.shimFound! };
}

/** Directories the dynamic loader searches on Debian for this architecture. */
export function loaderDirectories(arch: string, ldLibraryPath = ""): string[] {
  const triplet = arch === "aarch64" ? "aarch64-linux-gnu" : `${arch}-linux-gnu`;
  return [
    ...ldLibraryPath.split(":").filter((dir) => dir !== ""),
    `/usr/local/lib/${triplet}`,
    "/usr/local/lib",
    `/lib/${triplet}`,
    `/usr/lib/${triplet}`,
    "/lib",
    "/usr/lib",
  ];
}

/** The Debian release named by an /etc/os-release text (bookworm unless it says trixie or later). */
export function debianRelease(osRelease: string): "bookworm" | "trixie" {
  const codename = osRelease.match(/^VERSION_CODENAME=("?)([a-z]+)\1$/m)?.[2];
  const version = Number(osRelease.match(/^VERSION_ID=("?)(\d+)\1$/m)?.[2] ?? NaN);
  return codename === "trixie" || version >= 13 ? "trixie" : "bookworm";
}

/** The two builds of the transcode shim: Debian's libraries through FFI, or WebAssembly. */
export type TranscodeEngine = "native" | "wasm";

/** `--transcode-engine`: which build to use; auto = native where it can run, else wasm. */
export type TranscodeEnginePreference = "auto" | TranscodeEngine;

/** Which engine a transcoder will run on, or why none can. */
export type TranscodeEngineChoice =
  | { ok: true; engine: "native"; shimPath: string }
  | {
    ok: true;
    engine: "wasm";
    /** Under "auto": why the native engine cannot run (with the apt-get command). */
    nativeUnavailable?: string;
  }
  | { ok: false; reason: string };

/**
 * Picks the engine from the native engine's support and the preference. The
 * WebAssembly build is part of Sluice and always available.
 */
export function chooseTranscodeEngine(
  native: TranscodeSupport,
  preference: TranscodeEnginePreference,
): TranscodeEngineChoice {
  if (preference === "wasm") return { ok: true, engine: "wasm" };
  if (native.ok) return { ok: true, engine: "native", shimPath: native.shimPath };
  if (preference === "native") return { ok: false, reason: native.reason };
  return { ok: true, engine: "wasm", nativeUnavailable: native.reason };
}
