//! A validating pull reader over one JSON text, for frame schemas that read a few fields.
//!
//! The reader walks objects key by key; the caller reads the values it wants and skips the
//! rest, which are still checked against the JSON grammar (RFC 8259), as a full parse would.
//! String values come back as raw slices of the input and are decoded only on request; keys
//! with escapes are decoded before the caller sees them. The `quick_*` methods are fast paths
//! for the plain forms venues send (compact decimals and integers, `["price","qty"]` levels)
//! and fall back to the general path for anything else. The faults use msgspec's words
//! ("Input data was truncated", "JSON is malformed: ..."), as the decoder before this one did.

use crate::error::FrameFault;
use crate::number::{decimal_parts, fast_decimal, scan_number, Decimal, NumberFault};

/// How deep arrays and objects may nest in a skipped value.
const MAX_DEPTH: usize = 1000;

/// The bytes that end the plain run of a string: its closing quote, an escape, or a control
/// character (which JSON does not allow in strings).
static STRING_STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stop[b] = true;
        b += 1;
    }
    stop[b'"' as usize] = true;
    stop[b'\\' as usize] = true;
    stop
};

/// A string value: the bytes between its quotes, undecoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawStr<'a> {
    /// The bytes between the quotes.
    pub raw: &'a [u8],
    /// Where the first backslash escape is in `raw`, `raw.len()` when there is none. (A word
    /// rather than a bool: a struct with a byte field is stored by parts and reloaded whole,
    /// which stalls store-to-load forwarding in the hot loop.)
    escape_at: usize,
}

impl<'a> RawStr<'a> {
    /// A string without escapes.
    pub fn plain(raw: &'a [u8]) -> Self {
        Self { raw, escape_at: raw.len() }
    }

    /// Whether `raw` holds a backslash escape (so it is not the string's value).
    #[inline]
    pub fn is_escaped(&self) -> bool {
        self.escape_at < self.raw.len()
    }

    /// The string's value (escapes decoded) as bytes.
    pub fn value(&self) -> Vec<u8> {
        if self.is_escaped() {
            unescape(self.raw)
        } else {
            self.raw.to_vec()
        }
    }
}

/// A scalar value: a number's text, a string, or the JSON type of anything else (skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar<'a> {
    Number(&'a [u8]),
    Str(RawStr<'a>),
    Other,
}

/// Where the plain run of a string ends in `rest`: the first quote, backslash or control
/// character, eight bytes at a time (a flag per byte: equal to '"' or '\\', or below 0x20;
/// borrows only move up, so the lowest flag is exact).
#[inline(always)]
fn string_stop(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = rest.get(at..at + 8) {
        let word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
        let flags = (zero_byte(word ^ (ONES * u64::from(b'"')))
            | zero_byte(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH;
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    rest[at..].iter().position(|&b| STRING_STOP[usize::from(b)]).map(|i| at + i)
}

/// A pull reader over one JSON text.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        Self { text, pos: 0 }
    }

    fn malformed(&self, what: &'static str, at: usize) -> FrameFault {
        FrameFault::Malformed { what, at }
    }

    /// The next byte that is not whitespace, without taking it.
    #[inline(always)]
    pub fn peek(&mut self) -> Result<u8, FrameFault> {
        while let Some(&b) = self.text.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(b);
            }
            self.pos += 1;
        }
        Err(FrameFault::Truncated)
    }

    /// Take `byte` (after whitespace), or fail with `what`.
    #[inline(always)]
    pub fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), FrameFault> {
        if self.peek()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.malformed(what, self.pos))
        }
    }

    /// Check that nothing but whitespace follows the value read.
    pub fn finish(&mut self) -> Result<(), FrameFault> {
        match self.peek() {
            Err(_) => Ok(()),
            Ok(_) => Err(self.malformed("trailing characters", self.pos)),
        }
    }

    /// Read the members of an object: `on_member` gets each key (escapes decoded) and must
    /// read its value. Fails with `FrameFault::Type { field, .. }` when the value is not an
    /// object.
    #[inline(always)]
    pub fn object(
        &mut self,
        field: &'static str,
        mut on_member: impl FnMut(&mut Self, &[u8]) -> Result<(), FrameFault>,
    ) -> Result<(), FrameFault> {
        if self.peek()? != b'{' {
            self.skip()?;
            return Err(FrameFault::Type { field, expected: "an object" });
        }
        self.pos += 1;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return Err(self.malformed("expected a string key", self.pos));
            }
            let key = self.string()?;
            self.expect(b':', "expected ':'")?;
            if key.is_escaped() {
                on_member(self, &key.value())?;
            } else {
                on_member(self, key.raw)?;
            }
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    if self.peek()? == b'}' {
                        return Err(self.malformed("trailing comma in object", self.pos));
                    }
                }
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.malformed("expected ',' or '}'", self.pos)),
            }
        }
    }

    /// Read a string (the next value must be one).
    #[inline(always)]
    pub fn string(&mut self) -> Result<RawStr<'a>, FrameFault> {
        if self.peek()? != b'"' {
            return Err(self.malformed("expected a string", self.pos));
        }
        let start = self.pos + 1;
        let rest = &self.text[start..];
        match string_stop(rest) {
            Some(len) if rest[len] == b'"' => {
                self.pos = start + len + 1;
                Ok(RawStr::plain(&rest[..len]))
            }
            _ => self.escaped_string(start),
        }
    }

    /// Read the rest of a string that has an escape, a control character or no end.
    #[cold]
    fn escaped_string(&mut self, start: usize) -> Result<RawStr<'a>, FrameFault> {
        let mut i = start;
        let mut escape_at = None;
        loop {
            let Some(&b) = self.text.get(i) else { return Err(FrameFault::Truncated) };
            match b {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(RawStr { raw: &self.text[start..i], escape_at: escape_at.unwrap_or(i - start) });
                }
                b'\\' => {
                    escape_at.get_or_insert(i - start);
                    i = self.escape(i)?;
                }
                0..=0x1f => return Err(self.malformed("invalid character", i)),
                _ => i += 1,
            }
        }
    }

    /// Check the escape at `at` (a backslash) and return where it ends.
    fn escape(&self, at: usize) -> Result<usize, FrameFault> {
        match self.text.get(at + 1) {
            None => Err(FrameFault::Truncated),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
            Some(b'u') => {
                for i in at + 2..at + 6 {
                    match self.text.get(i) {
                        None => return Err(FrameFault::Truncated),
                        Some(b) if b.is_ascii_hexdigit() => {}
                        Some(_) => return Err(self.malformed("invalid escaped character", i)),
                    }
                }
                Ok(at + 6)
            }
            Some(_) => Err(self.malformed("invalid escaped character", at + 1)),
        }
    }

    /// Read a number's text (the next value must be one).
    #[inline(always)]
    pub fn number(&mut self) -> Result<&'a [u8], FrameFault> {
        self.peek()?;
        let start = self.pos;
        match scan_number(&self.text[start..]) {
            Ok(len) => {
                self.pos += len;
                Ok(&self.text[start..start + len])
            }
            Err(NumberFault::Incomplete) => Err(FrameFault::Truncated),
            Err(NumberFault::Invalid(at)) => Err(self.malformed("invalid number", start + at)),
        }
    }

    /// Where the reader is (to come back to with [`Reader::rewind`]).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Go back to a position taken before.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Take the byte [`Reader::peek`] returned.
    #[inline(always)]
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// The fast path of a decimal value (call after [`Reader::peek`]): a bare number or a
    /// string holding exactly a plain decimal (`-?digits[.digits]`, short enough for
    /// [`fast_decimal`]). `None` leaves the reader where it was, for the general path.
    #[inline(always)]
    pub fn quick_decimal(&mut self) -> Option<f64> {
        let rest = &self.text[self.pos..];
        match rest.first()? {
            b'"' => {
                let (value, len) = fast_decimal(&rest[1..])?;
                if rest.get(len + 1) != Some(&b'"') {
                    return None;
                }
                self.pos += len + 2;
                Some(value)
            }
            _ => {
                let (value, len) = fast_decimal(rest)?;
                self.pos += len;
                Some(value)
            }
        }
    }

    /// [`Reader::quick_decimal`] without the division: the plain decimal's parts.
    #[inline(always)]
    pub fn quick_decimal_parts(&mut self) -> Option<Decimal> {
        let rest = &self.text[self.pos..];
        match rest.first()? {
            b'"' => {
                let (value, len) = decimal_parts(&rest[1..])?;
                if rest.get(len + 1) != Some(&b'"') {
                    return None;
                }
                self.pos += len + 2;
                Some(value)
            }
            _ => {
                let (value, len) = decimal_parts(rest)?;
                self.pos += len;
                Some(value)
            }
        }
    }

    /// The fast path of a depth level written compactly, `["<decimal>","<decimal>"]` (call
    /// after [`Reader::peek`]): both decimals' parts. `None` leaves the reader where it was,
    /// for the general path (whitespace, bare numbers, long or exponent forms, anything else).
    #[inline(always)]
    pub fn quick_level(&mut self) -> Option<(Decimal, Decimal)> {
        let rest = self.text.get(self.pos..)?;
        let (b"[\"", body) = rest.split_at_checked(2)? else { return None };
        let (price, len) = decimal_parts(body)?;
        let (b"\",\"", body) = body[len..].split_at_checked(3)? else { return None };
        let (quantity, len2) = decimal_parts(body)?;
        let (b"\"]", _) = body[len2..].split_at_checked(2)? else { return None };
        self.pos += 2 + len + 3 + len2 + 2;
        Some((price, quantity))
    }

    /// The fast path of an integer value (call after [`Reader::peek`]): a bare literal of at
    /// most 18 digits. `None` leaves the reader where it was, for the general path.
    #[inline(always)]
    pub fn quick_integer(&mut self) -> Option<u64> {
        let rest = &self.text[self.pos..];
        let mut value = 0u64;
        let mut len = 0;
        for &b in rest.iter().take(19) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            value = value * 10 + u64::from(digit);
            len += 1;
        }
        let leading_zero = len > 1 && rest[0] == b'0';
        if len == 0 || len > 18 || leading_zero || matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos += len;
        Some(value)
    }

    /// Read a number or a string; skip any other value, reporting only that it was one.
    #[inline(always)]
    pub fn scalar(&mut self) -> Result<Scalar<'a>, FrameFault> {
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b'-' | b'0'..=b'9' => self.number().map(Scalar::Number),
            _ => self.skip().map(|()| Scalar::Other),
        }
    }

    /// Skip one value, checking its grammar.
    pub fn skip(&mut self) -> Result<(), FrameFault> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Result<(), FrameFault> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            open @ (b'[' | b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(self.malformed("nesting deeper than 1000", self.pos));
                }
                self.pos += 1;
                let (close, kind) = if open == b'[' { (b']', "array") } else { (b'}', "object") };
                if self.peek()? == close {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        if self.peek()? != b'"' {
                            return Err(self.malformed("expected a string key", self.pos));
                        }
                        self.string()?;
                        self.expect(b':', "expected ':'")?;
                    }
                    self.skip_nested(depth + 1)?;
                    match self.peek()? {
                        b',' => {
                            self.pos += 1;
                            if self.peek()? == close {
                                let what = if kind == "array" {
                                    "trailing comma in array"
                                } else {
                                    "trailing comma in object"
                                };
                                return Err(self.malformed(what, self.pos));
                            }
                        }
                        b if b == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => {
                            let what = if kind == "array" { "expected ',' or ']'" } else { "expected ',' or '}'" };
                            return Err(self.malformed(what, self.pos));
                        }
                    }
                }
            }
            _ => Err(self.malformed("invalid character", self.pos)),
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), FrameFault> {
        let rest = &self.text[self.pos..];
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            Err(FrameFault::Truncated)
        } else {
            let at = self.pos + rest.iter().zip(word).take_while(|(a, b)| a == b).count();
            Err(self.malformed("invalid character", at))
        }
    }
}

/// Decode the escapes of a string's raw bytes (checked by [`Reader::string`]) into UTF-8;
/// a lone surrogate becomes U+FFFD.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        let plain = match c {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let high = hex4(&raw[i..i + 4]);
                i += 4;
                let mut code = u32::from(high);
                if (0xd800..0xdc00).contains(&high) && raw.get(i..i + 2) == Some(b"\\u") {
                    let low = hex4(&raw[i + 2..i + 6]);
                    if (0xdc00..0xe000).contains(&low) {
                        code = 0x10000 + ((code - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                        i += 6;
                    }
                }
                let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                out.extend_from_slice(ch.encode_utf8(&mut [0u8; 4]).as_bytes());
                continue;
            }
            other => other, // '"', '\\', '/'
        };
        out.push(plain);
    }
    out
}

fn hex4(digits: &[u8]) -> u16 {
    digits.iter().fold(0u16, |acc, &d| (acc << 4) | u16::from((d as char).to_digit(16).unwrap_or(0) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(text: &str) -> Result<(), FrameFault> {
        let mut r = Reader::new(text.as_bytes());
        r.skip()?;
        r.finish()
    }

    #[test]
    fn valid_json_is_skipped() {
        for text in [
            r#"{"a":[1,-2.5e3,"x\"\\\/\b\f\n\r\t\u00e9",true,false,null,{}],"b":{"c":[]}}"#,
            " [ 1 , 2 ] ",
            "\"\"",
            "0",
            "[[[[]]]]",
        ] {
            assert_eq!(skip_all(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn invalid_json_is_reported_as_msgspec_words_it() {
        let malformed = |what, at| Err(FrameFault::Malformed { what, at });
        assert_eq!(skip_all(r#"{"a":1,}"#), malformed("trailing comma in object", 7));
        assert_eq!(skip_all("[1,]"), malformed("trailing comma in array", 3));
        assert_eq!(skip_all("[01]"), malformed("invalid number", 2));
        assert_eq!(skip_all("[-]"), malformed("invalid number", 2));
        assert_eq!(skip_all(r#"["\q"]"#), malformed("invalid escaped character", 3));
        assert_eq!(skip_all("[\"a\tb\"]"), malformed("invalid character", 3));
        assert_eq!(skip_all("[tru]"), malformed("invalid character", 4));
        assert_eq!(skip_all("{1:2}"), malformed("expected a string key", 1));
        assert_eq!(skip_all(r#"{"a" 1}"#), malformed("expected ':'", 5));
        assert_eq!(skip_all("[1 2]"), malformed("expected ',' or ']'", 3));
        assert_eq!(skip_all("{} x"), malformed("trailing characters", 3));
        assert_eq!(skip_all("x"), malformed("invalid character", 0));
        for truncated in ["", "[", r#"{"a":"#, r#"{"a":"b"#, "[1.", "[tr", r#"["\u00"#, "{\"a\":1"] {
            assert_eq!(skip_all(truncated), Err(FrameFault::Truncated), "{truncated}");
        }
        let deep = "[".repeat(1001) + &"]".repeat(1001);
        assert_eq!(skip_all(&deep), malformed("nesting deeper than 1000", 1000));
    }

    #[test]
    fn objects_are_read_member_by_member() {
        let mut r = Reader::new(br#" {"s":"BTC","u":11,"x":[1,{"y":2}],"b":"1.5"} "#);
        let mut seen = Vec::new();
        r.object("$", |r, key| {
            let value = r.scalar()?;
            seen.push((key.to_vec(), value));
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        let keys: Vec<&[u8]> = seen.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"s"[..], b"u", b"x", b"b"]);
        assert_eq!(seen[1].1, Scalar::Number(b"11"));
        assert_eq!(seen[2].1, Scalar::Other);
        assert_eq!(
            Reader::new(b"[1]").object("data", |_, _| Ok(())),
            Err(FrameFault::Type { field: "data", expected: "an object" })
        );
    }

    #[test]
    fn the_plain_run_of_a_string_ends_at_its_first_stop_byte() {
        for len in 0..24 {
            for stop in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
                for filler in [b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']', 0x21, 0x5b, 0x5d] {
                    let mut text = vec![filler; len];
                    text.push(stop);
                    text.extend([b'"'; 9]);
                    assert_eq!(string_stop(&text), Some(len), "{len} {stop} {filler}");
                }
            }
            assert_eq!(string_stop(&vec![b'x'; len]), None);
        }
        for b in 0..=255u8 {
            let text = [b'x', b, b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x'];
            let want = if b == b'"' || b == b'\\' || b < 0x20 { Some(1) } else { None };
            assert_eq!(string_stop(&text), want, "{b}");
        }
    }

    #[test]
    fn escapes_are_decoded_on_request() {
        let mut r = Reader::new(br#""a\u0042\n\"\ud83d\ude00\ud800x""#);
        let s = r.string().unwrap();
        assert!(s.is_escaped());
        assert_eq!(String::from_utf8(s.value()).unwrap(), "aB\n\"😀\u{fffd}x");
    }
}
