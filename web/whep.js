// A small WHEP client (RFC 9725): POST the offer, PATCH trickled candidates, PATCH with
// If-Match: * for an ICE restart, DELETE on close.
export class WhepClient {
  constructor(url, { onTrack, onState, token } = {}) {
    this.url = url;
    this.token = token;
    this.onTrack = onTrack;
    this.onState = onState;
    this.pc = null;
    this.location = null;
    this.etag = null;
    this.pending = [];
  }

  static parseLinks(header) {
    const servers = [];
    for (const part of (header ?? "").split(/,(?=\s*<)/)) {
      const m = /<([^>]+)>(.*)/.exec(part.trim());
      if (!m || !/rel="ice-server"/.test(m[2])) continue;
      const server = { urls: m[1] };
      const user = /username="([^"]*)"/.exec(m[2]);
      const cred = /credential="([^"]*)"/.exec(m[2]);
      if (user) server.username = user[1];
      if (cred) server.credential = cred[1];
      servers.push(server);
    }
    return servers;
  }

  async start() {
    const pc = (this.pc = new RTCPeerConnection());
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      this.onTrack?.(stream);
    };
    pc.onconnectionstatechange = () => this.onState?.(pc.connectionState);
    pc.onicecandidate = (e) => {
      if (!e.candidate) return;
      this.pending.push(e.candidate);
      if (this.location) this.flush();
    };
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(this.url, {
      method: "POST",
      headers: {
        "Content-Type": "application/sdp",
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
      },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) {
      let message = `HTTP ${res.status}`;
      try {
        message = (await res.json()).error ?? message;
      } catch { /* not JSON */ }
      throw new Error(message);
    }
    this.location = new URL(res.headers.get("Location"), this.url).href;
    this.etag = res.headers.get("ETag");
    const servers = WhepClient.parseLinks(res.headers.get("Link"));
    if (servers.length) pc.setConfiguration({ ...pc.getConfiguration(), iceServers: servers });
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    this.flush();
    return pc;
  }

  async flush() {
    const candidates = this.pending.splice(0);
    if (!candidates.length || !this.location) return;
    const lines = candidates.map((c) => `a=mid:${c.sdpMid}\r\na=${c.candidate}\r\n`).join("");
    try {
      await fetch(this.location, {
        method: "PATCH",
        headers: {
          "Content-Type": "application/trickle-ice-sdpfrag",
          "If-Match": this.etag ?? "*",
        },
        body: lines,
      });
    } catch { /* the answer's candidates usually suffice */ }
  }

  // ICE restart over the same session (a network change): new local credentials go
  // out in a PATCH with If-Match: *, the server's new ones come back with a new ETag.
  async restartIce() {
    const pc = this.pc;
    if (!pc || !this.location) throw new Error("not connected");
    this.pending = [];
    pc.restartIce();
    const offer = await pc.createOffer({ iceRestart: true });
    await pc.setLocalDescription(offer);
    const ufrag = /a=ice-ufrag:(\S+)/.exec(offer.sdp)[1];
    const pwd = /a=ice-pwd:(\S+)/.exec(offer.sdp)[1];
    const res = await fetch(this.location, {
      method: "PATCH",
      headers: {
        "Content-Type": "application/trickle-ice-sdpfrag",
        "If-Match": "*",
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
      },
      body: `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`,
    });
    if (res.status !== 200) throw new Error(`ICE restart refused: HTTP ${res.status}`);
    this.etag = res.headers.get("ETag") ?? this.etag;
    const frag = await res.text();
    const remoteUfrag = /a=ice-ufrag:(\S+)/.exec(frag)?.[1];
    const remotePwd = /a=ice-pwd:(\S+)/.exec(frag)?.[1];
    if (!remoteUfrag || !remotePwd) throw new Error("ICE restart answer without credentials");
    const candidates = [...frag.matchAll(/^a=candidate:.*$/gm)].map((m) => m[0]);
    const sdp = pc.remoteDescription.sdp
      .split("\r\n")
      .filter((l) => !l.startsWith("a=candidate:") && l !== "a=end-of-candidates")
      .map((l) =>
        l.startsWith("a=ice-ufrag:")
          ? `a=ice-ufrag:${remoteUfrag}`
          : l.startsWith("a=ice-pwd:")
          ? `a=ice-pwd:${remotePwd}`
          : l
      )
      .flatMap((l) => (l.startsWith("a=mid:") ? [l, ...candidates] : [l]))
      .join("\r\n");
    await pc.setRemoteDescription({ type: "answer", sdp });
    this.flush();
  }

  async stop() {
    const location = this.location;
    this.location = null;
    this.pc?.close();
    if (location) await fetch(location, { method: "DELETE" }).catch(() => {});
  }
}
