/**
 * The one error type the codec parsers throw.
 *
 * @module
 */

/**
 * Malformed or unsupported codec data: a truncated record, a field outside its
 * allowed range, a length that overruns its buffer. The message says what was
 * expected and what came. Parsers in this folder throw nothing else on bad input.
 */
export class CodecError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was expected and what was found instead.
   */
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}
