import { startTestServer } from "./server.ts";
import { publishLive } from "./publishers.ts";
import { startWeriftViewer } from "./werift_viewer.ts";
const server = await startTestServer(["--log-level","debug"]);
const pub = publishLive(`${server.rtmpUrl}/pli`, { seconds: 15 });
await new Promise(r=>setTimeout(r,3000));
try {
  const v = await startWeriftViewer(`${server.httpUrl.replace("http","ws")}/ws/pli`);
  await new Promise(r=>setTimeout(r,2000));
  console.log(v.packets, v.keyframes);
  await v.close();
} catch (e) { console.log("ERR", e); }
await pub.stop();
await server.stop();
console.log(server.log().split("\n").filter(l=>/webrtc|signal/.test(l)).join("\n"));
Deno.exit(0);
