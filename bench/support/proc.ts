/**
 * Linux /proc figures of a process, for the benchmarks.
 *
 * @module
 */

/** USER_HZ: /proc's CPU times are in these ticks per second on Linux. */
export const CLOCK_TICKS = 100;

/** /proc/<pid>/stat fields after the command name: index 0 is field 3 (state). */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).trim().split(" ");
}

/** utime + stime (fields 14 and 15) of a /proc/<pid>/stat text, in seconds. */
export function cpuSeconds(stat: string): number {
  const fields = statFields(stat);
  return (Number(fields[14 - 3]) + Number(fields[15 - 3])) / CLOCK_TICKS;
}
