/**
 * Gathers the facts {@linkcode detectTranscodeSupport} decides on from this
 * machine: permissions, the loader's directories, the shim's places, and a
 * trial load of the shim.
 *
 * @module
 */

import { debianRelease, detectTranscodeSupport, loaderDirectories } from "./detect.ts";
import type { TranscodeHostFacts, TranscodeSupport } from "./detect.ts";
import { RUNTIME_LIBRARIES } from "./detect.ts";
import { openShim, shimCandidates } from "./native.ts";

/** Options of {@linkcode probeTranscodeHost}. */
export interface ProbeOptions {
  /** Look for the shim only here (default: {@linkcode shimCandidates}). */
  shimPath?: string;
  /** Open the shim to prove it loads (default true); needs the ffi permission. */
  tryLoad?: boolean;
}

/** Reads the facts about this host that decide whether native transcoding can run. */
export function probeTranscodeHost(options: ProbeOptions = {}): TranscodeHostFacts {
  const candidates = options.shimPath !== undefined ? [options.shimPath] : shimCandidates();
  const shimFound = candidates.find((path) => exists(path) === true);
  const facts: TranscodeHostFacts = {
    os: Deno.build.os,
    ffiGranted: ffiGranted(shimFound),
    release: debianRelease(readText("/etc/os-release")),
    librariesFound: new Set(),
    shimCandidates: candidates,
    shimFound,
  };
  const dirs = loaderDirectories(Deno.build.arch, envOrEmpty("LD_LIBRARY_PATH"));
  const found = facts.librariesFound as Set<string>;
  for (const lib of RUNTIME_LIBRARIES[facts.release]) {
    const seen = dirs.map((dir) => exists(`${dir}/${lib.soname}`));
    // Unreadable directories (no --allow-read) prove nothing: the trial load decides.
    if (seen.includes(true) || seen.every((s) => s === undefined)) found.add(lib.soname);
  }
  if ((options.tryLoad ?? true) && facts.ffiGranted && shimFound !== undefined) {
    try {
      openShim(shimFound).close();
    } catch (error) {
      facts.loadError = error instanceof Error ? error.message : String(error);
    }
  }
  return facts;
}

/** Whether native transcoding can run here, probing the host (see {@linkcode detectTranscodeSupport}). */
export function transcodeSupport(options: ProbeOptions = {}): TranscodeSupport {
  return detectTranscodeSupport(probeTranscodeHost(options));
}

/** true / false, or undefined when the read permission hides the answer. */
function exists(path: string): boolean | undefined {
  if (!granted({ name: "read", path })) return undefined;
  try {
    return Deno.statSync(path).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    if (error instanceof Deno.errors.NotADirectory) return false;
    return undefined;
  }
}

function ffiGranted(shimPath: string | undefined): boolean {
  return granted({ name: "ffi" }) ||
    (shimPath !== undefined && granted({ name: "ffi", path: shimPath }));
}

function readText(path: string): string {
  if (!granted({ name: "read", path })) return "";
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

function envOrEmpty(name: string): string {
  if (!granted({ name: "env", variable: name })) return "";
  try {
    return Deno.env.get(name) ?? "";
  } catch {
    return "";
  }
}

/** Asks without prompting: a TTY prompt from a capability probe would stall the server. */
function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}
