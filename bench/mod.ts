/**
 * `deno task bench [--quick]`: runs every benchmark of bench/ in its own process
 * and prints their figures. Benchmarks print; they never assert timings.
 */
const quick = Deno.args.includes("--quick");
const here = new URL(".", import.meta.url);
const benches: string[] = [];
for await (const e of Deno.readDir(here)) {
  if (e.isFile && e.name.endsWith("_bench.ts")) benches.push(e.name);
}
benches.sort();
let failed = 0;
for (const name of benches) {
  console.log(`\n=== ${name}${quick ? " (quick)" : ""}`);
  const status = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--no-lock",
      new URL(name, here).pathname,
      ...(quick ? ["--quick"] : []),
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) {
    failed++;
    console.log(`!!! ${name} exited with ${status.code}`);
  }
}
Deno.exit(failed ? 1 : 0);
