import assert from "node:assert/strict";
import { filterSdpCandidates } from "../../lib/webrtc/transport.ts";

const SDP = [
  "v=0",
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host",
  "a=candidate:2 1 udp 2130706431 169.254.10.1 40000 typ host",
  "a=candidate:3 1 udp 2130706431 fe80::1 40000 typ host",
  "a=candidate:4 1 udp 2130706431 192.168.1.7 40000 typ host",
  "a=candidate:5 1 udp 1694498815 198.51.100.9 40000 typ srflx raddr 10.0.0.5 rport 40000",
  "a=end-of-candidates",
  "",
].join("\r\n");

Deno.test("candidates: link-local never advertised; every interface when bound to 0.0.0.0", () => {
  const out = filterSdpCandidates(SDP, "0.0.0.0", []);
  assert.match(out, /10\.0\.0\.5 40000 typ host/);
  assert.match(out, /192\.168\.1\.7/);
  assert.doesNotMatch(out, /169\.254\./);
  assert.doesNotMatch(out, /fe80::/);
  assert.match(out, /typ srflx/, "server-reflexive candidates stay");
});

Deno.test("candidates: with --host only the bound address is a host candidate", () => {
  const out = filterSdpCandidates(SDP, "10.0.0.5", []);
  assert.match(out, /10\.0\.0\.5 40000 typ host/);
  assert.doesNotMatch(out, /192\.168\.1\.7/);
  assert.match(out, /typ srflx/);
});

Deno.test("candidates: --public-ip adds a host candidate on the same port (1:1 NAT)", () => {
  const out = filterSdpCandidates(SDP, "10.0.0.5", ["203.0.113.10"]);
  assert.match(out, /a=candidate:1p 1 udp 2130706431 203\.0\.113\.10 40000 typ host/);
  assert.match(out, /10\.0\.0\.5 40000 typ host/, "the private one stays for LAN viewers");
  assert.equal(out.split("\r\n").filter((l) => l.includes("203.0.113.10")).length, 1);
});
