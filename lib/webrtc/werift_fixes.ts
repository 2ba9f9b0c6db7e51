/**
 * A fix applied to werift 0.25.2 at load time.
 *
 * The DTLS client (werift answers browsers' offers with `a=setup:active`) handles a
 * retransmitted server flight 4 (ServerHello … ServerHelloDone) as a new one: it
 * makes a new key exchange and master secret after the browser already finished
 * the handshake with the first. Both sides then report "connected", but their SRTP
 * keys differ and the browser silently drops every packet. Chromium retransmits
 * flight 4 after 50 ms, so this happens whenever werift is slower than that (a
 * busy core: measured 3 of 5 sessions on a 2-core machine encoding at the same
 * time). Once flight 5 has gone out, a repeated flight 4 is now ignored; werift's
 * own flight 5 retransmission timer still covers a lost flight 5.
 *
 * @module
 */
import { DtlsClient } from "werift";

const SERVER_FLIGHT4 = new Set([2, 11, 12, 13, 14]); // hello, cert, key exchange, cert request, done

interface PatchableClient {
  dtls: { flight: number };
  onHandleHandshakes: (assembled: { msg_type: number }[]) => Promise<void>;
}

let applied = false;

/** Installs the fix once per process. */
export function applyWeriftFixes(): void {
  if (applied) return;
  applied = true;
  const proto = DtlsClient.prototype as unknown as { connect: (...a: unknown[]) => Promise<void> };
  const connect = proto.connect;
  proto.connect = function (this: PatchableClient, ...args: unknown[]) {
    const handle = this.onHandleHandshakes;
    this.onHandleHandshakes = (assembled) => {
      const fresh = this.dtls.flight >= 5
        ? assembled.filter((h) => !SERVER_FLIGHT4.has(h.msg_type))
        : assembled;
      return fresh.length ? handle(fresh) : Promise.resolve();
    };
    return connect.apply(this, args);
  };
}

/**
 * NTP time (RFC 5905: seconds since 1900 in the high 32 bits, a true fraction of
 * 2^32 below) of a performance.now() instant, now by default.
 */
export function ntpTime(perfMs: number = performance.now()): bigint {
  const ms = performance.timeOrigin + perfMs - Date.UTC(1900, 0, 1);
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32);
  return (BigInt(seconds) << 32n) | BigInt(fraction);
}

/**
 * werift 0.25.2 writes the NTP fraction of its RTCP sender reports from the decimal
 * digits of the seconds (x.231611 s becomes 231611 / 2^32 ≈ 0), so every report is off
 * by up to a second at random and audio and video reports describe no shared clock:
 * lip sync through them was measured off by up to ±500 ms. The sender stores the send
 * time of its last packet in `ntpTimestamp`; this makes that store the true time.
 */
export function fixSenderReportClock(sender: object): void {
  let value = ntpTime();
  Object.defineProperty(sender, "ntpTimestamp", {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: () => {
      value = ntpTime();
    },
  });
}
