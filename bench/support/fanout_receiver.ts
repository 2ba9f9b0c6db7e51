/**
 * Synthetic WebRTC viewers for the fan-out benchmark, many per process: each is a
 * werift peer that signals over WHEP, does ICE and DTLS like a browser, and then
 * hands its socket's media to a native SRTP sink (native/fanout.c) that decrypts
 * and authenticates every packet and counts sequence numbers — so one process
 * keeps up with hundreds of 2.5 Mbit/s streams and every loss is a real one.
 *
 *   deno run --allow-all bench/support/fanout_receiver.ts <whep-url> <count>
 *
 * stdout: JSON lines {"connected":n,"failed":m} as viewers come up, then one
 * {"stats":[…]} per "stats" line on stdin; "quit" closes every peer.
 *
 * @module
 */
import { RTCPeerConnection } from "werift";
import { viewerH264, viewerOpus } from "../../tests/support/werift_codecs.ts";
import { loadFanout, SrtpContext } from "../../lib/webrtc/fast/ffi.ts";
import { installNativeUdp, NativeUdpTransport } from "../../lib/webrtc/fast/udp.ts";

const [url, countArg] = Deno.args;
const count = Number(countArg);
const lib = loadFanout();
if (lib instanceof Error) throw lib;
installNativeUdp(lib);

interface Viewer {
  pc: RTCPeerConnection;
  sink?: SrtpContext;
  location?: string;
}

const viewers: Viewer[] = [];
let connected = 0;
let failed = 0;
const report = () => console.log(JSON.stringify({ connected, failed }));

async function connect(): Promise<void> {
  const pc = new RTCPeerConnection({
    codecs: {
      video: [
        viewerH264(),
      ],
      audio: [
        viewerOpus(),
      ],
    },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
  });
  const viewer: Viewer = { pc };
  viewers.push(viewer);
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const up = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("not connected in 60 s")),
      60_000,
    );
    pc.connectionStateChange.subscribe((s) => {
      if (s === "connected") {
        clearTimeout(timer);
        resolve();
      } else if (s === "failed") {
        clearTimeout(timer);
        reject(new Error("ICE/DTLS failed"));
      }
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: pc.localDescription!.sdp,
  });
  if (res.status !== 201) {
    throw new Error(`WHEP POST: HTTP ${res.status} ${await res.text()}`);
  }
  viewer.location = new URL(res.headers.get("location")!, url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  await up;
  // The server's media: decrypt with its keys (the exporter's "remote" half here).
  const dtls = pc.getTransceivers()[0].receiver.dtlsTransport as unknown as {
    dtls: {
      srtp: { srtpProfile: number };
      extractSessionKeys(
        k: number,
        s: number,
      ): { remoteKey: Uint8Array; remoteSalt: Uint8Array };
    };
    iceTransport: { connection: { protocols: { transport?: unknown }[] } };
  };
  const profile = dtls.dtls.srtp.srtpProfile;
  const keys = dtls.dtls.extractSessionKeys(16, profile === 7 ? 12 : 14);
  viewer.sink = new SrtpContext(
    lib as Exclude<typeof lib, Error>,
    profile,
    keys.remoteKey,
    keys.remoteSalt,
  );
  for (const p of dtls.iceTransport.connection.protocols) {
    if (p.transport instanceof NativeUdpTransport) {
      p.transport.udp.loop.setSink(p.transport.slot, viewer.sink);
    }
  }
}

// Connect a few at a time: like viewers arriving, without a handshake storm.
const PARALLEL = 8;
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(PARALLEL, count) }, async () => {
    while (next < count) {
      next++;
      try {
        await connect();
        connected++;
      } catch (err) {
        failed++;
        console.error(`viewer failed: ${(err as Error).message}`);
      }
      if ((connected + failed) % 10 === 0 || connected + failed === count) {
        report();
      }
    }
  }),
);
report();

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buf = "";
for await (const chunk of lines) {
  buf += chunk;
  let i;
  while ((i = buf.indexOf("\n")) >= 0) {
    const cmd = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (cmd === "stats") {
      console.log(JSON.stringify({
        stats: viewers.map((v) => {
          const streams = v.sink?.stats() ?? [];
          return {
            received: streams.reduce((n, s) => n + s.received, 0),
            expected: streams.reduce((n, s) => n + s.expected, 0),
            reordered: streams.reduce((n, s) => n + s.reordered, 0),
            authFailures: streams.reduce((n, s) => n + s.authFailures, 0),
            bytes: streams.reduce((n, s) => n + s.bytes, 0),
          };
        }),
      }));
    } else if (cmd === "quit") {
      await Promise.all(viewers.map(async (v) => {
        if (v.location) {
          await fetch(v.location, { method: "DELETE" }).catch(() => {});
        }
        await v.pc.close().catch(() => {});
      }));
      Deno.exit(0);
    }
  }
}
Deno.exit(0);
