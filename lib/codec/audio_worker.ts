/**
 * Worker entry of the AAC → Opus transcoder: one per transcoding room, so audio
 * work never runs on the event loop that forwards media.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type AacOpusOptions, AacOpusTranscoder } from "./audio.ts";

/** Messages to the worker. */
export type AudioWorkerRequest =
  | { t: "open"; asc: Uint8Array; options: AacOpusOptions }
  | { t: "frame"; data: Uint8Array }
  | { t: "close" };

/** Messages from the worker. */
export type AudioWorkerReply =
  | { t: "opened"; channels: number }
  | { t: "packets"; packets: Uint8Array[]; corrupt: boolean; micros: number }
  | { t: "error"; message: string };

let transcoder: AacOpusTranscoder | undefined;
let chain: Promise<void> = Promise.resolve();

function reply(msg: AudioWorkerReply, transfer: Transferable[] = []): void {
  self.postMessage(msg, transfer);
}

async function handle(msg: AudioWorkerRequest): Promise<void> {
  switch (msg.t) {
    case "open":
      transcoder?.close();
      transcoder = undefined;
      try {
        transcoder = await AacOpusTranscoder.create(msg.asc, msg.options);
        reply({ t: "opened", channels: transcoder.channels });
      } catch (err) {
        reply({ t: "error", message: (err as Error).message });
      }
      return;
    case "frame": {
      if (!transcoder) return;
      const start = performance.now();
      const { packets, corrupt } = transcoder.transcode(msg.data);
      const micros = Math.round((performance.now() - start) * 1000);
      reply(
        { t: "packets", packets, corrupt, micros },
        packets.map((p) => p.buffer as ArrayBuffer),
      );
      return;
    }
    case "close":
      transcoder?.close();
      transcoder = undefined;
      self.close();
  }
}

self.onmessage = (e: MessageEvent<AudioWorkerRequest>) => {
  chain = chain.then(() => handle(e.data)).catch((err) => {
    reply({ t: "error", message: String(err) });
  });
};
