//! Decoding requests: typed results, and errors that say what and where.

use spikebus_protocol::*;

fn enc(v: &impl serde::Serialize) -> Vec<u8> {
    encode(v)
}

#[test]
fn decodes_requests_with_named_fields() {
    let req = Request::Continue {
        id: Some(7),
        actions: vec![
            Action::Set { name: "ns.interval".into(), value: 30.0 },
            Action::Event { target: "syn".into(), t: 1.5, weight: Some(0.1) },
            Action::Schedule { every: Some(1), add_at: None, remove_at: None, on_spike: Some(vec!["soma".into()]), init: None },
            Action::Watch { values: Some(vec!["soma.v".into()]), spikes: None },
            Action::Stop {},
        ],
    };
    assert_eq!(decode_request(&enc(&req)).unwrap(), req);
}

#[derive(serde::Serialize)]
struct Loose<'a> {
    op: &'a str,
    id: u64,
    actions: Vec<std::collections::BTreeMap<&'a str, rmpv_like::V>>,
}

mod rmpv_like {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    pub enum V {
        S(&'static str),
        I(i64),
    }
}

#[test]
fn integers_are_numbers_too() {
    use rmpv_like::V;
    let action = [("op", V::S("set")), ("name", V::S("ns.interval")), ("value", V::I(30))].into_iter().collect();
    let bytes = enc(&Loose { op: "continue", id: 1, actions: vec![action] });
    match decode_request(&bytes).unwrap() {
        Request::Continue { actions, .. } => assert_eq!(actions[0], Action::Set { name: "ns.interval".into(), value: 30.0 }),
        r => panic!("{r:?}"),
    }
}

#[test]
fn errors_name_code_and_field() {
    use rmpv_like::V;
    let e = decode_request(b"\x01\x02").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    let e = decode_request(b"not msgpack at all").unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);

    let action = [("op", V::S("teleport"))].into_iter().collect();
    let e = decode_request(&enc(&Loose { op: "continue", id: 1, actions: vec![action] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownOp, "{e:?}");
    assert_eq!(e.field.as_deref(), Some("actions[0].op"), "{e:?}");

    let action = [("op", V::S("set")), ("name", V::S("x"))].into_iter().collect();
    let e = decode_request(&enc(&Loose { op: "continue", id: 1, actions: vec![action] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.message.contains("value"), "{e:?}");

    let action = [("op", V::S("set")), ("name", V::S("x")), ("value", V::S("big"))].into_iter().collect();
    let e = decode_request(&enc(&Loose { op: "continue", id: 1, actions: vec![action] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.field.as_deref().unwrap_or("").starts_with("actions[0]"), "{e:?}");

    let e = decode_request(&enc(&Loose { op: "fly", id: 1, actions: vec![] })).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownOp);

    let mut bytes = enc(&Request::<Action>::Hello { id: Some(1), protocol: 1 });
    bytes.push(0xc0);
    assert_eq!(decode_request(&bytes).unwrap_err().code, ErrorCode::BadMessage);
}

#[test]
fn unknown_fields_are_refused() {
    #[derive(serde::Serialize)]
    struct Extra {
        op: &'static str,
        protocol: u32,
        colour: &'static str,
    }
    let e = decode_request(&enc(&Extra { op: "hello", protocol: 1, colour: "red" })).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(e.message.contains("colour"), "{e:?}");
}

/// serde alone would read an integer `op` as a variant index and an array as a struct.
#[test]
fn shapes_serde_would_accept_are_refused() {
    use rmpv::Value;
    let enc_v = |v: Value| {
        let mut b = vec![];
        rmpv::encode::write_value(&mut b, &v).unwrap();
        b
    };
    let s = |x: &str| Value::String(x.into());
    let int_op = Value::Map(vec![(s("op"), Value::from(0)), (s("protocol"), Value::from(1))]);
    let e = decode_request(&enc_v(int_op)).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("op")));

    let array_action = Value::Map(vec![
        (s("op"), s("continue")),
        (s("actions"), Value::Array(vec![Value::Array(vec![s("set"), s("ns.interval"), Value::F64(3.0)])])),
    ]);
    let e = decode_request(&enc_v(array_action)).unwrap_err();
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadMessage, Some("actions[0]")));

    let int_key = Value::Map(vec![(s("op"), s("hello")), (Value::from(1), Value::from(1))]);
    assert_eq!(decode_request(&enc_v(int_key)).unwrap_err().code, ErrorCode::BadMessage);
}
