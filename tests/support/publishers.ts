/**
 * Real RTMP publishers for tests: ffmpeg (from a clip made once), GStreamer
 * (rtmp2sink) and OBS Studio under Xvfb. Each is a child process the test stops.
 *
 * @module
 */

/** A running publisher process. */
export interface Publisher {
  readonly child: Deno.ChildProcess;
  /** stderr + stdout so far. */
  output(): string;
  /** Resolves with the exit code when it ends by itself. */
  readonly exited: Promise<number>;
  /** Ends it (SIGINT, then SIGKILL) and waits. */
  stop(): Promise<number>;
}

function spawn(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
  group = false,
): Publisher {
  // A process group (setsid) lets stop() reach wrappers' children too (xvfb-run → Xvfb, obs).
  const child = new Deno.Command(group ? "setsid" : cmd, {
    args: group ? [cmd, ...args] : args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const c of s) {
      text = (text + d.decode(c, { stream: true })).slice(-64 * 1024);
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let done = false;
  const exited = child.status.then(async (s) => {
    done = true;
    await pumps;
    return s.code;
  });
  return {
    child,
    output: () => text,
    exited,
    async stop() {
      const signal = (sig: Deno.Signal) => {
        try {
          if (group) Deno.kill(-child.pid, sig);
          else if (!done) child.kill(sig);
        } catch { /* gone */ }
      };
      if (!done) signal(group ? "SIGTERM" : "SIGINT");
      const killer = setTimeout(() => signal("SIGKILL"), 5000);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
  };
}

/** What a clip looks like. */
export interface ClipOptions {
  width?: number;
  height?: number;
  fps?: number;
  seconds?: number;
  /** Keyframe interval in frames. */
  gop?: number;
  /** libx264 defaults (B-frames on) instead of -tune zerolatency. */
  bframes?: boolean;
  videoBitrate?: string;
  audioRate?: number;
  audioChannels?: number;
  profile?: "baseline" | "main" | "high";
}

/** Frame counts of a clip as ffprobe sees them. */
export interface ClipFrames {
  video: number;
  audio: number;
  keyframes: number;
}

/** Encodes a testsrc2 + 440 Hz clip into an FLV file (once per options in this process). */
export async function makeClip(
  dir: string,
  o: ClipOptions = {},
): Promise<string> {
  const w = o.width ?? 640,
    h = o.height ?? 360,
    fps = o.fps ?? 30,
    secs = o.seconds ?? 4;
  const name = `clip-${w}x${h}-${fps}-${secs}-${o.gop ?? 60}-${o.bframes ? "b" : "nob"}-${
    o.videoBitrate ?? "def"
  }-${o.audioRate ?? 44100}-${o.audioChannels ?? 2}-${o.profile ?? "high"}.flv`;
  const path = `${dir}/${name}`;
  try {
    await Deno.stat(path);
    return path;
  } catch { /* make it */ }
  const video = [
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    ...(o.bframes ? ["-bf", "3", "-b_strategy", "0"] : ["-tune", "zerolatency"]),
    "-profile:v",
    o.profile ?? "high",
    "-g",
    String(o.gop ?? 60),
    "-pix_fmt",
    "yuv420p",
    ...(o.videoBitrate
      ? [
        "-b:v",
        o.videoBitrate,
        "-maxrate",
        o.videoBitrate,
        "-bufsize",
        o.videoBitrate,
      ]
      : []),
  ];
  const out = await new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-hide_banner",
      "-loglevel",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${w}x${h}:rate=${fps}`,
      "-f",
      "lavfi",
      "-i",
      `sine=f=440:sample_rate=${o.audioRate ?? 44100}`,
      "-t",
      String(secs),
      ...video,
      "-c:a",
      "aac",
      "-b:a",
      "128k",
      "-ar",
      String(o.audioRate ?? 44100),
      "-ac",
      String(o.audioChannels ?? 2),
      "-f",
      "flv",
      path + ".tmp",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `ffmpeg clip failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  await Deno.rename(path + ".tmp", path);
  return path;
}

/** Counts packets and keyframes with ffprobe. */
export async function probeFrames(path: string): Promise<ClipFrames> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command("ffprobe", {
      args,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  };
  const packets = await run([
    "-v",
    "error",
    "-show_entries",
    "packet=codec_type,flags",
    "-of",
    "csv=p=0",
    path,
  ]);
  const frames: ClipFrames = { video: 0, audio: 0, keyframes: 0 };
  for (const line of packets.split("\n")) {
    const [type, flags] = line.split(",");
    if (type === "video") {
      frames.video++;
      if (flags?.startsWith("K")) frames.keyframes++;
    } else if (type === "audio") frames.audio++;
  }
  return frames;
}

/** ffmpeg with `args` (inputs and encoder options), publishing FLV to `url`. */
export function publishFfmpeg(url: string, args: string[]): Publisher {
  return spawn("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "warning",
    ...args,
    "-f",
    "flv",
    url,
  ]);
}

/** ffmpeg sends a clip in real time, unchanged (`-c copy`). */
export function publishClip(
  url: string,
  clip: string,
  extra: string[] = [],
): Publisher {
  return spawn("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "warning",
    "-re",
    "-i",
    clip,
    "-c",
    "copy",
    ...extra,
    "-f",
    "flv",
    url,
  ]);
}

/** ffmpeg encodes live testsrc2 + sine with libx264 defaults or zerolatency. */
export function publishLive(
  url: string,
  o: { seconds: number; bframes?: boolean; width?: number; height?: number },
): Publisher {
  return spawn("ffmpeg", [
    "-nostdin",
    "-hide_banner",
    "-loglevel",
    "warning",
    "-re",
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=${o.width ?? 640}x${o.height ?? 360}:rate=30`,
    "-f",
    "lavfi",
    "-i",
    "sine=f=440",
    "-t",
    String(o.seconds),
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    ...(o.bframes ? [] : ["-tune", "zerolatency"]),
    "-g",
    "60",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-ar",
    "44100",
    "-ac",
    "2",
    "-f",
    "flv",
    url,
  ]);
}

/** GStreamer: x264enc + voaacenc + flvmux + rtmp2sink, `seconds` of 640x360@30. */
export function publishGstreamer(url: string, seconds: number): Publisher {
  const pipeline = [
    "-e",
    "videotestsrc",
    "is-live=true",
    "pattern=smpte",
    `num-buffers=${seconds * 30}`,
    "!",
    "video/x-raw,width=640,height=360,framerate=30/1",
    "!",
    "videoconvert",
    "!",
    "x264enc",
    "tune=zerolatency",
    "speed-preset=veryfast",
    "key-int-max=60",
    "bitrate=1500",
    "!",
    "video/x-h264,profile=high",
    "!",
    "h264parse",
    "!",
    "queue",
    "!",
    "mux.",
    "audiotestsrc",
    "is-live=true",
    "wave=sine",
    "freq=440",
    `num-buffers=${Math.ceil(seconds * 48000 / 1024)}`,
    "!",
    "audio/x-raw,rate=48000,channels=2",
    "!",
    "audioconvert",
    "!",
    "audioresample",
    "!",
    "voaacenc",
    "bitrate=128000",
    "!",
    "aacparse",
    "!",
    "queue",
    "!",
    "mux.",
    "flvmux",
    "name=mux",
    "streamable=true",
    "!",
    "rtmp2sink",
    `location=${url}`,
  ];
  return spawn("gst-launch-1.0", pipeline);
}

/**
 * OBS Studio 29 under Xvfb, configured from files only (Simple output, x264, the
 * defaults unless `x264opts` is given), streaming at launch to `server` with `key`.
 */
export async function publishObs(
  home: string,
  server: string,
  key: string,
  options: { x264opts?: string } = {},
): Promise<Publisher> {
  const cfg = `${home}/.config/obs-studio`;
  await Deno.mkdir(`${cfg}/basic/profiles/Test`, { recursive: true });
  await Deno.mkdir(`${cfg}/basic/scenes`, { recursive: true });
  await Deno.mkdir(`${home}/media`, { recursive: true });
  await Deno.mkdir(`${home}/run`, { recursive: true, mode: 0o700 });
  const clip = `${home}/media/loop.mp4`;
  const made = await new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-loglevel",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=640x360:rate=30",
      "-f",
      "lavfi",
      "-i",
      "sine=f=440:sample_rate=48000",
      "-t",
      "10",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
      "-ac",
      "2",
      clip,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!made.success) throw new Error(new TextDecoder().decode(made.stderr));
  await Deno.writeTextFile(
    `${cfg}/global.ini`,
    `[General]\nFirstRun=true\nLastVersion=486539266\nEnableAutoUpdates=false\nConfirmOnExit=false\n\n` +
      `[BasicWindow]\nSysTrayEnabled=false\nSysTrayWhenStarted=false\nWarnBeforeStartingStream=false\n` +
      `WarnBeforeStoppingStream=false\nShowTransitions=false\n\n` +
      `[Basic]\nProfile=Test\nProfileDir=Test\nSceneCollection=Test\nSceneCollectionFile=Test\n` +
      `ConfigOnNewProfile=false\n`,
  );
  let basic =
    `[General]\nName=Test\n\n[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\n` +
    `FPSType=0\nFPSCommon=30\nColorFormat=NV12\nColorSpace=709\nColorRange=Partial\n\n` +
    `[Audio]\nSampleRate=48000\nChannelSetup=Stereo\n\n[Output]\nMode=Simple\nReconnect=false\n\n` +
    `[SimpleOutput]\nStreamEncoder=x264\nVBitrate=1500\nABitrate=128\nPreset=veryfast\nRecEncoder=x264\n`;
  if (options.x264opts) {
    basic += `UseAdvanced=true\nx264Settings=${options.x264opts}\n`;
  }
  await Deno.writeTextFile(`${cfg}/basic/profiles/Test/basic.ini`, basic);
  await Deno.writeTextFile(
    `${cfg}/basic/profiles/Test/service.json`,
    JSON.stringify({
      type: "rtmp_custom",
      settings: { server, key, use_auth: false, bwtest: false },
    }),
  );
  const item = (name: string, id: number, x: number, scale: number) => ({
    name,
    id,
    visible: true,
    locked: false,
    rot: 0,
    pos: { x, y: x * 0.5625 },
    scale: { x: scale, y: scale },
    align: 5,
    bounds_type: 0,
    bounds_align: 0,
    bounds: { x: 0, y: 0 },
    crop_left: 0,
    crop_top: 0,
    crop_right: 0,
    crop_bottom: 0,
  });
  await Deno.writeTextFile(
    `${cfg}/basic/scenes/Test.json`,
    JSON.stringify({
      name: "Test",
      current_scene: "Scene",
      current_program_scene: "Scene",
      scene_order: [{ name: "Scene" }],
      groups: [],
      quick_transitions: [],
      transitions: [],
      saved_projectors: [],
      current_transition: "Fade",
      transition_duration: 300,
      preview_locked: false,
      scaling_enabled: false,
      sources: [
        {
          id: "scene",
          versioned_id: "scene",
          name: "Scene",
          enabled: true,
          muted: false,
          volume: 1,
          flags: 0,
          settings: {
            id_counter: 2,
            custom_size: false,
            items: [item("Color", 1, 0, 1), item("Media", 2, 160, 0.5)],
          },
        },
        {
          id: "color_source",
          versioned_id: "color_source_v3",
          name: "Color",
          enabled: true,
          muted: false,
          volume: 1,
          settings: { color: 4278222848, width: 640, height: 360 },
        },
        {
          id: "ffmpeg_source",
          versioned_id: "ffmpeg_source",
          name: "Media",
          enabled: true,
          muted: false,
          volume: 1,
          monitoring_type: 0,
          settings: {
            is_local_file: true,
            local_file: clip,
            looping: true,
            restart_on_activate: true,
            close_when_inactive: false,
            hw_decode: false,
          },
        },
      ],
    }),
  );
  return spawn("xvfb-run", [
    "-a",
    "-s",
    "-screen 0 1280x720x24 -nolisten tcp",
    "obs",
    "--profile",
    "Test",
    "--collection",
    "Test",
    "--scene",
    "Scene",
    "--startstreaming",
    "--disable-updater",
    "--disable-missing-files-check",
    "--multi",
  ], {
    HOME: home,
    XDG_CONFIG_HOME: `${home}/.config`,
    LIBGL_ALWAYS_SOFTWARE: "1",
    QT_QPA_PLATFORM: "xcb",
    XDG_RUNTIME_DIR: `${home}/run`,
  }, true);
}
