/** @module Standard base64 (RFC 4648 §4, padded) of bytes, both ways. */

/** `bytes` as base64. */
export function toBase64(bytes: Uint8Array): string {
  let text = "";
  // In slices: a spread of a large array overflows the call stack.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

/** The bytes of base64 `text`; throws on text that is not base64. */
export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
