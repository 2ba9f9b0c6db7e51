/**
 * HTTP: the Hono app on `Deno.serve`.
 *
 * @module
 */
export { createApp } from "./app.ts";
export type { HttpContext } from "./app.ts";
