// A browser viewer speaking Sluice's WebSocket signaling (see README): the browser
// offers recvonly video+audio, the server answers, candidates trickle both ways.
// Runs in Chromium under the test harness; exposes window.sluiceViewer.
globalThis.sluiceViewer = function watch(base, room, videoEl) {
  const t0 = performance.now();
  const out = {
    states: [],
    errors: [],
    firstFrameMs: undefined,
    closed: undefined,
    answerMs: undefined,
  };
  const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws/" + room);
  let pc;
  let offered = false;
  let answered = false;
  const localQueue = [];
  const remoteQueue = [];
  const send = (m) => ws.readyState === 1 && ws.send(JSON.stringify(m));
  ws.onclose = (e) => {
    out.closed = { code: e.code, reason: e.reason };
  };
  ws.onmessage = async (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "config") {
      pc = new RTCPeerConnection({ iceServers: m.iceServers });
      out.pc = pc;
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      const stream = new MediaStream();
      pc.ontrack = (ev) => {
        stream.addTrack(ev.track);
        if (videoEl && videoEl.srcObject !== stream) videoEl.srcObject = stream;
      };
      pc.onicecandidate = (ev) => {
        const c = ev.candidate ? ev.candidate.toJSON() : null;
        if (offered) send({ type: "candidate", candidate: c });
        else localQueue.push(c);
      };
      await pc.setLocalDescription(await pc.createOffer());
      send({ type: "offer", sdp: pc.localDescription.sdp });
      offered = true;
      for (const c of localQueue.splice(0)) {
        send({ type: "candidate", candidate: c });
      }
    } else if (m.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
      out.answerMs = performance.now() - t0;
      answered = true;
      for (const c of remoteQueue.splice(0)) await pc.addIceCandidate(c);
    } else if (m.type === "candidate") {
      if (!m.candidate) return;
      if (answered) await pc.addIceCandidate(m.candidate);
      else remoteQueue.push(m.candidate);
    } else if (m.type === "state") {
      out.states.push(m.state);
      out.stream = m.stream;
    } else if (m.type === "error") {
      out.errors.push(m.message);
    }
  };
  const timer = setInterval(async () => {
    if (!pc) return;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (
        s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0 &&
        out.firstFrameMs === undefined
      ) {
        out.firstFrameMs = performance.now() - t0;
      }
    }
  }, 50);
  out.stats = async () => {
    if (!pc) return {};
    const stats = await pc.getStats();
    const r = { connection: pc.connectionState };
    const codecs = {};
    for (const s of stats.values()) if (s.type === "codec") codecs[s.id] = s;
    for (const s of stats.values()) {
      if (s.type === "inbound-rtp") {
        r[s.kind] = {
          codec: codecs[s.codecId]?.mimeType,
          fmtp: codecs[s.codecId]?.sdpFmtpLine,
          packetsReceived: s.packetsReceived,
          packetsLost: s.packetsLost,
          bytesReceived: s.bytesReceived,
          framesDecoded: s.framesDecoded,
          framesReceived: s.framesReceived,
          framesDropped: s.framesDropped,
          frameWidth: s.frameWidth,
          frameHeight: s.frameHeight,
          pliCount: s.pliCount,
          nackCount: s.nackCount,
          totalSamplesReceived: s.totalSamplesReceived,
          jitterBufferDelay: s.jitterBufferDelay,
          jitterBufferEmittedCount: s.jitterBufferEmittedCount,
          keyFramesDecoded: s.keyFramesDecoded,
          freezeCount: s.freezeCount,
        };
      }
    }
    return r;
  };
  out.close = () => {
    clearInterval(timer);
    ws.close();
    pc && pc.close();
  };
  return out;
};
