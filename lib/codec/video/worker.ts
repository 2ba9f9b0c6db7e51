/**
 * The transcoder Worker: owns one shim handle (native through FFI, or the
 * WebAssembly build) and runs every decode and encode on its own thread, so the
 * server's event loop only moves buffers.
 * Started by {@linkcode VideoTranscoder}; speaks the messages in protocol.ts.
 *
 * @module
 */

import { NativeTranscoder, openShim, type ShimLibrary, type TranscoderEngine } from "./native.ts";
import { WasmTranscoder } from "./wasm.ts";
import type { FromWorker, ToWorker, WorkerOutput } from "./protocol.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

let lib: ShimLibrary | undefined;
let transcoder: TranscoderEngine | undefined;
let keyframeFlag: Int32Array | undefined;
let busyMs = 0;
let cpuMs: number | undefined;
let cpuReadAt = -Infinity;
let cpuReadable = false;

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case "init":
      void init(message);
      break;
    case "frame":
      encodeFrame(message.data, message.pts, message.dts, message.lengthSize);
      break;
    case "config":
      configure(message.avcC);
      break;
    case "catchUp":
      transcoder?.catchUp(message.untilPts);
      break;
    case "flush":
      flush();
      scope.postMessage({ type: "flushed", id: message.id });
      break;
    case "close":
      transcoder?.destroy();
      transcoder = undefined;
      lib?.close();
      lib = undefined;
      scope.postMessage({ type: "closed" });
      scope.close();
      break;
  }
};

async function init(message: Extract<ToWorker, { type: "init" }>): Promise<void> {
  try {
    if (message.engine === "wasm") {
      transcoder = await WasmTranscoder.create(message.options);
    } else {
      lib = openShim(message.shimPath ?? "");
      transcoder = new NativeTranscoder(lib, message.options);
    }
    keyframeFlag = new Int32Array(message.keyframeFlag);
    cpuReadable = Deno.build.os === "linux" &&
      Deno.permissions.querySync({ name: "read", path: THREAD_STAT }).state === "granted";
    scope.postMessage({ type: "ready" });
  } catch (error) {
    transcoder?.destroy();
    lib?.close();
    transcoder = undefined;
    lib = undefined;
    scope.postMessage({ type: "failed", message: errorMessage(error) });
  }
}

function encodeFrame(data: Uint8Array, pts: number, dts: number, lengthSize: 1 | 2 | 4): void {
  if (!transcoder) return;
  let error: string | undefined;
  const start = performance.now();
  // Read the flag just before pushing: a request made while frames queued up
  // lands on the next picture encoded, not after the backlog.
  if (keyframeFlag && Atomics.exchange(keyframeFlag, 0, 0) !== 0) transcoder.forceIdr();
  const encodeErrors = transcoder.stats().encodeErrors;
  try {
    transcoder.push(data, pts, dts, lengthSize);
  } catch (e) {
    error = errorMessage(e);
  }
  // The shim counts encoder failures without failing the push: say what went wrong once.
  const encodeError = transcoder.stats().encodeErrors > encodeErrors
    ? transcoder.lastError()
    : undefined;
  post(1, start, error, encodeError);
}

function configure(avcC: Uint8Array): void {
  if (!transcoder) return;
  try {
    transcoder.setExtradata(avcC);
    post(0, performance.now());
  } catch (e) {
    post(0, performance.now(), errorMessage(e));
  }
}

function flush(): void {
  if (!transcoder) return;
  const start = performance.now();
  transcoder.flush();
  post(0, start);
}

/** Drains the native output queue into one message, transferring every buffer. */
function post(consumed: number, start: number, error?: string, encodeError?: string): void {
  const native = transcoder!;
  const outputs: WorkerOutput[] = [];
  for (let out = native.pop(); out; out = native.pop()) outputs.push(out);
  const now = performance.now();
  busyMs += now - start;
  if (cpuReadable && (consumed === 0 || now - cpuReadAt >= 250)) {
    cpuReadAt = now;
    cpuMs = threadCpuMs();
  }
  scope.postMessage(
    { type: "output", consumed, outputs, busyMs, cpuMs, error, encodeError, stats: native.stats() },
    outputs.map((out) => out.data.buffer as ArrayBuffer),
  );
}

const THREAD_STAT = "/proc/thread-self/stat";

/** CPU time of this Worker's thread (utime + stime), from procfs; undefined if unreadable. */
function threadCpuMs(): number | undefined {
  try {
    const stat = Deno.readTextFileSync(THREAD_STAT);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of proc(5), in clock ticks of 10 ms; index 0 here is field 3.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
