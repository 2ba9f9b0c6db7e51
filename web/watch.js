// Player page: WHEP playback, waiting/live/ended states, auto-reconnect, stats overlay.
import { WhepClient } from "/assets/whep.js";

const room = decodeURIComponent(location.pathname.split("/").pop());
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const message = document.getElementById("message");
const playButton = document.getElementById("play");
const badge = document.getElementById("badge");
const detail = document.getElementById("detail");
const statsBox = document.getElementById("stats");
const muteButton = document.getElementById("mute");
document.getElementById("room-name").textContent = room;
document.title = `Sluice · ${room}`;

let client = null;
let live = false;
let retry = 0;
let userStarted = false;
globalThis.sluicePlayer = {
  stats: null,
  state: "connecting",
  room,
  // Restarts ICE on the current session (what a failed path does on its own).
  restartIce: () => client.restartIce(),
};

function setState(state, text) {
  globalThis.sluicePlayer.state = state;
  badge.className = `badge ${state === "live" ? "live" : "wait"}`;
  badge.textContent = {
    live: "Live",
    waiting: "Waiting",
    ended: "Ended",
    connecting: "Connecting",
    error: "Offline",
  }[state] ?? state;
  detail.textContent = text ?? "";
  if (state === "live" && userStarted) overlay.hidden = true;
  else if (state !== "live") {
    overlay.hidden = false;
    message.textContent = text ?? "";
  } else message.textContent = "Click to play with sound";
}

async function connect() {
  client?.stop();
  client = new WhepClient(`${location.origin}/whep/${encodeURIComponent(room)}`, {
    token: new URLSearchParams(location.search).get("token") ?? undefined,
    onTrack: (stream) => {
      if (video.srcObject !== stream) video.srcObject = stream;
      video.play().catch(() => {});
    },
    onState: (s) => {
      // A failed path first tries an ICE restart on the same session (a network
      // change keeps the stream); a refused restart or a closed peer starts over.
      if (s === "failed") client.restartIce().catch(scheduleReconnect);
      if (s === "closed") scheduleReconnect();
      if (s === "connected") retry = 0;
    },
  });
  try {
    await client.start();
  } catch (err) {
    setState("error", `Cannot connect: ${err.message}`);
    scheduleReconnect();
  }
}

let reconnectTimer = null;
function scheduleReconnect() {
  if (reconnectTimer) return;
  const delay = Math.min(10000, 500 * 2 ** retry++);
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    connect();
  }, delay);
}

async function pollRoom() {
  try {
    const r = await (await fetch(`/api/rooms/${encodeURIComponent(room)}`, { cache: "no-store" }))
      .json();
    if (r.live) {
      live = true;
      const v = r.video ?? {};
      setState(
        "live",
        [v.width && `${v.width}×${v.height}`, `${r.viewers} watching`].filter(Boolean).join(" · "),
      );
    } else {
      setState(
        live ? "ended" : "waiting",
        live
          ? "The stream ended. This page reconnects when it starts again."
          : "Waiting for the stream to start…",
      );
      if (live) live = false;
    }
  } catch {
    setState("error", "Cannot reach the server; retrying");
  }
}

let last = null;
async function updateStats() {
  const pc = client?.pc;
  if (!pc) return;
  const report = await pc.getStats();
  const codecs = {};
  let v = null, a = null, pair = null;
  for (const s of report.values()) {
    if (s.type === "codec") codecs[s.id] = s;
    if (s.type === "inbound-rtp" && s.kind === "video") v = s;
    if (s.type === "inbound-rtp" && s.kind === "audio") a = s;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
  }
  const now = performance.now();
  const bytes = (v?.bytesReceived ?? 0) + (a?.bytesReceived ?? 0);
  const bitrate = last ? ((bytes - last.bytes) * 8) / ((now - last.t) / 1000) : 0;
  last = { bytes, t: now };
  const stats = {
    resolution: v?.frameWidth ? `${v.frameWidth}×${v.frameHeight}` : "–",
    fps: v?.framesPerSecond ?? 0,
    bitrate,
    packetsLost: (v?.packetsLost ?? 0) + (a?.packetsLost ?? 0),
    jitterBufferMs: v?.jitterBufferEmittedCount
      ? (v.jitterBufferDelay / v.jitterBufferEmittedCount) * 1000
      : 0,
    codec:
      [codecs[v?.codecId]?.mimeType, codecs[a?.codecId]?.mimeType].filter(Boolean).join(" + ") ||
      "–",
    rttMs: pair?.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : undefined,
    framesDecoded: v?.framesDecoded ?? 0,
    audioSamples: a?.totalSamplesReceived ?? 0,
  };
  globalThis.sluicePlayer.stats = stats;
  if (!statsBox.hidden) {
    const rows = [
      ["Resolution", stats.resolution],
      ["Frame rate", `${Math.round(stats.fps)} fps`],
      ["Bitrate", `${(stats.bitrate / 1e6).toFixed(2)} Mbit/s`],
      ["Packets lost", stats.packetsLost],
      ["Jitter buffer", `${stats.jitterBufferMs.toFixed(0)} ms`],
      ["Codec", stats.codec],
      ["Round trip", stats.rttMs === undefined ? "–" : `${stats.rttMs.toFixed(1)} ms`],
    ];
    statsBox.replaceChildren(...rows.flatMap(([k, val]) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = String(val);
      return [dt, dd];
    }));
  }
}

playButton.addEventListener("click", () => {
  userStarted = true;
  video.muted = false;
  muteButton.textContent = "Mute";
  muteButton.setAttribute("aria-pressed", "false");
  video.play().catch(() => {});
  if (live) overlay.hidden = true;
  else message.textContent = "Waiting for the stream to start…";
});
muteButton.addEventListener("click", () => {
  video.muted = !video.muted;
  muteButton.textContent = video.muted ? "Unmute" : "Mute";
  muteButton.setAttribute("aria-pressed", String(video.muted));
});
document.getElementById("toggle-stats").addEventListener("click", (e) => {
  statsBox.hidden = !statsBox.hidden;
  e.currentTarget.setAttribute("aria-pressed", String(!statsBox.hidden));
  updateStats();
});
document.getElementById("fullscreen").addEventListener("click", () => {
  document.querySelector(".player").requestFullscreen?.();
});
globalThis.addEventListener("pagehide", () => client?.stop());

setState("connecting", "Connecting…");
connect();
pollRoom();
setInterval(pollRoom, 2000);
setInterval(updateStats, 1000);
