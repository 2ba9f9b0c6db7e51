// Home page: lists live rooms from /api/rooms, refreshing itself.
const list = document.getElementById("rooms");
const empty = document.getElementById("empty");
const status = document.getElementById("status");
let info = { rtmpPort: 1935, app: "live" };

const fmtRate = (bps) =>
  bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;

function card(room) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.className = "card";
  a.href = `/watch/${encodeURIComponent(room.name)}`;
  a.dataset.room = room.name;
  const badge = document.createElement("span");
  badge.className = room.live ? "badge live" : "badge wait";
  badge.textContent = room.live ? "Live" : "Waiting";
  const h2 = document.createElement("h2");
  h2.textContent = room.name;
  const meta = document.createElement("div");
  meta.className = "meta";
  const v = room.video;
  const parts = [];
  if (v?.width) parts.push(`${v.width}×${v.height}`);
  if (v?.fps) parts.push(`${Math.round(v.fps)} fps`);
  if (v?.bitrate) parts.push(fmtRate(v.bitrate + (room.audio?.bitrate ?? 0)));
  parts.push(`${room.viewers} watching`);
  for (const p of parts) {
    const s = document.createElement("span");
    s.textContent = p;
    meta.append(s);
  }
  a.append(badge, h2, meta);
  if (room.transcode?.active) {
    const w = document.createElement("div");
    w.className = "hint";
    w.textContent = `Transcoded for browsers (${room.transcode.reason})`;
    a.append(w);
  } else if (room.bFrames) {
    const w = document.createElement("div");
    w.className = "warn";
    w.textContent = room.transcode
      ? `B-frames, not transcoded: ${room.transcode.reason}`
      : "B-frames: transcoded once someone watches";
    a.append(w);
  }
  a.setAttribute(
    "aria-label",
    `${room.name}, ${room.live ? "live" : "waiting"}, ${parts.join(", ")}`,
  );
  li.append(a);
  return li;
}

async function refresh() {
  try {
    const res = await fetch("/api/rooms", { cache: "no-store" });
    const { rooms } = await res.json();
    const live = rooms.filter((r) => r.live);
    list.replaceChildren(...live.map(card));
    empty.hidden = live.length > 0;
    status.textContent = `${live.length} room${live.length === 1 ? "" : "s"} live`;
  } catch {
    status.textContent = "Cannot reach the server; retrying";
  }
}

async function init() {
  try {
    info = await (await fetch("/api/info")).json();
  } catch { /* defaults */ }
  const port = info.rtmpPort === 1935 ? "" : `:${info.rtmpPort}`;
  document.getElementById("server").textContent = `rtmp://${location.hostname}${port}/${info.app}`;
  document.getElementById("key").textContent = "my-room";
  for (const b of document.querySelectorAll("[data-copy]")) {
    b.addEventListener("click", async () => {
      const text = document.getElementById(b.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch {
        b.textContent = "Select & copy";
      }
      setTimeout(() => (b.textContent = "Copy"), 1500);
    });
  }
  await refresh();
  setInterval(refresh, 2000);
}
init();
