/**
 * Where Sluice's own native libraries (native/, built by native/build.sh) are
 * looked for, for every module that loads one with `Deno.dlopen`.
 *
 * @module
 */

/** Runs `read` only when `descriptor` is already granted (never prompts); undefined otherwise. */
export function quietly<T>(descriptor: Deno.PermissionDescriptor, read: () => T): T | undefined {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted" ? read() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Paths where the library `fileName` may be, best first: `$<envVariable>` alone
 * when set; else `native/build/` of this source tree (a `deno run` checkout), then
 * beside the running executable (a `deno compile` binary with the library copied
 * next to it).
 */
export function nativeLibraryCandidates(fileName: string, envVariable: string): string[] {
  const explicit = quietly(
    { name: "env", variable: envVariable },
    () => Deno.env.get(envVariable),
  );
  if (explicit) return [explicit];
  const paths: string[] = [];
  const tree = new URL(`../native/build/${fileName}`, import.meta.url);
  if (tree.protocol === "file:") paths.push(decodeURIComponent(tree.pathname));
  const exe = quietly({ name: "read" }, () => Deno.execPath());
  if (exe) paths.push(exe.slice(0, exe.lastIndexOf("/") + 1) + fileName);
  return [...new Set(paths)];
}
