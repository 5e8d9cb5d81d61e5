//! The JSON of one Binance frame -> the market data fields of its record.
//!
//! | frame                 | kind     | fields                                                   |
//! |-----------------------|----------|----------------------------------------------------------|
//! | `<sym>@bookTicker`    | QUOTE    | bid=b, bid_size=B, ask=a, ask_size=A, update_id=u        |
//! | `<sym>@trade`         | TRADE    | last_price=p, last_size=q, update_id=t, exchange_ns=T    |
//! | `<sym>@depth...`      | DEPTH    | update_id=u; best bid/ask levels with a non-zero size    |
//! | REST snapshot         | SNAPSHOT | update_id=lastUpdateId; best bid/ask levels              |
//!
//! `exchange_ns` is the event time `E` (ms -> ns; 0 when absent), but `T` for trades; the
//! symbol is data `s`, or a snapshot's `symbol`, in its canonical form (`crate::symbol`:
//! `BTCUSDT` is `BTC-USDT`, `BTCUSD_PERP` is `BTC-USD-PERP`). A stream frame's other members
//! and a data object's other fields are skipped (their JSON still checked). Number fields take
//! what msgspec's non-strict mode took before: a JSON number or a string holding one, and for
//! floats also `nan`/`inf`/`infinity`; a repeated field keeps its last value.

use crate::error::{FrameFault, LineFault};
use crate::json::{RawStr, Reader, Scalar};
use crate::layout::{MarketDataKind, TEXT_SIZE};
use crate::number::{is_number, special_f64, to_f64, to_i128, IntegerFault, Number};
use crate::symbol::SymbolCache;
use std::cmp::Ordering;

const NS_PER_MS: i128 = 1_000_000;

/// What one frame puts into its record besides the constant fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MarketData {
    pub kind: MarketDataKind,
    /// The symbol's record field (its canonical name, NUL padded); `None` for a snapshot that
    /// names none.
    pub symbol: Option<[u8; TEXT_SIZE]>,
    pub update_id: u64,
    pub exchange_ns: i64,
    pub bid: f64,
    pub ask: f64,
    pub bid_size: f64,
    pub ask_size: f64,
    pub last_price: f64,
    pub last_size: f64,
}

impl MarketData {
    fn new(kind: MarketDataKind) -> Self {
        let nan = f64::NAN;
        Self {
            kind,
            symbol: None,
            update_id: 0,
            exchange_ns: 0,
            bid: nan,
            ask: nan,
            bid_size: nan,
            ask_size: nan,
            last_price: nan,
            last_size: nan,
        }
    }
}

/// Decode the JSON of a frame whose stream name (or its lack of one) gave it `kind`, its
/// symbol's record field through `symbols`.
pub(crate) fn decode(json: &[u8], kind: MarketDataKind, symbols: &mut SymbolCache) -> Result<MarketData, LineFault> {
    let mut reader = Reader::new(json);
    let mut out = MarketData::new(kind);
    let symbol = match kind {
        MarketDataKind::Snapshot => snapshot(&mut reader, &mut out),
        _ => stream(&mut reader, &mut out),
    }
    .and_then(|symbol| reader.finish().map(|()| symbol))
    .map_err(|fault| LineFault::Frame { kind, fault })?;
    if let Some(symbol) = symbol {
        out.symbol =
            Some(if symbol.is_escaped() { symbols.field(&symbol.value()) } else { symbols.field(symbol.raw) }?);
    }
    Ok(out)
}

/// `{"stream": ..., "data": {...}}`: the data object by the frame's kind.
fn stream<'a>(r: &mut Reader<'a>, out: &mut MarketData) -> Result<Option<RawStr<'a>>, FrameFault> {
    let mut symbol = None;
    let mut seen_data = false;
    r.object("$", |r, name| {
        if key(name) == DATA {
            seen_data = true;
            *out = MarketData::new(out.kind);
            symbol = Some(match out.kind {
                MarketDataKind::Quote => quote(r, out)?,
                MarketDataKind::Trade => trade(r, out)?,
                _ => depth(r, out)?,
            });
            Ok(())
        } else {
            r.skip()
        }
    })?;
    if !seen_data {
        return Err(FrameFault::Missing("data"));
    }
    Ok(symbol)
}

/// The fields of a frame in the order the schema lists them, each found or not.
struct Required<const N: usize> {
    names: [&'static str; N],
    found: [bool; N],
}

impl<const N: usize> Required<N> {
    fn new(names: [&'static str; N]) -> Self {
        Self { names, found: [false; N] }
    }

    fn check(&self) -> Result<(), FrameFault> {
        match self.found.iter().position(|found| !found) {
            Some(i) => Err(FrameFault::Missing(self.names[i])),
            None => Ok(()),
        }
    }
}

/// The first depth levels fault of a frame, reported once the rest of the frame has been
/// read (as the decoder before this one checked levels only after a full JSON decode).
#[derive(Default)]
struct Deferred(Option<FrameFault>);

impl Deferred {
    /// Pass a result through, keeping a levels fault for later as NaN levels.
    fn keep(&mut self, result: Result<(f64, f64), FrameFault>) -> Result<(f64, f64), FrameFault> {
        match result {
            Err(fault @ FrameFault::Levels(_)) => {
                self.0.get_or_insert(fault);
                Ok((f64::NAN, f64::NAN))
            }
            other => other,
        }
    }

    fn check(&self) -> Result<(), FrameFault> {
        self.0.map_or(Ok(()), Err)
    }
}

fn quote<'a>(r: &mut Reader<'a>, out: &mut MarketData) -> Result<RawStr<'a>, FrameFault> {
    let mut req = Required::new(["s", "u", "b", "B", "a", "A"]);
    let mut symbol = None;
    r.object("data", |r, name| {
        let slot = match key(name) {
            S => {
                symbol = Some(string(r, "s")?);
                0
            }
            U => {
                out.update_id = id(r, "u")?;
                1
            }
            B => {
                out.bid = float(r, "b")?;
                2
            }
            BIG_B => {
                out.bid_size = float(r, "B")?;
                3
            }
            A => {
                out.ask = float(r, "a")?;
                4
            }
            BIG_A => {
                out.ask_size = float(r, "A")?;
                5
            }
            E => {
                out.exchange_ns = millis(r, "E")?;
                return Ok(());
            }
            _ => return r.skip(),
        };
        req.found[slot] = true;
        Ok(())
    })?;
    req.check()?;
    Ok(symbol.unwrap_or(RawStr::plain(b"")))
}

fn trade<'a>(r: &mut Reader<'a>, out: &mut MarketData) -> Result<RawStr<'a>, FrameFault> {
    let mut req = Required::new(["s", "t", "p", "q", "T"]);
    let mut symbol = None;
    r.object("data", |r, name| {
        let slot = match key(name) {
            S => {
                symbol = Some(string(r, "s")?);
                0
            }
            T => {
                out.update_id = id(r, "t")?;
                1
            }
            P => {
                out.last_price = float(r, "p")?;
                2
            }
            Q => {
                out.last_size = float(r, "q")?;
                3
            }
            BIG_T => {
                out.exchange_ns = millis(r, "T")?;
                4
            }
            _ => return r.skip(),
        };
        req.found[slot] = true;
        Ok(())
    })?;
    req.check()?;
    Ok(symbol.unwrap_or(RawStr::plain(b"")))
}

fn depth<'a>(r: &mut Reader<'a>, out: &mut MarketData) -> Result<RawStr<'a>, FrameFault> {
    let mut req = Required::new(["s", "u", "b", "a"]);
    let mut deferred = Deferred::default();
    let mut symbol = None;
    r.object("data", |r, name| {
        let slot = match key(name) {
            S => {
                symbol = Some(string(r, "s")?);
                0
            }
            U => {
                out.update_id = id(r, "u")?;
                1
            }
            B => {
                (out.bid, out.bid_size) = deferred.keep(best_level(r, "b", true))?;
                2
            }
            A => {
                (out.ask, out.ask_size) = deferred.keep(best_level(r, "a", false))?;
                3
            }
            E => {
                out.exchange_ns = millis(r, "E")?;
                return Ok(());
            }
            _ => return r.skip(),
        };
        req.found[slot] = true;
        Ok(())
    })?;
    req.check()?;
    deferred.check()?;
    Ok(symbol.unwrap_or(RawStr::plain(b"")))
}

/// A REST depth snapshot: `{"lastUpdateId": .., "bids": [..], "asks": [..]}`, with an
/// optional `E` and `symbol`. Returns its symbol when it names one.
fn snapshot<'a>(r: &mut Reader<'a>, out: &mut MarketData) -> Result<Option<RawStr<'a>>, FrameFault> {
    let mut req = Required::new(["lastUpdateId", "bids", "asks"]);
    let mut deferred = Deferred::default();
    let mut symbol = None;
    r.object("$", |r, name| {
        let slot = match key(name) {
            LAST_UPDATE_ID => {
                out.update_id = id(r, "lastUpdateId")?;
                0
            }
            BIDS => {
                (out.bid, out.bid_size) = deferred.keep(best_level(r, "bids", true))?;
                1
            }
            ASKS => {
                (out.ask, out.ask_size) = deferred.keep(best_level(r, "asks", false))?;
                2
            }
            E => {
                out.exchange_ns = millis(r, "E")?;
                return Ok(());
            }
            SYMBOL => {
                symbol = Some(string(r, "symbol")?);
                return Ok(());
            }
            _ => return r.skip(),
        };
        req.found[slot] = true;
        Ok(())
    })?;
    req.check()?;
    deferred.check()?;
    Ok(symbol.filter(|s| !s.raw.is_empty()))
}

/// A key as a number, so that matching keys compares integers: up to 15 bytes (first byte
/// lowest) and the length in the top byte; longer keys are `u128::MAX`, no field's key.
#[inline(always)]
const fn key(name: &[u8]) -> u128 {
    if name.len() > 15 {
        return u128::MAX;
    }
    let mut code = (name.len() as u128) << 120;
    let mut i = 0;
    while i < name.len() {
        code |= (name[i] as u128) << (8 * i);
        i += 1;
    }
    code
}

const DATA: u128 = key(b"data");
const S: u128 = key(b"s");
const U: u128 = key(b"u");
const B: u128 = key(b"b");
const BIG_B: u128 = key(b"B");
const A: u128 = key(b"a");
const BIG_A: u128 = key(b"A");
const E: u128 = key(b"E");
const T: u128 = key(b"t");
const P: u128 = key(b"p");
const Q: u128 = key(b"q");
const BIG_T: u128 = key(b"T");
const LAST_UPDATE_ID: u128 = key(b"lastUpdateId");
const BIDS: u128 = key(b"bids");
const ASKS: u128 = key(b"asks");
const SYMBOL: u128 = key(b"symbol");

#[inline(always)]
fn string<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<RawStr<'a>, FrameFault> {
    match r.scalar()? {
        Scalar::Str(s) => Ok(s),
        _ => Err(FrameFault::Type { field, expected: "a string" }),
    }
}

/// A float field: a JSON number, or a string holding one or `nan`/`inf`/`infinity`.
#[inline(always)]
fn float(r: &mut Reader<'_>, field: &'static str) -> Result<f64, FrameFault> {
    r.peek()?;
    if let Some(value) = r.quick_decimal() {
        return Ok(value);
    }
    let expected = "a decimal string or number";
    let value = match r.scalar()? {
        Scalar::Number(text) => to_f64(text),
        Scalar::Str(s) if !s.is_escaped() && is_number(s.raw) => to_f64(s.raw),
        Scalar::Str(s) => {
            let text = s.value();
            if is_number(&text) {
                to_f64(&text)
            } else {
                return special_f64(&text).ok_or(FrameFault::Type { field, expected });
            }
        }
        Scalar::Other => return Err(FrameFault::Type { field, expected }),
    };
    if value.is_infinite() {
        return Err(FrameFault::Range { field, expected: "a double" });
    }
    Ok(value)
}

/// An integer field: a JSON number or a string holding one, with an integral value.
fn integer(r: &mut Reader<'_>, field: &'static str) -> Result<i128, FrameFault> {
    let expected = "an integer";
    let parsed = match r.scalar()? {
        Scalar::Number(text) => to_i128(text),
        Scalar::Str(s) => {
            let text = s.value();
            if !is_number(&text) {
                return Err(FrameFault::Type { field, expected });
            }
            to_i128(&text)
        }
        Scalar::Other => return Err(FrameFault::Type { field, expected }),
    };
    parsed.map_err(|fault| match fault {
        IntegerFault::NotIntegral => FrameFault::Type { field, expected },
        IntegerFault::OutOfRange => FrameFault::Range { field, expected: "an integer (at most 39 digits)" },
    })
}

/// An update or trade id: an integer from 0 to 2**64 - 1.
#[inline(always)]
fn id(r: &mut Reader<'_>, field: &'static str) -> Result<u64, FrameFault> {
    r.peek()?;
    if let Some(value) = r.quick_integer() {
        return Ok(value);
    }
    let value = integer(r, field)?;
    u64::try_from(value).map_err(|_| FrameFault::Range { field, expected: "an id (0 to 2**64-1)" })
}

/// A time in milliseconds since the epoch, as nanoseconds.
#[inline(always)]
fn millis(r: &mut Reader<'_>, field: &'static str) -> Result<i64, FrameFault> {
    r.peek()?;
    let start = r.position();
    if let Some(ms) = r.quick_integer() {
        if let Some(ns) = i64::try_from(ms).ok().and_then(|ms| ms.checked_mul(NS_PER_MS as i64)) {
            return Ok(ns);
        }
        r.rewind(start);
    }
    let ns = integer(r, field)?.checked_mul(NS_PER_MS).and_then(|ns| i64::try_from(ns).ok());
    ns.ok_or(FrameFault::Range { field, expected: "milliseconds since the epoch (as 64-bit nanoseconds)" })
}

/// The best level of one side, `[[price, quantity], ...]`: the highest (bids) or lowest
/// (asks) price with a non-zero quantity, and that quantity; NaN and NaN when the side has
/// none. Where several levels share the best price, the last one's quantity counts.
///
/// A side that is valid JSON but not such pairs is `FrameFault::Levels`, read to its end so
/// the caller can go on and report any fault of the rest of the frame first.
#[inline]
fn best_level(r: &mut Reader<'_>, field: &'static str, highest: bool) -> Result<(f64, f64), FrameFault> {
    let start = r.position();
    match levels(r, highest)? {
        Some(best) => Ok(best),
        None => {
            r.rewind(start);
            r.skip()?;
            Err(FrameFault::Levels(field))
        }
    }
}

/// The best level of a side, or `None` at the first thing that is not a level (the reader
/// is then somewhere inside the side).
///
/// Prices and quantities stay exact decimals while they are compared, as their doubles
/// would compare (see [`Number::cmp_as_f64`]); only the best level becomes doubles.
#[inline]
fn levels(r: &mut Reader<'_>, highest: bool) -> Result<Option<(f64, f64)>, FrameFault> {
    if r.peek()? != b'[' {
        return Ok(None);
    }
    r.bump();
    if r.peek()? == b']' {
        r.bump();
        return Ok(Some((f64::NAN, f64::NAN)));
    }
    // Keys are prices, negated for asks, so the best level has the greatest key.
    let mut best: Option<(Number, Number)> = None;
    loop {
        let (price, quantity) = match r.quick_level() {
            Some((price, quantity)) => (Number::Exact(price), Number::Exact(quantity)),
            None => match level(r)? {
                Some(level) => level,
                None => return Ok(None),
            },
        };
        if !quantity.is_zero() {
            let key = if highest { price } else { price.negated() };
            best = match best {
                None => Some((key, quantity)),
                Some((best_key, _)) => match key.cmp_as_f64(best_key) {
                    Ordering::Greater => Some((key, quantity)),
                    Ordering::Equal => Some((best_key, quantity)),
                    Ordering::Less => best,
                },
            };
        }
        match r.peek()? {
            b',' => r.bump(),
            b']' => {
                r.bump();
                break;
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(match best {
        None => (f64::NAN, f64::NAN),
        Some((key, size)) => ((if highest { key } else { key.negated() }).to_f64(), size.to_f64()),
    }))
}

/// A level `[price, quantity]` in any JSON form, or `None` when it is not one.
#[inline(never)]
fn level(r: &mut Reader<'_>) -> Result<Option<(Number, Number)>, FrameFault> {
    if r.peek()? != b'[' {
        return Ok(None);
    }
    r.bump();
    let Some(price) = level_value(r)? else { return Ok(None) };
    if r.peek()? != b',' {
        return Ok(None);
    }
    r.bump();
    let Some(quantity) = level_value(r)? else { return Ok(None) };
    if r.peek()? != b']' {
        return Ok(None);
    }
    r.bump();
    Ok(Some((price, quantity)))
}

/// A price or quantity of a level: a JSON number or an unescaped string holding one, finite;
/// `None` for anything else.
#[inline(always)]
fn level_value(r: &mut Reader<'_>) -> Result<Option<Number>, FrameFault> {
    if !matches!(r.peek()?, b'"' | b'-' | b'0'..=b'9') {
        return Ok(None);
    }
    if let Some(decimal) = r.quick_decimal_parts() {
        return Ok(Some(Number::Exact(decimal)));
    }
    let text = match r.scalar()? {
        Scalar::Number(text) => text,
        Scalar::Str(s) if !s.is_escaped() && is_number(s.raw) => s.raw,
        _ => return Ok(None),
    };
    let value = to_f64(text);
    Ok(value.is_finite().then_some(Number::Double(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MarketDataKind::{Depth, Quote, Snapshot, Trade};

    fn decode(json: &[u8], kind: MarketDataKind) -> Result<MarketData, LineFault> {
        super::decode(json, kind, &mut SymbolCache::default())
    }

    fn fault(json: &str, kind: MarketDataKind) -> FrameFault {
        match decode(json.as_bytes(), kind) {
            Err(LineFault::Frame { fault, .. }) => fault,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn a_spot_quote_has_no_event_time() {
        let q = decode(br#"{"stream":"btcusdt@bookTicker","data":{"u":11,"s":"btcusdt","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#, Quote).unwrap();
        assert_eq!(q.symbol, Some(*b"BTC-USDT\0\0\0\0\0\0\0\0"));
        assert_eq!((q.update_id, q.exchange_ns), (11, 0));
        assert_eq!((q.bid, q.bid_size, q.ask, q.ask_size), (61837.63, 3.78826, 61837.64, 1.54698));
        assert!(q.last_price.is_nan() && q.last_size.is_nan());
    }

    #[test]
    fn a_trade_takes_its_trade_time() {
        let t = decode(br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#, Trade).unwrap();
        assert_eq!((t.update_id, t.exchange_ns), (3_735_683_259, 1_723_161_255_342_000_000));
        assert_eq!((t.last_price, t.last_size), (61837.63, 0.02));
        assert!(t.bid.is_nan());
    }

    #[test]
    fn depth_takes_the_best_live_levels_in_any_order() {
        let d = decode(br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":20,"u":25,"b":[["61730.17","0.5"],["61737.63","0.00000000"],["61735.00","1.25"]],"a":[["61839.86","0"],["61845.11","0.32329"],["61840.00","2"]]}}"#, Depth).unwrap();
        assert_eq!((d.bid, d.bid_size, d.ask, d.ask_size), (61735.0, 1.25, 61840.0, 2.0));
        assert_eq!((d.update_id, d.exchange_ns), (25, 5_000_000));
        let d = decode(
            br#"{"stream":"x@depth","data":{"s":"X","u":1,"b":[["1.5","1"],["1.5","2"],[1.0,3]],"a":[]}}"#,
            Depth,
        )
        .unwrap();
        assert_eq!((d.bid, d.bid_size), (1.5, 2.0), "the last level at the best price counts");
        assert!(d.ask.is_nan() && d.ask_size.is_nan());
    }

    #[test]
    fn a_snapshot_names_its_symbol_or_leaves_it_to_the_hint() {
        let s = decode(br#"{"lastUpdateId":30,"bids":[["61837.63","3.7"],["61837.62","0.6"]],"asks":[["61837.64","1.5"],["61840.00","0.1"]]}"#, Snapshot).unwrap();
        assert_eq!((s.symbol, s.update_id, s.exchange_ns), (None, 30, 0));
        assert_eq!((s.bid, s.bid_size, s.ask, s.ask_size), (61837.63, 3.7, 61837.64, 1.5));
        let s = decode(br#"{"symbol":"ethusdt","E":2,"lastUpdateId":1,"bids":[],"asks":[]}"#, Snapshot).unwrap();
        assert_eq!((s.symbol.unwrap(), s.exchange_ns), (*b"ETH-USDT\0\0\0\0\0\0\0\0", 2_000_000));
        let s = decode(br#"{"symbol":"","lastUpdateId":1,"bids":[],"asks":[]}"#, Snapshot).unwrap();
        assert_eq!(s.symbol, None);
    }

    #[test]
    fn numbers_take_msgspec_lax_forms_and_fields_repeat() {
        let q = decode(br#"{"stream":"x@bookTicker","data":{"s":"X","u":"12","b":1.5,"B":"NaN","a":"-inf","A":"1e3","E":"1.0","u":13}}"#, Quote).unwrap();
        assert_eq!(
            (q.update_id, q.bid, q.ask, q.ask_size, q.exchange_ns),
            (13, 1.5, f64::NEG_INFINITY, 1000.0, 1_000_000)
        );
        assert!(q.bid_size.is_nan());
        let q = decode(br#"{"stream":"x@bookTicker","data":{"s":"X","u":1,"b":"1","B":"1","a":"1","A":"1"},"data":{"\u0073":"Y","u":2,"b":"2","B":"2","a":"2","A":"\u0032"}}"#, Quote).unwrap();
        assert_eq!(
            (q.symbol.unwrap()[0], q.update_id, q.ask_size),
            (b'Y', 2, 2.0),
            "the last data object counts, escapes decoded"
        );
    }

    #[test]
    fn faults_name_the_field_and_what_it_must_be() {
        let quote = r#"{"stream":"x@bookTicker","data":{"u":11,"s":"X","b":"1","B":"1","a":"1","A":"1"}}"#;
        assert_eq!(fault(&quote.replace(r#""u":11,"#, ""), Quote), FrameFault::Missing("u"));
        assert_eq!(
            fault(&quote.replace(r#""b":"1""#, r#""b":"x""#), Quote),
            FrameFault::Type { field: "b", expected: "a decimal string or number" }
        );
        assert_eq!(
            fault(&quote.replace(r#""b":"1""#, r#""b":"1e999""#), Quote),
            FrameFault::Range { field: "b", expected: "a double" }
        );
        assert_eq!(
            fault(&quote.replace("11", "-1"), Quote),
            FrameFault::Range { field: "u", expected: "an id (0 to 2**64-1)" }
        );
        assert_eq!(fault(&quote.replace("11", "1.5"), Quote), FrameFault::Type { field: "u", expected: "an integer" });
        assert_eq!(
            fault(&quote.replace(r#""s":"X""#, r#""s":1"#), Quote),
            FrameFault::Type { field: "s", expected: "a string" }
        );
        assert_eq!(fault(r#"{"stream":"x@trade"}"#, Trade), FrameFault::Missing("data"));
        assert_eq!(
            fault(r#"{"stream":"x@trade","data":[]}"#, Trade),
            FrameFault::Type { field: "data", expected: "an object" }
        );
        assert_eq!(fault(r#"{"nothing":1}"#, Snapshot), FrameFault::Missing("lastUpdateId"));
        assert_eq!(fault(r#"[]"#, Snapshot), FrameFault::Type { field: "$", expected: "an object" });
        assert_eq!(fault(&quote[..quote.len() - 30], Quote), FrameFault::Truncated);
        assert_eq!(
            fault(&format!("{quote} x"), Quote),
            FrameFault::Malformed { what: "trailing characters", at: quote.len() + 1 }
        );
        let t = r#"{"stream":"x@trade","data":{"s":"X","t":1,"p":"1","q":"1","T":99999999999999}}"#;
        assert!(matches!(fault(t, Trade), FrameFault::Range { field: "T", .. }));
    }

    #[test]
    fn levels_must_be_price_quantity_pairs() {
        let depth = |b: &str| format!(r#"{{"stream":"x@depth","data":{{"s":"X","u":1,"b":{b},"a":[]}}}}"#);
        for bad in [
            r#"[["1,25","1"]]"#,
            r#"[["1"]]"#,
            r#"[["1","2","3"]]"#,
            r#"[[]]"#,
            r#"["1"]"#,
            r#"{}"#,
            r#"[["\u0031","1"]]"#,
            r#"[["1e999","0"]]"#,
            r#"[[true,"1"]]"#,
        ] {
            assert_eq!(fault(&depth(bad), Depth), FrameFault::Levels("b"), "{bad}");
        }
        assert_eq!(
            fault(&depth(r#"[["1","2"],]"#), Depth),
            FrameFault::Malformed { what: "trailing comma in array", at: 57 }
        );
        assert_eq!(
            fault(&depth(r#"[["1","2"] 3]"#), Depth),
            FrameFault::Malformed { what: "expected ',' or ']'", at: 57 }
        );
        let missing = r#"{"stream":"x@depth","data":{"b":[["x","1"]],"a":[],"u":1}}"#;
        assert_eq!(fault(missing, Depth), FrameFault::Missing("s"), "a missing field is reported before bad levels");
        let malformed = r#"{"stream":"x@depth","data":{"s":"X","u":1,"b":[["x","1"]],"a":[],}}"#;
        assert!(matches!(fault(malformed, Depth), FrameFault::Malformed { .. }), "malformed JSON comes first");
    }

    #[test]
    fn symbols_take_their_canonical_form_which_must_fit_the_field() {
        let quote = |s: &str| {
            format!(r#"{{"stream":"x@bookTicker","data":{{"s":"{s}","u":1,"b":"1","B":"1","a":"1","A":"1"}}}}"#)
        };
        let symbols = &mut SymbolCache::default();
        let symbol = |s: &str, symbols: &mut SymbolCache| super::decode(quote(s).as_bytes(), Quote, symbols);
        for (raw, field) in [
            ("btcusd_perp", b"BTC-USD-PERP\0\0\0\0"),
            ("BCHUSD_210924", b"BCH-USD-210924\0\0"),
            (r"\u0062tcusdt", b"BTC-USDT\0\0\0\0\0\0\0\0"),
            ("BTCUSDT", b"BTC-USDT\0\0\0\0\0\0\0\0"),
        ] {
            assert_eq!(symbol(raw, symbols).unwrap().symbol, Some(*field), "{raw}");
        }
        for (raw, reported) in [("", ""), ("abcdefghijklusdt", "ABCDEFGHIJKL-USDT"), ("BTC USDT", "BTC USDT")] {
            assert_eq!(symbol(raw, symbols), Err(LineFault::Symbol(reported.into())), "{raw}");
        }
    }
}
