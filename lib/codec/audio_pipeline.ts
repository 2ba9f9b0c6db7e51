/**
 * The main-thread side of audio transcoding: a Worker per room running
 * {@linkcode AacOpusTranscoder}, a bounded queue toward it, and Opus packets back.
 *
 * @module
 */
import type { AacOpusOptions } from "./audio.ts";
import type { AudioWorkerReply, AudioWorkerRequest } from "./audio_worker.ts";

/** What the pipeline reports back. */
export interface AudioPipelineEvents {
  /** Opus packets of 20 ms each, in order. */
  packets(packets: Uint8Array[]): void;
  /** A frame was corrupt and stood in for by silence. */
  corrupt(): void;
  /** Frames dropped because the worker fell behind. */
  dropped(count: number): void;
  /** Time the worker spent on one access unit, in microseconds. */
  timing(micros: number): void;
  /** The decoder could not open the stream's AudioSpecificConfig. */
  error(message: string): void;
}

/** Most access units in flight to the worker (≈ 1 s of AAC) before frames are dropped. */
const MAX_IN_FLIGHT = 48;

/** One room's AAC → Opus transcoding off the event loop. */
export class AudioPipeline {
  readonly #worker: Worker;
  readonly #events: AudioPipelineEvents;
  readonly #options: AacOpusOptions;
  #inFlight = 0;
  #open = false;
  #closed = false;

  constructor(events: AudioPipelineEvents, options: AacOpusOptions = {}) {
    this.#events = events;
    this.#options = options;
    this.#worker = new Worker(new URL("./audio_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#worker.onmessage = (e: MessageEvent<AudioWorkerReply>) => this.#reply(e.data);
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#events.error(e.message);
    };
  }

  #post(msg: AudioWorkerRequest, transfer: Transferable[] = []): void {
    if (!this.#closed) this.#worker.postMessage(msg, transfer);
  }

  #reply(msg: AudioWorkerReply): void {
    if (this.#closed) return;
    switch (msg.t) {
      case "opened":
        return;
      case "packets":
        this.#inFlight--;
        this.#events.timing(msg.micros);
        if (msg.corrupt) this.#events.corrupt();
        if (msg.packets.length) this.#events.packets(msg.packets);
        return;
      case "error":
        this.#open = false;
        this.#events.error(msg.message);
    }
  }

  /** (Re)opens the decoder for a new AudioSpecificConfig; the RTP clock goes on. */
  configure(asc: Uint8Array): void {
    this.#open = true;
    this.#post({ t: "open", asc: asc.slice(), options: this.#options });
  }

  /** Queues one raw AAC access unit; drops it when the worker is ≈ 1 s behind. */
  push(aac: Uint8Array): void {
    if (!this.#open) return;
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      this.#events.dropped(1);
      return;
    }
    this.#inFlight++;
    const copy = aac.slice();
    this.#post({ t: "frame", data: copy }, [copy.buffer]);
  }

  /** Stops the worker. */
  close(): void {
    if (this.#closed) return;
    this.#post({ t: "close" });
    this.#closed = true;
    // The worker closes itself after its last message; terminate bounds it.
    setTimeout(() => this.#worker.terminate(), 1000);
  }
}
