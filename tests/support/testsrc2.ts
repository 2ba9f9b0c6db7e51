/**
 * Reference colours of ffmpeg's `testsrc2`: renders frames of the same lavfi
 * source the publishers use and finds points whose neighbourhood keeps one colour
 * in every frame (the colour bars), so a test can sample a decoded picture there.
 *
 * @module
 */

/** A point of the picture and the colour it has in every reference frame. */
export interface ReferencePoint {
  x: number;
  y: number;
  rgb: [number, number, number];
}

/**
 * Renders `frames` frames of testsrc2 spread over `seconds` and returns up to
 * `max` static points, one per distinct colour, each the centre of a uniform
 * `(2·radius+1)²` block (so chroma subsampling and compression at edges don't matter).
 */
export async function testsrc2StaticPoints(
  width = 640,
  height = 360,
  o: {
    frames?: number;
    seconds?: number;
    radius?: number;
    step?: number;
    max?: number;
    /** Skip colours whose brightest channel is below this (dark text boxes). */
    minLevel?: number;
  } = {},
): Promise<ReferencePoint[]> {
  const frames = o.frames ?? 30, seconds = o.seconds ?? 30;
  const radius = o.radius ?? 6, step = o.step ?? 8, max = o.max ?? 8;
  const every = Math.max(1, Math.round(seconds * 30 / frames));
  const out = await new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-hide_banner",
      "-loglevel",
      "error",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${width}x${height}:rate=30`,
      "-vf",
      `select=not(mod(n\\,${every}))`,
      "-fps_mode",
      "passthrough",
      "-frames:v",
      String(frames),
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ffmpeg testsrc2: ${new TextDecoder().decode(out.stderr)}`);
  const size = width * height * 3;
  if (out.stdout.length !== size * frames) {
    throw new Error(`expected ${frames} frames of ${size} bytes, got ${out.stdout.length} bytes`);
  }
  const pics = Array.from(
    { length: frames },
    (_, i) => out.stdout.subarray(i * size, (i + 1) * size),
  );
  const at = (pic: Uint8Array, x: number, y: number) => (y * width + x) * 3;

  const byColour = new Map<string, ReferencePoint[]>();
  for (let y = radius; y < height - radius; y += step) {
    for (let x = radius; x < width - radius; x += step) {
      const c = at(pics[0], x, y);
      const rgb: [number, number, number] = [pics[0][c], pics[0][c + 1], pics[0][c + 2]];
      if (Math.max(...rgb) < (o.minLevel ?? 128)) continue;
      let uniform = true;
      check: for (const pic of pics) {
        for (let dy = -radius; dy <= radius; dy++) {
          for (let dx = -radius; dx <= radius; dx++) {
            const i = at(pic, x + dx, y + dy);
            if (
              Math.abs(pic[i] - rgb[0]) > 2 || Math.abs(pic[i + 1] - rgb[1]) > 2 ||
              Math.abs(pic[i + 2] - rgb[2]) > 2
            ) {
              uniform = false;
              break check;
            }
          }
        }
      }
      if (!uniform) continue;
      const key = rgb.map((v) => v >> 5).join(",");
      byColour.set(key, [...(byColour.get(key) ?? []), { x, y, rgb }]);
    }
  }
  // One point per colour: the middle one of the colour's points (inside its region).
  return [...byColour.values()]
    .sort((a, b) => b.length - a.length)
    .slice(0, max)
    .map((points) => points[Math.floor(points.length / 2)]);
}
