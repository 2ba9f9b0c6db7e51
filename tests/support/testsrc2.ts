/**
 * Reference colours of ffmpeg's `testsrc2`: renders the same lavfi source the
 * publishers use and finds points whose neighbourhood keeps one colour in every
 * frame (the colour bars away from the moving line, boxes and counter), so a test
 * can sample a decoded picture there.
 *
 * @module
 */

/** A point of the picture and the colour it keeps (but for brief crossings). */
export interface ReferencePoint {
  x: number;
  y: number;
  rgb: [number, number, number];
}

/** Options of {@linkcode testsrc2StaticPoints}. */
export interface StaticPointOptions {
  /** Seconds of the source to scan, every frame. */
  seconds?: number;
  /** Half the side of the block that must keep its colour around a point. */
  radius?: number;
  /** Grid step of candidate points. */
  step?: number;
  /** Most colours returned. */
  colours?: number;
  /** Points per colour, spread over the colour's region. */
  perColour?: number;
  /** Longest run of frames a point may be covered by something moving. */
  maxCoveredFrames?: number;
  /** Skip colours whose brightest channel is below this (dark text boxes). */
  minLevel?: number;
  /**
   * The YCbCr matrix the viewer decodes with. libx264 gets BT.601 YUV from
   * swscale and ffmpeg writes no colour description in the SPS; Chromium renders
   * such untagged WebRTC video as BT.709 (pure green 254 shows as 215), so the
   * reference takes the same path: RGB → BT.601 yuv420p → RGB read as BT.709.
   */
  decodeMatrix?: "bt601" | "bt709";
}

/**
 * Scans `seconds` of testsrc2 at 30 fps and returns points of its colour bars:
 * each the centre of a `(2·radius+1)²` block that keeps one colour except while
 * testsrc2's moving line sweeps over it (at most `maxCoveredFrames` frames in a
 * row, at most 10 % of the time). Sample such a point a few times ≥ 300 ms apart
 * and one sample shows the bar. Brightest-region colours first, `perColour`
 * points each.
 */
export async function testsrc2StaticPoints(
  width = 640,
  height = 360,
  o: StaticPointOptions = {},
): Promise<ReferencePoint[]> {
  const seconds = o.seconds ?? 20, radius = o.radius ?? 6, step = o.step ?? 8;
  const colours = o.colours ?? 6, perColour = o.perColour ?? 3;
  const maxRun = o.maxCoveredFrames ?? 6, minLevel = o.minLevel ?? 128;
  const matrix = o.decodeMatrix ?? "bt709";
  const total = Math.round(seconds * 30);
  const child = new Deno.Command("ffmpeg", {
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
      `format=yuv420p,scale=in_color_matrix=${matrix}:in_range=tv:out_range=pc,format=rgb24`,
      "-frames:v",
      String(total),
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();

  const size = width * height * 3;
  let first: Uint8Array | undefined;
  // Per pixel: frames that differ from the first frame, the current and longest run.
  const differ = new Uint16Array(width * height);
  const run = new Uint16Array(width * height);
  const longest = new Uint16Array(width * height);
  const frame = new Uint8Array(size);
  let filled = 0, frames = 0;
  const compare = () => {
    if (!first) {
      first = frame.slice();
      return;
    }
    for (let p = 0, i = 0; p < differ.length; p++, i += 3) {
      if (
        Math.abs(frame[i] - first[i]) > 2 ||
        Math.abs(frame[i + 1] - first[i + 1]) > 2 ||
        Math.abs(frame[i + 2] - first[i + 2]) > 2
      ) {
        differ[p]++;
        if (++run[p] > longest[p]) longest[p] = run[p];
      } else run[p] = 0;
    }
  };
  for await (let chunk of child.stdout) {
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, size - filled);
      frame.set(chunk.subarray(0, n), filled);
      filled += n;
      chunk = chunk.subarray(n);
      if (filled === size) {
        compare();
        frames++;
        filled = 0;
      }
    }
  }
  const status = await child.status;
  if (!status.success || !first || frames < total) {
    throw new Error(
      `ffmpeg testsrc2 gave ${frames} of ${total} frames: ${await stderr}`,
    );
  }

  const byColour = new Map<string, ReferencePoint[]>();
  for (let y = radius; y < height - radius; y += step) {
    for (let x = radius; x < width - radius; x += step) {
      const c = (y * width + x) * 3;
      const rgb: [number, number, number] = [
        first[c],
        first[c + 1],
        first[c + 2],
      ];
      if (Math.max(...rgb) < minLevel) continue;
      let steady = true;
      block: for (let dy = -radius; dy <= radius; dy++) {
        for (let dx = -radius; dx <= radius; dx++) {
          const p = (y + dy) * width + x + dx;
          const i = p * 3;
          if (
            longest[p] > maxRun || differ[p] > frames / 10 ||
            Math.abs(first[i] - rgb[0]) > 2 ||
            Math.abs(first[i + 1] - rgb[1]) > 2 ||
            Math.abs(first[i + 2] - rgb[2]) > 2
          ) {
            steady = false;
            break block;
          }
        }
      }
      if (!steady) continue;
      const key = rgb.map((v) => v >> 5).join(",");
      byColour.set(key, [...(byColour.get(key) ?? []), { x, y, rgb }]);
    }
  }
  // Per colour, points spread evenly over the list of its points (rows top to bottom).
  return [...byColour.values()]
    .sort((a, b) => b.length - a.length)
    .slice(0, colours)
    .flatMap((points) =>
      Array.from(
        { length: Math.min(perColour, points.length) },
        (_, k) =>
          points[
            Math.floor(
              (k + 0.5) * points.length / Math.min(perColour, points.length),
            )
          ],
      )
    );
}
