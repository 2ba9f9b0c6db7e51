/**
 * The bundled demo page: `/` lists live rooms, `/watch/<room>` plays one over WHEP,
 * `/assets/*` serves their CSS and JS, all from the module graph.
 *
 * @module
 */
import type { Hono } from "hono";
import { WEB_ASSETS } from "./web_assets.gen.ts";

/** Mounts the demo page's routes on `app`. */
export function mountWeb(app: Hono, info: { rtmpPort: number; app: string }): void {
  const page = (name: string) => {
    const asset = WEB_ASSETS[name];
    return new Response(asset.body, {
      headers: { "content-type": asset.type, "cache-control": "no-cache" },
    });
  };
  app.get("/", () => page("index.html"));
  app.get("/watch/:room", () => page("watch.html"));
  app.get("/assets/:name", (c) => {
    const name = c.req.param("name");
    const asset = Object.hasOwn(WEB_ASSETS, name) ? WEB_ASSETS[name] : undefined;
    if (!asset || name.endsWith(".html")) return c.json({ error: `no asset ${name}` }, 404);
    return new Response(asset.body, {
      headers: { "content-type": asset.type, "cache-control": "public, max-age=300" },
    });
  });
  app.get("/api/info", (c) => c.json({ name: "sluice", rtmpPort: info.rtmpPort, app: info.app }));
}
