import assert from "node:assert/strict";
import { fromBase64, toBase64 } from "./base64.ts";

Deno.test("base64 both ways, large inputs included", () => {
  assert.equal(toBase64(new TextEncoder().encode("flatyard")), "ZmxhdHlhcmQ=");
  assert.deepEqual(
    fromBase64("ZmxhdHlhcmQ="),
    new TextEncoder().encode("flatyard"),
  );
  const big = crypto.getRandomValues(
    new Uint8Array(200_000).subarray(0, 65536),
  );
  const bytes = new Uint8Array(200_000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = big[i % big.length]!;
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  assert.throws(() => fromBase64("not base64!"));
});
