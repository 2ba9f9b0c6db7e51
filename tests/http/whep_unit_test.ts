import assert from "node:assert/strict";
import { iceServerLinks, parseSdpFragment } from "../../lib/http/whep.ts";

Deno.test("whep: ICE servers become Link headers with credentials", () => {
  assert.deepEqual(
    iceServerLinks([
      { urls: "stun:stun.example.net:3478" },
      { urls: "turn:turn.example.net:3478?transport=udp", username: "u", credential: 'p"w' },
    ]),
    [
      '<stun:stun.example.net:3478>; rel="ice-server"',
      '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="u"; ' +
      'credential="p\\"w"; credential-type="password"',
    ],
  );
});

Deno.test("whep: trickle-ice-sdpfrag candidates keep their mid and m-line", () => {
  const frag = parseSdpFragment(
    "a=ice-ufrag:abcd\r\na=ice-pwd:xyz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
      "a=candidate:1 1 udp 2113937151 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n",
  );
  assert.equal(frag.ufrag, "abcd");
  assert.equal(frag.pwd, "xyz");
  assert.deepEqual(frag.candidates, [{
    candidate: "candidate:1 1 udp 2113937151 192.0.2.1 5000 typ host",
    sdpMid: "0",
    sdpMLineIndex: 0,
  }]);
  assert.deepEqual(parseSdpFragment("garbage\n\n").candidates, []);
});
