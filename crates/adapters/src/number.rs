//! JSON numbers: their grammar, and their value as the nearest double or as an integer.
//!
//! Venues send prices and quantities as decimal strings (`"61837.63000000"`). The double of
//! one is the nearest to its exact decimal value, as Python's `float()` gives it: short
//! decimals take Clinger's fast path (an integer mantissa below 2^53 divided by an exact power
//! of ten: one correctly rounded IEEE division), anything else goes to `str::parse::<f64>`,
//! which is correctly rounded too.

use std::cmp::Ordering;

/// Why a text is not a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberFault {
    /// The text ended where a digit was due.
    Incomplete,
    /// A byte that the grammar does not allow here (its offset).
    Invalid(usize),
}

/// The length of the JSON number (RFC 8259 grammar) at the start of `text`; the number ends at
/// the first byte that cannot continue it.
pub(crate) fn scan_number(text: &[u8]) -> Result<usize, NumberFault> {
    let mut i = usize::from(text.first() == Some(&b'-'));
    match text.get(i) {
        Some(b'0') => {
            i += 1;
            if text.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(NumberFault::Invalid(i));
            }
        }
        Some(b'1'..=b'9') => i = digits(text, i + 1),
        Some(_) => return Err(NumberFault::Invalid(i)),
        None => return Err(NumberFault::Incomplete),
    }
    if text.get(i) == Some(&b'.') {
        i = required_digits(text, i + 1)?;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = required_digits(text, i)?;
    }
    Ok(i)
}

fn digits(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

fn required_digits(text: &[u8], i: usize) -> Result<usize, NumberFault> {
    match text.get(i) {
        Some(b'0'..=b'9') => Ok(digits(text, i + 1)),
        Some(_) => Err(NumberFault::Invalid(i)),
        None => Err(NumberFault::Incomplete),
    }
}

/// Whether all of `text` is one JSON number.
pub(crate) fn is_number(text: &[u8]) -> bool {
    scan_number(text) == Ok(text.len())
}

/// Exact powers of ten as doubles (10^22 is the largest).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];
/// Mantissas up to 2^53 are exact doubles.
const EXACT_MANTISSA: u64 = 1 << 53;

/// The double nearest to the JSON number `text` (which must pass [`is_number`]); infinite when
/// its magnitude is beyond the largest double.
pub(crate) fn to_f64(text: &[u8]) -> f64 {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mut mantissa = 0u64;
    let mut fraction: Option<usize> = None;
    for &b in body {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                if mantissa > EXACT_MANTISSA {
                    return slow_f64(text);
                }
                fraction = fraction.map(|n| n + 1);
            }
            b'.' => fraction = Some(0),
            _ => return slow_f64(text), // an exponent
        }
    }
    let scale = fraction.unwrap_or(0);
    if scale >= POW10.len() {
        return slow_f64(text);
    }
    let value = mantissa as f64 / POW10[scale];
    if negative {
        -value
    } else {
        value
    }
}

/// A plain decimal read by [`decimal_parts`]: `(-1)^negative * mantissa / 10^scale`, with
/// `mantissa <= 2^53` and `scale <= 22`, so its double is one correctly rounded division.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub negative: bool,
    pub mantissa: u64,
    pub scale: usize,
}

/// Mantissas up to 2^51 with the same scale compare as their doubles do: two that differ are
/// at least 2^-51 apart relative to their size, more than the two half-ulp roundings can close.
const ORDERED_MANTISSA: u64 = 1 << 51;

impl Decimal {
    /// The nearest double.
    #[inline]
    pub fn to_f64(self) -> f64 {
        let value = self.mantissa as f64 / POW10[self.scale];
        if self.negative {
            -value
        } else {
            value
        }
    }

    /// Whether it is zero (a mantissa of 0; any other is at least 10^-22).
    #[inline]
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// The decimal with the opposite sign.
    #[inline]
    pub fn negated(self) -> Self {
        Self { negative: !self.negative, ..self }
    }

    /// How the doubles of `self` and `other` compare, found without division when both have
    /// the same scale and small mantissas.
    #[inline]
    pub fn cmp_as_f64(self, other: Self) -> Ordering {
        if self.scale == other.scale && self.mantissa <= ORDERED_MANTISSA && other.mantissa <= ORDERED_MANTISSA {
            let signed = |d: Self| if d.negative { -(d.mantissa as i64) } else { d.mantissa as i64 };
            signed(self).cmp(&signed(other))
        } else {
            cmp_f64(self.to_f64(), other.to_f64())
        }
    }
}

/// How two doubles compare as `<` and `==` see them (-0.0 equals 0.0; NaN, which no decimal
/// gives, equals everything).
#[inline]
fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// A finite number read from JSON: a plain decimal kept exact, or any other number's double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Exact(Decimal),
    Double(f64),
}

impl Number {
    /// The nearest double.
    #[inline]
    pub fn to_f64(self) -> f64 {
        match self {
            Self::Exact(d) => d.to_f64(),
            Self::Double(v) => v,
        }
    }

    /// Whether its double is zero.
    #[inline]
    pub fn is_zero(self) -> bool {
        match self {
            Self::Exact(d) => d.is_zero(),
            Self::Double(v) => v == 0.0,
        }
    }

    /// The number with the opposite sign.
    #[inline]
    pub fn negated(self) -> Self {
        match self {
            Self::Exact(d) => Self::Exact(d.negated()),
            Self::Double(v) => Self::Double(-v),
        }
    }

    /// How the doubles of `self` and `other` compare (as `<` and `==` on them do).
    #[inline]
    pub fn cmp_as_f64(self, other: Self) -> Ordering {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a.cmp_as_f64(b),
            _ => cmp_f64(self.to_f64(), other.to_f64()),
        }
    }
}

/// The fast path of [`to_f64`] fused with the grammar check: the value and length of the
/// plain decimal (`-?(0|[1-9]digits)[.digits]`, no exponent) at the start of `text`, when its
/// mantissa is at most 2^53 and it has at most 22 decimals; `None` otherwise (the caller takes
/// the general path, which gives the same double when this one applies).
#[inline(always)]
pub(crate) fn fast_decimal(text: &[u8]) -> Option<(f64, usize)> {
    decimal_parts(text).map(|(decimal, len)| (decimal.to_f64(), len))
}

/// [`fast_decimal`] without the division: the decimal's parts and length.
#[inline(always)]
pub(crate) fn decimal_parts(text: &[u8]) -> Option<(Decimal, usize)> {
    let negative = text.first() == Some(&b'-');
    let int_start = usize::from(negative);
    let (mut mantissa, int_digits) = digit_run(text, int_start, 0);
    if int_digits == 0 || (int_digits > 1 && text[int_start] == b'0') {
        return None;
    }
    let mut end = int_start + int_digits;
    let mut scale = 0;
    if text.get(end) == Some(&b'.') {
        (mantissa, scale) = digit_run(text, end + 1, mantissa);
        if scale == 0 {
            return None;
        }
        end += 1 + scale;
    }
    // Up to 19 digits cannot wrap a u64.
    if int_digits + scale > 19 || mantissa > EXACT_MANTISSA || scale >= POW10.len() {
        return None;
    }
    if matches!(text.get(end), Some(b'e' | b'E')) {
        return None;
    }
    Some((Decimal { negative, mantissa, scale }, end))
}

/// Append the run of ASCII digits at `text[at..]` to `mantissa` (wrapping past 19 digits):
/// the new mantissa and the run's length. Eight bytes at a time where the text allows.
#[inline(always)]
fn digit_run(text: &[u8], at: usize, mut mantissa: u64) -> (u64, usize) {
    let mut i = at;
    while let Some(chunk) = text.get(i..i + 8) {
        let word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let n = leading_digits(word);
        if n == 0 {
            return (mantissa, i - at);
        }
        // Keep the n digits (the low bytes), padded with leading '0's to eight digits.
        let digits = if n == 8 { word } else { (word << (8 * (8 - n))) | (ZEROS >> (8 * n)) };
        mantissa = mantissa.wrapping_mul(POW10_INT[n]).wrapping_add(eight_digits(digits));
        i += n;
        if n < 8 {
            return (mantissa, i - at);
        }
    }
    while let Some(&b) = text.get(i) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
        i += 1;
    }
    (mantissa, i - at)
}

const ZEROS: u64 = 0x3030_3030_3030_3030;
const POW10_INT: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// How many of the eight bytes of `word` (first byte lowest) are ASCII digits before the
/// first one that is not. A byte is flagged when `b - '0'` borrows (b < '0') or `b + 0x46`
/// reaches 0x80 (b > '9'); carries and borrows only move up, so the lowest flag is exact.
#[inline(always)]
fn leading_digits(word: u64) -> usize {
    let flags = (word.wrapping_sub(ZEROS) | word.wrapping_add(0x4646_4646_4646_4646)) & 0x8080_8080_8080_8080;
    (flags.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits (first byte lowest, most significant).
#[inline(always)]
fn eight_digits(word: u64) -> u64 {
    let v = word - ZEROS;
    let v = v * 10 + (v >> 8);
    ((v & 0x0000_00ff_0000_00ff).wrapping_mul(0x000f_4240_0000_0064)
        + ((v >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(0x0000_2710_0000_0001))
        >> 32
}

#[cold]
fn slow_f64(text: &[u8]) -> f64 {
    // A JSON number is ASCII and in the syntax Rust's float parser reads.
    std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// The double a lax float string spells when it is not a number: `nan`, `inf` or `infinity`
/// in any case, optionally negative (what msgspec's non-strict mode takes).
pub(crate) fn special_f64(text: &[u8]) -> Option<f64> {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let value = if body.eq_ignore_ascii_case(b"nan") {
        f64::NAN
    } else if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        f64::INFINITY
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

/// Why a JSON number is no integer of the range asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntegerFault {
    /// It has a fractional part, or is a fraction or exponent form beyond 2^53.
    NotIntegral,
    /// It is out of the range.
    OutOfRange,
}

/// The integer value of the JSON number `text` (which must pass [`is_number`]): an integer
/// literal, or a fraction or exponent form whose double is integral and at most 2^53 in
/// magnitude (`12.0`, `1e3`), taken as that double, as msgspec's non-strict mode takes them.
pub(crate) fn to_i128(text: &[u8]) -> Result<i128, IntegerFault> {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if body.iter().all(u8::is_ascii_digit) {
        let mut value = 0i128;
        for &b in body {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or(IntegerFault::OutOfRange)?;
        }
        return Ok(if negative { -value } else { value });
    }
    let value = to_f64(text);
    if value.fract() != 0.0 || value.abs() > EXACT_MANTISSA as f64 {
        return Err(IntegerFault::NotIntegral);
    }
    Ok(value as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_is_json_numbers() {
        for ok in ["0", "-0", "12", "-1.5", "0.00000000", "1e5", "1E+5", "2.5e-3", "61837.63000000"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "+1", "1e", "1e+", "0x10", "nan", "1_000", " 1", "1 ", "1.5.5"] {
            assert!(!is_number(bad.as_bytes()), "{bad:?}");
        }
        assert_eq!(scan_number(b"12,"), Ok(2));
        assert_eq!(scan_number(b"1."), Err(NumberFault::Incomplete));
        assert_eq!(scan_number(b"1.x"), Err(NumberFault::Invalid(2)));
        assert_eq!(scan_number(b"00"), Err(NumberFault::Invalid(1)));
    }

    #[test]
    fn decimals_parse_to_the_double_python_float_gives() {
        let cases = [
            "61837.63000000",
            "0.02000000",
            "3.78826000",
            "0.1",
            "0.3",
            "2.510",
            "123456789.123456789",
            "9007199254740993",
            "9007199254740992.5",
            "1e22",
            "1e23",
            "4.9e-324",
            "2.2250738585072011e-308",
            "1.7976931348623157e308",
            "0.000000000000000000000001",
            "-0.0",
            "-61800.20",
            "17976931348623157",
        ];
        for text in cases {
            let want: f64 = text.parse().unwrap();
            assert_eq!(to_f64(text.as_bytes()).to_bits(), want.to_bits(), "{text}");
        }
        assert_eq!(to_f64(b"1e999"), f64::INFINITY);
        assert_eq!(to_f64(b"1e-999"), 0.0);
    }

    #[test]
    fn every_short_decimal_takes_the_nearest_double() {
        // Exhaustive over a grid of mantissas and scales that the fast path takes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mantissa = state % (1 << 53);
            let scale = (state >> 56) as usize % 23;
            let digits = format!("{mantissa:0>width$}", width = scale + 1);
            let text = format!("{}.{}", &digits[..digits.len() - scale], &digits[digits.len() - scale..]);
            let text = text.trim_end_matches('.');
            let want: f64 = text.parse().unwrap();
            assert_eq!(to_f64(text.as_bytes()).to_bits(), want.to_bits(), "{text}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one_or_declines() {
        for text in [
            "61837.63000000",
            "0",
            "-0",
            "0.5",
            "-12.25",
            "9007199254740992",
            "9007199254740993",
            "1.5e3",
            "01",
            "1.",
            "-",
            ".5",
            "12345678901234567890",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "7,",
            "3]",
        ] {
            let general = if is_number(text.trim_end_matches([',', ']']).as_bytes()) {
                Some(to_f64(text.trim_end_matches([',', ']']).as_bytes()))
            } else {
                None
            };
            match fast_decimal(text.as_bytes()) {
                Some((value, len)) => {
                    assert_eq!(Some(value.to_bits()), general.map(f64::to_bits), "{text}");
                    assert_eq!(len, text.trim_end_matches([',', ']']).len(), "{text}");
                }
                None => assert!(
                    general.is_none() || text.contains('e') || text.len() >= 16,
                    "{text}: declined a number the fast path should take"
                ),
            }
        }
    }

    #[test]
    fn decimals_compare_as_their_doubles() {
        let number = |text: &str| match decimal_parts(text.as_bytes()) {
            Some((d, len)) if len == text.len() => Number::Exact(d),
            _ => Number::Double(text.parse().unwrap()),
        };
        let texts = [
            "0",
            "-0",
            "0.0",
            "1",
            "-1",
            "1.5",
            "1.50",
            "61837.63000000",
            "61837.64000000",
            "61837.63",
            "-61837.63",
            "2251799813685248.5",
            "2251799813685249",
            "9007199254740992",
            "9007199254740993",
            "0.1",
            "0.10000000000000001",
            "1e2",
            "100",
            "99.99999999999999999",
            "4503599627370496.5",
            "4503599627370497",
            "0.0000000000000000000001",
        ];
        for a in texts {
            for b in texts {
                let (x, y) = (number(a), number(b));
                let want = cmp_f64(a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap());
                assert_eq!(x.cmp_as_f64(y), want, "{a} vs {b}");
                assert_eq!(x.negated().cmp_as_f64(y.negated()), want.reverse(), "-{a} vs -{b}");
            }
            assert_eq!(number(a).to_f64().to_bits(), a.parse::<f64>().unwrap().to_bits(), "{a}");
            assert_eq!(number(a).is_zero(), a.parse::<f64>().unwrap() == 0.0, "{a}");
        }
    }

    #[test]
    fn digit_runs_of_any_length_and_alignment_parse() {
        for len in 0..=20 {
            for pad in 0..10 {
                let digits: String = (0..len).map(|i| char::from(b'0' + ((i * 7 + 3) % 10) as u8)).collect();
                let text = format!("{}{digits}x{}", "-".repeat(pad), "9".repeat(pad));
                let want = digits.bytes().fold(0u64, |m, b| m.wrapping_mul(10).wrapping_add(u64::from(b - b'0')));
                assert_eq!(digit_run(text.as_bytes(), pad, 0), (want, len), "{text}");
            }
        }
        assert_eq!(leading_digits(u64::from_le_bytes(*b"12/45678")), 2);
        assert_eq!(leading_digits(u64::from_le_bytes(*b"123:5678")), 3);
        assert_eq!(leading_digits(u64::from_le_bytes(*b"1\xff345678")), 1);
        assert_eq!(leading_digits(u64::from_le_bytes(*b"\x00\x00345678")), 0);
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'1', b, b'1', b'1', b'1', b'1', b'1', b'1']);
            assert_eq!(leading_digits(word), if b.is_ascii_digit() { 8 } else { 1 }, "{b}");
        }
    }

    #[test]
    fn lax_specials_are_nan_and_infinities() {
        assert!(special_f64(b"NaN").unwrap().is_nan());
        assert!(special_f64(b"-nan").unwrap().is_sign_negative());
        assert_eq!(special_f64(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(special_f64(b"-INF"), Some(f64::NEG_INFINITY));
        assert_eq!(special_f64(b"+inf"), None);
        assert_eq!(special_f64(b"infinit"), None);
    }

    #[test]
    fn integers_take_integral_forms() {
        assert_eq!(to_i128(b"3735683259"), Ok(3_735_683_259));
        assert_eq!(to_i128(b"-5"), Ok(-5));
        assert_eq!(to_i128(b"12.0"), Ok(12));
        assert_eq!(to_i128(b"1e3"), Ok(1000));
        assert_eq!(to_i128(b"12.5"), Err(IntegerFault::NotIntegral));
        assert_eq!(to_i128(b"18446744073709551616"), Ok(1 << 64));
        assert_eq!(to_i128(&[b'9'; 40]), Err(IntegerFault::OutOfRange));
        assert_eq!(to_i128(b"1e15"), Ok(1_000_000_000_000_000));
        assert_eq!(to_i128(b"9007199254740993.0"), Ok(9_007_199_254_740_992), "the double, as msgspec");
        assert_eq!(to_i128(b"1e16"), Err(IntegerFault::NotIntegral), "beyond 2^53: msgspec's 'got float'");
        assert_eq!(to_i128(b"5009324458E9"), Err(IntegerFault::NotIntegral));
        assert_eq!(to_i128(b"1e999"), Err(IntegerFault::NotIntegral));
        assert_eq!(to_i128(b"100e-2"), Ok(1));
    }
}
