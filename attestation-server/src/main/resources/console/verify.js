/*
 * tpmphone: verify an audit export in the browser, offline (docs/console.md, "Verify an export in the browser").
 *
 * A port of io.tpmphone.server.audit.AuditVerifier#verifyExport and ChainChecker: the same rules in the same order,
 * and the same problem kinds, record numbers and messages, so that the page and `tpmphone audit verify --export`
 * agree (AuditVerifierBrowserIT compares them on intact and tampered exports). Change both together.
 *
 * Hashes are WebCrypto's SHA-256 (crypto.subtle.digest) over the canonical encodings of docs/audit.md; checkpoint
 * and head signatures are ECDSA P-256 with SHA-256 (crypto.subtle.verify), after converting our DER signatures to
 * the IEEE P1363 form (r || s) WebCrypto takes. The export is read in chunks and its records one by one, so memory
 * stays small when the checkpoints come before the records (as `tpmphone audit export` writes them).
 */
'use strict';

(function () {
  const RECORD_TAG = 'tpmphone.audit.record.v1';
  const CHECKPOINT_TAG = 'tpmphone.audit.checkpoint.v1';
  const CHECKPOINT_V2_TAG = 'tpmphone.audit.checkpoint.v2';
  const CHECKPOINT_V3_TAG = 'tpmphone.audit.checkpoint.v3';
  const HEAD_TAG = 'tpmphone.audit.head.v1';
  const FORMAT = 'tpmphone-audit-export';
  const VERSION = 4;
  const SIGNATURE_ALGORITHM = 'SHA256withECDSA';
  const HASH_LENGTH = 32;
  const DEFAULT_CHECKPOINT_EVERY = 1000;
  const DEFAULT_MAX_UNSIGNED_MILLIS = 10000;
  const OPEN_GRACE = 5000;
  const INT_MAX = 2147483647;
  const TYPES = new Set(['ENROLLMENT', 'APPRAISAL', 'POLICY_CHANGE', 'REFUSAL', 'KEY_RELEASE', 'CALL_DECISION',
    'ADMIN']);
  const RECORD_FIELDS = ['seq', 'timestamp', 'type', 'subject', 'outcome', 'detail', 'prevHash', 'hash'];
  const CHECKPOINT_FIELDS = ['seq', 'hash', 'timestamp', 'keyId', 'signature'];
  const HEAD_FIELDS = ['seq', 'hash', 'timestamp', 'checkpoints', 'checkpointDigest', 'refreshMillis', 'closed',
    'keyId', 'signature'];
  const CHECKPOINT_V1_FIELDS = ['version', 'seq', 'hash', 'timestamp', 'keyId', 'signature'];
  const CHECKPOINT_V2_FIELDS = ['version', 'seq', 'hash', 'timestamp', 'keyId', 'signature', 'every',
    'maxUnsignedMillis', 'closed', 'prevDigest'];
  const CHUNK = 8 << 20;
  const BATCH = 4096;
  const ENCODER = new TextEncoder();
  const ZERO_HASH = new Uint8Array(HASH_LENGTH);

  /** The export cannot be read as one (AuditException MALFORMED_EXPORT in Java). */
  class Malformed extends Error {
    constructor(message) {
      super(message);
      this.code = 'MALFORMED_EXPORT';
    }
  }

  const malformed = (message) => new Malformed(message);
  const problemOf = (seq, kind, message) => ({ seq, kind, message });

  // ---- bytes -------------------------------------------------------------------------------------------------------

  const HEX = '0123456789abcdef';

  function hex(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i++) {
      s += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
    }
    return s;
  }

  function nibble(c) {
    if (c >= 48 && c <= 57) return c - 48;
    if (c >= 97 && c <= 102) return c - 87;
    if (c >= 65 && c <= 70) return c - 55;
    return -1;
  }

  /** Lowercase or uppercase hex, as Java's HexFormat.parseHex; null if it is not. */
  function unhex(text) {
    if (text.length % 2 !== 0) return null;
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) {
      const h = nibble(text.charCodeAt(2 * i));
      const l = nibble(text.charCodeAt(2 * i + 1));
      if (h < 0 || l < 0) return null;
      out[i] = (h << 4) | l;
    }
    return out;
  }

  function equal(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) return false;
    }
    return true;
  }

  /** Strict base64 (the alphabet and padding only), as Java's Base64.getDecoder(); null if it is not. */
  function base64(text) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) return null;
    let binary;
    try {
      binary = atob(text);
    } catch (e) {
      return null;
    }
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

  /** Java's String.getBytes(UTF_8) writes '?' for an unpaired surrogate; TextEncoder would write U+FFFD. */
  function asJavaEncodes(s) {
    const wellFormed = typeof s.isWellFormed === 'function' ? s.isWellFormed() : !LONE_SURROGATE.test(s);
    LONE_SURROGATE.lastIndex = 0;
    return wellFormed ? s : s.replace(LONE_SURROGATE, '?');
  }

  /** A growable big-endian byte writer: the encodings of docs/audit.md. */
  class Encoding {
    constructor(capacity) {
      this.buf = new Uint8Array(capacity);
      this.view = new DataView(this.buf.buffer);
      this.n = 0;
    }

    reset() {
      this.n = 0;
      return this;
    }

    ensure(extra) {
      if (this.n + extra > this.buf.length) {
        const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.n + extra));
        bigger.set(this.buf.subarray(0, this.n));
        this.buf = bigger;
        this.view = new DataView(bigger.buffer);
      }
    }

    u8(v) {
      this.ensure(1);
      this.buf[this.n++] = v;
    }

    u32(v) {
      this.ensure(4);
      this.view.setUint32(this.n, v >>> 0);
      this.n += 4;
    }

    /** A signed 64-bit value (u64 and i64 alike for what fits in a double exactly). */
    i64(v) {
      if (!Number.isSafeInteger(v)) throw new Error('not an exact integer: ' + v);
      this.ensure(8);
      const hi = Math.floor(v / 4294967296);
      this.view.setInt32(this.n, hi);
      this.view.setUint32(this.n + 4, v - hi * 4294967296);
      this.n += 8;
    }

    lpBytes(bytes) {
      this.u32(bytes.length);
      this.ensure(bytes.length);
      this.buf.set(bytes, this.n);
      this.n += bytes.length;
    }

    lpText(text) {
      this.ensure(4 + 3 * text.length);
      const at = this.n;
      this.n += 4;
      const written = ENCODER.encodeInto(text, this.buf.subarray(this.n)).written;
      this.view.setUint32(at, written);
      this.n += written;
    }

    bytes() {
      return this.buf.subarray(0, this.n);
    }

    copy() {
      return this.buf.slice(0, this.n);
    }
  }

  const RECORD_TAG_BYTES = ENCODER.encode(RECORD_TAG);
  const scratch = new Encoding(1 << 16);

  /** SHA-256 of a record's encoding tpmphone.audit.record.v1. digest() copies its input at once: scratch is reused. */
  function recordDigest(seq, millis, type, subject, outcome, detail, prevHash) {
    const e = scratch.reset();
    e.lpBytes(RECORD_TAG_BYTES);
    e.i64(seq);
    e.i64(millis);
    e.lpText(asJavaEncodes(type));
    e.lpText(asJavaEncodes(subject));
    e.lpText(asJavaEncodes(outcome));
    e.lpText(asJavaEncodes(detail));
    e.lpBytes(prevHash);
    return crypto.subtle.digest('SHA-256', e.bytes());
  }

  function checkpointSignedData(c) {
    const e = new Encoding(192);
    if (c.version === 1) {
      e.lpText(CHECKPOINT_TAG);
      e.i64(c.seq);
      e.lpBytes(c.hash);
      e.i64(c.millis);
      return e.copy();
    }
    e.lpText(c.version === 2 ? CHECKPOINT_V2_TAG : CHECKPOINT_V3_TAG);
    e.i64(c.seq);
    e.lpBytes(c.hash);
    e.i64(c.millis);
    e.u32(c.every);
    e.i64(c.maxUnsignedMillis);
    e.u8(c.closed ? 1 : 0);
    e.lpBytes(c.prevDigest);
    return e.copy();
  }

  function headSignedData(h) {
    const e = new Encoding(192);
    e.lpText(HEAD_TAG);
    e.i64(h.seq);
    e.lpBytes(h.hash);
    e.i64(h.millis);
    e.i64(h.checkpoints);
    e.lpBytes(h.checkpointDigest);
    e.i64(h.refreshMillis);
    e.u8(h.closed ? 1 : 0);
    return e.copy();
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  /**
   * A DER ECDSA signature (SEQUENCE of the INTEGERs r and s, strictly encoded, as Java's verifier requires) as the
   * 64 bytes r || s WebCrypto verifies; null if it is not one, which makes the signature invalid.
   */
  function p1363(der) {
    if (der.length < 8 || der[0] !== 0x30 || (der[1] & 0x80) || der[1] + 2 !== der.length) return null;
    const out = new Uint8Array(64);
    let i = 2;
    for (let k = 0; k < 2; k++) {
      if (der[i++] !== 0x02) return null;
      const length = der[i++];
      if (length < 1 || length > 33 || i + length > der.length) return null;
      let v = der.subarray(i, i + length);
      i += length;
      if (v[0] & 0x80) return null; // negative
      if (v[0] === 0) {
        if (length === 1 || !(v[1] & 0x80)) return null; // zero, or not minimal
        v = v.subarray(1);
      }
      if (v.length > 32) return null;
      out.set(v, 32 * k + 32 - v.length);
    }
    return i === der.length ? out : null;
  }

  async function signatureValid(key, data, der) {
    const signature = p1363(der);
    if (!signature) return false;
    try {
      return await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, data);
    } catch (e) {
      return false;
    }
  }

  // ---- keys --------------------------------------------------------------------------------------------------------

  function tlv(der, i) {
    if (i + 2 > der.length) throw new Error('truncated DER');
    const tag = der[i];
    let length = der[i + 1];
    let header = 2;
    if (length & 0x80) {
      const n = length & 0x7f;
      if (n < 1 || n > 3 || i + 2 + n > der.length) throw new Error('bad DER length');
      length = 0;
      for (let k = 0; k < n; k++) length = length * 256 + der[i + 2 + k];
      header += n;
    }
    if (i + header + length > der.length) throw new Error('truncated DER');
    return { tag, start: i + header, end: i + header + length };
  }

  /** The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1). */
  function certificateKey(der) {
    const certificate = tlv(der, 0);
    const tbs = tlv(der, certificate.start);
    if (certificate.tag !== 0x30 || tbs.tag !== 0x30) throw new Error('not an X.509 certificate');
    let i = tbs.start;
    if (tlv(der, i).tag === 0xa0) i = tlv(der, i).end; // version
    for (let k = 0; k < 5; k++) i = tlv(der, i).end; // serial, signature, issuer, validity, subject
    const spki = tlv(der, i);
    if (spki.tag !== 0x30) throw new Error('not an X.509 certificate');
    return der.slice(i, spki.end);
  }

  /** The SubjectPublicKeyInfo DER of the first PEM "PUBLIC KEY" or "CERTIFICATE" block; throws saying why not. */
  function pemKey(text) {
    const m = /-----BEGIN (PUBLIC KEY|CERTIFICATE)-----([A-Za-z0-9+/=\s]*)-----END \1-----/.exec(text);
    if (!m) throw new Error('expected a PEM "PUBLIC KEY" or "CERTIFICATE" block');
    const der = base64(m[2].replace(/\s+/g, ''));
    if (!der) throw new Error('the PEM block is not base64');
    return m[1] === 'PUBLIC KEY' ? der : certificateKey(der);
  }

  /** An ECDSA P-256 verification key with its key id (first 16 bytes of SHA-256 over its SubjectPublicKeyInfo). */
  async function importKey(spki, from) {
    let key;
    try {
      key = await crypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    } catch (e) {
      throw new Error('the PEM holds a key that is not ECDSA P-256; audit checkpoints are signed with ECDSA P-256:'
        + ' give the server\'s result-signing key or certificate');
    }
    return { key, keyId: hex((await sha256(spki)).subarray(0, 16)), from };
  }

  // ---- reading the export ------------------------------------------------------------------------------------------

  /** Finds where the JSON string starting at b[i] ('"') ends (the index after its closing quote), or -1. */
  function stringEnd(b, i) {
    let from = i + 1;
    for (;;) {
      const q = b.indexOf('"', from);
      if (q < 0) return -1;
      let k = q - 1;
      let backslashes = 0;
      while (k >= from && b.charCodeAt(k) === 0x5c) {
        backslashes++;
        k--;
      }
      if (backslashes % 2 === 0) return q + 1;
      from = q + 1;
    }
  }

  /**
   * The extent of the JSON value at b[i]: its end, the number of members of an object (colons at its first level:
   * JSON.parse keeps the last of duplicate names, Jackson refuses them), and whether a number in it is not an
   * integer (JSON.parse reads 1.0 as 1, Jackson as a non-integer). Null if the text ends inside it.
   */
  function scan(b, i, eof) {
    const n = b.length;
    let c = b.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(b, i);
      return end < 0 ? null : { end, members: 0, nonInteger: false };
    }
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      let members = 0;
      let nonInteger = false;
      let inNumber = false;
      while (i < n) {
        c = b.charCodeAt(i);
        if (c === 0x22) {
          inNumber = false;
          const end = stringEnd(b, i);
          if (end < 0) return null;
          i = end;
          continue;
        }
        if (c === 0x7b || c === 0x5b) {
          depth++;
          inNumber = false;
        } else if (c === 0x7d || c === 0x5d) {
          depth--;
          inNumber = false;
          if (depth === 0) return { end: i + 1, members, nonInteger };
        } else if (c === 0x3a) {
          inNumber = false;
          if (depth === 1) members++;
        } else if ((c >= 0x30 && c <= 0x39) || c === 0x2d) {
          inNumber = true;
        } else if (inNumber && (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b)) {
          nonInteger = true;
        } else {
          inNumber = false;
        }
        i++;
      }
      return null;
    }
    let j = i;
    while (j < n) {
      c = b.charCodeAt(j);
      if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
      j++;
    }
    if (j === n && !eof) return null;
    return { end: j, members: 0, nonInteger: /[.eE]/.test(b.slice(i, j)) };
  }

  /** The export's text, read in chunks of a File or Blob and decoded strictly as UTF-8. */
  class Source {
    constructor(blob, progress) {
      this.blob = blob;
      this.progress = progress || (() => {});
      this.offset = 0;
      this.buf = '';
      this.pos = 0;
      this.eof = false;
      this.decoder = new TextDecoder('utf-8', { fatal: true });
    }

    async more() {
      if (this.eof) return false;
      const end = Math.min(this.blob.size, this.offset + CHUNK);
      const bytes = new Uint8Array(await this.blob.slice(this.offset, end).arrayBuffer());
      const last = end >= this.blob.size;
      let text;
      try {
        text = this.decoder.decode(bytes, { stream: !last });
      } catch (e) {
        throw malformed('audit export is not valid JSON: it is not UTF-8 text (in bytes ' + this.offset + '..'
          + end + ')');
      }
      this.offset = end;
      this.buf = this.buf.slice(this.pos) + text;
      this.pos = 0;
      this.eof = last;
      this.progress(this.offset, this.blob.size);
      return true;
    }

    /** The next non-blank character code, -1 at the end of the text, -2 if more must be read first. */
    peekNow() {
      const b = this.buf;
      let i = this.pos;
      while (i < b.length) {
        const c = b.charCodeAt(i);
        if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
        i++;
      }
      this.pos = i;
      if (i < b.length) return b.charCodeAt(i);
      return this.eof ? -1 : -2;
    }

    async peek() {
      for (;;) {
        const c = this.peekNow();
        if (c !== -2) return c;
        await this.more();
      }
    }

    /** The next value's text and extent, or null if more must be read first. */
    valueNow() {
      const r = scan(this.buf, this.pos, this.eof);
      if (!r) {
        if (this.eof) throw malformed('audit export is not valid JSON: it ends inside a value');
        return null;
      }
      r.text = this.buf.slice(this.pos, r.end);
      this.pos = r.end;
      return r;
    }

    async value() {
      const c = await this.peek();
      if (c === -1) throw malformed('audit export is not valid JSON: it ends early');
      for (;;) {
        const r = this.valueNow();
        if (r) return r;
        await this.more();
      }
    }

    /** Consumes ',' before the next element (not before the first), or the closing character; true at the close. */
    async separator(close, first, where) {
      const c = await this.peek();
      if (c === close) {
        this.pos++;
        return true;
      }
      if (!first) {
        if (c !== 0x2c) throw malformed('audit export is not valid JSON: expected \',\' or \''
          + String.fromCharCode(close) + '\' in ' + where);
        this.pos++;
      }
      return false;
    }
  }

  function parseSyntax(r, where) {
    try {
      return JSON.parse(r.text);
    } catch (e) {
      throw malformed('audit export is not valid JSON (' + where + '): ' + e.message);
    }
  }

  function refuseDuplicates(r, value, where) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)
        && Object.keys(value).length !== r.members) {
      throw malformed('audit export is not valid JSON (' + where + '): a duplicate field name');
    }
  }

  function parse(r, where) {
    const value = parseSyntax(r, where);
    refuseDuplicates(r, value, where);
    return value;
  }

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const has = (node, field) => Object.prototype.hasOwnProperty.call(node, field);

  function requireFields(node, fields, where) {
    if (!isObject(node)) throw malformed(where + ' is not a JSON object');
    for (const name of Object.keys(node)) {
      if (!fields.includes(name)) throw malformed(where + ' has an unknown field "' + name + '"');
    }
    for (const name of fields) {
      if (!has(node, name)) throw malformed(where + ' has no "' + name + '"');
    }
  }

  function integer(node, field, where, r) {
    const v = node[field];
    if (typeof v !== 'number' || r.nonInteger || !Number.isSafeInteger(v)) {
      throw malformed(where + ': "' + field + '" must be an integer');
    }
    return v;
  }

  function string(node, field, where) {
    const v = node[field];
    if (typeof v !== 'string') throw malformed(where + ': "' + field + '" must be a string');
    return v;
  }

  function hexField(node, field, where) {
    const bytes = unhex(string(node, field, where));
    if (!bytes) throw malformed(where + ': "' + field + '" is not hex');
    return bytes;
  }

  // What Java's Instant.parse (DateTimeFormatter.ISO_INSTANT) accepts: 't'/'z' in either case, an offset, 24:00:00 as
  // the next day's start, 23:59:60 as 23:59:59 (a leap second). The year is SignStyle.EXCEEDS_PAD over 4 digits: '+'
  // only before more than 4 digits, '-' before 4 or more (but not a year of zeros), no sign before more than 4.
  const TIMESTAMP = new RegExp('^(\\d{4}|\\+\\d{5,9}|-\\d{4,9})-(\\d{2})-(\\d{2})[Tt](\\d{2}):(\\d{2}):(\\d{2})'
    + '(?:\\.(\\d{1,9}))?(?:[Zz]|([+-])(\\d{2}):(\\d{2})(?::(\\d{2}))?)$');

  const MAX_DATE_MILLIS = 8.64e15;

  function daysIn(year, month) {
    return [31, leap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  }

  function leap(y) {
    return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  }

  /** ISO-8601 UTC as Java's Instant.parse reads it, to epoch milliseconds. */
  function instant(node, where) {
    const text = string(node, 'timestamp', where);
    const m = TIMESTAMP.exec(text);
    const bad = () => malformed(where + ': "timestamp" is not ISO-8601 UTC (e.g. 2025-01-31T12:00:00.000Z): '
      + text);
    if (!m) throw bad();
    const year = Number(m[1]);
    if (m[1].startsWith('-') && year === 0) throw bad();
    const [month, day, hour, minute] = m.slice(2, 6).map(Number);
    let second = Number(m[6]);
    const fraction = (m[7] || '').padEnd(9, '0');
    let nextDay = false;
    if (hour === 24 && minute === 0 && second === 0 && Number(fraction) === 0) {
      nextDay = true;
    } else if (hour === 23 && minute === 59 && second === 60) {
      second = 59;
    } else if (hour > 23 || minute > 59 || second > 59) {
      throw bad();
    }
    if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) throw bad();
    let offsetSeconds = 0;
    if (m[8]) {
      const [oh, om, os] = [Number(m[9]), Number(m[10]), Number(m[11] || 0)];
      if (oh > 18 || om > 59 || os > 59 || oh * 3600 + om * 60 + os > 18 * 3600) throw bad();
      offsetSeconds = (m[8] === '-' ? -1 : 1) * (oh * 3600 + om * 60 + os);
    }
    if (Number(fraction.slice(3)) !== 0) {
      throw malformed(where + ': "timestamp" has sub-millisecond digits: ' + text);
    }
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day);
    date.setUTCHours(nextDay ? 0 : hour, minute, second, Number(fraction.slice(0, 3)));
    const millis = date.getTime() + (nextDay ? 86400000 : 0) - offsetSeconds * 1000;
    // Beyond ±8.64e15 ms (about ±273,790 years) a JavaScript Date is NaN, which would hash as 0 and switch off the
    // ordering and age checks: such a timestamp is refused here (Java would read it; no writer produces one).
    if (!Number.isFinite(millis) || Math.abs(millis) > MAX_DATE_MILLIS) {
      throw malformed(where + ': "timestamp" is outside the years this page can check (-271821..275760): ' + text);
    }
    return millis;
  }

  /** As Java's Instant.toString: no fraction when the milliseconds are 0. */
  function instantText(millis) {
    const s = new Date(millis).toISOString();
    return millis % 1000 === 0 ? s.slice(0, 19) + 'Z' : s;
  }

  // ---- the chain ---------------------------------------------------------------------------------------------------

  const nextMultiple = (seq, every) => (Math.floor(seq / every) + 1) * every;

  /**
   * ChainChecker: records fed in stored order, then the checkpoints, the head and the end. Records are checked in
   * batches whose hashes WebCrypto computes in parallel; a batch is committed in order, up to its first problem.
   */
  class Checker {
    constructor(knownCheckpoints, knownHead, options) {
      this.options = options;
      this.nowMillis = options.open ? options.nowMillis : 0;
      let covered = knownCheckpoints === null ? -1
        : knownCheckpoints.reduce((m, c) => Math.max(m, c.seq), 0);
      if (knownCheckpoints !== null && knownHead !== null) covered = Math.max(covered, knownHead.seq);
      this.firstUnsignedSeq = knownCheckpoints === null ? -1 : covered + 1;
      this.firstUnsignedMillis = -1;
      if (knownCheckpoints === null) {
        this.wanted = null;
      } else {
        this.wanted = new Set(knownCheckpoints.map((c) => c.seq));
        if (knownHead !== null) this.wanted.add(knownHead.seq);
        if (options.anchorSeq >= 0) this.wanted.add(options.anchorSeq);
      }
      this.retained = new Map();
      this.allHashes = new Uint8Array(0);
      this.allMillis = new Float64Array(0);
      this.key = null;
      this.keyId = null;
      this.expectedSeq = 1;
      this.lastMillis = -Infinity;
      this.lastHash = ZERO_HASH;
      this.recordsChecked = 0;
      this.recordProblem = null;
      // The batch: checked up to its hashes, committed by flush().
      this.pending = [];
      this.stopped = false;
      this.nextSeq = 1;
      this.nextLastHash = ZERO_HASH;
      this.nextLastMillis = -Infinity;
    }

    intact() {
      return this.recordProblem === null && !this.stopped;
    }

    /** ChainChecker.accept up to the hash, which flush() compares once WebCrypto has computed it. */
    accept(seq, millis, type, subject, outcome, detail, prevHash, hash) {
      if (!this.intact()) return;
      const entry = { seq, millis, hash, pre: null, post: null, digest: null };
      const expected = this.nextSeq;
      if (seq !== expected) {
        let message;
        if (seq > expected) {
          const missing = seq - expected === 1 ? 'record ' + expected : 'records ' + expected + '..' + (seq - 1);
          message = expected === 1 ? missing + ' missing (the log starts at seq ' + seq + ')'
            : missing + ' missing (seq jumps from ' + (expected - 1) + ' to ' + seq + ')';
        } else {
          message = 'record ' + seq + ' is out of order or duplicated (it follows record ' + (expected - 1) + ')';
        }
        entry.pre = problemOf(expected, 'SEQ_GAP', message);
      } else if (prevHash.length !== HASH_LENGTH || hash.length !== HASH_LENGTH) {
        entry.pre = problemOf(seq, 'MALFORMED', 'record ' + seq + ': hash or prev_hash is not ' + HASH_LENGTH
          + ' bytes');
      } else if (!equal(prevHash, this.nextLastHash)) {
        entry.pre = problemOf(seq, 'PREV_HASH_MISMATCH', seq === 1
          ? 'record 1: prev_hash is not 32 zero bytes (the first record was replaced or the link changed)'
          : 'record ' + seq + ': prev_hash does not match record ' + (seq - 1) + '\'s hash (record ' + (seq - 1)
            + ' was rewritten, or this link was changed)');
      } else {
        entry.digest = recordDigest(seq, millis, type, subject, outcome, detail, prevHash);
        if (millis < this.nextLastMillis) {
          entry.post = problemOf(seq, 'TIMESTAMP_INVALID', 'record ' + seq + ': timestamp ' + millis
            + ' is before record ' + (seq - 1) + '\'s (' + this.nextLastMillis + '); the writer never dates a record'
            + ' before the previous one, so this one or its neighbour was rewritten');
        } else if (!TYPES.has(asJavaEncodes(type))) {
          entry.post = problemOf(seq, 'MALFORMED', 'record ' + seq + ': unknown type \'' + asJavaEncodes(type)
            + '\' (written by a newer version?)');
        }
      }
      this.pending.push(entry);
      if (entry.pre || entry.post) {
        this.stopped = true;
      } else {
        this.nextSeq = seq + 1;
        this.nextLastHash = hash;
        this.nextLastMillis = millis;
      }
    }

    async flush() {
      const batch = this.pending;
      this.pending = [];
      if (batch.length === 0) return;
      const digests = await Promise.all(batch.map((e) => e.digest));
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i];
        if (e.pre) {
          this.recordProblem = e.pre;
          break;
        }
        if (!equal(new Uint8Array(digests[i]), e.hash)) {
          this.recordProblem = problemOf(e.seq, 'HASH_MISMATCH', 'record ' + e.seq + ': stored hash does not match'
            + ' its contents (timestamp, type, subject, outcome or detail was changed, or the hash itself)');
          break;
        }
        if (e.post) {
          this.recordProblem = e.post;
          break;
        }
        this.retain(e.seq, e.hash, e.millis);
        this.lastHash = e.hash;
        this.lastMillis = e.millis;
        this.expectedSeq = e.seq + 1;
        this.recordsChecked++;
      }
      if (this.recordProblem) this.stopped = true;
    }

    retain(seq, hash, millis) {
      if (this.wanted !== null) {
        if (this.wanted.has(seq)) this.retained.set(seq, hash);
        if (seq === this.firstUnsignedSeq) this.firstUnsignedMillis = millis;
        return;
      }
      if (seq > this.allMillis.length) {
        const bigger = new Float64Array(Math.max(128, this.allMillis.length * 2));
        bigger.set(this.allMillis);
        this.allMillis = bigger;
        const hashes = new Uint8Array(bigger.length * HASH_LENGTH);
        hashes.set(this.allHashes);
        this.allHashes = hashes;
      }
      this.allMillis[seq - 1] = millis;
      this.allHashes.set(hash, (seq - 1) * HASH_LENGTH);
    }

    retainedHash(seq) {
      if (seq === 0) return ZERO_HASH;
      if (this.wanted !== null) return this.retained.get(seq);
      if (seq > this.allMillis.length) return undefined;
      return this.allHashes.subarray((seq - 1) * HASH_LENGTH, seq * HASH_LENGTH);
    }

    oldestUnsignedMillis(seq) {
      if (this.wanted !== null) return seq === this.firstUnsignedSeq ? this.firstUnsignedMillis : -Infinity;
      return this.allMillis[seq - 1];
    }

    /** Computes what the checkpoint and head checks need from WebCrypto, then judges as ChainChecker.finish. */
    async finish(source, checkpoints, signedHead, declaredRecordCount) {
      await this.flush();
      for (const c of checkpoints) c.signedData = checkpointSignedData(c);
      const digests = await Promise.all(checkpoints.map((c) => sha256(c.signedData)));
      checkpoints.forEach((c, i) => { c.digest = digests[i]; });
      if (this.key) {
        const valid = await Promise.all(checkpoints.map((c) => signatureValid(this.key, c.signedData, c.signature)));
        checkpoints.forEach((c, i) => { c.signatureValid = valid[i]; });
        if (signedHead) signedHead.signatureValid = await signatureValid(this.key, headSignedData(signedHead),
          signedHead.signature);
      }
      return this.judge(source, checkpoints, signedHead, declaredRecordCount);
    }

    judge(source, checkpoints, signedHead, declaredRecordCount) {
      const options = this.options;
      const headRequired = checkpoints.some((c) => c.version === 3);
      const head = this.expectedSeq - 1;
      if (this.recordProblem === null && declaredRecordCount > head) {
        this.recordProblem = problemOf(head + 1, 'SEQ_GAP', (declaredRecordCount - head === 1
          ? 'record ' + declaredRecordCount : 'records ' + (head + 1) + '..' + declaredRecordCount)
          + ' missing (the export declares ' + declaredRecordCount + ' records but ends at ' + head + ')');
      }
      const limit = this.recordProblem === null ? Infinity : this.recordProblem.seq;
      const hasV1 = checkpoints.some((c) => c.version === 1);
      const firstInterval = checkpoints.find((c) => c.version >= 2 && c.every >= 1);
      let interval = firstInterval ? firstInterval.every : DEFAULT_CHECKPOINT_EVERY;
      let maxUnsignedMillis = DEFAULT_MAX_UNSIGNED_MILLIS;
      let sawV2 = false;
      let sawV3 = false;
      let expectedPrev = ZERO_HASH;
      let previousSeq = 0;
      let last = null;
      let checked = 0;
      let legacy = 0;
      let found = null;
      let reordered = null;
      let highest = -1;
      for (const c of checkpoints) {
        if (c.seq < highest && (reordered === null || c.seq < reordered.seq)) {
          reordered = problemOf(c.seq, 'CHECKPOINT_CHAIN_BROKEN', 'checkpoint at ' + c.seq
            + ' is stored after the checkpoint at ' + highest + ' (checkpoints were reordered)');
        }
        highest = Math.max(highest, c.seq);
      }
      for (const c of checkpoints) {
        const seq = c.seq;
        if (reordered !== null && seq >= reordered.seq) {
          found = reordered;
        } else if (!hasV1 || sawV2) {
          const required = nextMultiple(previousSeq, interval);
          if (seq > required && required <= head) found = missing(required, interval, last);
        }
        if (found === null) found = this.check(c, head);
        if (found === null && c.version === 1) {
          if (!options.acceptV1) {
            found = problemOf(seq, 'LEGACY_CHECKPOINT', 'checkpoint at ' + seq + ' is in the v1 format'
              + ' (tpmphone.audit.checkpoint.v1), which cannot show that checkpoints were deleted; if this log was'
              + ' never opened by a v2 server, verify it the weaker way with --accept-v1');
          } else if (sawV2) {
            found = problemOf(seq, 'CHECKPOINT_CHAIN_BROKEN', 'checkpoint at ' + seq + ' is v1 but follows a v2 or'
              + ' v3 checkpoint (they are never followed by v1)');
          }
        }
        if (found === null && c.version === 2 && sawV3) {
          found = problemOf(seq, 'CHECKPOINT_CHAIN_BROKEN', 'checkpoint at ' + seq + ' is v2 but follows a v3'
            + ' checkpoint (v3 writers never write v2)');
        }
        if (found === null && c.version >= 2) {
          if (c.every < 1 || c.maxUnsignedMillis < 1) {
            found = problemOf(seq, 'MALFORMED', 'checkpoint at ' + seq + ': interval or unsigned-age bound is not'
              + ' positive');
          } else if (!equal(c.prevDigest, expectedPrev)) {
            found = problemOf(seq, 'CHECKPOINT_CHAIN_BROKEN', 'checkpoint at ' + seq + ' does not cover '
              + (last === null ? 'nothing (it is the first, but names a previous checkpoint: the checkpoints before'
                + ' it were removed)'
                : 'the checkpoint before it (at ' + last.seq + '): a checkpoint between them was removed,'
                  + ' reordered or inserted'));
          }
        }
        if (found !== null) break;
        if (c.version >= 2) {
          sawV2 = true;
          sawV3 = sawV3 || c.version === 3;
          interval = c.every;
          maxUnsignedMillis = c.maxUnsignedMillis;
        } else {
          legacy++;
        }
        expectedPrev = c.digest;
        previousSeq = seq;
        last = c;
        checked++;
      }
      let problem = this.recordProblem;
      if (found !== null && found.seq < limit) problem = found;
      if (problem === null) {
        problem = this.checkSignedHead(signedHead, headRequired, checkpoints,
          signedHead === null ? 0 : Math.min(signedHead.seq, head));
      }
      if (problem === null) problem = this.checkAnchor();
      let unsigned = 0;
      const legacyOnly = hasV1 && !sawV2 && signedHead === null;
      if (problem === null && !legacyOnly) {
        const required = nextMultiple(previousSeq, interval);
        const covered = Math.max(last === null ? 0 : last.seq, signedHead === null ? 0 : signedHead.seq);
        if (required <= head) {
          problem = missing(required, interval, last);
        } else if (!options.open) {
          if (last === null || !last.closed || last.seq !== head) problem = notClosed(last, head);
        } else if (head > covered) {
          unsigned = head - covered;
          const oldest = this.oldestUnsignedMillis(covered + 1);
          const now = this.nowMillis;
          const bound = maxUnsignedMillis + OPEN_GRACE;
          const age = oldest > now ? 0 : now - oldest;
          if (oldest > now && oldest - now > OPEN_GRACE) {
            problem = problemOf(covered + 1, 'TIMESTAMP_INVALID', 'record ' + (covered + 1) + ' (not signed yet) is'
              + ' dated ' + (oldest - now) + ' ms after this verifier\'s clock: its timestamp was rewritten, or the'
              + ' clocks disagree (record times never go back, so after the server\'s clock was set back they run'
              + ' ahead of it)');
          } else if (age > bound) {
            problem = problemOf(covered + 1, 'UNSIGNED_TAIL_TOO_OLD', 'records ' + (covered + 1) + '..' + head
              + ' are not signed, and record ' + (covered + 1) + ' is ' + age + ' ms old; the writer signs within '
              + maxUnsignedMillis + ' ms (+ ' + OPEN_GRACE + ' ms grace), so a checkpoint after it was removed, or'
              + ' the server is stalled');
            unsigned = 0;
          }
        }
      }
      return {
        source,
        recordsChecked: this.recordsChecked,
        checkpointsChecked: checked,
        signaturesChecked: this.key !== null,
        headSeq: head,
        headHash: head === 0 ? null : hex(this.lastHash),
        problem,
        open: options.open,
        unsignedRecords: problem === null ? unsigned : 0,
        legacyCheckpoints: legacy,
      };
    }

    check(c, head) {
      const seq = c.seq;
      if (seq > head) {
        return problemOf(seq, 'CHECKPOINT_BEYOND_END', 'checkpoint at ' + seq + ': record ' + seq + ' is missing;'
          + ' the log ends at record ' + head + ' (records after ' + head + ' were removed)');
      }
      if (seq < (c.version >= 2 ? 0 : 1) || c.hash.length !== HASH_LENGTH) {
        return problemOf(seq, 'MALFORMED', 'checkpoint at ' + seq + ': seq or hash is malformed');
      }
      if (this.key) {
        if (this.keyId !== c.keyId) {
          return problemOf(seq, 'CHECKPOINT_KEY_MISMATCH', 'checkpoint at ' + seq + ': signed by key id ' + c.keyId
            + ', not by the given public key (key id ' + this.keyId + ')');
        }
        if (!c.signatureValid) {
          return problemOf(seq, 'CHECKPOINT_SIGNATURE_INVALID', 'checkpoint at ' + seq + ': signature invalid (its'
            + ' seq, hash, timestamp or another signed field was changed, or the signature)');
        }
      }
      if (!equal(c.hash, this.retainedHash(seq))) {
        return problemOf(seq, 'CHECKPOINT_HASH_MISMATCH', 'checkpoint at ' + seq + ': hash does not match record '
          + seq + '\'s hash (records up to ' + seq + ' were rewritten, or the checkpoint was changed)');
      }
      return null;
    }

    checkSignedHead(h, headRequired, checkpoints, seqForProblems) {
      const options = this.options;
      const logHead = this.expectedSeq - 1;
      if (h === null) {
        if (headRequired || options.open) {
          return problemOf(logHead, 'SIGNED_HEAD_MISSING', options.open
            ? 'the log has no signed head; a running server keeps one and re-signs it at least every minute: it'
              + ' was removed (the log may have been cut back), or this log is not being written by a current'
              + ' server (verify it without --open)'
            : 'the log has v3 checkpoints, which commit it to a signed head, but there is none: it was removed (the'
              + ' log may have been cut back or stripped of checkpoints)');
        }
        return null;
      }
      const signed = 'the signed head (signed ' + instantText(h.millis) + ', record ' + h.seq + ', ' + h.checkpoints
        + ' checkpoints) ';
      if (h.refreshMillis < 1 || h.seq < 0 || h.checkpoints < 0 || h.keyId.length === 0
          || h.hash.length !== HASH_LENGTH || h.checkpointDigest.length !== HASH_LENGTH) {
        return problemOf(seqForProblems, 'MALFORMED', signed + 'has a malformed field');
      }
      if (this.key) {
        if (this.keyId !== h.keyId) {
          return problemOf(seqForProblems, 'SIGNED_HEAD_INVALID', signed + 'is signed by key id ' + h.keyId
            + ', not by the given public key (key id ' + this.keyId + ')');
        }
        if (!h.signatureValid) {
          return problemOf(seqForProblems, 'SIGNED_HEAD_INVALID', signed + 'has an invalid signature (a field or'
            + ' the signature was changed)');
        }
      }
      if (h.seq > logHead) {
        return problemOf(logHead + 1, 'SIGNED_HEAD_MISMATCH', signed + 'covers record ' + h.seq + ', but the log'
          + ' ends at record ' + logHead + ': records were removed from its end');
      }
      if (h.closed && logHead > h.seq) {
        return problemOf(h.seq + 1, 'SIGNED_HEAD_MISMATCH', signed + 'closed the log at record ' + h.seq
          + ', but records up to ' + logHead + ' follow: they were appended by someone other than the server');
      }
      if (h.checkpoints !== checkpoints.length) {
        return problemOf(seqForProblems, 'SIGNED_HEAD_MISMATCH', signed + 'counts ' + h.checkpoints
          + ' checkpoints, but the log has ' + checkpoints.length + (h.checkpoints > checkpoints.length
            ? ': checkpoints were removed (the log was cut back)' : ': checkpoints were added after it'));
      }
      const lastDigest = checkpoints.length === 0 ? ZERO_HASH : checkpoints[checkpoints.length - 1].digest;
      if (!equal(lastDigest, h.checkpointDigest)) {
        return problemOf(seqForProblems, 'SIGNED_HEAD_MISMATCH', signed + 'names another last checkpoint than the'
          + ' log\'s: checkpoints were replaced');
      }
      const lastCheckpointSeq = checkpoints.length === 0 ? 0 : checkpoints[checkpoints.length - 1].seq;
      if (h.seq < lastCheckpointSeq) {
        return problemOf(seqForProblems, 'SIGNED_HEAD_MISMATCH', signed + 'is behind the last checkpoint (at '
          + lastCheckpointSeq + ')');
      }
      if (!equal(h.hash, this.retainedHash(h.seq))) {
        return problemOf(seqForProblems, 'SIGNED_HEAD_MISMATCH', signed + 'names another hash for record ' + h.seq
          + ': records up to it were rewritten');
      }
      if (options.open) {
        const now = this.nowMillis;
        const at = h.millis;
        const bound = h.refreshMillis + OPEN_GRACE;
        if (at > now && at - now > OPEN_GRACE) {
          return problemOf(seqForProblems, 'TIMESTAMP_INVALID', signed + 'is dated ' + (at - now) + ' ms after this'
            + ' verifier\'s clock: the clocks disagree');
        }
        const age = at >= now ? 0 : now - at;
        if (age > bound) {
          return problemOf(seqForProblems, 'SIGNED_HEAD_STALE', signed + 'is ' + age + ' ms old; a running server'
            + ' re-signs it every ' + h.refreshMillis + ' ms (+ ' + OPEN_GRACE + ' ms grace): the log was cut back'
            + ' or replaced by an older copy, or its server is stalled or stopped (verify a stopped server\'s log'
            + ' without --open)');
        }
      }
      return null;
    }

    checkAnchor() {
      const seq = this.options.anchorSeq;
      if (seq < 0) return null;
      const logHead = this.expectedSeq - 1;
      if (seq > logHead) {
        return problemOf(logHead + 1, 'ANCHOR_MISMATCH', 'the expected head names record ' + seq + ', but the log'
          + ' ends at record ' + logHead + ': it was cut back (or another log was given)');
      }
      if (!equal(this.options.anchorHash, this.retainedHash(seq))) {
        return problemOf(seq, 'ANCHOR_MISMATCH', 'record ' + seq + ' does not have the expected hash '
          + hex(this.options.anchorHash) + ': the log was rewritten up to it (or another log was given)');
      }
      return null;
    }
  }

  function missing(required, interval, last) {
    return problemOf(required, 'CHECKPOINT_MISSING', 'no checkpoint at record ' + required + ', where the interval'
      + ' of ' + interval + ' records (' + (last === null || last.version < 2 ? 'the documented default, no earlier'
        + ' checkpoint states one' : 'signed in the checkpoint at ' + last.seq) + ') requires one: checkpoints were'
      + ' removed, and the records after ' + (last === null ? 0 : last.seq) + ' may have been rewritten');
  }

  function notClosed(last, head) {
    if (last === null) {
      return problemOf(head === 0 ? 0 : 1, 'NOT_CLOSED', head === 0
        ? 'the log is empty and has no closing checkpoint (a closed empty log has one at seq 0): its records and'
          + ' checkpoints may have been removed'
        : 'records 1..' + head + ' are not signed: the log has no checkpoint at all (they were removed, and the'
          + ' records may have been rewritten)');
    }
    if (last.seq < head) {
      return problemOf(last.seq + 1, 'NOT_CLOSED', 'records ' + (last.seq + 1) + '..' + head + ' after the last'
        + ' checkpoint (at ' + last.seq + ') are not signed: the log was not closed, or its closing checkpoint was'
        + ' removed. A running server\'s log is verified with --open');
    }
    return problemOf(head, 'NOT_CLOSED', 'the last checkpoint (at ' + head + ') is not a closing one: the log was'
      + ' not closed (verify a running server\'s log with --open), or records after it were cut off together with'
      + ' their checkpoints');
  }

  // ---- the export document -----------------------------------------------------------------------------------------

  function readHead(r) {
    const where = 'audit export head';
    const node = parse(r, where);
    if (!isObject(node)) throw malformed(where + ' must be a JSON object');
    requireFields(node, HEAD_FIELDS, where);
    const signature = base64(string(node, 'signature', where));
    if (!signature) throw malformed(where + ': "signature" is not base64');
    const seq = integer(node, 'seq', where, r);
    const checkpoints = integer(node, 'checkpoints', where, r);
    const refresh = integer(node, 'refreshMillis', where, r);
    if (seq < 0 || checkpoints < 0 || refresh < 1) {
      throw malformed(where + ': "seq" and "checkpoints" must be >= 0, "refreshMillis" >= 1');
    }
    const hash = hexField(node, 'hash', where);
    const digest = hexField(node, 'checkpointDigest', where);
    if (hash.length !== HASH_LENGTH || digest.length !== HASH_LENGTH) {
      throw malformed(where + ': "hash" and "checkpointDigest" must be ' + HASH_LENGTH + ' bytes');
    }
    if (typeof node.closed !== 'boolean') throw malformed(where + ': "closed" must be true or false');
    return { seq, hash, millis: instant(node, where), checkpoints, checkpointDigest: digest,
      refreshMillis: refresh, closed: node.closed, keyId: string(node, 'keyId', where), signature };
  }

  async function readCheckpoints(src) {
    if (await src.peek() !== 0x5b) throw malformed('audit export field "checkpoints" must be an array');
    src.pos++;
    const checkpoints = [];
    while (!await src.separator(0x5d, checkpoints.length === 0, 'the checkpoints')) {
      const r = await src.value();
      const where = 'audit export checkpoint #' + (checkpoints.length + 1);
      const node = parse(r, where);
      if (!isObject(node)) throw malformed(where + ' is not a JSON object');
      const version = has(node, 'version') ? integer(node, 'version', where, r) : 1;
      if (version < 1 || version > 3) {
        throw malformed(where + ': checkpoint "version" must be 1, 2 or 3, got ' + version);
      }
      requireFields(node, !has(node, 'version') ? CHECKPOINT_FIELDS
        : version === 1 ? CHECKPOINT_V1_FIELDS : CHECKPOINT_V2_FIELDS, where);
      const seq = integer(node, 'seq', where, r);
      const signature = base64(string(node, 'signature', where));
      if (!signature) throw malformed(where + ' (seq ' + seq + '): "signature" is not base64');
      if (version === 1) {
        checkpoints.push({ version, seq, hash: hexField(node, 'hash', where), millis: instant(node, where),
          keyId: string(node, 'keyId', where), signature });
      } else {
        const every = integer(node, 'every', where, r);
        if (every < 1 || every > INT_MAX) {
          throw malformed(where + ' (seq ' + seq + '): "every" must be 1..' + INT_MAX);
        }
        if (typeof node.closed !== 'boolean') {
          throw malformed(where + ' (seq ' + seq + '): "closed" must be true or false');
        }
        checkpoints.push({ version, seq, hash: hexField(node, 'hash', where), millis: instant(node, where),
          keyId: string(node, 'keyId', where), signature, every,
          maxUnsignedMillis: integer(node, 'maxUnsignedMillis', where, r), closed: node.closed,
          prevDigest: hexField(node, 'prevDigest', where) });
      }
    }
    return checkpoints;
  }

  async function readRecords(src, checker, progress) {
    if (await src.peek() !== 0x5b) throw malformed('audit export field "records" must be an array');
    src.pos++;
    let index = 0;
    for (;;) {
      // The common case without awaiting: the next record is already in the buffer.
      let c = src.peekNow();
      if (c === -2) c = await src.peek();
      if (c === 0x5d) {
        src.pos++;
        break;
      }
      if (index > 0) {
        if (c !== 0x2c) throw malformed('audit export is not valid JSON: expected \',\' or \']\' in the records');
        src.pos++;
      }
      let r = src.peekNow() >= 0 ? src.valueNow() : null;
      if (!r) r = await src.value();
      index++;
      let where = 'audit export record #' + index;
      // Syntax errors even after a problem (Jackson still reads the whole document), not the record's own checks.
      const node = parseSyntax(r, where);
      if (!checker.intact()) continue;
      try {
        refuseDuplicates(r, node, where);
        requireFields(node, RECORD_FIELDS, where);
        const seq = integer(node, 'seq', where, r);
        where += ' (seq ' + seq + ')';
        checker.accept(seq, instant(node, where), string(node, 'type', where), string(node, 'subject', where),
          string(node, 'outcome', where), string(node, 'detail', where), hexField(node, 'prevHash', where),
          hexField(node, 'hash', where));
      } catch (e) {
        // Java stops at the first broken record before it reads a later malformed one: settle the batch first.
        if (e instanceof Malformed) {
          await checker.flush();
          if (!checker.intact()) continue;
        }
        throw e;
      }
      if (checker.pending.length >= BATCH) {
        await checker.flush();
        progress(index);
      }
    }
    await checker.flush();
  }

  /**
   * Verifies an export (a File or Blob) as AuditVerifier.verifyExport does. {@code givenKey}: from importKey, or null
   * to use the key the export carries (if any). Returns the report, with the key used; throws Malformed.
   */
  async function verifyExport(blob, givenKey, options, progress) {
    const report = progress || (() => {});
    const src = new Source(blob, (done, total) => report({ bytes: done, total }));
    if (await src.peek() !== 0x7b) {
      throw malformed('audit export must be a JSON object with "format": "' + FORMAT + '"');
    }
    src.pos++;
    let checkpoints = null;
    let head = null;
    let checker = null;
    let format = null;
    let checkpointEncoding = null;
    let version = 1;
    let declaredCount = -1;
    let carriedKey = null;
    let fields = 0;
    const seen = new Set();
    const text = (r, field) => {
      const v = parse(r, field);
      if (typeof v !== 'string') throw malformed('audit export field "' + field + '" must be a string');
      return v;
    };
    const expect = (r, field, expected) => {
      const actual = text(r, field);
      if (actual !== expected) {
        throw malformed('audit export field "' + field + '" is "' + actual + '"; this verifier supports only "'
          + expected + '"');
      }
    };
    while (!await src.separator(0x7d, fields === 0, 'the export object')) {
      fields++;
      if (await src.peek() !== 0x22) throw malformed('audit export is not valid JSON: expected a field name');
      const field = parse(await src.value(), 'a field name');
      if (seen.has(field)) throw malformed('audit export is not valid JSON: a duplicate field "' + field + '"');
      seen.add(field);
      if (await src.peek() !== 0x3a) throw malformed('audit export is not valid JSON: expected \':\'');
      src.pos++;
      switch (field) {
        case 'format':
          format = text(await src.value(), field);
          break;
        case 'version': {
          const r = await src.value();
          const v = parse(r, field);
          if (typeof v !== 'number' || r.nonInteger || !Number.isSafeInteger(v) || v < 1 || v > VERSION) {
            throw malformed('audit export version ' + r.text + ' is not supported (expected 1..' + VERSION + ')');
          }
          version = v;
          break;
        }
        case 'hashAlgorithm':
          expect(await src.value(), field, 'SHA-256');
          break;
        case 'recordEncoding':
          expect(await src.value(), field, RECORD_TAG);
          break;
        case 'checkpointEncoding':
          checkpointEncoding = text(await src.value(), field);
          if (![CHECKPOINT_TAG, CHECKPOINT_V2_TAG, CHECKPOINT_V3_TAG].includes(checkpointEncoding)) {
            throw malformed('audit export field "checkpointEncoding" is "' + checkpointEncoding + '"; this verifier'
              + ' supports only "' + CHECKPOINT_TAG + '", "' + CHECKPOINT_V2_TAG + '" and "' + CHECKPOINT_V3_TAG
              + '"');
          }
          break;
        case 'signatureAlgorithm':
          expect(await src.value(), field, SIGNATURE_ALGORITHM);
          break;
        case 'publicKey': {
          const pem = text(await src.value(), field);
          try {
            carriedKey = await importKey(pemKey(pem), 'export');
          } catch (e) {
            throw malformed('audit export field "publicKey" is not an ECDSA public key in PEM: ' + e.message);
          }
          break;
        }
        case 'recordCount': {
          const r = await src.value();
          const v = parse(r, field);
          if (typeof v !== 'number' || r.nonInteger || !Number.isSafeInteger(v) || v < 0) {
            throw malformed('audit export field "recordCount" must be a non-negative integer');
          }
          declaredCount = v;
          break;
        }
        case 'checkpoints':
          checkpoints = await readCheckpoints(src);
          break;
        case 'head':
          if (checker !== null) throw malformed('audit export field "head" must come before "records"');
          if (await src.peek() !== 0x7b) throw malformed('audit export head must be a JSON object');
          head = readHead(await src.value());
          break;
        case 'records':
          checker = new Checker(checkpoints, head, options);
          await readRecords(src, checker, (n) => report({ records: n }));
          break;
        default:
          throw malformed('audit export has an unknown field "' + field + '"');
      }
    }
    if (await src.peek() !== -1) throw malformed('audit export has data after its JSON object');
    if (format !== FORMAT) {
      throw malformed('audit export must have "format": "' + FORMAT + '", got '
        + (format === null ? 'none' : '"' + format + '"'));
    }
    if (checker === null) throw malformed('audit export has no "records" array');
    if (checkpoints === null) throw malformed('audit export has no "checkpoints" array');
    const expectedEncoding = version === 1 ? CHECKPOINT_TAG : version === 2 ? CHECKPOINT_V2_TAG : CHECKPOINT_V3_TAG;
    if (checkpointEncoding !== null && checkpointEncoding !== expectedEncoding) {
      throw malformed('audit export version ' + version + ' must have "checkpointEncoding": "' + expectedEncoding
        + '", not "' + checkpointEncoding + '"');
    }
    if (version === 1 && checkpoints.some((c) => c.version !== 1)) {
      throw malformed('audit export version 1 cannot hold v2 checkpoints');
    }
    if (version < 3 && (head !== null || checkpoints.some((c) => c.version === 3))) {
      throw malformed('audit export version ' + version + ' cannot hold a "head" or v3 checkpoints (since version'
        + ' 3)');
    }
    if (version < 4 && carriedKey !== null) {
      throw malformed('audit export version ' + version + ' cannot hold a "publicKey" (since version 4)');
    }
    const key = givenKey || carriedKey;
    if (key) {
      checker.key = key.key;
      checker.keyId = key.keyId;
    }
    const result = await checker.finish('export', checkpoints, head, declaredCount);
    result.key = key;
    return result;
  }

  function keyFromExport(r) {
    return r.key !== null && r.key !== undefined && r.key.from !== 'file';
  }

  /**
   * The page's verdict. INTACT only with a key the person gave: a key the export carries proves nothing about who
   * signed it (whoever rewrote the log re-signs it with a key of their own and ships that key), which is why the CLI
   * never uses it (`audit verify` needs --public-key, or --unsigned and exit 3).
   */
  function verdict(r) {
    if (r.problem) return { code: 'BROKEN', text: 'BROKEN' };
    if (!r.signaturesChecked) {
      return { code: 'UNSIGNED', text: 'CONSISTENT, BUT SIGNATURES NOT CHECKED (no public key)' };
    }
    if (keyFromExport(r)) {
      return { code: 'CARRIED_KEY', text: 'CONSISTENT WITH THE KEY IT CARRIES (key id ' + r.key.keyId
        + ') — key not verified; give the server\'s key to verify' };
    }
    return { code: 'INTACT', text: 'INTACT' };
  }

  /** VerificationReport.summary(), and what the key proves when it came from the export. */
  function summary(r) {
    if (r.problem) {
      return 'BROKEN ' + r.source + ': ' + r.problem.kind + ' at ' + r.problem.seq + ': ' + r.problem.message;
    }
    return 'OK ' + r.source + ': ' + r.recordsChecked + ' records, ' + r.checkpointsChecked + ' checkpoints'
      + (!r.signaturesChecked ? ' (signatures NOT checked: no public key given)'
        : keyFromExport(r) ? ' (signatures consistent with the key the export carries, key id ' + r.key.keyId
          + ', which is NOT verified: anyone who rewrote the log could have re-signed it with a key of their own;'
          + ' give the server\'s key to verify)'
          : ' (signatures verified)')
      + (r.headHash === null ? '' : ', head ' + r.headSeq + ' ' + r.headHash)
      + (r.open ? (r.unsignedRecords === 0 ? '; open log, every record signed'
        : '; open log: the last ' + r.unsignedRecords + ' records (' + (r.headSeq - r.unsignedRecords + 1) + '..'
          + r.headSeq + ') are not signed yet') : '; closed')
      + (r.legacyCheckpoints === 0 ? '' : '; WEAKER: ' + r.legacyCheckpoints + ' v1 checkpoints accepted (their'
        + ' deletion would go unnoticed)');
  }

  // For scripts and tests that drive the verifier without the form (a File or Blob, a key from importKey or null).
  globalThis.tpmphoneAuditVerifier = Object.freeze({ verifyExport, summary, verdict, importKey, pemKey });
  if (typeof document === 'undefined') return;

  // ---- the page ----------------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function show(id, text) {
    $(id).textContent = text;
  }

  function expectedHead(text) {
    const value = text.trim();
    if (value === '') return { anchorSeq: -1, anchorHash: null };
    const m = /^(\d+):([0-9a-fA-F]{64})$/.exec(value);
    if (!m || !Number.isSafeInteger(Number(m[1]))) {
      throw new Error('the expected head must be SEQ:HASH as `audit verify` prints the head ("head 4039 694b…":'
        + ' 4039:694b…, 64 hex digits)');
    }
    return { anchorSeq: Number(m[1]), anchorHash: unhex(m[2]) };
  }

  async function run() {
    const file = $('export-file').files[0];
    if (!file) return;
    $('verify').disabled = true;
    $('result').hidden = true;
    $('error').hidden = true;
    document.body.dataset.state = 'running';
    const started = performance.now();
    try {
      const keyFile = $('key-file').files[0];
      let givenKey = null;
      if (keyFile) {
        try {
          givenKey = await importKey(pemKey(await keyFile.text()), 'file');
        } catch (e) {
          throw new Error('the public key file ' + keyFile.name + ': ' + e.message);
        }
      }
      const options = Object.assign({ open: $('open-log').checked, nowMillis: Date.now(),
        acceptV1: $('accept-v1').checked }, expectedHead($('expect-head').value));
      const r = await verifyExport(file, givenKey, options, (p) => {
        if (p.bytes !== undefined) {
          show('progress', 'read ' + Math.round(p.bytes / 1048576) + ' of ' + Math.round(p.total / 1048576)
            + ' MiB');
        }
      });
      const elapsed = Math.round(performance.now() - started);
      const result = $('result');
      result.dataset.intact = String(r.problem === null);
      result.dataset.kind = r.problem ? r.problem.kind : '';
      result.dataset.seq = r.problem ? String(r.problem.seq) : '';
      const v = verdict(r);
      result.dataset.verdict = v.code;
      show('verdict', v.text);
      $('verdict').className = v.code === 'BROKEN' ? 'outcome outcome-REFUSED'
        : v.code === 'INTACT' ? 'outcome outcome-ACCEPTED' : 'outcome outcome-UNVERIFIED';
      show('summary', summary(r));
      $('problem-row').hidden = r.problem === null;
      show('problem-kind', r.problem ? r.problem.kind : '');
      show('problem-seq', r.problem ? String(r.problem.seq) : '');
      show('problem-message', r.problem ? r.problem.message : '');
      show('records-checked', String(r.recordsChecked));
      show('checkpoints-checked', String(r.checkpointsChecked));
      show('head-seq', String(r.headSeq));
      show('head-hash', r.headHash || '');
      show('key-id', r.key ? r.key.keyId : 'none');
      show('key-source', r.key ? (r.key.from === 'file' ? '(from the key file)' : '(carried by the export)') : '');
      $('key-warning').hidden = !keyFromExport(r);
      show('elapsed-ms', String(elapsed));
      show('progress', '');
      result.hidden = false;
      document.body.dataset.state = 'done';
    } catch (e) {
      show('error', (e.code ? e.code + ': ' : 'cannot verify: ') + e.message);
      $('error').hidden = false;
      $('error').dataset.code = e.code || 'ERROR';
      show('progress', '');
      document.body.dataset.state = 'error';
    } finally {
      $('verify').disabled = false;
    }
  }

  $('export-file').addEventListener('change', () => {
    $('verify').disabled = $('export-file').files.length === 0;
  });
  $('verify').addEventListener('click', () => {
    run();
  });
  document.body.dataset.state = 'ready';
}());
