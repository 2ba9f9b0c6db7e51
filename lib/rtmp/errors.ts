/** A protocol violation by the peer; the session closes the connection with one log line. */
export class RtmpError extends Error {
  override name = "RtmpError";
}
