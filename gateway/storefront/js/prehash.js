// The password as the browser sends it: the bookstore's front-ends never send what the user
// typed. Like the Fenix front-end, the wire form is bcrypt(md5_hex(typed), a fixed client salt)
// without the salt's prefix, so an account registered through either front-end logs in through
// the other, and the seeded administrator's password is typed as "123456" in both. (This only
// keeps the typed password out of the server's hands and logs; the server still stores its own
// slow salted hash of what arrives.)

const CLIENT_SALT = '$2a$10$o5L.dWYEjZjaejOmN3x4Qu';
const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** The wire form of `typed`. */
export function prehash(typed) {
  const key = new TextEncoder().encode(md5Hex(typed));
  const cost = Number(CLIENT_SALT.slice(4, 6));
  const salt = bcryptBase64Decode(CLIENT_SALT.slice(7), 16);
  return bcryptBase64Encode(bcrypt(key, salt, cost).subarray(0, 23));
}

// ---- MD5 (RFC 1321) -------------------------------------------------------------------------

const MD5_SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);

export function md5Hex(text) {
  const input = new TextEncoder().encode(text);
  const length = ((input.length + 8) >>> 6) * 64 + 64;
  const bytes = new Uint8Array(length);
  bytes.set(input);
  bytes[input.length] = 0x80;
  const view = new DataView(bytes.buffer);
  view.setUint32(length - 8, (input.length * 8) >>> 0, true);
  view.setUint32(length - 4, Math.floor((input.length * 8) / 2 ** 32), true);
  let [a0, b0, c0, d0] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  for (let block = 0; block < length; block += 64) {
    let [a, b, c, d] = [a0, b0, c0, d0];
    for (let i = 0; i < 64; i++) {
      let f;
      let g;
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      const word = view.getUint32(block + g * 4, true);
      const sum = (a + f + MD5_K[i] + word) | 0;
      const shift = MD5_SHIFTS[(i >>> 4) * 4 + (i % 4)];
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << shift) | (sum >>> (32 - shift)))) | 0;
    }
    a0 = (a0 + a) | 0;
    b0 = (b0 + b) | 0;
    c0 = (c0 + c) | 0;
    d0 = (d0 + d) | 0;
  }
  const out = new DataView(new ArrayBuffer(16));
  [a0, b0, c0, d0].forEach((word, i) => out.setUint32(i * 4, word, true));
  return Array.from(new Uint8Array(out.buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---- bcrypt (Provos and Mazières, 1999) -----------------------------------------------------

let piWords = null;

/** Blowfish's initial state: the first 1042 32-bit words of π's fractional part, in hex. */
function blowfishInitialState() {
  if (piWords) return piWords;
  const words = 18 + 4 * 256;
  const bits = BigInt(words * 32 + 64);
  const one = 1n << bits;
  // Machin: π = 16·atan(1/5) − 4·atan(1/239), in fixed point.
  const atanInverse = (x) => {
    const x2 = x * x;
    let power = one / x;
    let sum = power;
    for (let n = 3n, sign = -1n; power !== 0n; n += 2n, sign = -sign) {
      power /= x2;
      sum += (sign * power) / n;
    }
    return sum;
  };
  const pi = 16n * atanInverse(5n) - 4n * atanInverse(239n);
  let fraction = (pi - 3n * one) >> 64n; // drop the guard bits
  const state = new Uint32Array(words);
  for (let i = words - 1; i >= 0; i--) {
    state[i] = Number(fraction & 0xffffffffn);
    fraction >>= 32n;
  }
  piWords = state;
  return state;
}

function bcrypt(key, salt, cost) {
  const initial = blowfishInitialState();
  const p = initial.slice(0, 18);
  const s = initial.slice(18);
  const keyBytes = new Uint8Array(Math.min(key.length + 1, 72)); // key, NUL-terminated ($2a$)
  keyBytes.set(key.subarray(0, 71));
  const block = new Uint32Array(2);

  const f = (x) => (((s[x >>> 24] + s[256 + ((x >>> 16) & 0xff)]) ^ s[512 + ((x >>> 8) & 0xff)]) + s[768 + (x & 0xff)]) >>> 0;
  const encrypt = () => {
    let l = block[0];
    let r = block[1];
    for (let i = 0; i < 16; i += 2) {
      l ^= p[i];
      r ^= f(l >>> 0);
      r ^= p[i + 1];
      l ^= f(r >>> 0);
    }
    block[0] = (r ^ p[17]) >>> 0;
    block[1] = (l ^ p[16]) >>> 0;
  };
  const streamWord = (bytes, position) => {
    let word = 0;
    for (let i = 0; i < 4; i++) {
      word = (word << 8) | bytes[position.at];
      position.at = (position.at + 1) % bytes.length;
    }
    return word >>> 0;
  };
  const expand = (data, withData) => {
    const keyAt = { at: 0 };
    for (let i = 0; i < 18; i++) p[i] ^= streamWord(keyBytes, keyAt);
    const dataAt = { at: 0 };
    block[0] = 0;
    block[1] = 0;
    const fill = (array, count, offset) => {
      for (let i = 0; i < count; i += 2) {
        if (withData) {
          block[0] ^= streamWord(data, dataAt);
          block[1] ^= streamWord(data, dataAt);
        }
        encrypt();
        array[offset + i] = block[0];
        array[offset + i + 1] = block[1];
      }
    };
    fill(p, 18, 0);
    fill(s, 1024, 0);
  };
  // ExpandKey(state, 0, bytes): the bytes into P, then P and S re-encrypted from a zero block.
  const expandWith = (bytes) => {
    const at = { at: 0 };
    for (let i = 0; i < 18; i++) p[i] ^= streamWord(bytes, at);
    block[0] = 0;
    block[1] = 0;
    for (let i = 0; i < 18; i += 2) { encrypt(); p[i] = block[0]; p[i + 1] = block[1]; }
    for (let i = 0; i < 1024; i += 2) { encrypt(); s[i] = block[0]; s[i + 1] = block[1]; }
  };

  expand(salt, true);
  for (let round = 0; round < 2 ** cost; round++) {
    expandWith(keyBytes);
    expandWith(salt);
  }

  const text = new TextEncoder().encode('OrpheanBeholderScryDoubt');
  const view = new DataView(text.buffer);
  const out = new Uint8Array(24);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 6; i += 2) {
    block[0] = view.getUint32(i * 4);
    block[1] = view.getUint32(i * 4 + 4);
    for (let n = 0; n < 64; n++) encrypt();
    outView.setUint32(i * 4, block[0]);
    outView.setUint32(i * 4 + 4, block[1]);
  }
  return out;
}

function bcryptBase64Encode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const b0 = bytes[i];
    const b1 = i + 1 < bytes.length ? bytes[i + 1] : 0;
    const b2 = i + 2 < bytes.length ? bytes[i + 2] : 0;
    out += BCRYPT_ALPHABET[b0 >>> 2];
    out += BCRYPT_ALPHABET[((b0 & 3) << 4) | (b1 >>> 4)];
    if (i + 1 < bytes.length) out += BCRYPT_ALPHABET[((b1 & 15) << 2) | (b2 >>> 6)];
    if (i + 2 < bytes.length) out += BCRYPT_ALPHABET[b2 & 63];
  }
  return out;
}

function bcryptBase64Decode(text, length) {
  const values = Array.from(text, (c) => BCRYPT_ALPHABET.indexOf(c));
  const out = new Uint8Array(length);
  let n = 0;
  for (let i = 0; i + 1 < values.length && n < length; i += 4) {
    const [c0, c1, c2 = 0, c3 = 0] = values.slice(i, i + 4);
    out[n++] = (c0 << 2) | (c1 >>> 4);
    if (n < length) out[n++] = ((c1 & 15) << 4) | (c2 >>> 2);
    if (n < length) out[n++] = ((c2 & 3) << 6) | c3;
  }
  return out;
}
