/**
 * H.264 RTP payloads per RFC 6184, packetization-mode 1 (non-interleaved): single
 * NAL unit packets, STAP-A for SPS+PPS ahead of every IDR, FU-A for NAL units
 * larger than the payload budget. The marker bit goes on the last packet of an
 * access unit.
 *
 * @module
 */

/** One RTP payload and whether it ends its access unit. */
export interface H264Payload {
  readonly payload: Uint8Array;
  readonly marker: boolean;
}

/** Default payload budget: leaves room for RTP/SRTP/UDP/IP headers in a 1280+ MTU. */
export const DEFAULT_MAX_PAYLOAD = 1200;

const NAL_STAP_A = 24;
const NAL_FU_A = 28;
const NAL_IDR = 5;
const NAL_SPS = 7;
const NAL_PPS = 8;
const NAL_AUD = 9;
const NAL_FILLER = 12;

/** Builds a STAP-A payload aggregating `nals` (each ≤ 65535 bytes). */
export function stapA(nals: readonly Uint8Array[]): Uint8Array {
  let size = 1;
  let nri = 0;
  for (const nal of nals) {
    if (nal.length > 0xffff) {
      throw new RangeError(`STAP-A: NAL unit of ${nal.length} bytes > 65535`);
    }
    size += 2 + nal.length;
    nri = Math.max(nri, nal[0] & 0x60);
  }
  const out = new Uint8Array(size);
  out[0] = nri | NAL_STAP_A;
  let p = 1;
  for (const nal of nals) {
    out[p++] = nal.length >> 8;
    out[p++] = nal.length & 0xff;
    out.set(nal, p);
    p += nal.length;
  }
  return out;
}

/** Splits one NAL unit into FU-A fragments of at most `maxPayload` bytes each. */
export function fuA(nal: Uint8Array, maxPayload: number): Uint8Array[] {
  const header = nal[0];
  const indicator = (header & 0xe0) | NAL_FU_A;
  const type = header & 0x1f;
  const room = maxPayload - 2;
  if (room < 1) throw new RangeError(`FU-A: payload budget ${maxPayload} too small`);
  const out: Uint8Array[] = [];
  for (let offset = 1; offset < nal.length; offset += room) {
    const end = Math.min(offset + room, nal.length);
    const frag = new Uint8Array(2 + end - offset);
    frag[0] = indicator;
    frag[1] = type | (offset === 1 ? 0x80 : 0) | (end === nal.length ? 0x40 : 0);
    frag.set(nal.subarray(offset, end), 2);
    out.push(frag);
  }
  return out;
}

/**
 * Packetizes one access unit. `parameterSets` (SPS, PPS from the avcC) go ahead
 * of any IDR in a STAP-A unless the access unit already carries them. Access unit
 * delimiters and filler data are dropped (they carry nothing a receiver needs).
 */
export function packetizeH264(
  nals: readonly Uint8Array[],
  parameterSets: readonly Uint8Array[] = [],
  maxPayload = DEFAULT_MAX_PAYLOAD,
): H264Payload[] {
  const units = nals.filter((n) => {
    if (n.length === 0) return false;
    const t = n[0] & 0x1f;
    return t !== NAL_AUD && t !== NAL_FILLER;
  });
  const hasIdr = units.some((n) => (n[0] & 0x1f) === NAL_IDR);
  const inBandSps = units.some((n) => (n[0] & 0x1f) === NAL_SPS);
  const out: Uint8Array[] = [];
  if (hasIdr && !inBandSps && parameterSets.length) {
    const sets = parameterSets.filter((n) => n.length > 0);
    const total = sets.reduce((s, n) => s + 2 + n.length, 1);
    if (total <= maxPayload) out.push(stapA(sets));
    else {for (const set of sets) {
        out.push(...(set.length <= maxPayload ? [set] : fuA(set, maxPayload)));
      }}
  }
  // Aggregate runs of small in-band parameter sets too, and send the rest as they are.
  let pending: Uint8Array[] = [];
  let pendingSize = 1;
  const flush = () => {
    if (pending.length === 1) out.push(pending[0]);
    else if (pending.length > 1) out.push(stapA(pending));
    pending = [];
    pendingSize = 1;
  };
  for (const nal of units) {
    const t = nal[0] & 0x1f;
    if ((t === NAL_SPS || t === NAL_PPS) && nal.length + 2 + pendingSize <= maxPayload) {
      pending.push(nal);
      pendingSize += 2 + nal.length;
      continue;
    }
    flush();
    if (nal.length <= maxPayload) out.push(nal);
    else out.push(...fuA(nal, maxPayload));
  }
  flush();
  return out.map((payload, i) => ({ payload, marker: i === out.length - 1 }));
}

/** Reassembles NAL units from RFC 6184 payloads (for tests and diagnostics). */
export function depacketizeH264(payloads: readonly Uint8Array[]): Uint8Array[] {
  const nals: Uint8Array[] = [];
  let fu: number[] | null = null;
  for (const p of payloads) {
    const type = p[0] & 0x1f;
    if (type === NAL_STAP_A) {
      let i = 1;
      while (i + 2 <= p.length) {
        const size = (p[i] << 8) | p[i + 1];
        nals.push(p.slice(i + 2, i + 2 + size));
        i += 2 + size;
      }
    } else if (type === NAL_FU_A) {
      const start = (p[1] & 0x80) !== 0;
      const end = (p[1] & 0x40) !== 0;
      if (start) fu = [(p[0] & 0xe0) | (p[1] & 0x1f)];
      if (fu) { for (let i = 2; i < p.length; i++) fu.push(p[i]); }
      if (end && fu) {
        nals.push(new Uint8Array(fu));
        fu = null;
      }
    } else {
      nals.push(p.slice());
    }
  }
  return nals;
}
