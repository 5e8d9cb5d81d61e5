use super::*;
use crate::error::FrameFault;
use crate::layout::tests::message_layout;
use crate::layout::{get_i64, MARKET_DATA, NORMAL};

const QUOTE: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":11,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true}}"#;
const DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":20,"u":25,"b":[["61730.17","0.5"]],"a":[["61839.86","0"]]}}"#;
const SNAPSHOT: &str = r#"{"lastUpdateId":30,"bids":[["61837.63","3.7"]],"asks":[["61837.64","1.5"]]}"#;

fn recording(text: &str) -> Result<Recording<'_>, DecodeError> {
    Recording::new(text.as_bytes(), "binance", Some("btcusdt"))
}

fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let recording = recording(text)?;
    let layout = message_layout();
    let mut out = vec![0xa5; recording.len() * layout.size];
    recording.decode_into(&layout, &mut out)?;
    Ok(out)
}

fn line_fault(text: &str) -> (u64, LineFault) {
    match decode(text) {
        Err(DecodeError::Line { line, fault }) => (line, fault),
        other => panic!("{text}: {other:?}"),
    }
}

fn u64_at(record: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(record[at..at + 8].try_into().unwrap())
}

fn f64_at(record: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(record[at..at + 8].try_into().unwrap())
}

#[test]
fn every_kind_fills_its_record_and_nothing_else() {
    let text = format!("1000 {QUOTE}\n1001 {TRADE}\n\n1003 {DEPTH}\n1004 {SNAPSHOT}\n");
    let out = decode(&text).unwrap();
    let l = message_layout();
    let rows: Vec<&[u8]> = out.chunks(l.size).collect();
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(u64_at(row, l.id), i as u64 + 1);
        assert_eq!((row[l.message_type], row[l.priority], row[43]), (MARKET_DATA, NORMAL, 0));
        assert_eq!(&row[l.symbol..l.symbol + 16], b"BTC-USDT\0\0\0\0\0\0\0\0", "the canonical symbol, the hint's too");
        assert_eq!(&row[l.venue..l.venue + 16], b"binance\0\0\0\0\0\0\0\0\0");
        assert_eq!(&row[l.source..l.source + 16], b"replay\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(&row[8..40], &[0u8; 32], "created, published, correlation and causation stay 0");
        assert_eq!(&row[160..176], &[0u8; 16]);
        assert!(f64_at(row, l.volume).is_nan());
    }
    let kinds: Vec<u8> = rows.iter().map(|r| r[l.kind]).collect();
    assert_eq!(kinds, [1, 2, 3, 4]);
    let receive: Vec<i64> = rows.iter().map(|r| get_i64(r, l.receive_ns)).collect();
    assert_eq!(receive, [1000, 1001, 1003, 1004]);
    let exchange: Vec<i64> = rows.iter().map(|r| get_i64(r, l.exchange_ns)).collect();
    assert_eq!(exchange, [0, 1_723_161_255_342_000_000, 1_723_161_255_208_000_000, 0]);
    let ids: Vec<u64> = rows.iter().map(|r| u64_at(r, l.update_id)).collect();
    assert_eq!(ids, [11, 3_735_683_259, 25, 30]);
    assert_eq!((f64_at(rows[0], l.bid), f64_at(rows[0], l.ask_size)), (61837.63, 1.54698));
    assert_eq!((f64_at(rows[1], l.last_price), f64_at(rows[1], l.last_size)), (61837.63, 0.02));
    assert!(f64_at(rows[1], l.bid).is_nan() && f64_at(rows[0], l.last_price).is_nan());
    assert_eq!((f64_at(rows[2], l.bid), f64_at(rows[2], l.bid_size)), (61730.17, 0.5));
    assert!(f64_at(rows[2], l.ask).is_nan() && f64_at(rows[2], l.ask_size).is_nan());
    assert_eq!((f64_at(rows[3], l.bid), f64_at(rows[3], l.ask)), (61837.63, 61837.64));
}

#[test]
fn lines_that_are_not_frames_are_reported_with_their_line() {
    let at2 = |line: &str| line_fault(&format!("1 {QUOTE}\n{line}"));
    assert_eq!(at2("no-space-here"), (2, LineFault::NotAFrame(b"no-space-here".to_vec())));
    assert_eq!(at2("12x4 {}"), (2, LineFault::ReceiveTime(b"12x4".to_vec())));
    assert_eq!(at2("99999999999999999999 {}").1, LineFault::NotAFrame(b"99999999999999999999 {}".to_vec()));
    assert_eq!(at2("9999999999999999999 {}").1, LineFault::ReceiveTime(b"9999999999999999999".to_vec()));
    assert_eq!(
        at2("9223372036854775807 {}").1,
        LineFault::Frame { kind: MarketDataKind::Snapshot, fault: FrameFault::Missing("lastUpdateId") }
    );
    assert_eq!(at2(" {}").1, LineFault::ReceiveTime(Vec::new()));
    assert_eq!(
        at2(&format!("5 {}", QUOTE.replace("@bookTicker", "@aggTrade"))).1,
        LineFault::Stream("btcusdt@aggTrade".into())
    );
    assert_eq!(at2(r#"5 {"stream":"btcusdt","data":{}}"#).1, LineFault::Stream("btcusdt".into()));
    let (line, fault) = line_fault(&format!("1 {QUOTE}\n\n\n4 {}", TRADE.replace(r#""t":"#, r#""x":"#)));
    assert_eq!(
        (line, fault.to_string().as_str()),
        (4, "TRADE frame: missing required field `t`; expected a Binance trade frame")
    );
    let long = "x".repeat(100);
    let (_, fault) = line_fault(&long);
    assert_eq!(fault, LineFault::NotAFrame(long.as_bytes()[..60].to_vec()));
}

#[test]
fn receive_time_errors_come_before_stream_errors_anywhere() {
    let text = format!("1 {}\n2 {QUOTE}\nbad\n", QUOTE.replace("bookTicker", "kline"));
    assert_eq!(line_fault(&text), (3, LineFault::NotAFrame(b"bad".to_vec())));
}

#[test]
fn snapshots_need_a_symbol_or_a_hint() {
    let layout = message_layout();
    let text = format!("1 {SNAPSHOT}");
    for hint in [None, Some("")] {
        let rec = Recording::new(text.as_bytes(), "binance", hint).unwrap();
        let err = rec.decode_into(&layout, &mut vec![0; layout.size]).unwrap_err();
        assert_eq!(err, DecodeError::Line { line: 1, fault: LineFault::SnapshotSymbol });
        assert!(err.to_string().contains("pass symbol_hint"));
    }
    let rec = Recording::new(text.as_bytes(), "binance", Some("a-very-long-symbol")).unwrap();
    let err = rec.decode_into(&layout, &mut vec![0; layout.size]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: symbol: 'A-VERY-LONG-SYMBOL' must be 1 to 16 printable ASCII characters, no spaces, in canonical form"
    );
    let rec = Recording::new(format!("1 {QUOTE}").into_bytes(), "binance", Some("a-very-long-symbol")).unwrap();
    assert!(rec.decode_into(&layout, &mut vec![0; layout.size]).is_ok(), "a hint is only checked when used");
}

#[test]
fn a_venue_must_fit_its_field() {
    for venue in ["", "binance-coinm-perp", "bïnance"] {
        let err = Recording::new(&b""[..], venue, None).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidText { field: "venue", .. }), "{venue}");
    }
    assert!(recording("").unwrap().is_empty());
    assert_eq!(recording("\n\n").unwrap().len(), 0);
}

/// Lines of a recording with receive times `times` (a quote each, update id = position).
fn quotes(times: &[i64]) -> String {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{t} {}\n", QUOTE.replace(r#""u":11"#, &format!(r#""u":{i}"#))))
        .collect()
}

#[test]
fn a_merge_is_stable_by_receive_time_and_renumbers_ids() {
    let (a, b, c) = (quotes(&[1, 3, 3, 7]), quotes(&[2, 3, 9]), quotes(&[0, 5, 4]));
    let recordings = [&a, &b, &c].map(|t| Recording::new(t.as_bytes(), "v", None).unwrap());
    let replay = Replay::merged(recordings.into());
    let layout = message_layout();
    for threads in [1, 2, 3, 64] {
        let mut out = vec![0; replay.len() * layout.size];
        replay.decode_into(&layout, &mut out, threads).unwrap();
        let rows: Vec<(i64, u64, u64)> = out
            .chunks(layout.size)
            .map(|r| (get_i64(r, layout.receive_ns), u64_at(r, layout.update_id), u64_at(r, layout.id)))
            .collect();
        // numpy's stable argsort of the concatenation [a, b, c]: ties keep a before b
        let got: Vec<(i64, u64)> = rows.iter().map(|&(t, u, _)| (t, u)).collect();
        assert_eq!(got, [(0, 0), (1, 0), (2, 0), (3, 1), (3, 2), (3, 1), (4, 2), (5, 1), (7, 3), (9, 2)]);
        assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>(), "threads={threads}");
    }
}

#[test]
fn threads_write_the_same_records_as_one() {
    let times: Vec<i64> = (0..40_000).map(|i| (i * 7919) % 10_007).collect();
    let text = quotes(&times);
    let layout = message_layout();
    let decode_with = |threads| {
        let replay = Replay::merged(vec![Recording::new(text.as_bytes(), "v", None).unwrap()]);
        let mut out = vec![0; replay.len() * layout.size];
        replay.decode_into(&layout, &mut out, threads).unwrap();
        out
    };
    let one = decode_with(1);
    assert_eq!(decode_with(2), one);
    assert_eq!(decode_with(5), one);
    let in_order = Replay::in_line_order(Recording::new(text.as_bytes(), "v", None).unwrap());
    let mut out = vec![0; in_order.len() * layout.size];
    in_order.decode_into(&layout, &mut out, 2).unwrap();
    assert_eq!(get_i64(&out[layout.size..], layout.receive_ns), times[1]);
}

#[test]
fn every_record_carries_its_frames_canonical_symbol() {
    // More distinct names than a symbol cache keeps, interleaved, on one thread and several.
    let names: Vec<String> = (0..100).map(|i| format!("c{i}usd_perp")).chain(["ETHBTC".into(), "x".into()]).collect();
    let lines = |offset: usize| -> String {
        (0..40_000)
            .map(|i| {
                format!(
                    "{i} {}\n",
                    QUOTE.replace(r#""s":"BTCUSDT""#, &format!(r#""s":"{}""#, names[(i * 7 + offset) % names.len()]))
                )
            })
            .collect()
    };
    let (a, b) = (lines(0), lines(3));
    let layout = message_layout();
    for threads in [1, 3] {
        let recordings = [&a, &b].map(|t| Recording::new(t.as_bytes(), "v", None).unwrap());
        let replay = Replay::merged(recordings.into());
        let mut out = vec![0; replay.len() * layout.size];
        replay.decode_into(&layout, &mut out, threads).unwrap();
        for (row, i) in out.chunks(layout.size).zip(0..) {
            let offset = if i % 2 == 0 { 0 } else { 3 }; // merged: a's line, then b's, at each time
            let name = &names[(i / 2 * 7 + offset) % names.len()];
            let want = crate::symbol::canonical(name).unwrap();
            let got = &row[layout.symbol..layout.symbol + 16];
            assert_eq!(&got[..want.len()], want.as_bytes(), "row {i}, threads={threads}");
            assert!(got[want.len()..].iter().all(|&b| b == 0));
        }
    }
}

#[test]
fn the_first_bad_frame_in_recording_then_line_order_is_reported() {
    let bad = QUOTE.replace(r#""u":11,"#, "");
    let a = format!("{}10 {bad}\n", quotes(&[1; 20_000]));
    let b = format!("0 {bad}\n{}", quotes(&[2; 20_000]));
    let replay = Replay::merged(vec![
        Recording::new(a.as_bytes(), "v", None).unwrap(),
        Recording::new(b.as_bytes(), "v", None).unwrap(),
    ]);
    let layout = message_layout();
    let mut out = vec![0; replay.len() * layout.size];
    let err = replay.decode_into(&layout, &mut out, 2).unwrap_err();
    assert_eq!(
        (err.recording, &err.source),
        (
            0,
            &DecodeError::Line {
                line: 20_001,
                fault: LineFault::Frame { kind: MarketDataKind::Quote, fault: FrameFault::Missing("u") }
            }
        )
    );
}

#[test]
fn an_empty_replay_writes_nothing() {
    let replay = Replay::merged(Vec::new());
    assert!(replay.is_empty());
    replay.decode_into(&message_layout(), &mut [], 4).unwrap();
}
