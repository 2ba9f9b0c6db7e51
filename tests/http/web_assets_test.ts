import assert from "node:assert/strict";
import { renderWebAssets } from "../../tools/gen_web_assets.ts";
import { WEB_ASSETS } from "../../lib/http/web_assets.gen.ts";

Deno.test("web assets: the embedded module matches web/ (run `deno task web` after editing)", async () => {
  const expected = await renderWebAssets();
  const actual = await Deno.readTextFile(
    new URL("../../lib/http/web_assets.gen.ts", import.meta.url),
  );
  assert.equal(actual, expected, "lib/http/web_assets.gen.ts is stale: run `deno task web`");
});

Deno.test("web assets: every page and script is embedded with its type", () => {
  for (const name of ["index.html", "watch.html", "index.js", "watch.js", "whep.js", "style.css"]) {
    assert.ok(WEB_ASSETS[name], `${name} embedded`);
    assert.ok(WEB_ASSETS[name].body.length > 100, `${name} has content`);
  }
  assert.match(WEB_ASSETS["index.html"].type, /^text\/html/);
  assert.match(WEB_ASSETS["whep.js"].type, /^text\/javascript/);
});
